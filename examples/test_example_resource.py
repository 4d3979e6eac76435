"""Resource example: an exhausted connection pool makes callers wait, then fail cleanly.

Steady-state hypothesis: when every pooled connection is taken, a new caller
gets ``PoolTimeout`` within the pool's timeout (no hang, no crash, no broken
connection), and as soon as a connection comes back, work continues.

Nothing sleeps here: the test holds the connections itself, so the
exhaustion is certain rather than a matter of thread timing.
"""

import time

import pytest
from pggit_chaos import checkers
from psycopg_pool import ConnectionPool, PoolTimeout

POOL_SIZE = 3


@pytest.mark.chaos
@pytest.mark.resource
def test_exhausted_pool_times_out_then_recovers(db_connection_string, sync_conn):
    with ConnectionPool(db_connection_string, min_size=POOL_SIZE, max_size=POOL_SIZE,
                        timeout=0.5, kwargs={"autocommit": True}) as pool:
        held = [pool.getconn() for _ in range(POOL_SIZE)]  # the fault: every slot taken

        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            pool.getconn()
        print(f"the extra caller gave up after {time.monotonic() - started:.2f} s")  # measured, not asserted

        # The held connections still work: exhaustion broke nothing.
        for i, conn in enumerate(held):
            conn.execute("SELECT pggit.commit_changes('main', %s)", (f"while exhausted {i}",))

        pool.putconn(held.pop())  # one slot comes back ...
        with pool.connection() as conn:  # ... and the next caller gets it
            conn.execute("SELECT pggit.commit_changes('main', 'after recovery')")
        for conn in held:
            pool.putconn(conn)
        assert pool.get_stats()["requests_errors"] == 1  # the one timeout, nothing else

    sync_conn.autocommit = True
    assert len(checkers.linear_chain_invariant(sync_conn, "main")) == POOL_SIZE + 1
