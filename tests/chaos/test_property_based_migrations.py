"""Property-based tests of pggit migrations: idempotent, checksummed, all or nothing, reversible.

Migrations are generated: a ``CREATE TABLE`` from ``table_definition()``
with its ``DROP TABLE``, or a column added to an existing table and dropped
again. Every apply and rollback is committed for real, as a deployment
tool would do it; each example gets a database of its own
(``fresh_connection``), so examples never meet.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import apply_migration
from pggit_chaos.generators import SYSTEM_COLUMN_NAMES, column_type, pg_identifier, pg_text, table_definition
from pggit_chaos.snapshot import USER_TABLES_QUERY, DatabaseStateSnapshot
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.property, pytest.mark.migration]

# The schema as a user sees it: tables, columns with types, nullability and
# defaults, constraints and indexes, outside pggit and the system schemas.
SCHEMA_QUERIES = {
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
         ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
               "WHERE schemaname = current_schema() ORDER BY 1, 2",
}
SCHEMA_ONLY = {"user_tables": USER_TABLES_QUERY, **SCHEMA_QUERIES}


@dataclass(frozen=True)
class Migration:
    """A generated migration: its version, up and down SQL, the query that shows its effect,
    and SQL that prepares the database for it (a table it alters)."""

    version: str
    up: str
    down: str
    effect: str
    setup: str | None = None


def _to_text(composed: sql.Composable) -> str:
    # Identifier quoting does not depend on the connection; a throwaway
    # connection-free rendering keeps the strategies free of connections.
    return composed.as_string(None)


@st.composite
def create_table_migration(draw) -> Migration:
    table = draw(table_definition())
    name = sql.Literal(sql.Identifier(table.name).as_string(None))
    return Migration(
        version=draw(migration_version()),
        up=_to_text(table.create_sql()),
        down=_to_text(sql.SQL("DROP TABLE {}").format(table.qualified_name())),
        effect=_to_text(sql.SQL("SELECT to_regclass({}) IS NOT NULL").format(name)),
    )


@st.composite
def add_column_migration(draw) -> Migration:
    """Adds one to three columns to an existing table (made by ``setup``) in one migration."""
    table = draw(table_definition(max_columns=3))
    new_columns = draw(st.lists(
        pg_identifier().filter(lambda n: n not in table.column_names and n not in SYSTEM_COLUMN_NAMES),
        min_size=1, max_size=3, unique=True))
    types = [draw(column_type()) for _ in new_columns]
    target = table.qualified_name()
    up = sql.SQL("; ").join(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(target, sql.Identifier(c), sql.SQL(t.sql))
        for c, t in zip(new_columns, types))
    down = sql.SQL("ALTER TABLE {} ").format(target) + sql.SQL(", ").join(
        sql.SQL("DROP COLUMN {}").format(sql.Identifier(c)) for c in new_columns)
    effect = sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass({}) "
        "AND attname = {} AND NOT attisdropped)"
    ).format(sql.Literal(sql.Identifier(table.name).as_string(None)), sql.Literal(new_columns[0]))
    return Migration(
        version=draw(migration_version()),
        up=_to_text(up),
        down=_to_text(down),
        effect=_to_text(effect),
        setup=_to_text(table.create_sql()),
    )


def migration_version() -> st.SearchStrategy[str]:
    """Any version text pggit accepts: not blank, at most 255 characters."""
    return pg_text(min_size=1, max_size=40).filter(lambda v: v.strip() != "" and not v.isspace())


def generated_migration() -> st.SearchStrategy[Migration]:
    return st.one_of(create_table_migration(), add_column_migration())


@contextlib.contextmanager
def fresh_example(fresh_connection, migration: Migration) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a database of the example's own, prepared for the migration."""
    with fresh_connection(autocommit=True) as conn:
        if migration.setup:
            conn.execute(migration.setup)
        yield conn


def shown(value: str) -> str:
    """A value as pggit's error messages show it: in double quotes, control characters as \\xNN."""
    return '"' + "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in value) + '"'


@given(migration=generated_migration())
def test_reapplying_a_migration_with_the_same_sql_returns_false_and_changes_nothing(fresh_connection, migration):
    """apply_migration is idempotent: the second apply of the same version and SQL runs nothing."""
    with fresh_example(fresh_connection, migration) as conn:
        assert apply_migration(conn, migration.version, migration.up, migration.down) is True
        assert checkers.migration_all_or_nothing(conn, migration.version, migration.effect)
        before = DatabaseStateSnapshot.capture(conn, extra=SCHEMA_QUERIES)
        assert apply_migration(conn, migration.version, migration.up, migration.down) is False
        assert apply_migration(conn, migration.version, migration.up) is False
        DatabaseStateSnapshot.capture(conn, extra=SCHEMA_QUERIES).assert_unchanged(before)


@given(migration=generated_migration(), other_up=st.sampled_from([
    "CREATE TABLE other_migration_table (a int)", "SELECT 1", " ", "-- only a comment\nSELECT 1",
]) | pg_text(min_size=1, max_size=30).map(lambda t: "SELECT " + sql.Literal(t).as_string(None)))
def test_different_sql_for_an_applied_version_raises_the_checksum_error(fresh_connection, migration, other_up):
    """Re-applying a version with other up SQL (even one space more) raises 55000 naming both
    checksums, and runs none of it."""
    with fresh_example(fresh_connection, migration) as conn:
        apply_migration(conn, migration.version, migration.up, migration.down)
        other = migration.up + other_up if other_up.strip() == "" else other_up
        before = DatabaseStateSnapshot.capture(conn, extra=SCHEMA_QUERIES)
        with pytest.raises(psycopg.Error) as refused:
            apply_migration(conn, migration.version, other, migration.down)
        assert refused.value.sqlstate == "55000", refused.value
        assert "checksum mismatch" in str(refused.value)
        detail = refused.value.diag.message_detail or ""
        for up_sql in (migration.up, other):
            assert hashlib.sha256(up_sql.encode()).hexdigest() in detail, detail
        DatabaseStateSnapshot.capture(conn, extra=SCHEMA_QUERIES).assert_unchanged(before)


# A statement that fails at run time (after the ones before it have run), and its SQLSTATE.
FAILING_STATEMENTS = {
    "SELECT 1 / 0": "22012",
    "INSERT INTO no_such_table_anywhere VALUES (1)": "42P01",
    "SELECT no_such_function_anywhere()": "42883",
    "DO $$ BEGIN RAISE EXCEPTION 'stop here' USING ERRCODE = 'P0001'; END $$": "P0001",
    "CREATE TABLE pggit_chaos_twice (a int); CREATE TABLE pggit_chaos_twice (a int)": "42P07",
}


@given(migration=generated_migration(), failing=st.sampled_from(sorted(FAILING_STATEMENTS)),
       extra_ddl=st.booleans())
def test_a_migration_that_fails_part_way_leaves_no_trace(fresh_connection, migration, failing, extra_ddl):
    """Valid statements followed by a failing one: the original SQLSTATE comes back, and neither
    the schema changes, nor their DDL history, nor a migration record remain."""
    with fresh_example(fresh_connection, migration) as conn:
        statements = [migration.up]
        if extra_ddl:
            statements.append("CREATE TABLE pggit_chaos_side_effect (id int PRIMARY KEY); "
                              "ALTER TABLE pggit_chaos_side_effect ADD COLUMN note text")
        statements.append(failing)
        before = DatabaseStateSnapshot.capture(conn, extra=SCHEMA_QUERIES)
        with pytest.raises(psycopg.Error) as failed:
            apply_migration(conn, migration.version, ";\n".join(statements), migration.down)
        assert failed.value.sqlstate == FAILING_STATEMENTS[failing], failed.value
        assert f"migration {shown(migration.version)} (up) failed" in str(failed.value), failed.value
        assert checkers.migration_all_or_nothing(conn, migration.version, migration.effect) is False
        DatabaseStateSnapshot.capture(conn, extra=SCHEMA_QUERIES).assert_unchanged(before)
        # Nothing half-recorded blocks a correct retry of the same version.
        assert apply_migration(conn, migration.version, migration.up, migration.down) is True


@given(migration=generated_migration())
def test_apply_then_rollback_returns_to_the_prior_schema(fresh_connection, migration):
    """After apply and rollback the schema is what it was before; versions only moved forward;
    the record says ROLLED_BACK, and a second rollback does nothing."""
    with fresh_example(fresh_connection, migration) as conn:
        prior = DatabaseStateSnapshot.capture(conn, queries=SCHEMA_ONLY)
        prior_hashes = conn.execute(
            "SELECT object_name, content_hash FROM pggit.objects WHERE is_active AND schema_name = current_schema() "
            "ORDER BY 1").fetchall()

        assert apply_migration(conn, migration.version, migration.up, migration.down) is True
        assert conn.execute("SELECT pggit.rollback_migration(%s)", (migration.version,)).fetchone()[0] is True

        prior.assert_unchanged(DatabaseStateSnapshot.capture(conn, queries=SCHEMA_ONLY))
        assert conn.execute(
            "SELECT object_name, content_hash FROM pggit.objects WHERE is_active AND schema_name = current_schema() "
            "ORDER BY 1").fetchall() == prior_hashes
        assert checkers.migration_all_or_nothing(conn, migration.version, migration.effect) is False
        assert conn.execute("SELECT status FROM pggit.migrations WHERE version = %s",
                            (migration.version,)).fetchone()[0] == "ROLLED_BACK"
        assert conn.execute("SELECT pggit.rollback_migration(%s)", (migration.version,)).fetchone()[0] is False
        for (table,) in conn.execute(
                "SELECT format('%I', object_name) FROM pggit.objects WHERE is_active AND schema_name = current_schema()"
        ).fetchall():
            checkers.versions_strictly_increasing(conn, table)
        checkers.integrity_ok(conn)
        checkers.drift_is(conn)
        # A rolled-back version can be applied again.
        assert apply_migration(conn, migration.version, migration.up, migration.down) is True
        assert checkers.migration_all_or_nothing(conn, migration.version, migration.effect) is True
