"""Backup chaos: pggit's history through pg_dump and pg_restore (or psql for a plain dump).

The contract: a database dumped with ``pg_dump`` and restored into a fresh
database (made from ``template0``, pggit not installed: the dump's
``CREATE EXTENSION`` installs it) keeps every row of pggit's history
(branches, commits, objects with their versions and hashes, history,
migrations) and the values of its sequences; ``verify_integrity()`` and
``detect_drift()`` are clean; no migration runs again; and the restore
itself records nothing (its ``CREATE TABLE``, ``ALTER TABLE`` and
``CREATE INDEX`` statements are not new history).

The dump and restore use the cluster's own binaries
(``pg_server.install.binary``), connected through the DSN, in two ways: a
plain dump run by psql, and a custom-format archive restored by pg_restore.
(A parallel restore, ``pg_restore --jobs``, is not supported: see "Backup
and restore" in the reference.)
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import apply_migration, commit, create_branch, schema_hash, version
from pggit_chaos.generators import commit_message, data_row, git_branch_name, table_definition
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.backup]

PGGIT_TABLES = {"branches": "id", "commits": "id", "objects": "id", "history": "id", "migrations": "version"}
# Seconds a dump or restore of a few small tables may take before the test gives up on the tool.
TOOL_TIMEOUT = 120
FORMATS = ["plain", "custom"]


# ---------------------------------------------------------------------------
# Dump and restore with the cluster's own tools
# ---------------------------------------------------------------------------


def _run(tool: Path, *args: str) -> None:
    result = subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "ERROR" not in result.stderr, (
        f"{tool.name} {' '.join(a for a in args if not a.startswith('--dbname'))} failed "
        f"(exit {result.returncode}):\n{result.stderr}")


def dump_and_restore(pg_server, make_database, source: str, fmt: str, directory: Path) -> str:
    """Dump ``source`` in ``fmt``, restore it into a new database made from template0; its DSN."""
    target = make_database(pggit=False)
    dump = directory / f"dump-{fmt}"
    binary = pg_server.install.binary
    if fmt == "plain":
        _run(binary("pg_dump"), f"--dbname={source}", "--file", str(dump))
        _run(binary("psql"), f"--dbname={target}", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
             "--file", str(dump))
    else:
        _run(binary("pg_dump"), f"--dbname={source}", "--format=custom", "--file", str(dump))
        _run(binary("pg_restore"), f"--dbname={target}", "--exit-on-error", str(dump))
    return target


# ---------------------------------------------------------------------------
# What must survive
# ---------------------------------------------------------------------------


def pggit_rows(conn: psycopg.Connection) -> dict[str, list]:
    """Every row of pggit's tables as JSON, in key order; an object's table OID is left out (OIDs change)."""
    rows = {}
    for table, key in PGGIT_TABLES.items():
        rows[table] = [r[0] for r in conn.execute(sql.SQL(
            "SELECT to_jsonb(t) - 'table_oid' FROM pggit.{} t ORDER BY {}"
        ).format(sql.Identifier(table), sql.Identifier(key)))]
    return rows


def pggit_sequences(conn: psycopg.Connection) -> dict[str, tuple]:
    """(last_value, is_called) of the Trinity ID sequence and of every identity sequence of pggit's tables."""
    names = ["pggit.trinity_id_seq"] + [
        conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f"pggit.{t}",)).fetchone()[0]
        for t in PGGIT_TABLES if t != "migrations"]
    return {name: conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
        sql.Identifier(*name.split(".")))).fetchone() for name in names}


def live_tables_agree(conn: psycopg.Connection) -> int:
    """Every live object names a table whose OID, hash and version are what pggit holds; returns their count."""
    rows = conn.execute(
        "SELECT schema_name, object_name, table_oid, content_hash, "
        "       to_regclass(format('%I.%I', schema_name, object_name))::oid, "
        "       version_major || '.' || version_minor || '.' || version_patch "
        "  FROM pggit.objects WHERE is_active ORDER BY id").fetchall()
    for schema, name, oid, recorded, live_oid, full_version in rows:
        qualified = sql.Identifier(schema, name).as_string(conn)
        assert live_oid is not None, f"tracked table {qualified} is missing after the restore"
        assert oid == live_oid, f"{qualified}: pggit holds OID {oid}, the restored table has {live_oid}"
        assert recorded == conn.execute("SELECT pggit.calculate_schema_hash(%s)", (qualified,)).fetchone()[0]
        assert version(conn, qualified) == full_version
    return len(rows)


# ---------------------------------------------------------------------------
# A history to dump
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    tables: list  # TableDefinition
    rows: list  # per table, data_row dicts
    changes: list  # per table: subset of {"add column", "index", "comment", "drop"}
    branches: list[str]
    commits: list[tuple[int, str]]  # (index into ["main"] + branches, message)
    migrations: int
    rolled_back: bool  # the first migration is rolled back again


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    tables = draw(st.lists(table_definition(max_columns=4), min_size=1, max_size=3,
                           unique_by=lambda t: t.name).filter(
        lambda ts: not any(t.name.startswith("migration") for t in ts)))
    rows = [draw(st.lists(data_row(t), max_size=3), label=f"rows of {t.name}") for t in tables]
    changes = [draw(st.sets(st.sampled_from(["add column", "index", "comment", "drop"])), label=f"changes {t.name}")
               for t in tables]
    branches = draw(st.lists(git_branch_name().filter(lambda b: len(b) < 60 and b != "after/restore"), max_size=2, unique=True))
    commits = draw(st.lists(st.tuples(st.integers(0, len(branches)), commit_message(max_length=200)),
                           min_size=1, max_size=5))
    migrations = draw(st.integers(0, 3))
    return Plan(tables, rows, changes, branches, commits, migrations,
                rolled_back=migrations > 0 and draw(st.booleans()))


MIGRATION_UP = "CREATE TABLE migration_{n} (id int); INSERT INTO migration_log (version) VALUES ('{n}')"
MIGRATION_DOWN = "DROP TABLE migration_{n}"


def build(conn: psycopg.Connection, plan: Plan) -> None:
    conn.execute("CREATE TABLE migration_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, version text)")
    for table, rows, changes in zip(plan.tables, plan.rows, plan.changes):
        name = table.qualified_name()
        conn.execute(table.create_sql())
        with conn.cursor() as cur:
            cur.executemany(table.insert_sql(), rows)
        if "add column" in changes:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN added_later serial").format(name))
        if "index" in changes:
            conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(name, sql.Identifier(table.columns[0].name)))
        if "comment" in changes:
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS 'kept'").format(name))
        if "drop" in changes:
            conn.execute(sql.SQL("DROP TABLE {}").format(name))
    for branch in plan.branches:
        create_branch(conn, branch)
    names = ["main", *plan.branches]
    for index, message in plan.commits:
        commit(conn, names[index], message)
    for n in range(1, plan.migrations + 1):
        assert apply_migration(conn, f"{n:03d}", MIGRATION_UP.format(n=n), MIGRATION_DOWN.format(n=n))
    if plan.rolled_back:
        assert conn.execute("SELECT pggit.rollback_migration('001')").fetchone()[0]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=4)
@given(plan=plans())
def test_a_restored_database_keeps_every_row_of_pggit_history(pg_server, make_database, tmp_path_factory, fmt, plan):
    """Branches, commits, objects, history and migrations come back row for row, with the sequences; the
    restore records nothing itself; integrity and drift are clean; new IDs continue after the restored ones."""
    source = make_database()
    with psycopg.connect(source, autocommit=True) as conn:
        build(conn, plan)
        before, sequences = pggit_rows(conn), pggit_sequences(conn)
        log_before = conn.execute("SELECT version FROM migration_log ORDER BY id").fetchall()
    assert before["branches"] and before["objects"] and before["history"], "the source has no history to lose"

    target = dump_and_restore(pg_server, make_database, source, fmt, tmp_path_factory.mktemp("dump"))

    with psycopg.connect(target, autocommit=True) as conn:
        after = pggit_rows(conn)
        for table in PGGIT_TABLES:
            assert after[table] == before[table], f"pggit.{table} differs after the restore"
        assert pggit_sequences(conn) == sequences
        assert live_tables_agree(conn) >= 1  # migration_log at least
        checkers.integrity_ok(conn)
        assert checkers.drift_is(conn) == set()
        assert conn.execute("SELECT version FROM migration_log ORDER BY id").fetchall() == log_before

        # New IDs continue after the restored ones: a branch and a commit, and integrity stays clean.
        create_branch(conn, "after/restore")
        new = commit(conn, "after/restore", "first commit after the restore")
        assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = %s", (new,)).fetchone()[0] == 1
        checkers.integrity_ok(conn)


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_migration_runs_again_after_a_restore(pg_server, make_database, tmp_path, fmt):
    """An applied migration is skipped after the restore and its side effect stays single; a new version
    (the positive control) runs once, and a rolled-back one runs again, as before the dump."""
    source = make_database()
    with psycopg.connect(source, autocommit=True) as conn:
        build(conn, Plan([], [], [], [], [], migrations=2, rolled_back=True))
    target = dump_and_restore(pg_server, make_database, source, fmt, tmp_path)
    with psycopg.connect(target, autocommit=True) as conn:
        def ran(n: int) -> int:
            return conn.execute("SELECT count(*) FROM migration_log WHERE version = %s", (str(n),)).fetchone()[0]

        assert conn.execute("SELECT version, status FROM pggit.migrations ORDER BY version").fetchall() == [
            ("001", "ROLLED_BACK"), ("002", "APPLIED")]
        assert apply_migration(conn, "002", MIGRATION_UP.format(n=2), MIGRATION_DOWN.format(n=2)) is False
        assert ran(2) == 1
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="checksum mismatch"):
            apply_migration(conn, "002", "SELECT 1")
        # Positive controls: a new version runs, once; the rolled-back one runs again.
        assert apply_migration(conn, "003", MIGRATION_UP.format(n=3), MIGRATION_DOWN.format(n=3)) is True
        assert apply_migration(conn, "003", MIGRATION_UP.format(n=3), MIGRATION_DOWN.format(n=3)) is False
        assert ran(3) == 1
        assert apply_migration(conn, "001", MIGRATION_UP.format(n=1), MIGRATION_DOWN.format(n=1)) is True
        assert ran(1) == 2
        checkers.integrity_ok(conn)


def test_tracking_follows_restored_tables_by_their_new_oids(pg_server, make_database, tmp_path):
    """After a restore, renaming or altering a tracked table bumps that table's own version (its OID
    changed in the restore): no new object at 1.0.0, no stale name reported as drift."""
    source = make_database()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, amount numeric)")
        conn.execute("ALTER TABLE ledger ADD COLUMN note text")
        conn.execute("CREATE SCHEMA books")
        conn.execute("CREATE TABLE books.journal (id int)")
        commit(conn, "main", "ledger")
        assert version(conn, "ledger") == "1.1.0"
    target = dump_and_restore(pg_server, make_database, source, "plain", tmp_path)
    with psycopg.connect(target, autocommit=True) as conn:
        objects = conn.execute("SELECT count(*) FROM pggit.objects").fetchone()[0]
        assert version(conn, "ledger") == "1.1.0"
        conn.execute("ALTER TABLE ledger RENAME TO general_ledger")
        assert version(conn, "general_ledger") == "2.0.0"
        conn.execute("ALTER SCHEMA books RENAME TO accounts")
        assert version(conn, "accounts.journal") == "2.0.0"
        conn.execute("ALTER TABLE accounts.journal ADD COLUMN posted date")
        assert version(conn, "accounts.journal") == "2.1.0"
        assert conn.execute("SELECT count(*) FROM pggit.objects").fetchone()[0] == objects
        assert checkers.drift_is(conn) == set()
        # Positive control: a table created after the restore is a new object at 1.0.0.
        conn.execute("CREATE TABLE created_after (id int)")
        assert version(conn, "created_after") == "1.0.0"
        checkers.integrity_ok(conn)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_inheritance_child_hashes_alike_after_a_restore_that_reorders_its_columns(pg_server, make_database,
                                                                                     tmp_path, fmt):
    """A column added to a parent after its child's own column comes last in the child, but pg_dump creates the
    child with its inherited columns first: the restored child's columns are in another order. pggit's hash,
    drift report and integrity check agree with the restored tables. Positive control: the restore really
    reordered the child's columns."""
    source = make_database()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE parent (id int)")
        conn.execute("CREATE TABLE child (own text) INHERITS (parent)")
        conn.execute("ALTER TABLE parent ADD COLUMN added date")
        before = {t: schema_hash(conn, t) for t in ("parent", "child")}
    target = dump_and_restore(pg_server, make_database, source, fmt, tmp_path)
    with psycopg.connect(target, autocommit=True) as conn:
        order = conn.execute("SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute "
                             "WHERE attrelid = 'child'::regclass AND attnum > 0").fetchone()[0]
        assert order == ["id", "added", "own"]
        assert {t: schema_hash(conn, t) for t in ("parent", "child")} == before
        assert checkers.drift_is(conn) == set()
        checkers.integrity_ok(conn)


DUMP_SETTINGS = ("SET check_function_bodies = false; SET client_min_messages = warning; "
                 "SELECT pg_catalog.set_config('search_path', '', false)")


def test_only_the_session_restoring_a_dump_goes_untracked(pg_server, make_database):
    """A restore is the session that ran the dump's CREATE EXTENSION, with the settings every dump script
    makes, as a superuser. The settings alone (any session may make them), the settings and a forged mark
    in an ordinary role's session, and an install with ordinary settings are all tracked as always; the
    superuser session with both (the positive control) is not."""
    dsn = make_database()
    role = pg_server.create_role("pggit_backup")
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            with psycopg.connect(dsn, autocommit=True) as superuser:
                superuser.execute(DUMP_SETTINGS)
                superuser.execute("CREATE TABLE public.settings_only (id int)")
            assert version(admin, "public.settings_only") == "1.0.0"

            admin.execute(sql.SQL("CREATE SCHEMA owned AUTHORIZATION {}").format(sql.Identifier(role)))
            with psycopg.connect(pg_server.dsn(admin.info.dbname, user=role), autocommit=True) as ordinary:
                ordinary.execute(DUMP_SETTINGS)
                ordinary.execute("SET pggit.installed_in_this_session = on")
                ordinary.execute("CREATE TABLE owned.by_role (id int)")
                ordinary.execute("ALTER TABLE owned.by_role ADD COLUMN note text")
            assert version(admin, "owned.by_role") == "1.1.0"

            with psycopg.connect(dsn, autocommit=True) as restoring:
                restoring.execute(DUMP_SETTINGS)
                restoring.execute("SET pggit.installed_in_this_session = on")
                restoring.execute("CREATE TABLE public.restored (id int)")
            assert version(admin, "public.restored") is None
            admin.execute("DROP SCHEMA owned CASCADE")

        with psycopg.connect(make_database(pggit=False), autocommit=True) as installer:
            installer.execute("CREATE EXTENSION pggit")
            installer.execute("CREATE TABLE installed_then_created (id int)")
            assert version(installer, "installed_then_created") == "1.0.0"
    finally:
        pg_server.drop_role(role)


def test_an_operator_on_the_callers_search_path_does_not_make_a_session_look_like_a_restore(make_database):
    """pggit._restoring_dump() compares settings and role names with pg_catalog's operators whatever the
    caller's search_path: an "=" planted ahead of pg_catalog that calls everything equal does not make a session
    with the dump's settings but without the install mark look like a restore. Positive control: with the mark
    set, the same call on the same search_path answers true."""
    with psycopg.connect(make_database(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA planted")
        conn.execute("CREATE FUNCTION planted.same(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
        conn.execute("CREATE OPERATOR planted.= (LEFTARG = text, RIGHTARG = text, FUNCTION = planted.same)")
        conn.execute(DUMP_SETTINGS)
        conn.execute("SET search_path = planted, pg_catalog, public")
        assert conn.execute("SELECT 'a'::text = 'b'::text").fetchone()[0] is True
        assert conn.execute("SELECT pggit._restoring_dump()").fetchone()[0] is False
        conn.execute("SET pggit.installed_in_this_session = on")
        assert conn.execute("SELECT pggit._restoring_dump()").fetchone()[0] is True
