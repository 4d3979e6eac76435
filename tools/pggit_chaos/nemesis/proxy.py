"""FaultyProxy: a loopback proxy in front of the server that slows, silences or resets links."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

import psycopg

from pggit_chaos.history import History, Operation, fault_recorded


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

    The proxy closes a link only when a fault or ``close()`` asks it to:
    it has no timeout of its own, so a server busy for minutes keeps its
    link, and each direction of a link has its own thread, so neither waits
    for the other. ``resets`` counts the sockets closed with an RST (two per
    link: the client's side and the server's). A server the proxy cannot
    reach closes the client's link at once, and the error goes into
    ``upstream_errors``. ``close()`` returns when every thread of the proxy
    has ended.

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
        self.upstream_errors: list[OSError] = []  # connections to the server that failed, in order
        # One lock for the state the control calls and the pumps share: the pattern, the
        # resets in progress and done, the links, the closing flag.
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified when a reset_on reset has ended
        self._reset_pattern: bytes | None = None
        self._striking = 0  # reset_on resets in progress
        self._resets = 0
        self._links: set[_Link] = set()  # links open, to reset
        self._ended: list[_Link] = []  # links closed whose threads may still be finishing
        self._closing = False
        self._numbers = itertools.count()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._wake, self._waker = socket.socketpair()  # a byte on _waker stops the accept loop
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"faulty-proxy:{self.port}")
        self._thread.start()

    @classmethod
    def for_dsn(cls, dsn: str, history: History | None = None) -> FaultyProxy:
        """A proxy in front of the server that ``dsn`` names."""
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        return cls(info.get("host", "127.0.0.1"), int(info.get("port", 5432)), history)

    def dsn(self, dsn: str) -> str:
        """The same connection string (its credentials too), pointed at the proxy.

        TLS is switched off only towards a server on this machine (the proxy
        reads the bytes); towards any other host the DSN's own sslmode stands.
        """
        try:
            loopback = ipaddress.ip_address(self.upstream[0]).is_loopback
        except ValueError:
            loopback = self.upstream[0] == "localhost"
        tls = {"sslmode": "disable"} if loopback else {}
        return psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=str(self.port), **tls)

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
        """Back to a healthy network (faults off; links already reset stay closed).

        A reset that ``reset_on`` had begun has ended when ``heal()``
        returns, and none begins after.
        """
        self._blackhole.clear()
        self._latency = 0.0
        with self._lock:
            self._reset_pattern = None
            if not self._quiet.wait_for(lambda: self._striking == 0, timeout=_STOP_WITHIN):
                raise RuntimeError(f"FaultyProxy: a reset_on reset still running after {_STOP_WITHIN} s")
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
        """Reset the link that next carries ``pattern`` from a client, right after passing it on.

        One link per call: when several carry it at once, the first resets.
        """
        with self._lock:
            self._reset_pattern = pattern

    def reset_all(self) -> None:
        """Close every link with a TCP RST; it returns once they are closed."""
        with fault_recorded(self.history, "reset_all"):
            with self._lock:
                links = list(self._links)
            self._reset_links(links)

    @property
    def resets(self) -> int:
        """Sockets closed with a TCP RST so far (two per link: the client's side and the server's)."""
        with self._lock:
            return self._resets

    # ---- machinery ----

    def _reset_links(self, links: list[_Link]) -> None:
        for link in links:
            link.stop(rst=True)
        stuck = [link.number for link in links if not link.wait_closed()]
        if stuck:
            raise RuntimeError(f"FaultyProxy: link(s) {stuck} not closed {_GRACE + _STOP_WITHIN} s after the reset")

    def _strike(self, data: bytes) -> bytes | None:
        """The ``reset_on`` pattern if ``data`` carries it, taken (one reset per call); else None."""
        with self._lock:
            pattern = self._reset_pattern
            if pattern is None or pattern not in data:
                return None
            self._reset_pattern = None
            self._striking += 1
            return pattern

    def _accept_loop(self) -> None:
        self._listener.setblocking(False)  # an accept never blocks: close() only has to wake the poll
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        try:
            while True:
                poller.poll()
                with self._lock:
                    if self._closing:
                        return
                try:
                    client, _ = self._listener.accept()
                except BlockingIOError:  # the client gave up before it was accepted
                    continue
                except OSError:  # out of descriptors, say: try again shortly
                    time.sleep(0.05)
                    continue
                client.setblocking(True)
                link = _Link(next(self._numbers), client)
                up = threading.Thread(target=self._run_link, args=(link,), daemon=True,
                                      name=f"faulty-proxy:{self.port} link {link.number} up")
                link.threads.append(up)
                with self._lock:
                    if self._closing:
                        client.close()
                        return
                    self._links.add(link)
                    self._ended = [old for old in self._ended if any(t.is_alive() for t in old.threads)]
                up.start()
        finally:
            self._listener.close()

    def _run_link(self, link: _Link) -> None:
        """The ``up`` thread: connect to the server, start ``down``, pump client to server, end the link."""
        try:
            if self._connect_upstream(link):
                down = threading.Thread(target=self._pump, args=(link, link.server, link.client, False), daemon=True,
                                        name=f"faulty-proxy:{self.port} link {link.number} down")
                if link.start(down):
                    self._pump(link, link.client, link.server, True)
        finally:
            self._end_link(link)

    def _connect_upstream(self, link: _Link) -> bool:
        """Connect ``link.server`` with no timeout of its own; False when the link stopped first or it failed.

        The connection waits as long as the system lets it (the client has
        its own ``connect_timeout``); ``close()`` and the resets stop it.
        """
        error: OSError | None = None
        try:
            addresses = socket.getaddrinfo(*self.upstream, type=socket.SOCK_STREAM)
        except OSError as exc:
            addresses, error = [], exc
        for family, kind, proto, _, address in addresses:
            server = socket.socket(family, kind, proto)
            try:
                server.setblocking(False)
                code = server.connect_ex(address)
                if code == errno.EINPROGRESS:
                    poller = select.poll()
                    poller.register(server, select.POLLOUT)
                    poller.register(link.wake, select.POLLIN)
                    poller.poll()
                    code = errno.ECANCELED if link.stopping.is_set() else server.getsockopt(
                        socket.SOL_SOCKET, socket.SO_ERROR)
                if code == errno.ECANCELED:
                    server.close()
                    return False
                if code == 0:
                    server.setblocking(True)
                    link.adopt(server)
                    return True
                error = OSError(code, os.strerror(code))
            except OSError as exc:
                error = exc
            server.close()
        with self._lock:
            self.upstream_errors.append(error)
        return False

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        """Pass bytes from ``source`` to ``target`` with the faults in force, until the link stops."""
        poller = select.poll()
        poller.register(source, select.POLLIN)
        poller.register(link.wake, select.POLLIN)
        try:
            while not link.stopping.is_set():
                poller.poll()
                if link.stopping.is_set():
                    return
                data = source.recv(65536)
                if not data:
                    return  # this side closed the link: the other side's closes too
                if link.stopping.is_set() or self._blackhole.is_set():
                    continue
                latency = self._latency
                if latency and link.stopping.wait(latency):
                    return
                pattern = self._strike(data) if upstream else None
                if pattern is None:
                    target.sendall(data)
                    continue
                try:
                    with fault_recorded(self.history, "reset", pattern):
                        link.stop(rst=True)  # before the request leaves: no answer gets back to the client
                        with contextlib.suppress(OSError):
                            target.sendall(data)
                        self._end_link(link)
                finally:
                    with self._lock:
                        self._striking -= 1
                        self._quiet.notify_all()
                return
        except OSError:
            return  # a peer reset or closed its side: the link ends with it
        finally:
            link.stop(rst=False)

    def _end_link(self, link: _Link) -> None:
        """In the ``up`` thread: stop the link, wait for ``down``, close both sockets (once)."""
        if link.closed.is_set():
            return
        link.stop(rst=False)
        for thread in link.threads:
            if thread is not threading.current_thread():
                thread.join(_GRACE)
                if thread.is_alive():  # blocked sending to a peer that reads nothing
                    link.unblock()
                    thread.join(_STOP_WITHIN)
        link.close_sockets(self._count_resets)
        with self._lock:
            self._links.discard(link)
            self._ended.append(link)
        link.closed.set()

    def _count_resets(self, rsts: int) -> None:
        with self._lock:
            self._resets += rsts

    def close(self) -> None:
        """Stop accepting, reset every link, and return once every thread of the proxy has ended.

        Faults in force end here. A thread still running after the bound
        (it should never be) makes ``close()`` raise ``RuntimeError``.
        """
        for name in list(self._in_force):
            self._healed(name)
        with self._lock:
            if self._closing:
                return
            self._closing = True
        with contextlib.suppress(OSError):
            self._waker.send(b"!")
        self._thread.join(_STOP_WITHIN)
        with self._lock:
            links = list(self._links)
        try:
            self._reset_links(links)
        finally:
            with self._lock:
                threads = [self._thread, *(t for link in [*links, *self._ended] for t in link.threads)]
            for thread in threads:
                thread.join(_STOP_WITHIN)
            self._wake.close()
            self._waker.close()
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise RuntimeError(f"FaultyProxy.close(): thread(s) {alive} still running")

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_GRACE = 1.0  # seconds a pump has to stop on its own before a blocked send is broken off
_STOP_WITHIN = 10.0  # seconds after which a pump that has not stopped is reported


class _Link:
    """One client's connection through the proxy: its two sockets and a pump thread each way.

    The ``up`` thread owns the link: it connects to the server, starts the
    ``down`` thread, pumps client to server, and at the end closes both
    sockets once ``down`` has ended. No other thread closes them, so no pump
    ever reads or writes a socket closed under it; other threads only ask the
    link to stop, which wakes both pumps.
    """

    def __init__(self, number: int, client: socket.socket):
        self.number = number
        self.client = client
        self.server: socket.socket | None = None
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.rst = False  # with stopping: the sockets close with an RST
        self.closed = threading.Event()
        self._sockets_closed = False
        self._lock = threading.Lock()  # stop, starting a thread, and the sockets' shutdown and closing
        self.wake, self._waker = socket.socketpair()  # readable once the link is stopping

    def adopt(self, server: socket.socket) -> None:
        """Take the connected server socket (closed with the link)."""
        with self._lock:
            self.server = server

    def start(self, thread: threading.Thread) -> bool:
        """Start one more thread of the link, unless it is stopping."""
        with self._lock:
            if self.stopping.is_set():
                return False
            self.threads.append(thread)
            thread.start()
        return True

    def stop(self, rst: bool) -> None:
        """Ask both pumps to stop; ``rst``: the sockets close with an RST. The first ask decides."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.rst = rst
            self.stopping.set()
            with contextlib.suppress(OSError):
                self._waker.send(b"!")  # never read: the pumps' poll returns at once from now on

    def wait_closed(self) -> bool:
        """Wait until the ``up`` thread has closed the sockets; False if it has not within the bounds."""
        if self.closed.wait(_GRACE):
            return True
        self.unblock()
        return self.closed.wait(_STOP_WITHIN)

    def unblock(self) -> None:
        """Break off a send blocked on a peer that reads nothing (``up`` still closes the sockets)."""
        with self._lock:
            if self._sockets_closed:
                return
            for sock in (self.client, self.server):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def close_sockets(self, count_resets: Callable[[int], None]) -> None:
        """Close both sockets, with an RST if the link was reset, counted before any peer can see it."""
        with self._lock:
            sockets = [sock for sock in (self.client, self.server) if sock is not None]
            rsts = 0
            for sock in sockets if self.rst else []:
                try:  # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    rsts += 1
                except OSError:
                    pass
            count_resets(rsts)
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets_closed = True
            self.wake.close()
            self._waker.close()
        return rsts
