"""apply_migration and rollback_migration: run and record atomically, no-op on
re-apply, checksum mismatch on changed SQL, exactly one of concurrent applies runs."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
from psycopg import sql

from tests.extension.helpers import (
    INVALID_PARAMETER_VALUE,
    assert_nothing_written,
    expect_error,
    one,
    run_while_blocked,
    scalar,
    snapshot,
    tracked_object,
)

# The SQLSTATEs the contract leaves to the extension (docs/reference/pggit.md).
CHECKSUM_MISMATCH = "55000"  # object_not_in_prerequisite_state
UNKNOWN_MIGRATION = "42704"  # undefined_object
NO_DOWN_SQL = "55000"  # object_not_in_prerequisite_state
APPLIED = "APPLIED"
ROLLED_BACK = "ROLLED_BACK"

UP = "CREATE TABLE widgets (id int PRIMARY KEY); INSERT INTO runs VALUES ('up')"
DOWN = "DROP TABLE widgets; INSERT INTO runs VALUES ('down')"


@pytest.fixture
def runs(conn: psycopg.Connection) -> psycopg.Connection:
    """A table every migration of these tests writes to, so running it twice would show."""
    conn.execute("CREATE TABLE runs (what text)")
    return conn


def apply(conn, version, up, down=None, description=None):
    return scalar(conn, "SELECT pggit.apply_migration(%s, %s, %s, %s)", (version, up, down, description))


def rollback(conn, version):
    return scalar(conn, "SELECT pggit.rollback_migration(%s)", (version,))


def migration(conn, version):
    return one(conn, "SELECT * FROM pggit.migrations WHERE version = %s", (version,))


def table_exists(conn, name):
    return scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (name,))


def run_log(conn):
    return [r[0] for r in conn.execute("SELECT what FROM runs")]


# --------------------------------------------------------------------------
# apply_migration
# --------------------------------------------------------------------------


def test_apply_runs_the_sql_records_it_and_returns_true(runs):
    assert apply(runs, "001", UP, DOWN, "widgets table") is True
    assert table_exists(runs, "widgets")
    assert run_log(runs) == ["up"]
    row = migration(runs, "001")
    assert (row["description"], row["up_sql"], row["down_sql"], row["status"]) == ("widgets table", UP, DOWN, APPLIED)
    assert row["applied_at"] is not None


def test_checksum_is_the_sha256_of_the_up_sql(runs):
    apply(runs, "001", UP, DOWN)
    assert migration(runs, "001")["checksum"] == hashlib.sha256(UP.encode()).hexdigest()


def test_ddl_run_by_a_migration_is_tracked(runs):
    apply(runs, "001", UP, DOWN)
    assert tracked_object(runs, "public", "widgets")["is_active"] is True


def test_reapplying_the_same_version_with_the_same_sql_returns_false_and_does_nothing(runs):
    apply(runs, "001", UP, DOWN)
    before = snapshot(runs)
    assert apply(runs, "001", UP, DOWN) is False
    assert run_log(runs) == ["up"]
    assert_nothing_written(runs, before)


def test_reapplying_the_same_version_with_different_sql_is_a_checksum_mismatch(runs):
    apply(runs, "001", UP, DOWN)
    before = snapshot(runs)
    error = expect_error(
        runs, "SELECT pggit.apply_migration('001', %s)", ("INSERT INTO runs VALUES ('other')",),
        sqlstate=CHECKSUM_MISMATCH, names=["001"],
    )
    assert "checksum" in error.diag.message_primary.lower()
    assert run_log(runs) == ["up"]
    assert_nothing_written(runs, before)


def test_a_failing_migration_leaves_neither_schema_change_nor_record(runs):
    before = snapshot(runs)
    expect_error(
        runs, "SELECT pggit.apply_migration('002', %s)",
        ("CREATE TABLE half_done (id int); INSERT INTO runs VALUES ('up'); SELECT 1 / 0",),
        sqlstate="22012", names=["002"],
    )
    assert not table_exists(runs, "half_done")
    assert run_log(runs) == []
    assert_nothing_written(runs, before)


@pytest.mark.parametrize(
    ("detail", "hint"),
    [("the detail", "the hint"), ("the detail", None), (None, "the hint"), (None, None)],
    ids=["detail_and_hint", "detail_only", "hint_only", "neither"],
)
def test_a_failing_migration_keeps_its_errors_detail_and_hint(runs, detail, hint):
    """The error of a failing migration is re-raised with the version in the message and the SQLSTATE, detail
    and hint of the original error, each one present exactly when the original had it: a detail is not lost
    beside a hint, nor a hint beside a detail, and none is made up. Nothing is recorded."""
    options = ", ".join([f"DETAIL = '{detail}'"] * bool(detail) + [f"HINT = '{hint}'"] * bool(hint))
    up = ("INSERT INTO runs VALUES ('up'); DO $$ BEGIN RAISE EXCEPTION 'refused by the data' USING ERRCODE = '22000'"
          + (f", {options}" if options else "") + "; END $$")
    before = snapshot(runs)
    error = expect_error(runs, "SELECT pggit.apply_migration('006', %s)", (up,), sqlstate="22000", names=["006"])
    assert "refused by the data" in error.diag.message_primary
    assert (error.diag.message_detail, error.diag.message_hint) == (detail, hint)
    assert run_log(runs) == []
    assert_nothing_written(runs, before)


def test_a_failed_version_can_be_applied_once_fixed(runs):
    with pytest.raises(psycopg.Error):
        apply(runs, "002", "CREATE TABLE fixed_later (id int); SELECT 1 / 0")
    assert apply(runs, "002", "CREATE TABLE fixed_later (id int)") is True
    assert table_exists(runs, "fixed_later")


def test_apply_in_a_transaction_rolled_back_by_the_caller_leaves_no_trace(runs, connect):
    before = snapshot(runs)
    session = connect(autocommit=False)
    assert apply(session, "003", UP, DOWN) is True
    session.rollback()
    assert not table_exists(runs, "widgets")
    assert_nothing_written(runs, before)


@pytest.mark.parametrize(
    ("version", "up"),
    [(None, "SELECT 1"), ("", "SELECT 1"), ("   ", "SELECT 1"), ("004", None)],
    ids=["null_version", "empty_version", "blank_version", "null_up_sql"],
)
def test_apply_refuses_missing_input(runs, version, up):
    before = snapshot(runs)
    expect_error(
        runs, "SELECT pggit.apply_migration(%s, %s)", (version, up), sqlstate=INVALID_PARAMETER_VALUE,
        names=[version] if version and version.strip() else [],
    )
    assert_nothing_written(runs, before)


def test_apply_refuses_a_version_over_255_characters(runs):
    """A migration version longer than 255 characters is bad input (22023): nothing runs, nothing is recorded,
    and the message names the version. Positive control: a version of 255 characters is applied."""
    too_long = "v" * 256
    before = snapshot(runs)
    expect_error(runs, "SELECT pggit.apply_migration(%s, %s)", (too_long, UP), sqlstate=INVALID_PARAMETER_VALUE,
                 names=[too_long])
    assert not table_exists(runs, "widgets")
    assert run_log(runs) == []
    assert_nothing_written(runs, before)
    longest = "v" * 255
    assert apply(runs, longest, UP, DOWN) is True
    assert migration(runs, longest)["status"] == APPLIED
    assert run_log(runs) == ["up"]


def test_concurrent_applies_of_one_version_run_it_once(runs, connect):
    first = connect(autocommit=False)
    second = connect()
    assert apply(first, "005", UP, DOWN) is True
    result, error = run_while_blocked(first, second, runs, lambda c: apply(c, "005", UP, DOWN))
    assert error is None, error
    assert result is False
    assert run_log(runs) == ["up"]
    assert migration(runs, "005")["status"] == APPLIED


def test_concurrent_applies_the_waiter_runs_it_when_the_first_rolls_back(runs, connect):
    first = connect(autocommit=False)
    second = connect()
    apply(first, "005", UP, DOWN)
    result, error = run_while_blocked(
        first, second, runs, lambda c: apply(c, "005", UP, DOWN), end="rollback"
    )
    assert error is None, error
    assert result is True
    assert run_log(runs) == ["up"]


def test_a_rolled_back_version_can_be_applied_again(runs):
    apply(runs, "001", UP, DOWN)
    rollback(runs, "001")
    assert apply(runs, "001", UP, DOWN) is True
    assert table_exists(runs, "widgets")
    assert migration(runs, "001")["status"] == APPLIED
    assert run_log(runs) == ["up", "down", "up"]


# --------------------------------------------------------------------------
# rollback_migration
# --------------------------------------------------------------------------


def test_rollback_runs_the_down_sql_and_marks_the_migration_rolled_back(runs):
    apply(runs, "001", UP, DOWN)
    assert rollback(runs, "001") is True
    assert not table_exists(runs, "widgets")
    assert run_log(runs) == ["up", "down"]
    assert migration(runs, "001")["status"] == ROLLED_BACK


def test_rolling_back_twice_returns_false_and_does_nothing(runs):
    apply(runs, "001", UP, DOWN)
    rollback(runs, "001")
    before = snapshot(runs)
    assert rollback(runs, "001") is False
    assert run_log(runs) == ["up", "down"]
    assert_nothing_written(runs, before)


def test_a_failing_down_sql_leaves_schema_and_record_unchanged(runs):
    apply(runs, "001", UP, "DROP TABLE widgets; SELECT 1 / 0")
    before = snapshot(runs)
    expect_error(runs, "SELECT pggit.rollback_migration('001')", sqlstate="22012", names=["001"])
    assert table_exists(runs, "widgets")
    assert_nothing_written(runs, before)


def test_rollback_in_a_transaction_rolled_back_by_the_caller_leaves_no_trace(runs, connect):
    apply(runs, "001", UP, DOWN)
    before = snapshot(runs)
    session = connect(autocommit=False)
    rollback(session, "001")
    session.rollback()
    assert table_exists(runs, "widgets")
    assert_nothing_written(runs, before)


def test_rollback_of_an_unknown_version_is_a_clear_error(runs):
    before = snapshot(runs)
    expect_error(
        runs, "SELECT pggit.rollback_migration('no-such-version')", sqlstate=UNKNOWN_MIGRATION,
        names=["no-such-version"],
    )
    assert_nothing_written(runs, before)


@pytest.mark.parametrize("down", [None, "", "  "], ids=["null", "empty", "blank"])
def test_rollback_of_a_migration_without_down_sql_is_a_clear_error(runs, down):
    apply(runs, "001", UP, down)
    before = snapshot(runs)
    expect_error(runs, "SELECT pggit.rollback_migration('001')", sqlstate=NO_DOWN_SQL, names=["001"])
    assert table_exists(runs, "widgets")
    assert_nothing_written(runs, before)


# --------------------------------------------------------------------------
# The record writer runs with pggit's owner's rights: only pggit's own objects
# --------------------------------------------------------------------------


def test_a_type_planted_on_the_callers_search_path_never_runs_in_the_rollback_record_writer(conn, connect, make_role):
    """The SECURITY DEFINER writer of the ROLLED_BACK mark is callable by anyone (it refuses every caller but
    pggit's own). A hostile role with the documented migration grants puts a domain named ``text`` into its own
    schema, whose CHECK calls a spy, puts that schema before pg_catalog on its search_path and calls the writer
    directly: refused, as always. It then rolls back its own migration in the same session. The writer's
    variables keep pg_catalog's types whatever the session's search_path was when it first ran, so the spy
    never runs as pggit's owner: the hostile role stays an ordinary role. Positive controls: run by the
    superuser, the spy makes the hostile role superuser; in the hostile session the domain is what ``text``
    names, and its spy runs (as the hostile role)."""
    hostile = make_role("hostile")
    conn.execute(sql.SQL("CREATE SCHEMA hs AUTHORIZATION {}").format(sql.Identifier(hostile)))
    for function in ("apply_migration(text, text, text, text)", "rollback_migration(text)",
                     "_record_migration_applied(text, text, text, text, text)", "_record_migration_rolled_back(text)"):
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pggit.{} TO {}")
                     .format(sql.SQL(function), sql.Identifier(hostile)))
    h = connect(user=hostile)
    h.execute("CREATE TABLE hs.seen (by_user text, became_super boolean)")
    h.execute("GRANT INSERT ON hs.seen TO PUBLIC")
    h.execute(sql.SQL("""
        CREATE FUNCTION hs.spy(v pg_catalog.text) RETURNS boolean LANGUAGE plpgsql AS $f$
        DECLARE
            v_super boolean := false;
        BEGIN
            BEGIN
                EXECUTE 'ALTER ROLE ' || pg_catalog.quote_ident({hostile}) || ' SUPERUSER';
                v_super := true;
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            INSERT INTO hs.seen VALUES (current_user, v_super);
            RETURN true;
        END $f$""").format(hostile=sql.Literal(hostile)))
    h.execute("GRANT EXECUTE ON FUNCTION hs.spy(pg_catalog.text) TO PUBLIC")
    h.execute("CREATE DOMAIN hs.text AS pg_catalog.text CHECK (hs.spy(VALUE))")
    assert apply(h, "hostile-1", "CREATE TABLE hs.w (id int)", "DROP TABLE hs.w") is True
    owner = scalar(conn, "SELECT current_user::text")
    conn.execute("SELECT hs.spy('control')")
    assert conn.execute("SELECT by_user, became_super FROM hs.seen").fetchall() == [(owner, True)]
    conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(hostile)))
    conn.execute("TRUNCATE hs.seen")

    h.execute("SET search_path = hs, pg_catalog")
    assert scalar(h, "SELECT pg_typeof('x'::text)::oid = 'hs.text'::regtype") is True
    assert h.execute("SELECT by_user, became_super FROM hs.seen").fetchall() == [(hostile, False)]
    h.execute("TRUNCATE hs.seen")
    # Arguments of the default collation, like the ones pggit passes: PL/pgSQL keeps a compiled copy of a
    # function per input collation, and the session's first call is the one that compiles it.
    expect_error(h, "SELECT pggit._write_migration_rolled_back('hostile-1', %s)", (hostile,), sqlstate="42501")
    assert rollback(h, "hostile-1") is True

    assert migration(conn, "hostile-1")["status"] == ROLLED_BACK
    assert not table_exists(conn, "hs.w")
    assert conn.execute("SELECT by_user, became_super FROM hs.seen WHERE by_user <> %s",
                        (hostile,)).fetchall() == []
    assert scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (hostile,)) is False
