"""Transaction example: a failed transaction leaves no trace in pggit.

Steady-state hypothesis: pggit's tables and the user's tables look exactly
the same after a transaction that failed half-way as they did before it.
``DatabaseStateSnapshot`` captures both, read-only, and names any difference.
"""

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.snapshot import DatabaseStateSnapshot


@pytest.mark.chaos
@pytest.mark.transaction
def test_failed_transaction_rolls_back_ddl_history_and_commits(sync_conn):
    before = DatabaseStateSnapshot.capture(sync_conn)

    with pytest.raises(psycopg.errors.DivisionByZero):
        with sync_conn.transaction():
            # Three kinds of pggit state change inside one transaction:
            sync_conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")      # objects + history
            sync_conn.execute("ALTER TABLE orders ADD COLUMN total numeric")   # a version bump
            sync_conn.execute("SELECT pggit.commit_changes('main', 'orders')") # a commit, a new head
            sync_conn.execute("SELECT 1 / 0")                                  # then the failure

    after = DatabaseStateSnapshot.capture(sync_conn)
    before.assert_unchanged(after)  # names every query whose rows differ
    checkers.integrity_ok(sync_conn)


@pytest.mark.chaos
@pytest.mark.transaction
def test_savepoint_undoes_only_what_came_after_it(sync_conn):
    sync_conn.autocommit = True
    with sync_conn.transaction():
        sync_conn.execute("CREATE TABLE kept (id int)")
        with pytest.raises(psycopg.errors.UndefinedTable):
            with sync_conn.transaction():  # nested: a savepoint
                sync_conn.execute("CREATE TABLE undone (id int)")
                sync_conn.execute("ALTER TABLE no_such_table ADD COLUMN x int")

    tracked = sync_conn.execute(
        "SELECT object_name FROM pggit.objects WHERE object_type = 'TABLE' ORDER BY 1"
    ).fetchall()
    assert tracked == [("kept",)]  # the savepoint took "undone" and its history with it
