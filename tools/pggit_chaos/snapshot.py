"""DatabaseStateSnapshot: named queries captured at one moment, then compared (the steady-state check)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import pq

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
    """One named query's result: column names and rows, in the order the query gave them.

    ```python fixture:sync_conn
    from pggit_chaos.snapshot import DatabaseStateSnapshot

    snapshot = DatabaseStateSnapshot.capture(sync_conn)
    assert [row["name"] for row in snapshot["branches"].as_dicts()] == ["main"]
    ```
    """

    name: str
    sql: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}`` dicts."""
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass(frozen=True)
class QueryDiff:
    """How one named query's result differs between two snapshots.

    ``added`` and ``removed`` are multisets (a duplicated row counts twice);
    ``reordered`` means the same rows came back in another order; ``missing``
    names the snapshot ("before" or "after") that lacks the query altogether.

    ```python fixture:sync_conn
    from pggit_chaos.snapshot import DatabaseStateSnapshot

    before = DatabaseStateSnapshot.capture(sync_conn)
    sync_conn.execute("SELECT pggit.create_branch('feature/z')")
    change = before.diff(DatabaseStateSnapshot.capture(sync_conn))["branches"]
    assert len(change.added) == 1 and change.removed == () and "1 row(s) added" in change.describe()
    ```
    """

    name: str
    columns: tuple[str, ...]
    added: tuple[tuple[Any, ...], ...] = ()
    removed: tuple[tuple[Any, ...], ...] = ()
    reordered: bool = False
    columns_changed: bool = False
    missing: str | None = None

    def describe(self, max_rows: int = 10) -> str:
        """The difference in words, at most ``max_rows`` rows of each kind shown."""
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
    """Every named query whose result changed; false when nothing did.

    ```python fixture:sync_conn
    from pggit_chaos.snapshot import DatabaseStateSnapshot

    before = DatabaseStateSnapshot.capture(sync_conn)
    assert not before.diff(DatabaseStateSnapshot.capture(sync_conn))
    sync_conn.execute("CREATE TABLE t (a int)")
    changed = before.diff(DatabaseStateSnapshot.capture(sync_conn))
    assert "objects" in changed and "user_tables" in changed and "commits" not in changed
    ```
    """

    changes: dict[str, QueryDiff]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __contains__(self, name: str) -> bool:
        return name in self.changes

    def __getitem__(self, name: str) -> QueryDiff:
        return self.changes[name]

    def describe(self, max_rows: int = 10) -> str:
        """Every change in words (``QueryDiff.describe``), or "no differences"."""
        if not self.changes:
            return "no differences"
        return "\n".join(change.describe(max_rows) for change in self.changes.values())


@dataclass(frozen=True)
class DatabaseStateSnapshot:
    """The results of a set of named queries against a database at one moment.

    ``capture`` is read-only and leaves a caller's transaction as it found
    it; see its docstring. Compare two snapshots with ``diff`` or
    ``assert_unchanged``.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos import nemesis
    from pggit_chaos.snapshot import DatabaseStateSnapshot

    before = DatabaseStateSnapshot.capture(db_connection_string)
    victim = psycopg.connect(db_connection_string)
    victim.execute("SELECT pggit.commit_changes('main', 'lost with the link')")
    nemesis.cut_connection(victim)  # the fault: the open transaction dies with the link
    victim.close()
    DatabaseStateSnapshot.capture(db_connection_string).assert_unchanged(before)
    ```
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

        ```python fixture:sync_conn
        from pggit_chaos.snapshot import DatabaseStateSnapshot

        sync_conn.execute("SELECT pggit.commit_changes('main', 'not committed yet')")
        snapshot = DatabaseStateSnapshot.capture(sync_conn, queries={"messages": "SELECT message FROM pggit.commits"})
        assert snapshot.names == ("messages",) and snapshot["messages"].rows == (("not committed yet",),)
        assert sync_conn.info.transaction_status.name == "INTRANS"  # the caller's transaction goes on
        ```
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
        """``capture`` for an asyncio connection, same rules.

        ```python fixture:db_connection_string
        import asyncio

        import psycopg
        from pggit_chaos.snapshot import DatabaseStateSnapshot

        async def both() -> tuple:
            async with await psycopg.AsyncConnection.connect(db_connection_string) as conn:
                return await DatabaseStateSnapshot.acapture(conn), DatabaseStateSnapshot.capture(db_connection_string)

        async_snapshot, sync_snapshot = asyncio.run(both())
        assert not async_snapshot.diff(sync_snapshot)
        ```
        """
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
        """The queries' names, in the order they ran."""
        return tuple(self.results)

    # ---- comparison ---------------------------------------------------------

    def diff(self, other: DatabaseStateSnapshot) -> SnapshotDiff:
        """What changed from this snapshot (before) to ``other`` (after), query by query (see ``SnapshotDiff``)."""
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
        """Raise AssertionError naming every query whose rows differ between the two snapshots.

        ```python fixture:sync_conn
        import pytest
        from pggit_chaos.snapshot import DatabaseStateSnapshot

        before = DatabaseStateSnapshot.capture(sync_conn)
        sync_conn.execute("SELECT pggit.commit_changes('main', 'a change')")
        with pytest.raises(AssertionError, match="commits:"):
            before.assert_unchanged(DatabaseStateSnapshot.capture(sync_conn))
        ```
        """
        difference = self.diff(other)
        if difference:
            raise AssertionError("database state changed:\n" + difference.describe(max_rows))
