"""Corruption chaos: migrations that fail, rollbacks that fail, records tampered with.

A migration is all or nothing: when any statement of it fails, for any
reason (bad SQL, bad data, a lock it cannot get, a timeout), neither its
schema changes nor its record nor the history of its DDL may remain. A
failing rollback leaves the migration applied. A tampered record is caught
by the checksum instead of being run over.
"""

from __future__ import annotations

import hashlib
import threading

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import apply_migration
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.snapshot import DatabaseStateSnapshot

pytestmark = [pytest.mark.chaos, pytest.mark.corruption, pytest.mark.migration]

# Existing data that some migrations trip over: a NULL email, a duplicate email,
# a negative balance and an order of a customer who does not exist.
SETUP = """
CREATE TABLE accounts (id int PRIMARY KEY, email text, balance numeric NOT NULL DEFAULT 0);
INSERT INTO accounts VALUES (1, 'a@example.org', 10), (2, NULL, 5), (3, 'a@example.org', -1);
CREATE TABLE orders (id int PRIMARY KEY, account_id int);
INSERT INTO orders VALUES (1, 1), (2, 99);
"""

EXTRA = {
    "columns": "SELECT attrelid::regclass::text, attnum, attname, format_type(atttypid, atttypmod), attnotnull "
               "FROM pg_attribute WHERE attrelid IN ('accounts'::regclass, 'orders'::regclass) AND attnum > 0 "
               "AND NOT attisdropped ORDER BY 1, 2",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE connamespace = 'public'::regnamespace ORDER BY 1",
    "accounts": "SELECT * FROM accounts ORDER BY id",
}

# A migration that fails, the SQLSTATE it must fail with, and the session settings it needs.
FAILING = {
    "syntax error": ("CREATE TABLE mf_new (id int); CREATE TABLE mf_other (id int", "42601", None),
    "runtime error after statements": (
        "CREATE TABLE mf_new (id int); INSERT INTO mf_new VALUES (1); "
        "ALTER TABLE accounts ADD COLUMN note text; UPDATE accounts SET balance = balance / 0", "22012", None),
    "not null on existing nulls": (
        "ALTER TABLE accounts ADD COLUMN note text; ALTER TABLE accounts ALTER COLUMN email SET NOT NULL",
        "23502", None),
    "unique index on duplicates": (
        "CREATE TABLE mf_new (id int); CREATE UNIQUE INDEX accounts_email_key ON accounts (email)", "23505", None),
    "check constraint on existing rows": (
        "ALTER TABLE accounts ADD CONSTRAINT balance_positive CHECK (balance >= 0)", "23514", None),
    "foreign key on orphans": (
        "ALTER TABLE orders ADD CONSTRAINT orders_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id)",
        "23503", None),
    "statement timeout": (
        "CREATE TABLE mf_new (id int); ALTER TABLE accounts ADD COLUMN note text; SELECT pg_sleep(30)",
        "57014", {"statement_timeout": "200ms"}),
}


@pytest.fixture
def conn(sync_conn: psycopg.Connection) -> psycopg.Connection:
    sync_conn.autocommit = True
    sync_conn.execute(SETUP)
    return sync_conn


def _no_trace(conn: psycopg.Connection, before: DatabaseStateSnapshot, version: str) -> None:
    before.assert_unchanged(DatabaseStateSnapshot.capture(conn, extra=EXTRA))
    assert not checkers.migration_all_or_nothing(
        conn, version, "SELECT to_regclass('mf_new') IS NOT NULL OR to_regclass('mf_other') IS NOT NULL")
    assert checkers.versions_strictly_increasing(conn, "accounts") == ["1.0.0"]
    checkers.drift_is(conn)
    checkers.integrity_ok(conn)


@pytest.mark.parametrize("kind", sorted(FAILING))
def test_failing_migration_leaves_no_trace(conn, kind):
    """A migration that fails part-way (bad SQL, bad data, a timeout) raises its own SQLSTATE naming the version and leaves no schema change, no record and no history; the version can then be applied with fixed SQL."""
    up, sqlstate, settings = FAILING[kind]
    before = DatabaseStateSnapshot.capture(conn, extra=EXTRA)
    with nemesis.session_configured(conn, **(settings or {})), \
            pytest.raises(psycopg.Error, match=r'migration "mf-1" \(up\) failed') as err:
        apply_migration(conn, "mf-1", up)
    assert err.value.sqlstate == sqlstate, err.value
    _no_trace(conn, before, "mf-1")

    # Nothing is left behind, not even a lock: the same version applies once the SQL is fixed.
    assert apply_migration(conn, "mf-1", "CREATE TABLE mf_new (id int)", "DROP TABLE mf_new") is True
    assert checkers.migration_all_or_nothing(conn, "mf-1", "SELECT to_regclass('mf_new') IS NOT NULL")
    checkers.integrity_ok(conn)


def test_failing_migration_inside_a_savepoint_undoes_only_itself(conn):
    """Inside a caller's transaction, rolling back to a savepoint after a failing migration keeps the work before it (a commit, a tracked ALTER) and drops only the migration."""
    conn.autocommit = False
    trinity_id = conn.execute("SELECT pggit.commit_changes('main', 'before the migration')").fetchone()[0]
    conn.execute("ALTER TABLE accounts ADD COLUMN kept text")
    conn.execute("SAVEPOINT before_migration")
    with pytest.raises(psycopg.errors.DivisionByZero):
        apply_migration(conn, "mf-sp", "CREATE TABLE mf_new (id int); SELECT 1 / 0")
    conn.execute("ROLLBACK TO SAVEPOINT before_migration")
    conn.commit()
    conn.autocommit = True
    assert checkers.linear_chain_invariant(conn, "main") == [trinity_id]
    assert checkers.versions_strictly_increasing(conn, "accounts") == ["1.0.0", "1.1.0"]
    assert not checkers.migration_all_or_nothing(conn, "mf-sp", "SELECT to_regclass('mf_new') IS NOT NULL")
    assert conn.execute("SELECT count(*) FROM pggit.objects WHERE object_name = 'mf_new'").fetchone() == (0,)
    checkers.integrity_ok(conn)


@pytest.mark.slow
def test_migration_that_times_out_on_a_lock_leaves_no_trace(conn, db_connection_string):
    """A migration that waits for a lock another session holds and hits lock_timeout fails with 55P03 and leaves no trace, also not of the statements that ran before the wait."""
    before = DatabaseStateSnapshot.capture(conn, extra=EXTRA)
    holder = psycopg.connect(db_connection_string)
    holder.execute("SELECT count(*) FROM accounts")  # an open transaction holding ACCESS SHARE
    migrator = psycopg.connect(db_connection_string, autocommit=True)
    migrator.execute("SET lock_timeout = '2s'")
    outcome: dict[str, BaseException] = {}

    def migrate() -> None:
        try:
            apply_migration(migrator, "mf-lock", "CREATE TABLE mf_new (id int); ALTER TABLE accounts ADD COLUMN note text")
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=migrate)
    try:
        with TransactionMonitor(db_connection_string) as monitor:
            thread.start()
            wait = monitor.wait_until_blocked(migrator.info.backend_pid, timeout=10)
            assert wait.blocking_pids == (holder.info.backend_pid,)
            thread.join(30)  # the holder keeps its lock until the migration has given up
        error = outcome.get("error")
        assert isinstance(error, psycopg.errors.LockNotAvailable), outcome
        assert 'migration "mf-lock" (up) failed: canceling statement due to lock timeout' in str(error)
    finally:
        holder.rollback()
        holder.close()
        migrator.close()
    _no_trace(conn, before, "mf-lock")


# Down SQL that fails after it has already dropped something.
FAILING_DOWN = {
    "missing table after two drops": ("DROP TABLE rb_b; DROP TABLE rb_a; DROP TABLE rb_c", "42P01"),
    "dependent view": ("DROP TABLE rb_b; DROP TABLE rb_a", "2BP01"),
}


@pytest.mark.parametrize("kind", sorted(FAILING_DOWN))
def test_rollback_failing_half_way_leaves_the_migration_applied(conn, kind):
    """A rollback whose down SQL fails after some statements ran leaves the migration APPLIED and the schema, data, versions and history exactly as before."""
    down, sqlstate = FAILING_DOWN[kind]
    assert apply_migration(conn, "mf-rb", "CREATE TABLE rb_a (id int); CREATE TABLE rb_b (id int); "
                                 "INSERT INTO rb_a VALUES (1), (2)", down) is True
    if kind == "dependent view":
        conn.execute("CREATE VIEW rb_view AS SELECT * FROM rb_a")
    extra = {**EXTRA, "rb_a": "SELECT * FROM rb_a ORDER BY id", "rb_b": "SELECT count(*) FROM rb_b"}
    before = DatabaseStateSnapshot.capture(conn, extra=extra)

    with pytest.raises(psycopg.Error, match=r'migration "mf-rb" \(down\) failed') as err:
        conn.execute("SELECT pggit.rollback_migration('mf-rb')")
    assert err.value.sqlstate == sqlstate, err.value

    before.assert_unchanged(DatabaseStateSnapshot.capture(conn, extra=extra))
    assert checkers.migration_all_or_nothing(
        conn, "mf-rb", "SELECT to_regclass('rb_a') IS NOT NULL AND to_regclass('rb_b') IS NOT NULL")
    for table in ("rb_a", "rb_b"):
        assert checkers.versions_strictly_increasing(conn, table) == ["1.0.0"]
    checkers.integrity_ok(conn)


def test_tampered_checksum_is_refused_on_reapply_and_nothing_runs(conn):
    """After the recorded checksum is altered behind pggit's back, re-applying the migration fails with 55000 naming both checksums, and its SQL does not run again."""
    up = "CREATE TABLE sums (id int); INSERT INTO sums VALUES (1)"
    assert apply_migration(conn, "mf-sum", up) is True
    assert apply_migration(conn, "mf-sum", up) is False  # the same SQL again is a no-op
    conn.execute("UPDATE pggit.migrations SET checksum = repeat('0', 64) WHERE version = 'mf-sum'")
    before = DatabaseStateSnapshot.capture(conn, extra={"sums": "SELECT * FROM sums ORDER BY id"})

    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                       match='checksum mismatch for migration "mf-sum"') as err:
        apply_migration(conn, "mf-sum", up)
    given = hashlib.sha256(up.encode()).hexdigest()
    assert err.value.diag.message_detail == f"recorded checksum {'0' * 64}, given {given}"
    before.assert_unchanged(DatabaseStateSnapshot.capture(conn, extra={"sums": "SELECT * FROM sums ORDER BY id"}))
    checkers.integrity_ok(conn)


def test_status_tampered_to_rolled_back_makes_reapply_fail_cleanly(conn):
    """When the record says ROLLED_BACK but the schema is still migrated, re-applying runs the SQL again, which fails (42P07) and leaves the record and schema as they were."""
    up = "CREATE TABLE status_t (id int PRIMARY KEY)"
    assert apply_migration(conn, "mf-status", up, "DROP TABLE status_t") is True
    conn.execute("UPDATE pggit.migrations SET status = 'ROLLED_BACK' WHERE version = 'mf-status'")
    before = DatabaseStateSnapshot.capture(conn, extra=EXTRA)
    with pytest.raises(psycopg.errors.DuplicateTable, match=r'migration "mf-status" \(up\) failed'):
        apply_migration(conn, "mf-status", up, "DROP TABLE status_t")
    before.assert_unchanged(DatabaseStateSnapshot.capture(conn, extra=EXTRA))
    assert conn.execute("SELECT status FROM pggit.migrations WHERE version = 'mf-status'").fetchone() == ("ROLLED_BACK",)
    assert checkers.versions_strictly_increasing(conn, "status_t") == ["1.0.0"]
    checkers.integrity_ok(conn)
