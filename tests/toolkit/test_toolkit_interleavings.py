"""The two-session interleaving runs its steps in the order it says, and never leaves a session waiting."""

from __future__ import annotations

import time

import psycopg
import pytest
from pggit_chaos.history import History
from pggit_chaos.interleavings import Step, interleave, run_blocked
from pggit_chaos.monitor import TransactionMonitor
from psycopg import pq

UNIQUE_VIOLATION = "23505"


def _insert(conn: psycopg.Connection, key: int) -> int:
    return conn.execute("INSERT INTO keys VALUES (%s) RETURNING id", (key,)).fetchone()[0]


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_interleave_makes_the_second_step_wait_for_the_first_sessions_end(db_connection_string, sync_conn, end):
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE keys (id int PRIMARY KEY)")
    history = History()

    run = interleave(db_connection_string, history, Step.call("insert", _insert, 1),
                     Step.call("insert", _insert, 1, may_fail=True), end=end)

    assert run.wait.blocking_pids == (run.holder_pid,)
    assert [(op.worker, op.op, op.args) for op in history.operations] == [(0, "insert", (1,)), (1, "insert", (1,))]
    assert (run.first.ok, run.first.result) == (True, 1)
    if end == "commit":
        assert (run.second.ok, run.second.sqlstate) == (False, UNIQUE_VIOLATION), history.dump()
    else:
        assert (run.second.ok, run.second.result) == (True, 1), history.dump()
    assert sync_conn.execute("SELECT count(*) FROM keys").fetchone()[0] == 1


def test_run_blocked_fails_at_once_and_rolls_the_holder_back_when_the_call_does_not_wait(db_connection_string,
                                                                                       sync_conn):
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE keys (id int PRIMARY KEY)")
    with psycopg.connect(db_connection_string) as holder, \
            psycopg.connect(db_connection_string, autocommit=True) as waiter, \
            TransactionMonitor(db_connection_string) as monitor:
        _insert(holder, 1)
        with pytest.raises(ValueError, match="end must be"):
            run_blocked(monitor, holder, waiter, lambda: None, end="abort")
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="without blocking"):
            run_blocked(monitor, holder, waiter, lambda: _insert(waiter, 2), timeout=30)
        assert time.monotonic() - started < 10
        assert holder.info.transaction_status == pq.TransactionStatus.IDLE
    assert [row[0] for row in sync_conn.execute("SELECT id FROM keys")] == [2]
