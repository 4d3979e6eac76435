"""Serialization failures: under REPEATABLE READ and SERIALIZABLE, retry and still get one chain.

Under the stricter isolation levels PostgreSQL refuses to let a transaction
act on a row that another transaction changed after its snapshot: two
``commit_changes`` on one branch then end with SQLSTATE 40001
(serialization_failure) for all but one. That is the contract's "retry the
transaction" case, and ``ChaosInjector.with_retry`` is the retry: every
worker must end up committed, and the branch must still be one linear chain
holding every acknowledged commit and nothing from a failed attempt. Around
pggit calls, SERIALIZABLE must still catch a classic write skew in the
caller's own tables. Under READ COMMITTED pggit raises 40001 itself where a
race leaves it no consistent record to write: the second of two first changes
of a table it has not tracked yet.

Workload: committers at REPEATABLE READ or SERIALIZABLE, released together or
in a fixed interleaving; doctors going off call; two CREATE INDEX on an
untracked table. Fault: concurrent snapshots.
History: every attempt, its outcome and SQLSTATE. Invariants:
``single_branch`` and ``pggit_consistent`` (linear chains, acknowledged
commits present, failed attempts absent, unique IDs, integrity).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.client import parent_of
from pggit_chaos.history import History, run_workers
from pggit_chaos.interleavings import Step, interleave, run_blocked
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.nemesis import ChaosInjector, tracking_paused
from psycopg import IsolationLevel

pytestmark = [pytest.mark.chaos, pytest.mark.concurrent]

SERIALIZATION_FAILURE = "40001"
# Exponential backoff with full jitter spreads the losers of each round apart.
RETRY = dict(max_attempts=12, backoff=0.002, jitter=1.0)
ISOLATION_LEVELS = [pytest.param(IsolationLevel.REPEATABLE_READ, id="repeatable_read"),
                    pytest.param(IsolationLevel.SERIALIZABLE, id="serializable")]


def _connect(dsn: str, isolation: IsolationLevel) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=False)
    conn.isolation_level = isolation
    return conn


def _commit_in_transaction(conn: psycopg.Connection, history: History, worker: int, branch: str,
                           message: str) -> str:
    """One attempt: commit_changes in a transaction of its own, recorded whole (COMMIT included)."""
    with history.record(worker, "commit", branch, message) as op, conn.transaction():
        op.result = conn.execute("SELECT pggit.commit_changes(%s, %s)", (branch, message)).fetchone()[0]
    return op.result


@pytest.mark.parametrize("branch_exists", [True, False], ids=["existing_branch", "new_branch"])
@pytest.mark.parametrize("isolation", ISOLATION_LEVELS)
def test_retried_commits_under_strict_isolation_form_one_linear_chain(db_connection_string, sync_conn,
                                                                      isolation, branch_exists):
    """Committers at REPEATABLE READ or SERIALIZABLE that retry on 40001 all commit, into one linear chain."""
    sync_conn.autocommit = True
    branch = "strict/chain"
    if branch_exists:
        sync_conn.execute("SELECT pggit.create_branch(%s)", (branch,))
    workers, commits = 6, 3

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(_connect(db_connection_string, isolation)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            for i in range(commits):
                attempts = itertools.count(1)
                # Each attempt its own message, so a failed attempt's leftovers would be visible.
                ChaosInjector.with_retry(
                    lambda: _commit_in_transaction(conns[worker], history, worker, branch,
                                                   f"worker {worker} commit {i} attempt {next(attempts)}"),
                    **RETRY)

        history = run_workers(workers, work)

    assert len(history.acknowledged("commit")) == workers * commits, history.dump()
    other_errors = [(op.worker, op.sqlstate, op.error) for op in history.operations
                    if op.ok is not True and op.sqlstate != SERIALIZATION_FAILURE]
    assert not other_errors, f"failures other than 40001: {other_errors}"
    checkers.single_branch(sync_conn, branch)
    chain = checkers.pggit_consistent(sync_conn, history, branch=branch).chains[branch]
    assert set(chain) == {op.result for op in history.acknowledged("commit")}


@pytest.mark.parametrize("branch_exists", [True, False], ids=["existing_branch", "new_branch"])
@pytest.mark.parametrize("isolation", ISOLATION_LEVELS)
def test_committer_that_waited_gets_40001_and_its_retry_builds_on_the_winner(db_connection_string, sync_conn,
                                                                            isolation, branch_exists):
    """B, whose snapshot predates A's commit on the same branch, gets 40001 (not a fork); retried, it follows A."""
    sync_conn.autocommit = True
    branch = "strict/pair"
    if branch_exists:
        sync_conn.execute("SELECT pggit.create_branch(%s)", (branch,))
    history = History()

    with _connect(db_connection_string, isolation) as a, _connect(db_connection_string, isolation) as b, \
            TransactionMonitor(db_connection_string) as monitor:
        with history.record(0, "commit", branch, "A") as op:
            op.result = a_id = a.execute("SELECT pggit.commit_changes(%s, 'A')", (branch,)).fetchone()[0]

        attempts = itertools.count(1)

        def session_b() -> str:
            return ChaosInjector.with_retry(
                lambda: _commit_in_transaction(b, history, 1, branch, f"B attempt {next(attempts)}"), **RETRY)

        # B's first attempt, seen waiting, has taken its snapshot: A's commit makes it stale.
        b_id = run_blocked(monitor, a, b, session_b).result

    first_b, *_ = [op for op in history.of("commit") if op.worker == 1]
    assert first_b.ok is False and first_b.sqlstate == SERIALIZATION_FAILURE, history.dump()
    assert parent_of(sync_conn, b_id) == a_id
    checkers.single_branch(sync_conn, branch)
    assert checkers.pggit_consistent(sync_conn, history, branch=branch).chains[branch] == [a_id, b_id]


def _ddl(conn: psycopg.Connection, statement: str) -> None:
    conn.execute(statement)


def test_second_of_two_first_changes_to_an_untracked_table_gets_40001_and_its_retry_is_recorded(
        db_connection_string, sync_conn):
    """Two CREATE INDEX on a table pggit has not tracked yet do not block each other on the table: A's event
    trigger starts tracking it, B's waits on A's objects row and, once A commits, finds the table tracked after
    its own look. B must fail with 40001 and leave nothing behind (not a second objects row, not an error a
    client cannot retry); retried, it is recorded as one patch on A's record."""
    sync_conn.autocommit = True
    with tracking_paused(sync_conn):
        sync_conn.execute("CREATE TABLE legacy (a int, b int)")
    assert sync_conn.execute("SELECT count(*) FROM pggit.objects WHERE object_name = 'legacy'").fetchone()[0] == 0
    history = History()

    run = interleave(db_connection_string, history,
                     Step.call("ddl", _ddl, "CREATE INDEX legacy_a_idx ON legacy (a)"),
                     Step.call("ddl", _ddl, "CREATE INDEX legacy_b_idx ON legacy (b)", may_fail=True))

    assert run.first.ok is True, history.dump()
    assert run.second.ok is False and run.second.sqlstate == SERIALIZATION_FAILURE, history.dump()
    assert sync_conn.execute("SELECT to_regclass('legacy_b_idx') IS NULL").fetchone()[0]
    assert checkers.version_steps_match_changes(sync_conn, "legacy", {}) == (1, 0, 0)
    checkers.recorded_hash_is_live(sync_conn, "legacy")

    ChaosInjector.with_retry(lambda: Step.call("ddl", _ddl, "CREATE INDEX legacy_b_idx ON legacy (b)")
                             .make(history, 1, sync_conn), **RETRY)
    assert checkers.version_steps_match_changes(sync_conn, "legacy", {"PATCH": 1}) == (1, 0, 1)
    checkers.recorded_hash_is_live(sync_conn, "legacy")
    assert sync_conn.execute("SELECT count(*) FROM pggit.objects WHERE object_name = 'legacy'").fetchone()[0] == 1
    checkers.drift_is(sync_conn)
    checkers.integrity_ok(sync_conn)


def _go_off_call(conn: psycopg.Connection, history: History, worker: int, doctor: str,
                 attempt: int) -> Iterator[str]:
    """One doctor's transaction, pausing after each step so a test can interleave two of them exactly.

    The rule: a doctor may go off call only while someone else stays on call.
    Every attempt also records a pggit commit on the doctor's own branch.
    """
    branch, message = f"rota/{doctor}", f"{doctor} attempt {attempt}"
    with history.record(worker, "commit", branch, message) as op, conn.transaction():
        on_call = conn.execute("SELECT count(*) FROM on_call WHERE on_duty").fetchone()[0]
        yield "read"
        if on_call >= 2:
            conn.execute("UPDATE on_call SET on_duty = false WHERE doctor = %s", (doctor,))
        op.result = conn.execute("SELECT pggit.commit_changes(%s, %s)", (branch, message)).fetchone()[0]
        yield "wrote"
    yield "committed"


@pytest.mark.parametrize("isolation", ISOLATION_LEVELS)
def test_write_skew_around_pggit_calls_is_caught_by_serializable(db_connection_string, sync_conn, isolation):
    """SERIALIZABLE refuses one of two doctors going off call at once around pggit commits; REPEATABLE READ cannot."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE on_call (doctor text PRIMARY KEY, on_duty boolean NOT NULL)")
    sync_conn.execute("INSERT INTO on_call VALUES ('alice', true), ('bob', true)")
    history = History()

    with _connect(db_connection_string, isolation) as a, _connect(db_connection_string, isolation) as b:
        sessions = {"alice": _go_off_call(a, history, 0, "alice", 1), "bob": _go_off_call(b, history, 1, "bob", 1)}
        failed: list[str] = []
        # Both read, both write, then alice commits before bob: the classic write-skew schedule.
        for doctor in ["alice", "bob", "alice", "bob", "alice", "bob"]:
            if doctor in failed:
                continue
            try:
                next(sessions[doctor])
            except psycopg.errors.SerializationFailure:
                failed.append(doctor)

        if isolation == IsolationLevel.REPEATABLE_READ:
            # REPEATABLE READ lets the skew through: pggit's calls on separate branches add no conflict.
            assert failed == [], history.dump()
            assert sync_conn.execute("SELECT count(*) FROM on_call WHERE on_duty").fetchone()[0] == 0
        else:
            assert len(failed) == 1, history.dump()
            victim = failed[0]
            conn, worker = (a, 0) if victim == "alice" else (b, 1)
            attempts = itertools.count(2)
            ChaosInjector.with_retry(
                lambda: list(_go_off_call(conn, history, worker, victim, next(attempts))), **RETRY)
            assert sync_conn.execute("SELECT count(*) FROM on_call WHERE on_duty").fetchone()[0] == 1

    assert all(op.sqlstate == SERIALIZATION_FAILURE for op in history.failed("commit")), history.dump()
    checkers.pggit_consistent(sync_conn, history, branch=("rota/alice", "rota/bob"))
