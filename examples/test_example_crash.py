"""Crash example: a killed server keeps every commit it acknowledged.

The fault is real: ``crash_postmaster`` sends SIGKILL to the postmaster and
every server process (as a power cut would), then starts the server again,
which replays its WAL. It records the crash in the history too, so the test
can check that the crash struck the transaction that was open. The test
needs a server this run started itself (``needs_control``) and changes it
for everyone on it (``destructive``), so it stays out of the smoke tier.
"""

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.history import History


@pytest.mark.chaos
@pytest.mark.crash
@pytest.mark.destructive
@pytest.mark.needs_control
def test_acknowledged_commits_survive_a_crash(pg_cluster, db_connection_string):
    history = History()
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        for i in range(5):
            with history.record(0, "commit", "main", f"before crash {i}") as op:
                op.result = conn.execute("SELECT pggit.commit_changes('main', %s)", (op.args[1],)).fetchone()[0]
    acknowledged = [op.result for op in history.acknowledged("commit")]

    # A transaction still open at the moment of the crash: its COMMIT never gets an answer.
    in_flight = psycopg.connect(db_connection_string)
    in_flight.execute("SELECT pggit.commit_changes('main', 'in flight')")
    with pytest.raises(psycopg.OperationalError), history.record(1, "commit transaction"):
        nemesis.crash_postmaster(pg_cluster, history=history)
        in_flight.commit()  # its server process died with the others
    in_flight.close()
    assert checkers.fault_struck(history, "crash", "commit transaction") == history.unknown("commit transaction")

    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        assert checkers.linear_chain_invariant(conn, "main") == acknowledged  # the open one is gone
        checkers.pggit_consistent(conn, history)  # and the sequence is still ahead of every ID it issued
        new_id = conn.execute("SELECT pggit.commit_changes('main', 'after crash')").fetchone()[0]
        assert new_id not in acknowledged
