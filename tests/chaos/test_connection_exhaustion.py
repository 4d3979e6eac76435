"""Resource chaos: no connection slot left, on the server and in a client pool.

A pggit deployment runs out of connections in two places: the server's
``max_connections`` (a new session is refused with SQLSTATE 53300) and a
client pool's ``max_size`` (a caller waits, then gets ``PoolTimeout``). In
both cases the refusal must be clean: a clear error, pggit's metadata
untouched, and full service again as soon as a slot is free.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.history import History, run_workers
from pggit_chaos.nemesis import ChaosInjector
from psycopg_pool import ConnectionPool, PoolTimeout

pytestmark = [pytest.mark.chaos, pytest.mark.resource]

# Small enough to fill in a moment, large enough for the workers below.
MAX_CONNECTIONS = 12


def _refusal_fields(dsn: str) -> dict[str, str]:
    """Open a raw protocol-3 session and return the fields of the server's ErrorResponse.

    libpq folds a refusal at startup into a message without its SQLSTATE; the
    wire protocol still carries it (field ``C``), so read it there.
    """
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    params = b"".join(f"{k}\0{v}\0".encode() for k, v in (("user", info["user"]), ("database", info["dbname"])))
    body = struct.pack("!i", 196608) + params + b"\0"  # protocol 3.0
    with socket.create_connection((info["host"], int(info["port"])), timeout=10) as sock:
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        data = b""
        while len(data) < 5 or len(data) < 1 + struct.unpack("!i", data[1:5])[0]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    if data[:1] != b"E":
        return {"accepted": data[:1].decode(errors="replace")}
    length = struct.unpack("!i", data[1:5])[0]
    fields = {}
    for part in data[5:1 + length].split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def _wait_for_sessions(conn: psycopg.Connection, count: int, timeout: float = 10.0) -> None:
    """Until the server has exactly ``count`` client sessions (a closed session takes a moment to exit)."""
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    while (sessions := conn.execute(query).fetchone()[0]) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sessions} client sessions, waiting for {count}")
        time.sleep(0.01)


@pytest.mark.destructive
@pytest.mark.needs_control
def test_sessions_past_max_connections_are_refused_cleanly_and_commits_resume(pg_cluster, db_connection_string):
    """Past max_connections a new session gets 53300 "sorry, too many clients already", pggit's state stays whole, and once slots free up new sessions commit again."""
    history = History()
    with nemesis.server_configured(pg_cluster, history, max_connections=MAX_CONNECTIONS):
        _exhaust_then_recover(db_connection_string, history)
    # The fault really hit the workload: the racers tried to connect while every slot was taken.
    assert checkers.fault_struck(history, "connections exhausted", "connect") == history.of("connect")


def _exhaust_then_recover(db_connection_string: str, history: History) -> None:
    with psycopg.connect(db_connection_string, autocommit=True) as setup:
        before = [commit(setup, "main", f"before exhaustion {i}") for i in range(3)]

    with nemesis.connections_exhausted(db_connection_string, history=history) as held:
        # Fault: every slot is taken. The sessions that have one still work.
        assert len(held) == MAX_CONNECTIONS
        with history.record(0, "commit", "main", "while exhausted") as op:
            op.result = commit(held[0], "main", "while exhausted")
        refusal = _refusal_fields(db_connection_string)
        assert refusal.get("C") == "53300", refusal
        assert refusal.get("M") == "sorry, too many clients already", refusal
        assert refusal.get("S") == "FATAL", refusal
        with pytest.raises(psycopg.OperationalError, match="sorry, too many clients already"):
            psycopg.connect(db_connection_string, connect_timeout=5)
        checkers.integrity_ok(held[1])

        # Free exactly two slots; six workers then race for them.
        for conn in held[-2:]:
            conn.close()
        _wait_for_sessions(held[0], MAX_CONNECTIONS - 2)
        tried = threading.Barrier(6)

        def work(worker: int, history: History) -> None:
            conn = None
            try:
                with history.record(worker, "connect") as op:
                    conn = psycopg.connect(db_connection_string, autocommit=True, connect_timeout=5)
                    op.result = conn.info.backend_pid
            except psycopg.OperationalError:
                pass
            finally:
                tried.wait(timeout=30)  # hold the slot until every worker has tried
            if conn is not None:
                with conn:
                    message = f"racer {worker}"
                    with history.record(worker, "commit", "main", message) as op:
                        op.result = commit(conn, "main", message)

        run_workers(6, work, history)
        connected = history.acknowledged("connect")
        refused = [o for o in history.of("connect") if not o.acknowledged]
        assert len(connected) == 2, history.dump()
        assert len(refused) == 4 and all("too many clients" in o.error for o in refused), history.dump()

    # Slots are free again: a new session connects (once the held ones have exited) and commits.
    def connect_and_commit() -> str:
        with psycopg.connect(db_connection_string, autocommit=True, connect_timeout=5) as conn:
            with history.record(9, "commit", "main", "after exhaustion") as op:
                op.result = commit(conn, "main", "after exhaustion")
            return op.result

    ChaosInjector.with_retry(connect_and_commit, max_attempts=20, backoff=0.05, retry_on=(psycopg.OperationalError,))

    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        chain = checkers.pggit_consistent(conn, history).chains["main"]
        assert chain[:3] == before
        assert len(chain) == 3 + len(history.acknowledged("commit")) == 3 + 1 + 2 + 1


def test_pool_smaller_than_demand_times_out_waiters_and_then_serves_everyone(db_connection_string):
    """A pool with fewer connections than callers makes the extra callers wait and then raise PoolTimeout, never crash; once connections come back the pool serves every caller and all commits form one chain."""
    pool = ConnectionPool(db_connection_string, min_size=1, max_size=3, timeout=10.0, open=False,
                          name="undersized", kwargs={"autocommit": True})
    pool.open(wait=True, timeout=30)
    history = History()
    try:
        # Fault: the main thread checks out every connection of the pool and keeps them.
        checked_out = [pool.getconn() for _ in range(3)]
        for i, conn in enumerate(checked_out):
            with history.record(100 + i, "commit", "main", f"holder {i}") as op:
                op.result = commit(conn, "main", f"holder {i}")

        raised: list[type[BaseException]] = []

        def starved(worker: int, history: History) -> None:
            try:
                with history.record(worker, "checkout") as op:
                    with pool.connection(timeout=0.3) as conn:
                        op.result = commit(conn, "main", f"starved {worker}")
            except BaseException as exc:
                raised.append(type(exc))
                raise

        run_workers(6, starved, history)
        assert raised == [PoolTimeout] * 6, history.dump()
        assert all("couldn't get a connection" in o.error for o in history.of("checkout")), history.dump()

        # Remedy: the connections come back; twice as many callers as connections now all get served.
        for conn in checked_out:
            pool.putconn(conn)

        def served(worker: int, history: History) -> None:
            for i in range(4):
                message = f"served {worker}-{i}"
                with history.record(worker, "commit", "main", message) as op:
                    with pool.connection(timeout=30) as conn:
                        op.result = commit(conn, "main", message)

        run_workers(6, served, history)
        assert len(history.acknowledged("commit")) == 3 + 24, history.dump()
        assert history.overlapping()
        stats = pool.get_stats()
        assert stats.get("requests_errors", 0) == 6, stats
        assert stats.get("pool_size", 0) <= 3, stats
    finally:
        pool.close()

    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        chain = checkers.linear_chain_invariant(conn, "main")
        # Exactly the acknowledged commits: a caller that timed out wrote nothing.
        assert set(chain) == {o.result for o in history.acknowledged("commit")}
        checkers.acknowledged_commits_present(conn, history)
        assert conn.execute("SELECT count(*) FROM pggit.commits WHERE message LIKE 'starved %'").fetchone() == (0,)
        checkers.integrity_ok(conn)


def test_pool_timeout_is_a_timeout_error_not_a_crash(chaos_pool):
    """A caller that cannot get a pooled connection in time gets PoolTimeout and the pool keeps working."""
    held = [chaos_pool.getconn() for _ in range(10)]
    try:
        with pytest.raises(PoolTimeout, match="couldn't get a connection after 0.20 sec"):
            chaos_pool.getconn(timeout=0.2)
    finally:
        for conn in held:
            chaos_pool.putconn(conn)
    with chaos_pool.connection(timeout=5) as conn:
        first = commit(conn, "main", "after pool timeout")
        checkers.integrity_ok(conn)
        assert checkers.linear_chain_invariant(conn, "main") == [first]
