"""Partial failures: a transaction of several pggit steps that dies half-way leaves nothing.

The faults are real: the client's socket goes dead (``nemesis.cut_connection``),
the server ends the session (``nemesis.terminate_backend``), or the network
resets the link while the server is running a pggit call (``FaultyProxy``).
The server then rolls the open transaction back; pggit must not have
written anything outside it.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.history import History
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.snapshot import DatabaseStateSnapshot

pytestmark = [pytest.mark.chaos, pytest.mark.transaction]


STEPS = {
    "commit": lambda c: commit(c, "main", "partial: commit on main"),
    "commit on a new branch": lambda c: commit(c, "feature/partial", "partial: new branch"),
    "create branch": lambda c: c.execute("SELECT pggit.create_branch('release/partial')"),
    "DDL": lambda c: (c.execute("CREATE TABLE partial_t (id int)"), c.execute("ALTER TABLE kept ADD COLUMN c int")),
    "migration": lambda c: c.execute(
        "SELECT pggit.apply_migration('partial-1', 'CREATE TABLE partial_m (a int)', 'DROP TABLE partial_m')"),
    "data branch": lambda c: c.execute("SELECT pggit.create_data_branch('kept', 'main', 'release/partial')"),
}


@pytest.fixture
def setup(db_connection_string):
    """A committed starting point (a commit on main, a tracked table), and a monitor of the sessions."""
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        commit(conn, "main", "committed before the fault")
        conn.execute("CREATE TABLE kept (id int)")
    with TransactionMonitor(db_connection_string) as monitor:
        yield monitor


def _fault(kind: str, pg_cluster, conn: psycopg.Connection, history: History | None = None) -> None:
    if kind == "cut connection":
        nemesis.cut_connection(conn, history=history)
    else:
        nemesis.terminate_backend(pg_cluster, conn, history=history)


# The name each fault is recorded under in a history.
FAULT_NAMES = {"cut connection": "cut", "terminate backend": "terminate"}


@pytest.mark.parametrize("fault", ["cut connection", "terminate backend"])
def test_a_multi_step_transaction_cut_half_way_leaves_nothing(db_connection_string, pg_cluster, setup, fault):
    """Commits, a branch, DDL, a migration and a data branch done in one open transaction: after the
    connection dies the database is exactly as before, and the branch head is free to move."""
    monitor = setup
    before = DatabaseStateSnapshot.capture(db_connection_string)
    victim = psycopg.connect(db_connection_string)
    history = History()
    for name, step in STEPS.items():
        with history.record(0, name) as op:
            op.result = step(victim)
    pid = victim.info.backend_pid
    _fault(fault, pg_cluster, victim, history)
    with pytest.raises(psycopg.OperationalError), history.record(0, "commit transaction"):
        victim.commit()
    victim.close()
    monitor.wait_until_gone(pid)

    assert history.unknown("commit transaction") and len(history.acknowledged("commit")) == 1
    # The fault struck the open transaction: after its last step, before its COMMIT.
    (struck,) = history.faults(FAULT_NAMES[fault])
    assert struck.ok and struck.args == (pid,)
    assert history.of("data branch")[0].ended <= struck.started <= history.of("commit transaction")[0].started
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        DatabaseStateSnapshot.capture(conn).assert_unchanged(before)
        head = conn.execute("SELECT head_commit_hash FROM pggit.branches WHERE name = 'main'").fetchone()[0]
        after = commit(conn, "main", "after the fault")  # the dead transaction's row lock is gone
        assert conn.execute("SELECT parent_commit_hash FROM pggit.commits WHERE hash = %s", (after,)).fetchone()[0] \
            == head
        checkers.linear_chain_invariant(conn, "main")
        checkers.integrity_ok(conn)
        checkers.drift_is(conn)


@pytest.mark.parametrize("failure", ["statement error", "cut connection", "terminate backend"])
def test_a_failure_between_two_pggit_calls_leaves_neither_and_holds_no_lock(db_connection_string, pg_cluster, setup,
                                                                            failure):
    """A migration and a commit, then a failure, then another pggit call in the same transaction:
    neither call's work survives, and nothing stays locked: another session (waiting at most 5 s)
    applies the same migration and commits to the same branch, even while the failed session lives on."""
    monitor = setup
    before = DatabaseStateSnapshot.capture(db_connection_string)
    conn = psycopg.connect(db_connection_string)
    try:
        conn.execute("SELECT pggit.apply_migration('between-1', 'CREATE TABLE between_m (a int)')")
        first = commit(conn, "main", "first of two")
        pid = conn.info.backend_pid
        if failure == "statement error":
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                conn.execute("SELECT pggit.create_branch('second/of-two')")
            conn.rollback()  # the session stays open, idle
        else:
            _fault(failure, pg_cluster, conn)
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT pggit.create_branch('second/of-two')")
            monitor.wait_until_gone(pid)

        after = DatabaseStateSnapshot.capture(db_connection_string)
        after.assert_unchanged(before)
        assert first not in {row[1] for row in after["commits"].rows}
        with psycopg.connect(db_connection_string, autocommit=True) as other:
            other.execute("SET lock_timeout = '5s'")
            assert other.execute(
                "SELECT pggit.apply_migration('between-1', 'CREATE TABLE between_m (a int)')").fetchone()[0] is True
            commit(other, "main", "after the failure")
            checkers.linear_chain_invariant(other, "main")
    finally:
        conn.close()


def test_a_link_reset_during_a_migration_call_leaves_nothing_of_the_transaction(db_connection_string, setup):
    """The network drops while the server runs apply_migration, after a commit and DDL in the same
    transaction: the client never hears back, and none of the three steps remains."""
    monitor = setup
    before = DatabaseStateSnapshot.capture(db_connection_string)
    with nemesis.FaultyProxy.for_dsn(db_connection_string) as proxy:
        conn = psycopg.connect(proxy.dsn(db_connection_string))
        pid = conn.info.backend_pid
        commit(conn, "main", "before the reset")
        conn.execute("ALTER TABLE kept ADD COLUMN before_reset int")
        proxy.reset_on(b"apply_migration")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT pggit.apply_migration('reset-1', 'CREATE TABLE reset_m (a int)')")
        conn.close()
        monitor.wait_until_gone(pid)
    assert proxy.resets >= 1
    DatabaseStateSnapshot.capture(db_connection_string).assert_unchanged(before)
    with psycopg.connect(db_connection_string, autocommit=True) as check:
        assert checkers.migration_all_or_nothing(check, "reset-1", "SELECT to_regclass('reset_m') IS NOT NULL") is False
        # Positive control: the same call, with the link up, applies the migration and its DDL.
        assert check.execute("SELECT pggit.apply_migration('reset-1', 'CREATE TABLE reset_m (a int)')").fetchone()[0]
        assert checkers.migration_all_or_nothing(check, "reset-1", "SELECT to_regclass('reset_m') IS NOT NULL") is True


@pytest.mark.parametrize("fault", ["cut connection", "terminate backend"])
def test_a_committer_waiting_on_a_dead_transaction_builds_on_the_old_head(db_connection_string, pg_cluster, setup,
                                                                         fault):
    """Session A commits to main in an open transaction; B's commit to main waits for A's row lock.
    A dies: B goes ahead, its parent is the head from before A, and the chain stays linear."""
    monitor = setup
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        old_head = conn.execute("SELECT head_commit_hash FROM pggit.branches WHERE name = 'main'").fetchone()[0]
    holder = psycopg.connect(db_connection_string)
    doomed = commit(holder, "main", "doomed")
    waiter = psycopg.connect(db_connection_string, autocommit=True)
    history = History()

    def wait_and_commit() -> None:
        with history.record(1, "commit", "main", "waited") as op:
            op.result = commit(waiter, "main", "waited")

    thread = threading.Thread(target=wait_and_commit)
    try:
        thread.start()
        lock = monitor.wait_until_blocked(waiter.info.backend_pid)
        assert holder.info.backend_pid in lock.blocking_pids
        _fault(fault, pg_cluster, holder, history)
        thread.join(15)
        assert not thread.is_alive(), "the waiting committer never got the lock"
    finally:
        holder.close()
        waiter.close()

    (waited,) = {o.result for o in history.acknowledged("commit")}
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        parent = conn.execute("SELECT parent_commit_hash FROM pggit.commits WHERE hash = %s", (waited,)).fetchone()[0]
        assert parent == old_head, f"the waiting commit's parent is {parent}, not the head before the dead one"
        assert checkers.linear_chain_invariant(conn, "main")[-2:] == [old_head, waited]
        assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = %s", (doomed,)).fetchone()[0] == 0
        checkers.pggit_consistent(conn, history)
    # The fault struck while the waiting commit was blocked on the dead transaction.
    assert checkers.fault_struck(history, FAULT_NAMES[fault], "commit") == history.of("commit")
