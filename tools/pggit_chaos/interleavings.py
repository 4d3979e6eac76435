"""Deterministic interleavings: one session's step waits for another's open transaction.

PostgreSQL's isolation tester writes a concurrency test as data: sessions,
the steps they make, and a permutation, the order the steps run in. A step
that has to wait on a lock is seen waiting before the next step runs, so the
order is the test's and not the thread scheduler's. Nearly every fixed
interleaving in this suite is one permutation of two sessions::

    a: first step       its transaction stays open
    b: second step      <waits for a>
    a: COMMIT or ROLLBACK
    b: ...              returns, or fails

``interleave`` runs that permutation, both steps recorded in a ``History``
(a as worker 0, b as worker 1). ``run_blocked`` is the permutation from b's
step on, for a caller that makes a's step itself or whose b step is more
than one call (a retry loop, the contract tests' ``run_while_blocked``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import psycopg

from pggit_chaos.history import History, Operation
from pggit_chaos.monitor import LockWait, TransactionMonitor

__all__ = ["Blocked", "Interleaving", "Step", "interleave", "run_blocked"]

T = TypeVar("T")
End = Literal["commit", "rollback"]


@dataclass(frozen=True)
class Step:
    """One call a session makes: ``run(conn)``, recorded in the history as ``op`` with ``args``.

    What ``run`` returns is the operation's result. With ``may_fail``, a
    psycopg error is the step's outcome, left in the history for the test to
    read, rather than the test's failure.

    ```python fixture:sync_conn
    from pggit_chaos.client import commit
    from pggit_chaos.history import History
    from pggit_chaos.interleavings import Step

    history = History()
    op = Step.call("commit", commit, "main", "one step").make(history, 0, sync_conn)
    assert op.ok and op.args == ("main", "one step") and op.result.startswith("TRN-")
    failing = Step.call("commit", commit, "", "blank branch", may_fail=True).make(history, 1, sync_conn)
    assert failing.ok is False and failing.sqlstate == "22023"
    ```
    """

    op: str
    args: tuple
    run: Callable[[psycopg.Connection], Any]
    may_fail: bool = False

    @classmethod
    def call(cls, op: str, func: Callable[..., Any], *args: Any, may_fail: bool = False) -> Step:
        """The step ``func(conn, *args)``, recorded as ``op`` with ``args`` (the class shows one)."""
        return cls(op, args, lambda conn: func(conn, *args), may_fail)

    def make(self, history: History, worker: int, conn: psycopg.Connection) -> Operation:
        """Make the call on ``conn``, recorded as ``worker``'s; returns the operation (the class shows one)."""
        with contextlib.suppress(psycopg.Error) if self.may_fail else contextlib.nullcontext(), \
                history.record(worker, self.op, *self.args) as op:
            op.result = self.run(conn)
        return op


@dataclass(frozen=True)
class Blocked(Generic[T]):
    """How a step that had to wait went: the lock wait it was seen in, and what its call returned.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.interleavings import Blocked, run_blocked
    from pggit_chaos.monitor import TransactionMonitor

    with (psycopg.connect(db_connection_string) as a, psycopg.connect(db_connection_string, autocommit=True) as b,
          TransactionMonitor(db_connection_string) as monitor):
        a.execute("LOCK TABLE pggit.branches")
        blocked = run_blocked(monitor, a, b, lambda: b.execute("SELECT count(*) FROM pggit.branches").fetchone()[0])
    assert isinstance(blocked, Blocked) and blocked.result == 1 and blocked.wait.wait_event == "relation"
    ```
    """

    wait: LockWait
    result: T


def run_blocked(
    monitor: TransactionMonitor,
    holder: psycopg.Connection,
    waiter: psycopg.Connection,
    call: Callable[[], T],
    *,
    end: End = "commit",
    timeout: float = 10.0,
    result_timeout: float = 30.0,
) -> Blocked[T]:
    """Run ``call()``, a step of ``waiter``'s session, in a thread; once it is seen waiting on a lock,
    end ``holder``'s open transaction with ``end`` (``"commit"`` or ``"rollback"``) and read the call's result.

    The call's own error propagates; so does ``TimeoutError`` when the session
    is not seen waiting within ``timeout`` seconds (at once when the call
    finished without waiting). Whatever fails, ``holder`` is rolled back and
    the call waited for, so no session is left waiting.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.client import commit, parent_of
    from pggit_chaos.monitor import TransactionMonitor
    from pggit_chaos.interleavings import run_blocked

    with (psycopg.connect(db_connection_string) as a,
          psycopg.connect(db_connection_string, autocommit=True) as b,
          TransactionMonitor(db_connection_string) as monitor):
        first = commit(a, "main", "a, left open")
        blocked = run_blocked(monitor, a, b, lambda: commit(b, "main", "b, waits for a"))
        assert a.info.backend_pid in blocked.wait.blocking_pids
        assert parent_of(b, blocked.result) == first
    ```
    """
    if end not in ("commit", "rollback"):
        raise ValueError(f"end must be 'commit' or 'rollback', got {end!r}")
    with ThreadPoolExecutor(1, thread_name_prefix="blocked-step") as pool:
        future = pool.submit(call)
        try:
            wait = monitor.wait_until_blocked(waiter.info.backend_pid, timeout=timeout, finished=future.done)
            holder.commit() if end == "commit" else holder.rollback()
        finally:
            holder.rollback()  # a no-op once the transaction has ended; frees the waiter if something failed first
        return Blocked(wait, future.result(timeout=result_timeout))


@dataclass(frozen=True)
class Interleaving:
    """The two steps as the history recorded them, and the lock wait the second one was seen in.

    ```python fixture:db_connection_string
    from pggit_chaos.client import commit
    from pggit_chaos.history import History
    from pggit_chaos.interleavings import Step, interleave

    run = interleave(db_connection_string, History(), Step.call("commit", commit, "main", "A"),
                     Step.call("commit", commit, "main", "B"))
    assert (run.first.worker, run.second.worker) == (0, 1) and run.wait.blocking_pids == (run.holder_pid,)
    ```
    """

    first: Operation
    second: Operation
    wait: LockWait
    holder_pid: int
    """The first session's server process: the one the second was to wait for."""


def interleave(dsn: str, history: History, first: Step, second: Step, *, end: End = "commit") -> Interleaving:
    """Two new sessions on ``dsn``: a (autocommit off) makes ``first`` and leaves its transaction
    open; b (autocommit) makes ``second``, which must wait for a; a ends with ``end``; b's step completes.

    a's step is recorded as worker 0, b's as worker 1. An error of a step
    without ``may_fail`` propagates, as does ``run_blocked``'s ``TimeoutError``.

    ```python fixture:db_connection_string
    from pggit_chaos.client import commit, create_branch
    from pggit_chaos.history import History
    from pggit_chaos.interleavings import Step, interleave

    history = History()
    run = interleave(db_connection_string, history,
                     Step.call("branch", create_branch, "twice"),
                     Step.call("branch", create_branch, "twice", may_fail=True))
    assert run.holder_pid in run.wait.blocking_pids
    assert run.first.ok and run.second.sqlstate == "23505"  # the second creator waited, then was refused
    ```
    """
    with psycopg.connect(dsn) as a, psycopg.connect(dsn, autocommit=True) as b, TransactionMonitor(dsn) as monitor:
        holder_pid = a.info.backend_pid
        first_op = first.make(history, 0, a)
        blocked = run_blocked(monitor, a, b, lambda: second.make(history, 1, b), end=end)
    return Interleaving(first_op, blocked.result, blocked.wait, holder_pid)
