"""Network faults: a client's link cut dead, and ``FaultyProxy``, a proxy that slows, silences or resets links."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

import psycopg

from pggit_chaos.history import History, Operation, fault_recorded
from pggit_chaos.nemesis.injector import ChaosInjector

__all__ = ["FaultyProxy", "cut_connection"]


def cut_connection(conn: psycopg.Connection | psycopg.AsyncConnection, history: History | None = None) -> None:
    """The client's side of the connection goes dead mid-session (no goodbye to the server).

    The next statement on ``conn`` raises ``psycopg.OperationalError``; the
    server sees the link drop and rolls back the open transaction. With
    ``history``, recorded as fault ``"cut"`` with the session's pid.

    ```python fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    conn = psycopg.connect(db_connection_string)
    conn.execute("SELECT pggit.commit_changes('main', 'never committed')")
    nemesis.cut_connection(conn)
    with pytest.raises(psycopg.OperationalError):
        conn.commit()
    conn.close()
    ```
    """
    pid = None if conn.closed else conn.info.backend_pid
    with fault_recorded(history, "cut", pid):
        ChaosInjector.break_connection(conn)


class FaultyProxy:
    """A loopback TCP proxy whose links can be slowed, silenced or reset.

    Connect clients to ``proxy.dsn(original_dsn)``. Faults apply to every
    link, current and future:

    - ``latency = seconds``: each chunk is held that long before it is passed on;
    - ``blackhole()``: bytes are swallowed, sockets stay open (a dead network);
    - ``reset_all()``: every link is closed with a TCP RST (a cut cable, a firewall);
    - ``reset_on(b"commit_changes")``: reset the link the moment a client
      message containing those bytes has been passed to the server, so the
      server gets the request but the client never gets the answer.

    Given a ``history``, each fault goes into it: ``"latency"`` (with the
    seconds) and ``"blackhole"`` in force from when they are set until
    ``heal()`` (or another latency, or ``close()``); ``"reset_all"``, and
    ``"reset"`` when ``reset_on``'s pattern went by (with the pattern), at
    the moment they strike.

    ```python fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis
    from pggit_chaos.history import History

    history = History()
    with nemesis.FaultyProxy.for_dsn(db_connection_string, history=history) as proxy:
        conn = psycopg.connect(proxy.dsn(db_connection_string), autocommit=True)
        proxy.reset_on(b"commit_changes")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT pggit.commit_changes('main', 'cut off')")
        conn.close()
    assert proxy.resets >= 1 and [f.args for f in history.faults("reset")] == [(b"commit_changes",)]
    ```
    """

    def __init__(self, upstream_host: str, upstream_port: int, history: History | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.history = history
        self._in_force: dict[str, Operation] = {}  # open-ended faults recorded in the history
        self._latency = 0.0
        self._blackhole = threading.Event()
        self._reset_pattern: bytes | None = None
        self.resets = 0
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="faulty-proxy")
        self._thread.start()

    @classmethod
    def for_dsn(cls, dsn: str, history: History | None = None) -> FaultyProxy:
        """A proxy in front of the server that ``dsn`` names."""
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        return cls(info.get("host", "127.0.0.1"), int(info.get("port", 5432)), history)

    def dsn(self, dsn: str) -> str:
        """The same connection string, pointed at the proxy (TLS off: the proxy reads bytes)."""
        return psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=str(self.port), sslmode="disable")

    # ---- faults ----

    @property
    def latency(self) -> float:
        """Seconds each chunk is held before it is passed on (0: none)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._healed("latency")
        self._latency = seconds
        if seconds:
            self._in_force_from_now("latency", seconds)

    def blackhole(self) -> None:
        """Swallow every byte from now on; the sockets stay open."""
        self._blackhole.set()
        if "blackhole" not in self._in_force:
            self._in_force_from_now("blackhole")

    def heal(self) -> None:
        """Back to a healthy network (faults off; links already reset stay closed)."""
        self._blackhole.clear()
        self._latency = 0.0
        self._reset_pattern = None
        for name in list(self._in_force):
            self._healed(name)

    def _in_force_from_now(self, name: str, *args) -> None:
        if self.history is not None:
            self._in_force[name] = self.history.fault_began(name, *args)

    def _healed(self, name: str) -> None:
        fault = self._in_force.pop(name, None)
        if fault is not None:
            self.history.fault_ended(fault)

    def reset_on(self, pattern: bytes) -> None:
        """Reset the link that next carries ``pattern`` from a client, right after passing it on."""
        self._reset_pattern = pattern

    def reset_all(self) -> None:
        """Close every link now with a TCP RST."""
        with fault_recorded(self.history, "reset_all"):
            with self._lock:
                links, self._links = self._links, []
            for client, server in links:
                self._reset(client)
                self._reset(server)

    # ---- machinery ----

    def _reset(self, sock: socket.socket) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self.resets += 1

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("peer closed")
                    if self._blackhole.is_set():
                        continue
                    if self._latency:
                        time.sleep(self._latency)
                    peers[sock].sendall(data)
                    pattern = self._reset_pattern
                    if sock is client and pattern and pattern in data:
                        self._reset_pattern = None  # one reset per request
                        with fault_recorded(self.history, "reset", pattern):
                            self._reset(client)
                            self._reset(server)
                        return
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                with contextlib.suppress(ValueError):
                    self._links.remove((client, server))

    def close(self) -> None:
        """Stop accepting, reset every link, and stop the proxy's thread; faults in force end here."""
        for name in list(self._in_force):
            self._healed(name)
        self._stopping.set()
        self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for client, server in links:
            self._reset(client)
            self._reset(server)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
