"""TransactionMonitor: what other sessions are doing, the locks they hold or wait for, who blocks whom."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class BackendActivity:
    """One session as pg_stat_activity shows it.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.monitor import TransactionMonitor

    with (psycopg.connect(db_connection_string, application_name="seen") as conn,
          TransactionMonitor(db_connection_string) as monitor):
        conn.execute("SELECT 1")
        activity = monitor.activity(conn.info.backend_pid)
    assert (activity.application_name, activity.state) == ("seen", "idle in transaction")
    assert not activity.waiting_on_lock
    ```
    """

    pid: int
    database: str | None
    application_name: str
    state: str | None
    xact_start: dt.datetime | None
    query_start: dt.datetime | None
    query: str
    wait_event_type: str | None
    wait_event: str | None
    backend_xid: str | None

    @property
    def waiting_on_lock(self) -> bool:
        """The session waits for a lock (``wait_event_type`` is ``Lock``)."""
        return self.wait_event_type == "Lock"


@dataclass(frozen=True)
class LockInfo:
    """One row of pg_locks, with the relation's name where there is one.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.monitor import TransactionMonitor

    with psycopg.connect(db_connection_string) as conn, TransactionMonitor(db_connection_string) as monitor:
        conn.execute("LOCK TABLE pggit.commits IN EXCLUSIVE MODE")
        (lock,) = [lock for lock in monitor.locks(conn.info.backend_pid) if lock.relation == "pggit.commits"]
    assert (lock.locktype, lock.mode, lock.granted) == ("relation", "ExclusiveLock", True)
    ```
    """

    pid: int | None
    locktype: str
    mode: str
    granted: bool
    relation: str | None
    transactionid: str | None
    virtualxid: str | None


@dataclass(frozen=True)
class BlockingPair:
    """``blocked_pid`` waits for a lock that ``blocking_pid`` holds or waits for ahead of it.

    ```python fixture:db_connection_string
    import threading

    import psycopg
    from pggit_chaos.monitor import TransactionMonitor

    with (psycopg.connect(db_connection_string) as a, psycopg.connect(db_connection_string, autocommit=True) as b,
          TransactionMonitor(db_connection_string) as monitor):
        a.execute("LOCK TABLE pggit.branches")
        waiter = threading.Thread(target=lambda: b.execute("SELECT 1 FROM pggit.branches"))
        waiter.start()
        try:
            wait = monitor.wait_until_blocked(b.info.backend_pid)
            (pair,) = monitor.blocking_pairs()
            assert (pair.blocked_pid, pair.blocking_pid) == (b.info.backend_pid, a.info.backend_pid)
            assert wait.blocking_pids == (a.info.backend_pid,)
            assert pair.blocking_state == "idle in transaction"
        finally:  # also when an assertion fails: b is closed only after its thread is done with it
            a.rollback()
            waiter.join(10)
    ```
    """

    blocked_pid: int
    blocking_pid: int
    blocked_query: str
    blocking_query: str | None
    blocking_state: str | None
    wait_event: str | None


@dataclass(frozen=True)
class LockWait:
    """A session caught waiting on a lock, by ``wait_until_blocked``.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.interleavings import run_blocked
    from pggit_chaos.monitor import LockWait, TransactionMonitor

    with (psycopg.connect(db_connection_string) as a, psycopg.connect(db_connection_string, autocommit=True) as b,
          TransactionMonitor(db_connection_string) as monitor):
        a.execute("LOCK TABLE pggit.branches")
        wait = run_blocked(monitor, a, b, lambda: b.execute("SELECT 1 FROM pggit.branches")).wait
        assert isinstance(wait, LockWait) and wait.blocking_pids == (a.info.backend_pid,)
        assert wait.query == "SELECT 1 FROM pggit.branches"
    ```
    """

    pid: int
    wait_event: str | None
    blocking_pids: tuple[int, ...]
    query: str


class TransactionMonitor:
    """Watch other sessions of a server: transactions, locks, who blocks whom.

    Give it a connection string (it opens and owns an autocommit
    connection; close it with ``close()`` or a ``with`` block) or an
    autocommit connection of your own. It must not run inside a
    transaction: PostgreSQL freezes pg_stat_activity for the length of one.

    By default it reports on the sessions of its own connection's database,
    itself excluded; ``all_databases=True`` widens that to the server. In an
    asyncio test, call ``wait_until_blocked`` through ``asyncio.to_thread``
    so the event loop keeps running the session that is to block.

    ```python fixture:db_connection_string
    import threading

    import psycopg
    from pggit_chaos.monitor import TransactionMonitor

    with (psycopg.connect(db_connection_string) as holder,
          psycopg.connect(db_connection_string, autocommit=True) as waiter,
          TransactionMonitor(db_connection_string) as monitor):
        holder.execute("SELECT * FROM pggit.branches WHERE name = 'main' FOR UPDATE")
        thread = threading.Thread(target=lambda: waiter.execute("SELECT pggit.commit_changes('main', 'waits')"))
        thread.start()
        try:
            wait = monitor.wait_until_blocked(waiter.info.backend_pid)
            assert holder.info.backend_pid in wait.blocking_pids
            assert monitor.who_blocks_whom() == {waiter.info.backend_pid: (holder.info.backend_pid,)}
        finally:  # also when an assertion fails: waiter is closed only after its thread is done with it
            holder.rollback()
            thread.join(10)
    ```
    """

    def __init__(self, conn_or_dsn: psycopg.Connection | str, all_databases: bool = False) -> None:
        if isinstance(conn_or_dsn, str):
            self.conn = psycopg.connect(conn_or_dsn, autocommit=True, application_name="transaction_monitor")
            self._owned = True
        else:
            if not conn_or_dsn.autocommit:
                raise ValueError(
                    "TransactionMonitor needs an autocommit connection: inside a transaction "
                    "pg_stat_activity keeps showing the moment of the first read"
                )
            self.conn = conn_or_dsn
            self._owned = False
        self.all_databases = all_databases

    def close(self) -> None:
        """Close the connection if the monitor opened it."""
        if self._owned:
            self.conn.close()

    def __enter__(self) -> TransactionMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _scope(self, alias: str) -> str:
        own = f"{alias}.pid <> pg_backend_pid()"
        return own if self.all_databases else f"{own} AND {alias}.datname = current_database()"

    def active_transactions(self) -> list[BackendActivity]:
        """Client sessions with an open transaction (active or idle in transaction), oldest first.

        ```python fixture:db_connection_string
        import psycopg
        from pggit_chaos.monitor import TransactionMonitor

        with psycopg.connect(db_connection_string) as open_tx, TransactionMonitor(db_connection_string) as monitor:
            open_tx.execute("SELECT 1")
            (activity,) = monitor.active_transactions()
            assert activity.pid == open_tx.info.backend_pid and activity.state == "idle in transaction"
        ```
        """
        rows = self.conn.execute(
            "SELECT a.pid, a.datname, a.application_name, a.state, a.xact_start, a.query_start, a.query, "
            "a.wait_event_type, a.wait_event, a.backend_xid::text "
            "FROM pg_stat_activity a "
            f"WHERE a.backend_type = 'client backend' AND a.xact_start IS NOT NULL AND {self._scope('a')} "
            "ORDER BY a.xact_start, a.pid"
        ).fetchall()
        return [BackendActivity(*row) for row in rows]

    def activity(self, pid: int) -> BackendActivity | None:
        """What one session is doing now, or None when it is gone.

        ```python fixture:db_connection_string
        import psycopg
        from pggit_chaos.monitor import TransactionMonitor

        with (psycopg.connect(db_connection_string, autocommit=True) as conn,
              TransactionMonitor(db_connection_string) as monitor):
            assert monitor.activity(conn.info.backend_pid).state == "idle"
            assert monitor.activity(0) is None
        ```
        """
        row = self.conn.execute(
            "SELECT a.pid, a.datname, a.application_name, a.state, a.xact_start, a.query_start, a.query, "
            "a.wait_event_type, a.wait_event, a.backend_xid::text "
            "FROM pg_stat_activity a WHERE a.pid = %s",
            (pid,),
        ).fetchone()
        return BackendActivity(*row) if row else None

    def wait_until_gone(self, pid: int, timeout: float = 10.0, poll_interval: float = 0.01) -> None:
        """Poll until session ``pid`` has ended; ``TimeoutError`` saying what it still does after ``timeout``.

        A request whose client is gone (a cut link, a reset) runs on in the
        server until it tries to answer: read the final state only after its
        session has ended, so that the request has committed or rolled back.

        ```python fixture:db_connection_string
        import psycopg
        from pggit_chaos.monitor import TransactionMonitor

        with TransactionMonitor(db_connection_string) as monitor:
            conn = psycopg.connect(db_connection_string)
            pid = conn.info.backend_pid
            conn.close()
            monitor.wait_until_gone(pid)
            assert monitor.activity(pid) is None
        ```
        """
        deadline = time.monotonic() + timeout
        while (activity := self.activity(pid)) is not None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"session {pid} still exists {timeout:g} s later: state={activity.state!r}, "
                                   f"query={activity.query!r}")
            time.sleep(poll_interval)

    def locks(self, pid: int | None = None) -> list[LockInfo]:
        """Locks held or awaited (``granted`` false), of one session or of every watched one.

        ```python fixture:db_connection_string
        import psycopg
        from pggit_chaos.monitor import TransactionMonitor

        with psycopg.connect(db_connection_string) as conn, TransactionMonitor(db_connection_string) as monitor:
            conn.execute("LOCK TABLE pggit.branches IN SHARE MODE")
            modes = {(lock.relation, lock.mode) for lock in monitor.locks(conn.info.backend_pid)}
            assert ("pggit.branches", "ShareLock") in modes
        ```
        """
        rows = self.conn.execute(
            "SELECT l.pid, l.locktype, l.mode, l.granted, "
            # An OID from another database would resolve to an unrelated name here.
            "  CASE WHEN l.relation IS NULL THEN NULL "
            "       WHEN l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "       THEN l.relation::regclass::text ELSE l.relation::text END, "
            "  l.transactionid::text, l.virtualxid "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE (%(pid)s::int IS NULL OR l.pid = %(pid)s) "
            "  AND l.pid IS DISTINCT FROM pg_backend_pid() "
            f"  AND (%(pid)s::int IS NOT NULL OR a.pid IS NULL OR ({self._scope('a')})) "
            "ORDER BY l.pid, l.granted DESC, l.locktype, l.mode",
            {"pid": pid},
        ).fetchall()
        return [LockInfo(*row) for row in rows]

    def blocking_pairs(self) -> list[BlockingPair]:
        """Every (blocked, blocker) pair, from ``pg_blocking_pids`` (the class's example shows one)."""
        rows = self.conn.execute(
            "SELECT a.pid, blocker.pid, a.query, b.query, b.state, a.wait_event "
            "FROM pg_stat_activity a "
            "CROSS JOIN LATERAL unnest(pg_blocking_pids(a.pid)) AS blocker(pid) "
            "LEFT JOIN pg_stat_activity b ON b.pid = blocker.pid "
            f"WHERE a.wait_event_type = 'Lock' AND {self._scope('a')} "
            "ORDER BY a.pid, blocker.pid"
        ).fetchall()
        return [BlockingPair(*row) for row in rows]

    def who_blocks_whom(self) -> dict[int, tuple[int, ...]]:
        """``{blocked_pid: (blocking_pid, ...)}`` for every session waiting on a lock (the class shows one)."""
        graph: dict[int, tuple[int, ...]] = {}
        for pair in self.blocking_pairs():
            graph[pair.blocked_pid] = graph.get(pair.blocked_pid, ()) + (pair.blocking_pid,)
        return graph

    def wait_until_blocked(
        self,
        pid: int,
        timeout: float = 5.0,
        poll_interval: float = 0.005,
        finished: Callable[[], bool] | None = None,
    ) -> LockWait:
        """Poll until session ``pid`` waits on a lock; return what it waits for and who blocks it.

        Raises ``TimeoutError`` (saying what the session was doing) if it is
        not waiting within ``timeout`` seconds, ``LookupError`` at once if the
        session does not exist. ``finished``, when given, says whether the
        call that was to block is over (``future.done``, say): once it is and
        the session is not waiting, it never will, and ``TimeoutError`` comes
        at once instead of at the deadline.
        """
        deadline = time.monotonic() + timeout
        seen_waiting = False
        while True:
            # Asked before the look: a call over by then cannot be waiting later.
            over = finished is not None and finished()
            row = self.conn.execute(
                "SELECT wait_event_type, wait_event, state, query, pg_blocking_pids(pid) "
                "FROM pg_stat_activity WHERE pid = %s",
                (pid,),
            ).fetchone()
            if row is None:
                raise LookupError(f"no session with pid {pid}")
            wait_event_type, wait_event, state, query, blockers = row
            if wait_event_type == "Lock":
                # pg_stat_activity reads the wait event live but state and query from a copy taken at the start
                # of the look, which may predate the statement; a second look, after the wait was seen, is fresh.
                if seen_waiting:
                    return LockWait(pid, wait_event, tuple(blockers), query)
                seen_waiting = True
                continue
            seen_waiting = False
            if over:
                raise TimeoutError(
                    f"session {pid} finished its call without blocking on a lock: "
                    f"state={state!r}, wait_event={wait_event_type}/{wait_event}, query={query!r}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"session {pid} did not block on a lock within {timeout} s: "
                    f"state={state!r}, wait_event={wait_event_type}/{wait_event}, query={query!r}"
                )
            time.sleep(poll_interval)

