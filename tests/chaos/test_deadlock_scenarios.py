"""Deadlocks: PostgreSQL breaks them, pggit never makes them, a retry heals them.

Two transactions that lock user rows in opposite orders deadlock whatever
else they do; PostgreSQL detects the cycle (SQLSTATE 40P01), aborts exactly
one of them, and lets the other finish. pggit calls made inside those
transactions must follow their transaction: the victim's commit vanishes, the
survivor's stays, and pggit's metadata stays consistent. pggit's own
functions, each called in its own transaction, must never deadlock with each
other, whatever mix and order of calls runs at once. A caller that retries
the victim's transaction (``ChaosInjector.with_retry``) ends with both
transactions done.

Workload: bank-style transfers with a pggit commit inside, and a mix of
pggit calls. Fault: opposite lock order, forced with a fixed interleaving
(the second session locks only once the first is observed blocked).
History: each transaction's outcome and SQLSTATE. Invariants:
``no_error_with_sqlstate``, ``pggit_consistent`` (acknowledged commits
present, failed ones absent, linear chains, integrity) and
``table_consistent``.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.client import commit
from pggit_chaos.history import History, run_workers
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.nemesis import ChaosInjector
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.concurrent]

DEADLOCK_DETECTED = "40P01"


def _setup_accounts(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
    conn.execute("INSERT INTO accounts VALUES (1, 0), (2, 0)")
    conn.execute("SELECT pggit.create_branch('ledger/a')")
    conn.execute("SELECT pggit.create_branch('ledger/b')")


def _transfer(conn: psycopg.Connection, history: History, worker: int, branch: str, message: str,
              first: int, second: int, between: Callable[[], None]) -> str:
    """One transaction: touch row ``first``, commit to pggit, ``between()``, touch row ``second``."""
    with history.record(worker, "commit", branch, message) as op, conn.transaction():
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (first,))
        op.result = commit(conn, branch, message)
        between()
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (second,))
    return op.result


class _OppositeOrder:
    """Forces the deadlock: A holds row 1 and waits for row 2; only then does B, holding row 2, ask for row 1."""

    def __init__(self, monitor: TransactionMonitor, a_pid: int):
        self.monitor, self.a_pid = monitor, a_pid
        self.a_locked, self.b_locked = threading.Event(), threading.Event()

    def a_between(self) -> None:
        self.a_locked.set()
        assert self.b_locked.wait(30), "B never took its first lock"

    def b_before(self) -> None:
        assert self.a_locked.wait(30), "A never took its first lock"

    def b_between(self) -> None:
        self.b_locked.set()
        self.monitor.wait_until_blocked(self.a_pid, timeout=10)  # A waits for row 2: B closes the cycle

    def release(self) -> None:
        self.a_locked.set()
        self.b_locked.set()


def test_opposite_lock_order_deadlock_has_exactly_one_victim_and_pggit_stays_intact(db_connection_string, sync_conn):
    """PostgreSQL aborts exactly one of two deadlocked transactions; its pggit commit vanishes, the other's stays."""
    sync_conn.autocommit = True
    _setup_accounts(sync_conn)
    history = History()

    with psycopg.connect(db_connection_string) as a, psycopg.connect(db_connection_string) as b, \
            TransactionMonitor(db_connection_string) as monitor, ThreadPoolExecutor(2) as pool:
        order = _OppositeOrder(monitor, a.info.backend_pid)

        def session_a() -> None:
            try:
                _transfer(a, history, 0, "ledger/a", "A", 1, 2, order.a_between)
            finally:
                order.release()

        def session_b() -> None:
            try:
                order.b_before()
                _transfer(b, history, 1, "ledger/b", "B", 2, 1, order.b_between)
            finally:
                order.release()

        futures = [pool.submit(session_a), pool.submit(session_b)]
        for future in futures:
            with contextlib.suppress(psycopg.errors.DeadlockDetected):
                future.result(timeout=60)

    victims = [op for op in history.of("commit") if op.sqlstate == DEADLOCK_DETECTED]
    assert len(victims) == 1 and victims[0].ok is False, history.dump()
    assert len(history.acknowledged("commit")) == 1, history.dump()
    # The survivor's two updates are in, the victim's are not.
    assert sync_conn.execute("SELECT array_agg(balance ORDER BY id) FROM accounts").fetchone()[0] == [1, 1]
    checkers.pggit_consistent(sync_conn, history, branch=("ledger/a", "ledger/b"))


def test_with_retry_turns_a_detected_deadlock_into_success(db_connection_string, sync_conn):
    """Retrying the deadlock victim's whole transaction with ChaosInjector.with_retry ends with both done."""
    sync_conn.autocommit = True
    _setup_accounts(sync_conn)
    history = History()
    retries: list[BaseException] = []

    with psycopg.connect(db_connection_string) as a, psycopg.connect(db_connection_string) as b, \
            TransactionMonitor(db_connection_string) as monitor, ThreadPoolExecutor(2) as pool:
        order = _OppositeOrder(monitor, a.info.backend_pid)

        def session(worker: int, conn, branch: str, first: int, second: int, between) -> str:
            attempts = iter(range(1, 10))

            def attempt() -> str:
                n = next(attempts)
                # Only the first attempt follows the forced interleaving; a retry just runs.
                return _transfer(conn, history, worker, branch, f"{branch} attempt {n}", first, second,
                                 between if n == 1 else lambda: None)

            try:
                return ChaosInjector.with_retry(attempt, max_attempts=3, backoff=0.05,
                                                on_retry=lambda _n, error, _delay: retries.append(error))
            finally:
                order.release()

        def session_b() -> str:
            order.b_before()
            return session(1, b, "ledger/b", 2, 1, order.b_between)

        futures = [pool.submit(session, 0, a, "ledger/a", 1, 2, order.a_between), pool.submit(session_b)]
        results = [future.result(timeout=60) for future in futures]

    # Usually one retry; a busy machine can let the victim's retry lock row 1 before the survivor, woken by
    # the victim's abort, takes it, and the two deadlock again: each deadlock has one victim, each retried.
    assert retries and all(isinstance(e, psycopg.errors.DeadlockDetected) for e in retries), history.dump()
    assert len(history.acknowledged("commit")) == 2 and len(history.failed("commit")) == len(retries), history.dump()
    assert set(results) == {op.result for op in history.acknowledged("commit")}
    assert sync_conn.execute("SELECT array_agg(balance ORDER BY id) FROM accounts").fetchone()[0] == [2, 2]
    chains = checkers.pggit_consistent(sync_conn, history, branch=("ledger/a", "ledger/b")).chains
    assert [len(chain) for chain in chains.values()] == [1, 1], chains


@pytest.mark.parametrize("workers", [6, 16])
def test_pggit_functions_never_deadlock_among_themselves(db_connection_string, sync_conn, workers):
    """Workers mixing commits on two branches in different orders, branch creation and DDL never hit a deadlock."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE busy (id int PRIMARY KEY, a int, b int)")
    sync_conn.execute("SELECT pggit.create_branch('left')")
    sync_conn.execute("SELECT pggit.create_branch('right')")
    rounds = 4
    severity = {"add_column": "MINOR", "create_index": "PATCH", "comment": "PATCH", "comment_index": "PATCH"}

    def calls(worker: int, round_: int) -> list[tuple[str, tuple]]:
        tag = f"w{worker}_r{round_}"
        ddl = list(severity)[(worker + round_) % len(severity)]
        batch = [
            ("commit", ("left", f"{tag} left")),
            ("commit", ("right", f"{tag} right")),
            ("create_branch", (f"topic/{tag}", "left" if worker % 2 else "right")),
            ("ddl", (ddl, tag)),
        ]
        random.Random(f"{worker}/{round_}").shuffle(batch)  # every worker its own order, reproducibly
        return batch

    def run(conn: psycopg.Connection, op: str, args: tuple):
        if op == "commit":
            return commit(conn, *args)
        if op == "create_branch":
            return conn.execute("SELECT pggit.create_branch(%s, %s)", args).fetchone()[0]
        kind, tag = args
        statement = {
            "add_column": sql.SQL("ALTER TABLE busy ADD COLUMN {} int").format(sql.Identifier(f"c_{tag}")),
            "create_index": sql.SQL("CREATE INDEX {} ON busy (a, b)").format(sql.Identifier(f"busy_{tag}_idx")),
            "comment": sql.SQL("COMMENT ON TABLE busy IS {}").format(sql.Literal(tag)),
            # Locks only the index, not the table: pggit must still lock the table before its objects row.
            "comment_index": sql.SQL("COMMENT ON INDEX busy_pkey IS {}").format(sql.Literal(tag)),
        }[kind]
        conn.execute(statement)
        return None

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            for round_ in range(rounds):
                for op, args in calls(worker, round_):
                    with contextlib.suppress(psycopg.Error), history.record(worker, op, *args) as entry:
                        entry.result = run(conns[worker], op, args)

        history = run_workers(workers, work)

    checkers.no_error_with_sqlstate(history, DEADLOCK_DETECTED)
    problems = [(op.worker, op.op, op.args, op.sqlstate, op.error) for op in history.operations if op.ok is not True]
    assert not problems, f"pggit calls that did not succeed: {problems}"
    assert history.overlapping()
    chains = checkers.pggit_consistent(sync_conn, history, branch=("left", "right")).chains
    for branch, chain in chains.items():
        assert set(chain) == {op.result for op in history.acknowledged("commit") if op.args[0] == branch}
    for op in history.acknowledged("create_branch"):
        checkers.single_branch(sync_conn, op.args[0])
    applied: dict[str, int] = {}
    for op in history.acknowledged("ddl"):
        applied[severity[op.args[0]]] = applied.get(severity[op.args[0]], 0) + 1
    checkers.table_consistent(sync_conn, "busy", applied)
    checkers.drift_is(sync_conn)
