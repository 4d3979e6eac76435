"""The chaos toolkit: faults to inject, state to compare, sessions to watch.

Three tools, each usable on its own:

``ChaosInjector``
    Faults and their remedy: random delays, a connection that really breaks
    in the middle of a block, and retry with exponential backoff.
``DatabaseStateSnapshot``
    Named queries captured at one moment, read-only, then compared: the
    steady-state check before and after a fault.
``TransactionMonitor``
    What other sessions are doing: open transactions, the locks they hold
    or wait for, who blocks whom. Deterministic interleaving tests use
    ``wait_until_blocked`` instead of sleeping and hoping.

Everything here talks to a real server through psycopg 3; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import pq

__all__ = [
    "BackendActivity",
    "BlockingPair",
    "ChaosInjector",
    "DatabaseStateSnapshot",
    "FailureInjection",
    "LockInfo",
    "LockWait",
    "QueryDiff",
    "QueryResult",
    "SnapshotDiff",
    "TransactionMonitor",
]

T = TypeVar("T")

DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


# ==========================================================================
# ChaosInjector
# ==========================================================================


@dataclass
class FailureInjection:
    """What ``simulate_connection_failure`` did: ``injected`` tells whether the connection was broken."""

    injected: bool
    backend_pid: int | None
    """The server process of the connection at the moment of the decision."""

    def __bool__(self) -> bool:
        return self.injected


class _ConnectionFailure:
    """Context manager behind ``simulate_connection_failure``: usable with ``with`` and ``async with``."""

    def __init__(self, conn: psycopg.Connection | psycopg.AsyncConnection, probability: float, rng: Any) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be between 0 and 1, got {probability!r}")
        self._conn = conn
        self._probability = probability
        self._rng = rng if rng is not None else random

    def _inject(self) -> FailureInjection:
        pid = None if self._conn.closed else self._conn.info.backend_pid
        # Draw even at probability 0 or 1, so a seeded rng gives the same sequence whatever the probability.
        injected = self._rng.random() < self._probability
        if injected:
            ChaosInjector.break_connection(self._conn)
        return FailureInjection(injected=injected, backend_pid=pid)

    def __enter__(self) -> FailureInjection:
        return self._inject()

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> FailureInjection:
        return self._inject()

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class ChaosInjector:
    """Faults to inject into a test, and the retry that survives them.

    Stateless: every method is a classmethod or staticmethod. Randomness
    comes from ``rng`` (anything with ``random()`` and ``uniform()``, such
    as ``random.Random(seed)``); left out, it is the ``random`` module, which
    Hypothesis seeds inside a test so that a failure replays.

    Sync and async versions have separate names so that neither needs a
    flag: ``random_delay`` / ``arandom_delay``, ``with_retry`` /
    ``awith_retry``. ``simulate_connection_failure`` works with both
    ``with`` and ``async with``, on sync and async connections.
    """

    # ---- delays -------------------------------------------------------------

    @staticmethod
    def _pick_delay(min_ms: float, max_ms: float, rng: Any) -> float:
        if min_ms < 0 or max_ms < min_ms:
            raise ValueError(f"need 0 <= min_ms <= max_ms, got min_ms={min_ms!r}, max_ms={max_ms!r}")
        return (rng if rng is not None else random).uniform(min_ms, max_ms) / 1000.0

    @classmethod
    def random_delay(cls, min_ms: float = 0, max_ms: float = 100, rng: Any = None) -> float:
        """Sleep (blocking) for a random time between ``min_ms`` and ``max_ms``; return the seconds chosen."""
        seconds = cls._pick_delay(min_ms, max_ms, rng)
        time.sleep(seconds)
        return seconds

    @classmethod
    async def arandom_delay(cls, min_ms: float = 0, max_ms: float = 100, rng: Any = None) -> float:
        """``await`` a random time between ``min_ms`` and ``max_ms``; return the seconds chosen."""
        seconds = cls._pick_delay(min_ms, max_ms, rng)
        await asyncio.sleep(seconds)
        return seconds

    # ---- broken connections -------------------------------------------------

    @staticmethod
    def break_connection(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
        """Cut ``conn``'s link to the server now, as a network failure would.

        The client socket is shut down in both directions: the next use of
        ``conn`` raises ``psycopg.OperationalError`` and leaves it ``broken``;
        the server sees the connection drop and rolls back its open
        transaction.
        """
        # A socket shutdown gives no goodbye, like a dropped link; pg_terminate_backend
        # would first send a polite FATAL AdminShutdown message that no real network failure sends.
        # shutdown() ignores the family given here: Unix-socket connections break the same way.
        with socket.fromfd(conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                # Already cut (and not used since): the link is as broken as asked.
                if exc.errno != errno.ENOTCONN:
                    raise

    @classmethod
    def simulate_connection_failure(
        cls,
        conn: psycopg.Connection | psycopg.AsyncConnection,
        probability: float = 0.1,
        rng: Any = None,
    ) -> _ConnectionFailure:
        """With the given probability, really break ``conn`` on entering the block.

        ``with`` (or ``async with``) yields a ``FailureInjection``; when its
        ``injected`` is true, the next statement on ``conn`` inside the block
        raises a real ``psycopg.OperationalError``. The block's exceptions are
        not swallowed::

            with ChaosInjector.simulate_connection_failure(conn, probability=0.5) as failure:
                try:
                    conn.execute("SELECT 1")
                except psycopg.OperationalError:
                    assert failure.injected
        """
        return _ConnectionFailure(conn, probability, rng)

    # ---- retry --------------------------------------------------------------

    @staticmethod
    def _retry_delay(attempt: int, backoff: float, jitter: float, rng: Any) -> float:
        base = backoff * 2**attempt
        # Jitter spreads retries of sessions that failed together, so they do not collide again.
        if not jitter:
            return base
        return base + (rng if rng is not None else random).uniform(0.0, base * jitter)

    @staticmethod
    def _check_retry_args(max_attempts: int, backoff: float, jitter: float) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if backoff < 0 or jitter < 0:
            raise ValueError(f"backoff and jitter must not be negative, got {backoff!r}, {jitter!r}")

    @classmethod
    def with_retry(
        cls,
        func: Callable[..., T],
        *args: Any,
        max_attempts: int = 3,
        backoff: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
        jitter: float = 0.1,
        sleep: Callable[[float], object] = time.sleep,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        rng: Any = None,
        **kwargs: Any,
    ) -> T:
        """Call ``func(*args, **kwargs)``; retry it when it raises one of ``retry_on``.

        After failed attempt number ``n`` (0-based) it waits ``backoff * 2**n``
        seconds plus up to ``jitter`` times that at random, then calls again.
        An exception that is not an instance of ``retry_on`` propagates at
        once; after ``max_attempts`` failures the last one propagates, with a
        note saying how many attempts were made. ``on_retry(attempt, error,
        delay)`` is called before each wait (``attempt`` counts from 1), so a
        test can count retries.

        ``func`` should run a whole transaction (``with conn.transaction():``)
        so that a failed attempt is rolled back before the next one.
        """
        cls._check_retry_args(max_attempts, backoff, jitter)
        for attempt in range(max_attempts):
            try:
                return func(*args, **kwargs)
            except retry_on as error:
                if attempt + 1 == max_attempts:
                    error.add_note(f"with_retry: gave up after {max_attempts} attempts")
                    raise
                delay = cls._retry_delay(attempt, backoff, jitter, rng)
                if on_retry is not None:
                    on_retry(attempt + 1, error, delay)
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    async def awith_retry(
        cls,
        func: Callable[..., Awaitable[T]],
        *args: Any,
        max_attempts: int = 3,
        backoff: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
        jitter: float = 0.1,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        rng: Any = None,
        **kwargs: Any,
    ) -> T:
        """``with_retry`` for a coroutine function: ``await func(*args, **kwargs)``, same rules."""
        cls._check_retry_args(max_attempts, backoff, jitter)
        for attempt in range(max_attempts):
            try:
                return await func(*args, **kwargs)
            except retry_on as error:
                if attempt + 1 == max_attempts:
                    error.add_note(f"awith_retry: gave up after {max_attempts} attempts")
                    raise
                delay = cls._retry_delay(attempt, backoff, jitter, rng)
                if on_retry is not None:
                    on_retry(attempt + 1, error, delay)
                await sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


# ==========================================================================
# DatabaseStateSnapshot
# ==========================================================================

PGGIT_QUERIES: dict[str, str] = {
    "branches": "SELECT * FROM pggit.branches ORDER BY id",
    "commits": "SELECT * FROM pggit.commits ORDER BY id",
    "objects": "SELECT * FROM pggit.objects ORDER BY id",
    "history": "SELECT * FROM pggit.history ORDER BY id",
    "migrations": "SELECT * FROM pggit.migrations ORDER BY version",
}

USER_TABLES_QUERY = """
SELECT n.nspname AS schema_name, c.relname AS table_name
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pggit')
  AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
ORDER BY 1, 2
"""


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a fetched value (jsonb dicts and arrays are not hashable)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


@dataclass(frozen=True)
class QueryResult:
    """One named query's result: column names and rows, in the order the query gave them."""

    name: str
    sql: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass(frozen=True)
class QueryDiff:
    """How one named query's result differs between two snapshots.

    ``added`` and ``removed`` are multisets (a duplicated row counts twice);
    ``reordered`` means the same rows came back in another order; ``missing``
    names the snapshot ("before" or "after") that lacks the query altogether.
    """

    name: str
    columns: tuple[str, ...]
    added: tuple[tuple[Any, ...], ...] = ()
    removed: tuple[tuple[Any, ...], ...] = ()
    reordered: bool = False
    columns_changed: bool = False
    missing: str | None = None

    def describe(self, max_rows: int = 10) -> str:
        if self.missing:
            return f"{self.name}: query only in one snapshot (missing {self.missing})"
        lines = [f"{self.name}:"]
        if self.columns_changed:
            lines.append("  columns changed")
        for label, rows in (("added", self.added), ("removed", self.removed)):
            if rows:
                lines.append(f"  {len(rows)} row(s) {label} {self.columns}:")
                lines.extend(f"    {row!r}" for row in rows[:max_rows])
                if len(rows) > max_rows:
                    lines.append(f"    ... and {len(rows) - max_rows} more")
        if self.reordered:
            lines.append("  same rows, different order")
        return "\n".join(lines)


@dataclass(frozen=True)
class SnapshotDiff:
    """Every named query whose result changed; false when nothing did."""

    changes: dict[str, QueryDiff]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __contains__(self, name: str) -> bool:
        return name in self.changes

    def __getitem__(self, name: str) -> QueryDiff:
        return self.changes[name]

    def describe(self, max_rows: int = 10) -> str:
        if not self.changes:
            return "no differences"
        return "\n".join(change.describe(max_rows) for change in self.changes.values())


@dataclass(frozen=True)
class DatabaseStateSnapshot:
    """The results of a set of named queries against a database at one moment.

    ``capture`` is read-only and leaves a caller's transaction as it found
    it; see its docstring. Compare two snapshots with ``diff`` or
    ``assert_unchanged``::

        before = DatabaseStateSnapshot.capture(conn)
        ...  # inject a fault
        DatabaseStateSnapshot.capture(conn).assert_unchanged(before)
    """

    results: dict[str, QueryResult]
    captured_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    DEFAULT_QUERIES = {**PGGIT_QUERIES, "user_tables": USER_TABLES_QUERY}

    # ---- capture ------------------------------------------------------------

    @classmethod
    def capture(
        cls,
        conn: psycopg.Connection | str,
        queries: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> DatabaseStateSnapshot:
        """Run each named query (``{name: sql}``) on ``conn`` and keep the results.

        ``queries`` left out: pggit's five tables (those that exist) in a
        fixed order, plus ``user_tables`` (every ordinary table outside the
        system schemas and ``pggit``). ``extra`` adds queries to those (or
        to ``queries``). Give each query an ORDER BY: rows that come back in
        another order count as a change.

        Read-only and state-preserving: outside a transaction, the queries
        run in their own REPEATABLE READ READ ONLY transaction (one moment
        for all of them), rolled back afterwards; inside a caller's
        transaction, they see that transaction's uncommitted changes and run
        in a savepoint made read-only and rolled back, so a failing query
        does not abort the caller's transaction. ``conn`` may also be a
        connection string.
        """
        if isinstance(conn, str):
            with psycopg.connect(conn, autocommit=True) as own:
                return cls.capture(own, queries, extra)
        status = conn.info.transaction_status
        if status == pq.TransactionStatus.INERROR:
            raise ValueError("the connection is in a failed transaction: roll it back before capturing")
        if status not in (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS):
            raise ValueError(f"the connection is busy ({status.name}): cannot capture now")
        results = {}
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            if status == pq.TransactionStatus.IDLE:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            else:
                # Allowed inside a savepoint, and undone by its rollback.
                cur.execute("SET LOCAL transaction_read_only = on")
            if queries is None:
                queries = cls._default_queries(cur)
            for name, query in {**queries, **(extra or {})}.items():
                cur.execute(query)
                columns = tuple(col.name for col in cur.description or ())
                results[name] = QueryResult(name, query, columns, tuple(tuple(row) for row in cur.fetchall()))
        return cls(results)

    @classmethod
    async def acapture(
        cls,
        conn: psycopg.AsyncConnection,
        queries: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> DatabaseStateSnapshot:
        """``capture`` for an asyncio connection, same rules."""
        status = conn.info.transaction_status
        if status == pq.TransactionStatus.INERROR:
            raise ValueError("the connection is in a failed transaction: roll it back before capturing")
        if status not in (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS):
            raise ValueError(f"the connection is busy ({status.name}): cannot capture now")
        results = {}
        async with conn.transaction(force_rollback=True), conn.cursor() as cur:
            if status == pq.TransactionStatus.IDLE:
                await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            else:
                await cur.execute("SET LOCAL transaction_read_only = on")
            if queries is None:
                await cur.execute(cls._EXISTING_PGGIT_TABLES)
                queries = cls._queries_for(await cur.fetchall())
            for name, query in {**queries, **(extra or {})}.items():
                await cur.execute(query)
                columns = tuple(col.name for col in cur.description or ())
                rows = await cur.fetchall()
                results[name] = QueryResult(name, query, columns, tuple(tuple(row) for row in rows))
        return cls(results)

    _EXISTING_PGGIT_TABLES = (
        "SELECT relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'pggit' AND c.relkind IN ('r', 'p')"
    )

    @classmethod
    def _default_queries(cls, cur: psycopg.Cursor) -> dict[str, str]:
        cur.execute(cls._EXISTING_PGGIT_TABLES)
        return cls._queries_for(cur.fetchall())

    @classmethod
    def _queries_for(cls, existing_rows: list[tuple[str]]) -> dict[str, str]:
        # Before CREATE EXTENSION (or after DROP) the pggit tables are simply absent, not an error.
        existing = {row[0] for row in existing_rows}
        return {name: query for name, query in cls.DEFAULT_QUERIES.items()
                if name not in PGGIT_QUERIES or name in existing}

    # ---- access -------------------------------------------------------------

    def __getitem__(self, name: str) -> QueryResult:
        return self.results[name]

    def __contains__(self, name: str) -> bool:
        return name in self.results

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.results)

    # ---- comparison ---------------------------------------------------------

    def diff(self, other: DatabaseStateSnapshot) -> SnapshotDiff:
        """What changed from this snapshot (before) to ``other`` (after), query by query."""
        changes: dict[str, QueryDiff] = {}
        for name in list(self.results) + [n for n in other.results if n not in self.results]:
            mine, theirs = self.results.get(name), other.results.get(name)
            if mine is None or theirs is None:
                present = mine or theirs
                changes[name] = QueryDiff(name, present.columns, missing="before" if mine is None else "after")
                continue
            before = [_freeze(row) for row in mine.rows]
            after = [_freeze(row) for row in theirs.rows]
            if before == after and mine.columns == theirs.columns:
                continue
            before_count, after_count = Counter(before), Counter(after)
            added = tuple((after_count - before_count).elements())
            removed = tuple((before_count - after_count).elements())
            changes[name] = QueryDiff(
                name,
                theirs.columns,
                added=added,
                removed=removed,
                reordered=not added and not removed and before != after,
                columns_changed=mine.columns != theirs.columns,
            )
        return SnapshotDiff(changes)

    def assert_unchanged(self, other: DatabaseStateSnapshot, max_rows: int = 10) -> None:
        """Raise AssertionError naming every query whose rows differ between the two snapshots."""
        difference = self.diff(other)
        if difference:
            raise AssertionError("database state changed:\n" + difference.describe(max_rows))


# ==========================================================================
# TransactionMonitor
# ==========================================================================


@dataclass(frozen=True)
class BackendActivity:
    """One session as pg_stat_activity shows it."""

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
        return self.wait_event_type == "Lock"


@dataclass(frozen=True)
class LockInfo:
    """One row of pg_locks, with the relation's name where there is one."""

    pid: int | None
    locktype: str
    mode: str
    granted: bool
    relation: str | None
    transactionid: str | None
    virtualxid: str | None


@dataclass(frozen=True)
class BlockingPair:
    """``blocked_pid`` waits for a lock that ``blocking_pid`` holds or waits for ahead of it."""

    blocked_pid: int
    blocking_pid: int
    blocked_query: str
    blocking_query: str | None
    blocking_state: str | None
    wait_event: str | None


@dataclass(frozen=True)
class LockWait:
    """A session caught waiting on a lock, by ``wait_until_blocked``."""

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
        """Client sessions with an open transaction (active or idle in transaction), oldest first."""
        rows = self.conn.execute(
            "SELECT a.pid, a.datname, a.application_name, a.state, a.xact_start, a.query_start, a.query, "
            "a.wait_event_type, a.wait_event, a.backend_xid::text "
            "FROM pg_stat_activity a "
            f"WHERE a.backend_type = 'client backend' AND a.xact_start IS NOT NULL AND {self._scope('a')} "
            "ORDER BY a.xact_start, a.pid"
        ).fetchall()
        return [BackendActivity(*row) for row in rows]

    def activity(self, pid: int) -> BackendActivity | None:
        """What one session is doing now, or None when it is gone."""
        row = self.conn.execute(
            "SELECT a.pid, a.datname, a.application_name, a.state, a.xact_start, a.query_start, a.query, "
            "a.wait_event_type, a.wait_event, a.backend_xid::text "
            "FROM pg_stat_activity a WHERE a.pid = %s",
            (pid,),
        ).fetchone()
        return BackendActivity(*row) if row else None

    def locks(self, pid: int | None = None) -> list[LockInfo]:
        """Locks held or awaited (``granted`` false), of one session or of every watched one."""
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
        """Every (blocked, blocker) pair, from ``pg_blocking_pids``."""
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
        """``{blocked_pid: (blocking_pid, ...)}`` for every session waiting on a lock."""
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
                return LockWait(pid, wait_event, tuple(blockers), query)
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

