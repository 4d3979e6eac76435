"""Concurrent versioning: DDL from many sessions, one version history per table.

pggit's event triggers give every tracked table a semantic version: each
change writes one history row and bumps the version by one step (minor for a
new column, patch for a comment or an index). PostgreSQL's own table locks
queue most DDL on one table, but not all of it: two ``CREATE INDEX`` take
SHARE locks that do not conflict, and a ``COMMENT ON INDEX`` locks the index,
not its table. Then only pggit's own locking stands between two changes and a
version bumped twice from the same number.

Workload: sessions running DDL, released together or in a fixed interleaving.
Fault: the concurrency itself. History: which statements were acknowledged.
Invariants: ``table_consistent`` (versions only go up, one step per change,
the recorded hash is the live one) and ``schema_consistent`` (pggit tracks
exactly the live tables, no drift, integrity).
"""

from __future__ import annotations

import contextlib
import random

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import apply_migration
from pggit_chaos.history import History, run_workers
from pggit_chaos.interleavings import Step, interleave
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.concurrent]

# The version step each kind of DDL in the workloads must cause.
SEVERITY = {"add_column": "MINOR", "comment": "PATCH", "create_index": "PATCH", "comment_index": "PATCH"}


def _ddl(kind: str, table: str, worker: int, step: int) -> sql.Composed:
    tag = f"w{worker}_{step}"
    if kind == "add_column":
        return sql.SQL("ALTER TABLE {} ADD COLUMN {} int").format(sql.Identifier(table), sql.Identifier(f"c_{tag}"))
    if kind == "comment":
        return sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(table), sql.Literal(f"comment {tag}"))
    if kind == "create_index":
        return sql.SQL("CREATE INDEX {} ON {} (a, b)").format(sql.Identifier(f"{table}_{tag}_idx"),
                                                              sql.Identifier(table))
    if kind == "comment_index":
        return sql.SQL("COMMENT ON INDEX {} IS {}").format(sql.Identifier(f"{table}_pkey"),
                                                           sql.Literal(f"comment {tag}"))
    raise ValueError(kind)


def _run_ddl(conn: psycopg.Connection, kind: str, table: str, worker: int, step: int) -> None:
    conn.execute(_ddl(kind, table, worker, step))


def _expected_steps(history: History) -> dict[str, int]:
    steps: dict[str, int] = {}
    for op in history.acknowledged("ddl"):
        steps[SEVERITY[op.args[0]]] = steps.get(SEVERITY[op.args[0]], 0) + 1
    return steps


def _version(conn: psycopg.Connection, table: str) -> tuple[int, int, int]:
    return conn.execute("SELECT major, minor, patch FROM pggit.get_version(%s)", (table,)).fetchone()


@pytest.mark.parametrize("workers", [4, 12])
def test_concurrent_ddl_on_one_table_writes_one_history_row_per_change(db_connection_string, sync_conn, workers):
    """Sessions adding columns, comments and indexes to one table at once each leave one history row and one step."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE shared (id int PRIMARY KEY, a int, b int)")
    kinds = list(SEVERITY)
    steps_per_worker = 3

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            for step in range(steps_per_worker):
                kind = kinds[(worker + step) % len(kinds)]
                with history.record(worker, "ddl", kind, f"w{worker}_{step}"):
                    conns[worker].execute(_ddl(kind, "shared", worker, step))

        history = run_workers(workers, work)

    assert len(history.acknowledged("ddl")) == workers * steps_per_worker, history.dump()
    assert history.overlapping()
    expected = _expected_steps(history)
    checkers.table_consistent(sync_conn, "shared", expected)
    major, minor, _ = _version(sync_conn, "shared")
    assert (major, minor) == (1, expected.get("MINOR", 0))
    checkers.schema_consistent(sync_conn)


@pytest.mark.parametrize(
    ("first", "second"),
    [("create_index", "create_index"), ("comment", "comment_index"), ("comment_index", "create_index")],
)
def test_ddl_that_waits_for_another_sessions_change_bumps_from_its_version(db_connection_string, sync_conn,
                                                                          first, second):
    """Two changes to one table that PostgreSQL lets run side by side still give two successive versions."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE pair (id int PRIMARY KEY, a int, b int)")
    history = History()

    run = interleave(db_connection_string, history,
                     Step("ddl", (first, "A"), lambda conn: _run_ddl(conn, first, "pair", 0, 0)),
                     Step("ddl", (second, "B"), lambda conn: _run_ddl(conn, second, "pair", 1, 0)))
    assert run.holder_pid in run.wait.blocking_pids

    assert checkers.table_consistent(sync_conn, "pair", {"PATCH": 2}) == ["1.0.0", "1.0.1", "1.0.2"]
    checkers.schema_consistent(sync_conn)


# (major, minor, patch, increment type) -> the result, or the SQLSTATE it must raise.
INCREMENT_CASES = [
    ((0, 0, 0, "major"), (1, 0, 0, "1.0.0")),
    ((1, 2, 3, "major"), (2, 0, 0, "2.0.0")),
    ((1, 2, 3, "MINOR"), (1, 3, 0, "1.3.0")),
    ((1, 2, 3, "Patch"), (1, 2, 4, "1.2.4")),
    ((9, 99, 999, "patch"), (9, 99, 1000, "9.99.1000")),
    ((2147483646, 0, 0, "major"), (2147483647, 0, 0, "2147483647.0.0")),
    ((1, 0, 0, "minor"), (1, 1, 0, "1.1.0")),
    ((1, 0, 0, "bogus"), "22023"),
    ((1, -1, 0, "patch"), "22023"),
    ((1, 0, 0, ""), "22023"),
]


def test_concurrent_increment_version_calls_are_pure(db_connection_string):
    """increment_version gives the same answer for the same input, whatever runs beside it and in whatever order."""
    workers = 8
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            order = list(range(len(INCREMENT_CASES))) * 3
            random.Random(worker).shuffle(order)  # every worker its own order, reproducibly
            for case in order:
                args = INCREMENT_CASES[case][0]
                with contextlib.suppress(psycopg.Error), history.record(worker, "increment", *args) as op:
                    op.result = tuple(conns[worker].execute(
                        "SELECT major, minor, patch, full_version FROM pggit.increment_version(%s, %s, %s, %s)",
                        args).fetchone())

        history = run_workers(workers, work)

    expected = dict(INCREMENT_CASES)
    assert len(history.of("increment")) == workers * len(INCREMENT_CASES) * 3
    wrong = [(op.worker, op.args, op.result, op.sqlstate) for op in history.of("increment")
             if (op.result if op.ok else op.sqlstate) != expected[op.args]]
    assert not wrong, f"increment_version answers that differ from the semantic-version step: {wrong}"


def test_concurrent_ddl_on_different_tables_does_not_interfere(db_connection_string, sync_conn):
    """Sessions each creating and changing their own table at once leave every table exactly its own history."""
    sync_conn.autocommit = True
    workers = 6
    script = [
        ("CREATE TABLE {t} (id int PRIMARY KEY, a int, b int)", "1.0.0"),
        ("ALTER TABLE {t} ADD COLUMN x int", "1.1.0"),
        ("COMMENT ON TABLE {t} IS 'mine'", "1.1.1"),
        ("CREATE INDEX ON {t} (a)", "1.1.2"),
        ("ALTER TABLE {t} ALTER COLUMN x TYPE bigint", "2.0.0"),
        ("ALTER TABLE {t} ADD COLUMN y text", "2.1.0"),
    ]

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            table = f"own_{worker}"
            for statement, _ in script:
                with history.record(worker, "ddl", table, statement):
                    conns[worker].execute(sql.SQL(statement).format(t=sql.Identifier(table)))

        history = run_workers(workers, work)

    assert len(history.acknowledged("ddl")) == workers * len(script), history.dump()
    for worker in range(workers):
        table = f"own_{worker}"
        assert checkers.table_consistent(sync_conn, table, {"MINOR": 2, "PATCH": 2, "MAJOR": 1}) == \
            [v for _, v in script]
    assert checkers.schema_consistent(sync_conn) == {f"public.own_{worker}" for worker in range(workers)}


def test_drop_of_an_untracked_namesake_waits_for_the_change_that_moves_the_record_away(db_connection_string,
                                                                                       sync_conn):
    """t's record still names t after t was renamed to u and a new t made while tracking was paused. A's open
    ALTER of u takes the record over (found by u's OID: a rename, MAJOR). B's DROP of the new, untracked t looks
    for a record by name, finds the same row and waits for A; once A commits, the row names u and B records
    nothing: u stays tracked at the version A gave it. Positive control: dropping u records the drop."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE t (id int)")
    record = sync_conn.execute("SELECT id FROM pggit.objects WHERE is_active AND object_name = 't'").fetchone()[0]
    with nemesis.tracking_paused(sync_conn):
        sync_conn.execute("ALTER TABLE t RENAME TO u")
        sync_conn.execute("CREATE TABLE t (id int)")
    history = History()

    run = interleave(db_connection_string, history,
                     Step("ddl", ("alter", "u"), lambda conn: conn.execute("ALTER TABLE u ADD COLUMN b int")),
                     Step("ddl", ("drop", "t"), lambda conn: conn.execute("DROP TABLE t")))
    assert run.holder_pid in run.wait.blocking_pids
    assert run.first.ok and run.second.ok, history.dump()

    def changes() -> list[tuple]:
        return sync_conn.execute("SELECT change_type, old_version, new_version FROM pggit.history "
                                 "WHERE object_id = %s ORDER BY id", (record,)).fetchall()

    assert sync_conn.execute("SELECT object_name, is_active FROM pggit.objects WHERE id = %s",
                             (record,)).fetchone() == ("u", True)
    assert changes() == [("CREATE", None, "1.0.0"), ("ALTER", "1.0.0", "2.0.0")]
    assert _version(sync_conn, "u") == (2, 0, 0)
    assert checkers.table_consistent(sync_conn, "u", {"MAJOR": 1}) == ["1.0.0", "2.0.0"]
    assert checkers.schema_consistent(sync_conn) == {"public.u"}

    sync_conn.execute("DROP TABLE u")
    assert changes()[-1] == ("DROP", "2.0.0", "3.0.0")
    assert sync_conn.execute("SELECT is_active FROM pggit.objects WHERE id = %s", (record,)).fetchone() == (False,)
    checkers.integrity_ok(sync_conn)


@pytest.mark.migration
@pytest.mark.parametrize("first_outcome", ["commit", "rollback"])
def test_second_apply_of_one_migration_version_waits_then_skips_it_or_runs_it(
        db_connection_string, sync_conn, first_outcome):
    """B applying the version that A's open transaction is applying waits for A: A commits, B returns
    false without running the SQL; A rolls back, B runs it. Either way the SQL ran exactly once."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE migration_runs (run int)")
    up = "INSERT INTO migration_runs VALUES (1)"
    history = History()

    run = interleave(db_connection_string, history, Step.call("apply", apply_migration, "2024_01_data", up),
                     Step.call("apply", apply_migration, "2024_01_data", up, may_fail=True), end=first_outcome)
    assert run.holder_pid in run.wait.blocking_pids

    _, b_op = history.of("apply")
    assert b_op.ok, history.dump()
    assert b_op.result is (first_outcome == "rollback"), history.dump()
    assert sync_conn.execute("SELECT count(*) FROM migration_runs").fetchone() == (1,)
    assert sync_conn.execute(
        "SELECT status FROM pggit.migrations WHERE version = '2024_01_data'").fetchall() == [("APPLIED",)]
    checkers.integrity_ok(sync_conn)
