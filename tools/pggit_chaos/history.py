"""Workload and history: what each worker did, and what it was told.

A chaos test reads in four parts (after Jepsen): a workload run by workers,
a fault, the history they recorded, and an invariant checked over the
database and that history (``checkers.py``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg


@dataclass
class Operation:
    """One call a worker made: its arguments, and its result or error."""

    worker: int
    op: str
    args: tuple
    started: float
    ended: float | None = None
    ok: bool | None = None  # None: the outcome is unknown (no answer came back)
    result: Any = None
    error: str | None = None
    sqlstate: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.ok is True


# Errors after which the client cannot tell whether the server did the work:
# no answer at all (no SQLSTATE), a connection exception (class 08), or the
# server shutting the session down (57P01 admin, 57P02 crash, 57P03 cannot connect now).
_CONNECTION_LOST_SQLSTATES = ("57P01", "57P02", "57P03")


def _outcome_unknown(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _CONNECTION_LOST_SQLSTATES


@dataclass
class History:
    """A thread-safe, append-only log of operations."""

    operations: list[Operation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def record(self, worker: int, op: str, *args) -> Iterator[Operation]:
        """Record one operation; the block sets ``.result`` (or raises).

        A psycopg error is recorded with its SQLSTATE and re-raised. A broken
        connection leaves ``ok`` None: the client cannot know whether the
        server finished the work. An error the server answered with is a
        failure (``ok`` False), even where psycopg files it under
        OperationalError (serialization failure, deadlock, 55000, ...).
        """
        entry = Operation(worker, op, args, started=time.monotonic())
        with self._lock:
            self.operations.append(entry)
        try:
            yield entry
        except psycopg.OperationalError as exc:
            known = not _outcome_unknown(exc)
            entry.ok, entry.error, entry.sqlstate = (False if known else None), str(exc), exc.sqlstate
            raise
        except psycopg.Error as exc:
            entry.ok, entry.error, entry.sqlstate = False, str(exc), exc.sqlstate
            raise
        except BaseException as exc:
            entry.ok, entry.error = False, f"{type(exc).__name__}: {exc}"
            raise
        else:
            entry.ok = True
        finally:
            entry.ended = time.monotonic()

    def of(self, op: str) -> list[Operation]:
        return [o for o in self.operations if o.op == op]

    def acknowledged(self, op: str) -> list[Operation]:
        return [o for o in self.of(op) if o.ok is True]

    def failed(self, op: str) -> list[Operation]:
        return [o for o in self.of(op) if o.ok is False]

    def unknown(self, op: str) -> list[Operation]:
        return [o for o in self.of(op) if o.ok is None]

    def overlapping(self) -> bool:
        """Did at least two operations run at the same time (so the test tested concurrency)?"""
        spans = sorted((o.started, o.ended or o.started) for o in self.operations)
        return any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))

    def dump(self) -> str:
        """The history as JSON lines, for a failure message or a file."""
        return "\n".join(json.dumps(asdict(o) | {"args": list(o.args)}, default=str) for o in self.operations)


def run_workers(
    count: int,
    work: Callable[[int, History], Any],
    history: History | None = None,
    timeout: float = 120.0,
) -> History:
    """Run ``work(worker_id, history)`` in ``count`` threads that start together.

    A barrier holds every worker until all are ready, so their operations
    really overlap instead of running one after another as threads start.
    Errors inside ``work`` stay in the history; they do not stop other workers.
    """
    history = history or History()
    barrier = threading.Barrier(count)

    def worker(worker_id: int) -> None:
        barrier.wait(timeout=timeout)
        with contextlib.suppress(Exception):
            work(worker_id, history)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(worker, i) for i in range(count)]
        for future in futures:
            future.result(timeout=timeout)
    return history
