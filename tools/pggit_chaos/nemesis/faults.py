"""Faults (Jepsen's nemesis): the real things that go wrong, each in one place.

Server faults act on the run's cluster (``pg_cluster``); connection faults act
on one client connection; network faults go through ``FaultyProxy``, a small
loopback TCP proxy between a client and the server.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

import psycopg

from pggit_chaos.nemesis.injector import ChaosInjector

# ---------------------------------------------------------------------------
# Server faults
# ---------------------------------------------------------------------------


def crash_postmaster(pg_cluster) -> None:
    """SIGKILL the postmaster and every server process, then start again (crash recovery runs)."""
    pg_cluster.crash()
    pg_cluster.start()


def terminate_backend(pg_cluster, conn: psycopg.Connection) -> None:
    """The server ends one client's session (pg_terminate_backend), as an admin or OOM killer would."""
    pid = conn.info.backend_pid
    with pg_cluster.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def cut_connection(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """The client's side of the connection goes dead mid-session (no goodbye to the server)."""
    ChaosInjector.break_connection(conn)


@contextlib.contextmanager
def connections_exhausted(dsn: str, limit: int = 1000) -> Iterator[list[psycopg.Connection]]:
    """Open connections until the server refuses one, hold them for the block, then close them all."""
    held: list[psycopg.Connection] = []
    try:
        for _ in range(limit):
            try:
                held.append(psycopg.connect(dsn, autocommit=True, connect_timeout=5))
            except psycopg.OperationalError:
                break
        else:
            raise RuntimeError(f"the server accepted {limit} connections; lower max_connections first")
        yield held
    finally:
        for conn in held:
            conn.close()


@contextlib.contextmanager
def memory_capped(pg_cluster, work_mem: str = "64kB") -> Iterator[None]:
    """Sorts and hashes get only ``work_mem`` each (the smallest PostgreSQL allows is 64kB)."""
    with pg_cluster.configured(work_mem=work_mem):
        yield


@contextlib.contextmanager
def temp_disk_capped(pg_cluster, temp_file_limit: str = "1MB") -> Iterator[None]:
    """A session may write at most ``temp_file_limit`` of temporary files; past it, its statement fails."""
    with pg_cluster.configured(temp_file_limit=temp_file_limit):
        yield


def await_setting(conn: psycopg.Connection, name: str, value: str, timeout: float = 10.0) -> None:
    """Wait until session ``conn`` runs with ``name = value``.

    A reload (``memory_capped``, ``temp_disk_capped``) reaches the postmaster
    and then each session asynchronously, between two of its statements: a
    session that asks too soon still has the old value, and a fault it was
    meant to feel does not happen.
    """
    deadline = time.monotonic() + timeout
    while (current := conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]) != value:
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {conn.info.backend_pid} still has {name} = {current}, not {value}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------
# Network faults
# ---------------------------------------------------------------------------


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
    """

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.latency = 0.0
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
    def for_dsn(cls, dsn: str) -> "FaultyProxy":
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        return cls(info.get("host", "127.0.0.1"), int(info.get("port", 5432)))

    def dsn(self, dsn: str) -> str:
        """The same connection string, pointed at the proxy (TLS off: the proxy reads bytes)."""
        return psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=str(self.port), sslmode="disable")

    # ---- faults ----

    def blackhole(self) -> None:
        self._blackhole.set()

    def heal(self) -> None:
        """Back to a healthy network (faults off; links already reset stay closed)."""
        self._blackhole.clear()
        self.latency = 0.0
        self._reset_pattern = None

    def reset_on(self, pattern: bytes) -> None:
        self._reset_pattern = pattern

    def reset_all(self) -> None:
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
                    if self.latency:
                        time.sleep(self.latency)
                    peers[sock].sendall(data)
                    if sock is client and self._reset_pattern and self._reset_pattern in data:
                        self._reset_pattern = None  # one reset per request
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
        self._stopping.set()
        self._listener.close()
        self.reset_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FaultyProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
