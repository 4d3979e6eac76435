"""Workload and history: what each worker did, what it was told, and which faults struck meanwhile.

A chaos test reads in four parts (after Jepsen): a workload run by workers,
a fault, the history they recorded, and an invariant checked over the
database and that history (``checkers.py``). Faults go into the same history
(``History.fault``, or the ``history=`` argument of every ``nemesis``
function), so a checker can see that a fault really struck while the
workload ran.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

__all__ = ["NEMESIS", "History", "Operation", "fault_recorded", "recorded_operation", "run_workers"]

# The worker name of fault operations, as Jepsen names its nemesis process.
NEMESIS = "nemesis"


@dataclass
class Operation:
    """One call a worker made (its arguments, and its result or error), or one fault the nemesis injected.

    ``kind`` is ``"client"`` for a worker's call and ``"fault"`` for a fault;
    a fault's ``worker`` is ``"nemesis"`` and its span (``started`` to
    ``ended``) is the time the fault was in force.

    ```python
    from pggit_chaos.history import History

    history = History()
    with history.record(0, "commit", "main", "first") as op:
        op.result = "TRN-1"
    assert op.acknowledged and op.kind == "client" and op.ended >= op.started
    ```
    """

    worker: int | str
    op: str
    args: tuple
    started: float
    ended: float | None = None
    ok: bool | None = None  # None: the outcome is unknown (no answer came back)
    result: Any = None
    error: str | None = None
    sqlstate: str | None = None
    kind: str = "client"

    @property
    def acknowledged(self) -> bool:
        """The client was told the call succeeded."""
        return self.ok is True

    def overlaps(self, other: Operation) -> bool:
        """The two spans share a moment (an operation not yet ended counts as running on)."""
        return self.started <= (other.ended if other.ended is not None else float("inf")) and \
            other.started <= (self.ended if self.ended is not None else float("inf"))


# Errors after which the client cannot tell whether the server did the work:
# no answer at all (no SQLSTATE), a connection exception (class 08), or the
# server shutting the session down (57P01 admin, 57P02 crash, 57P03 cannot connect now).
_CONNECTION_LOST_SQLSTATES = ("57P01", "57P02", "57P03")
# The attribute ``History.record`` leaves on an error it recorded (exceptions take no weak references).
_RECORDED = "_pggit_chaos_operation"


def _outcome_unknown(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _CONNECTION_LOST_SQLSTATES


def recorded_operation(error: BaseException) -> Operation | None:
    """The operation that recorded ``error`` in a history, or None when no ``History.record`` block saw it.

    ```python
    from pggit_chaos.history import History, recorded_operation

    history = History()
    try:
        with history.record(0, "divide", 1, 0):
            1 / 0
    except ZeroDivisionError as error:
        assert recorded_operation(error) is history.operations[0]
    assert recorded_operation(ValueError("never recorded")) is None
    ```
    """
    return getattr(error, _RECORDED, None)


@dataclass
class History:
    """A thread-safe, append-only log of operations and faults.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.client import commit
    from pggit_chaos.history import History

    history = History()
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        with history.record(0, "commit", "main", "hello") as op:
            op.result = commit(conn, "main", "hello")
    assert [o.result for o in history.acknowledged("commit")] == [op.result]
    assert history.failed("commit") == history.unknown("commit") == []
    ```
    """

    operations: list[Operation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _append(self, entry: Operation) -> Operation:
        with self._lock:
            self.operations.append(entry)
        return entry

    @contextlib.contextmanager
    def record(self, worker: int | str, op: str, *args) -> Iterator[Operation]:
        """Record one operation; the block sets ``.result`` (or raises).

        A psycopg error is recorded with its SQLSTATE and re-raised. A broken
        connection leaves ``ok`` None: the client cannot know whether the
        server finished the work. An error the server answered with is a
        failure (``ok`` False), even where psycopg files it under
        OperationalError (serialization failure, deadlock, 55000, ...).

        ```python fixture:db_connection_string
        import psycopg
        import pytest
        from pggit_chaos.history import History

        history = History()
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                with history.record(0, "commit", "", "blank branch"):
                    conn.execute("SELECT pggit.commit_changes('', 'blank branch')")
        (op,) = history.failed("commit")
        assert op.sqlstate == "22023" and op.ok is False
        ```
        """
        entry = self._append(Operation(worker, op, args, started=time.monotonic()))
        try:
            yield entry
        except psycopg.OperationalError as exc:
            known = not _outcome_unknown(exc)
            entry.ok, entry.error, entry.sqlstate = (False if known else None), str(exc), exc.sqlstate
            _mark(exc, entry)
            raise
        except psycopg.Error as exc:
            entry.ok, entry.error, entry.sqlstate = False, str(exc), exc.sqlstate
            _mark(exc, entry)
            raise
        except BaseException as exc:
            entry.ok, entry.error = False, f"{type(exc).__name__}: {exc}"
            _mark(exc, entry)
            raise
        else:
            entry.ok = True
        finally:
            entry.ended = time.monotonic()

    @contextlib.contextmanager
    def fault(self, name: str, *args) -> Iterator[Operation]:
        """Record a fault the nemesis injects, spanning the block: from when it strikes to when it is healed.

        An error in the block marks the fault failed (``ok`` False: it may not
        have happened) and propagates.

        ```python
        from pggit_chaos.history import History

        history = History()
        with history.fault("blackhole", "proxy") as fault:
            with history.record(0, "commit", "main", "during") as op:
                op.result = "TRN-1"
        assert history.faults("blackhole") == [fault] and fault.ok
        assert history.during(fault) == [op]
        ```
        """
        entry = self._append(Operation(NEMESIS, name, args, started=time.monotonic(), kind="fault"))
        try:
            yield entry
        except BaseException as exc:
            entry.ok, entry.error = False, f"{type(exc).__name__}: {exc}"
            raise
        else:
            entry.ok = True
        finally:
            entry.ended = time.monotonic()

    def fault_began(self, name: str, *args) -> Operation:
        """Record a fault that strikes now and stays in force until ``fault_ended`` (a setting, say).

        Until then its ``ended`` is None: it overlaps every operation that
        starts meanwhile.

        ```python
        from pggit_chaos.history import History

        history = History()
        latency = history.fault_began("latency", 0.2)
        with history.record(0, "commit", "main", "slow") as op:
            op.result = "TRN-1"
        history.fault_ended(latency)
        assert history.during(latency) == [op] and latency.ended >= op.ended
        ```
        """
        return self._append(Operation(NEMESIS, name, args, started=time.monotonic(), ok=True, kind="fault"))

    def fault_ended(self, fault: Operation) -> None:
        """The fault ``fault_began`` recorded is healed now (``fault_began`` shows both)."""
        if fault.ended is None:
            fault.ended = time.monotonic()

    def clients(self) -> list[Operation]:
        """Every worker operation, faults left out."""
        return [o for o in self.operations if o.kind == "client"]

    def of(self, op: str) -> list[Operation]:
        """The workers' operations named ``op``."""
        return [o for o in self.clients() if o.op == op]

    def acknowledged(self, op: str) -> list[Operation]:
        """The ``op`` operations whose client was told they succeeded."""
        return [o for o in self.of(op) if o.ok is True]

    def failed(self, op: str) -> list[Operation]:
        """The ``op`` operations that the server refused (they did nothing)."""
        return [o for o in self.of(op) if o.ok is False]

    def unknown(self, op: str) -> list[Operation]:
        """The ``op`` operations whose outcome the client cannot know (the connection broke)."""
        return [o for o in self.of(op) if o.ok is None]

    def faults(self, name: str | None = None) -> list[Operation]:
        """The faults recorded (those named ``name``, or all)."""
        return [o for o in self.operations if o.kind == "fault" and (name is None or o.op == name)]

    def during(self, fault: Operation, op: str | None = None) -> list[Operation]:
        """The workers' operations (named ``op``, or all) that were running at some moment of ``fault``."""
        return [o for o in (self.of(op) if op else self.clients()) if o.overlaps(fault)]

    def overlapping(self) -> bool:
        """Did at least two worker operations run at the same time (so the test tested concurrency)?"""
        spans = sorted((o.started, o.ended or o.started) for o in self.clients())
        return any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))

    def dump(self) -> str:
        """The history as JSON lines, for a failure message or a file."""
        return "\n".join(json.dumps(asdict(o) | {"args": list(o.args)}, default=str) for o in self.operations)


def _mark(error: BaseException, entry: Operation) -> None:
    # An exception without a __dict__ (rare) just stays unmarked: run_workers then reports it.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, _RECORDED, entry)


@contextlib.contextmanager
def fault_recorded(history: History | None, name: str, *args) -> Iterator[Operation | None]:
    """``history.fault(name, *args)`` when there is a history, else nothing: the nemesis functions' helper.

    ```python
    from pggit_chaos.history import History, fault_recorded

    with fault_recorded(None, "crash") as nothing:
        assert nothing is None
    history = History()
    with fault_recorded(history, "crash") as fault:
        pass
    assert history.faults() == [fault]
    ```
    """
    if history is None:
        yield None
    else:
        with history.fault(name, *args) as entry:
            yield entry


def run_workers(
    count: int,
    work: Callable[[int, History], Any],
    history: History | None = None,
    timeout: float = 120.0,
) -> History:
    """Run ``work(worker_id, history)`` in ``count`` threads that start together; return the history.

    A barrier holds every worker until all are ready, so their operations
    really overlap instead of running one after another as threads start.

    An error inside a recorded operation (``history.record``) stays in the
    history and ends only that worker. Any other error a worker raises (a
    bug in the workload, a broken barrier, a failed connect outside
    ``record``) is raised here, in the caller, with the worker's own
    traceback and a note naming the worker. ``timeout`` bounds the whole
    run: workers still running after it (hung on a lock, say) make
    ``run_workers`` raise ``TimeoutError`` with their stacks; their threads
    are daemons, so they cannot keep the test process alive.

    ```python fixture:db_connection_string
    import psycopg
    from pggit_chaos.client import commit
    from pggit_chaos.history import History, run_workers

    def work(worker: int, history: History) -> None:
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            for i in range(3):
                with history.record(worker, "commit", "main", f"w{worker}-{i}") as op:
                    op.result = commit(conn, "main", f"w{worker}-{i}")

    history = run_workers(4, work, timeout=60)
    assert len(history.acknowledged("commit")) == 12
    ```
    """
    history = History() if history is None else history
    barrier = threading.Barrier(count)
    deadline = time.monotonic() + timeout
    escaped: dict[int, BaseException] = {}

    def worker(worker_id: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            work(worker_id, history)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            if recorded_operation(exc) is None:
                escaped[worker_id] = exc

    threads = [threading.Thread(target=worker, args=(i,), name=f"run_workers-{i}", daemon=True)
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [(i, thread) for i, thread in enumerate(threads) if thread.is_alive()]
    if hung:
        frames = sys._current_frames()
        stacks = "".join(f"\nworker {i} is at:\n" + "".join(traceback.format_stack(frames[t.ident]))
                         for i, t in hung if t.ident in frames)
        error = TimeoutError(f"run_workers: worker(s) {[i for i, _ in hung]} still running after {timeout} s{stacks}")
        for worker_id, exc in sorted(escaped.items()):
            error.add_note(f"worker {worker_id} raised outside any recorded operation: {exc!r}")
        raise error
    if escaped:
        first, *others = sorted(escaped)
        error = escaped[first]
        error.add_note(f"run_workers: worker {first} raised this outside any recorded operation")
        for worker_id in others:
            error.add_note(f"worker {worker_id} also raised outside any recorded operation:\n"
                           + "".join(traceback.format_exception(escaped[worker_id])))
        raise error
    return history
