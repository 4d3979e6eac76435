"""Crash example: a killed server keeps every commit it acknowledged.

The fault is real: ``crash_postmaster`` sends SIGKILL to the postmaster and
every server process (as a power cut would), then starts the server again,
which replays its WAL. The test needs a server this run started itself
(``needs_control``) and changes it for everyone on it (``destructive``), so
it stays out of the smoke tier.
"""

import psycopg
import pytest
from pggit_chaos import checkers, nemesis


@pytest.mark.chaos
@pytest.mark.crash
@pytest.mark.destructive
@pytest.mark.needs_control
def test_acknowledged_commits_survive_a_crash(pg_cluster, db_connection_string):
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        acknowledged = [
            conn.execute("SELECT pggit.commit_changes('main', %s)", (f"before crash {i}",)).fetchone()[0]
            for i in range(5)
        ]
    # A transaction still open at the moment of the crash: never acknowledged.
    in_flight = psycopg.connect(db_connection_string)
    in_flight.execute("SELECT pggit.commit_changes('main', 'in flight')")

    nemesis.crash_postmaster(pg_cluster)
    in_flight.close()  # its server process died with the others

    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        assert checkers.linear_chain_invariant(conn, "main") == acknowledged
        checkers.integrity_ok(conn)  # the sequence is still ahead of every ID it issued
        new_id = conn.execute("SELECT pggit.commit_changes('main', 'after crash')").fetchone()[0]
        assert new_id not in acknowledged
