"""Corruption example: a change made behind pggit's back is reported, then absorbed.

pggit records table changes through event triggers. A superuser can switch
them off (a restore, a hurried hotfix); changes made meanwhile are *drift*:
the live table no longer matches the hash pggit recorded. This example makes
drift on purpose and checks the three promises around it.
"""

import pytest
from pggit_chaos import checkers, nemesis


def behind_pggits_back(conn, statement: str) -> None:
    """Run one DDL statement with pggit's event triggers disabled (``ALTER EVENT TRIGGER ... DISABLE``)."""
    with nemesis.tracking_paused(conn):
        conn.execute(statement)


@pytest.mark.chaos
@pytest.mark.corruption
def test_drift_is_detected_and_cleared_by_the_next_tracked_change(sync_conn):
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE invoices (id int PRIMARY KEY)")
    checkers.drift_is(sync_conn, set())  # steady state: no drift

    behind_pggits_back(sync_conn, "ALTER TABLE invoices ADD COLUMN note text")

    # 1. detect_drift names the table, with both hashes.
    checkers.drift_is(sync_conn, {"public.invoices"})
    recorded, live = sync_conn.execute(
        "SELECT recorded_hash, live_hash FROM pggit.detect_drift()").fetchone()
    assert live == sync_conn.execute("SELECT pggit.calculate_schema_hash('invoices')").fetchone()[0]
    assert recorded != live

    # 2. Drift is not damage: the metadata itself is still consistent.
    checkers.integrity_ok(sync_conn)

    # 3. The next tracked change records the accumulated difference at once.
    sync_conn.execute("COMMENT ON TABLE invoices IS 'tracked again'")
    checkers.drift_is(sync_conn, set())
    checkers.recorded_hash_is_live(sync_conn, "invoices")
