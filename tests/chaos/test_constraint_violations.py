"""Constraint violations around pggit calls: PostgreSQL's transaction rules, stated and tested.

- An error aborts the whole transaction: pggit's work before it is lost
  with everything else when the transaction rolls back. A constraint
  violation in a user table therefore takes pggit's commits, branches and
  DDL history with it, also when the constraint is deferred to COMMIT.
- pggit's own constraints (an existing branch name, a used custom Trinity
  ID) raise 23505 and write nothing. Inside a savepoint (or a PL/pgSQL
  exception block, which is one) the work before the savepoint survives
  and the transaction goes on; without one, the transaction can only roll
  back, and nothing of it remains.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.client import head
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.snapshot import DatabaseStateSnapshot

pytestmark = [pytest.mark.chaos, pytest.mark.transaction]

CUSTOM_ID = "release-2025-custom-id"


def _commit(conn: psycopg.Connection, branch: str, message: str, custom_id: str | None = None) -> str:
    return conn.execute("SELECT pggit.commit_changes(%s, %s, %s)", (branch, message, custom_id)).fetchone()[0]


@pytest.fixture
def conn(sync_conn):
    """The test's connection (autocommit off) with user tables whose constraints the tests violate."""
    sync_conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int CHECK (balance >= 0))")
    sync_conn.execute("CREATE TABLE ledger (ref int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    sync_conn.execute("INSERT INTO accounts VALUES (1, 10)")
    _commit(sync_conn, "main", "setup")
    sync_conn.commit()
    return sync_conn


def _pggit_work(conn: psycopg.Connection) -> list[str]:
    ids = [_commit(conn, "main", "lost with the transaction"), _commit(conn, "feature/lost", "lost too")]
    conn.execute("SELECT pggit.create_branch('release/lost')")
    conn.execute("ALTER TABLE accounts ADD COLUMN owner text")
    conn.execute("SELECT pggit.apply_migration('lost-1', 'CREATE INDEX accounts_owner_idx ON accounts (owner)')")
    return ids


@pytest.mark.parametrize("violation, sqlstate", [
    ("INSERT INTO accounts VALUES (1, 0)", "23505"),   # primary key
    ("UPDATE accounts SET balance = -1", "23514"),      # check constraint
    ("INSERT INTO accounts VALUES (NULL, 0)", "23502"),  # not null
])
def test_a_user_constraint_violation_rolls_back_pggits_work_in_the_same_transaction(conn, violation, sqlstate):
    """A constraint violation in a user table aborts the transaction, and pggit's commits, branches,
    DDL history and migration in it go with it."""
    before = DatabaseStateSnapshot.capture(conn)
    ids = _pggit_work(conn)
    with pytest.raises(psycopg.errors.IntegrityError) as violated:
        conn.execute(violation)
    assert violated.value.sqlstate == sqlstate
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        _commit(conn, "main", "refused: the transaction is aborted")
    conn.rollback()

    DatabaseStateSnapshot.capture(conn).assert_unchanged(before)
    assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = ANY(%s)", (ids,)).fetchone()[0] == 0
    checkers.integrity_ok(conn)


def test_a_deferred_constraint_failing_at_commit_takes_pggits_work_with_it(conn):
    """A deferred unique constraint fails only at COMMIT; pggit's work of that transaction, already
    done and visible inside it, is rolled back all the same."""
    before = DatabaseStateSnapshot.capture(conn)
    ids = _pggit_work(conn)
    conn.execute("INSERT INTO ledger VALUES (7), (7)")  # accepted for now: the check waits for COMMIT
    assert head(conn, "main") == ids[0]
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.commit()

    DatabaseStateSnapshot.capture(conn).assert_unchanged(before)
    assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = ANY(%s)", (ids,)).fetchone()[0] == 0
    checkers.integrity_ok(conn)


@pytest.mark.parametrize("duplicate", ["branch", "custom Trinity ID"])
def test_pggit_constraint_inside_a_savepoint_keeps_the_earlier_work(conn, duplicate):
    """A duplicate branch or custom ID raises 23505 and writes nothing; rolled back to its savepoint,
    the transaction keeps the work before the failing call and goes on."""
    earlier = _commit(conn, "main", "before the failing call", CUSTOM_ID)
    conn.execute("SELECT pggit.create_branch('feature/once')")
    conn.execute("SAVEPOINT before_duplicate")
    with pytest.raises(psycopg.errors.UniqueViolation) as refused:
        if duplicate == "branch":
            conn.execute("SELECT pggit.create_branch('feature/once')")
        else:
            _commit(conn, "feature/once", "reuses an ID", CUSTOM_ID)
    assert ("feature/once" if duplicate == "branch" else CUSTOM_ID) in str(refused.value)
    conn.execute("ROLLBACK TO SAVEPOINT before_duplicate")
    later = _commit(conn, "main", "after the failing call")
    conn.commit()

    chain = checkers.linear_chain_invariant(conn, "main")
    assert chain[-2:] == [earlier, later]
    assert checkers.linear_chain_invariant(conn, "feature/once") == []
    assert conn.execute("SELECT count(*) FROM pggit.branches WHERE name = 'feature/once'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = %s", (CUSTOM_ID,)).fetchone()[0] == 1
    checkers.integrity_ok(conn)


@pytest.mark.parametrize("duplicate", ["branch", "custom Trinity ID"])
def test_pggit_constraint_without_a_savepoint_loses_the_whole_transaction(conn, duplicate):
    """Without a savepoint the 23505 aborts the transaction: only a rollback is possible, and
    nothing of it, the earlier successful calls included, remains."""
    before = DatabaseStateSnapshot.capture(conn)
    _commit(conn, "main", "before the failing call", CUSTOM_ID)
    conn.execute("SELECT pggit.create_branch('feature/once')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        if duplicate == "branch":
            conn.execute("SELECT pggit.create_branch('feature/once')")
        else:
            _commit(conn, "main", "reuses an ID", CUSTOM_ID)
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        _commit(conn, "main", "refused: the transaction is aborted")
    conn.rollback()
    DatabaseStateSnapshot.capture(conn).assert_unchanged(before)


def test_a_duplicate_caught_in_a_plpgsql_exception_block_keeps_the_rest(conn):
    """A PL/pgSQL exception block is a savepoint: a duplicate branch caught there undoes only the
    failing call, and the block's other pggit work commits."""
    conn.execute("""
        DO $$
        BEGIN
            PERFORM pggit.commit_changes('main', 'in the DO block, before');
            PERFORM pggit.create_branch('feature/in-block');
            BEGIN
                PERFORM pggit.create_branch('feature/in-block');
                RAISE EXCEPTION 'not reached';
            EXCEPTION WHEN unique_violation THEN
                NULL;  -- expected: the name exists
            END;
            PERFORM pggit.commit_changes('feature/in-block', 'in the DO block, after');
        END
        $$""")
    conn.commit()
    messages = [m for (m,) in conn.execute(
        "SELECT message FROM pggit.commits WHERE message LIKE 'in the DO block%' ORDER BY id")]
    assert messages == ["in the DO block, before", "in the DO block, after"]
    assert len(checkers.linear_chain_invariant(conn, "feature/in-block")) == 1
    checkers.integrity_ok(conn)


def test_a_duplicate_custom_id_from_a_concurrent_transaction_fails_cleanly(conn, db_connection_string):
    """Two transactions use the same custom ID: the second waits for the first, then gets 23505
    (not a raw constraint error, not a second row), and its savepoint keeps its other work."""
    conn.execute("SELECT pggit.commit_changes('main', 'first user of the ID', %s)", (CUSTOM_ID,))
    with psycopg.connect(db_connection_string) as other, TransactionMonitor(db_connection_string) as monitor:
        earlier = _commit(other, "feature/second", "before the duplicate")
        other.execute("SAVEPOINT s")
        outcome: dict[str, object] = {}

        def second() -> None:
            try:
                _commit(other, "feature/second", "second user of the ID", CUSTOM_ID)
                outcome["result"] = "accepted"
            except psycopg.Error as exc:
                outcome["result"] = exc

        worker = threading.Thread(target=second)
        worker.start()
        monitor.wait_until_blocked(other.info.backend_pid)
        conn.commit()
        worker.join(10)
        assert isinstance(outcome.get("result"), psycopg.errors.UniqueViolation), outcome
        assert CUSTOM_ID in str(outcome["result"])
        other.execute("ROLLBACK TO SAVEPOINT s")
        other.commit()
    assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = %s", (CUSTOM_ID,)).fetchone()[0] == 1
    assert checkers.linear_chain_invariant(conn, "feature/second") == [earlier]
    checkers.integrity_ok(conn)
