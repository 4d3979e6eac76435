"""ChaosInjector: random delays, a connection that really breaks mid-block, retry with backoff."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

from pggit_chaos.history import History, Operation

T = TypeVar("T")

DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


@dataclass
class FailureInjection:
    """What ``simulate_connection_failure`` did: ``injected`` tells whether the connection was broken.

    True exactly when it was:

    ```python
    from pggit_chaos.nemesis import FailureInjection

    assert not FailureInjection(injected=False, backend_pid=42)
    ```
    """

    injected: bool
    backend_pid: int | None
    """The server process of the connection at the moment of the decision."""

    def __bool__(self) -> bool:
        return self.injected


class _ConnectionFailure:
    """Context manager behind ``simulate_connection_failure``: usable with ``with`` and ``async with``."""

    def __init__(self, conn: psycopg.Connection | psycopg.AsyncConnection, probability: float, rng: Any,
                 history: History | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be between 0 and 1, got {probability!r}")
        self._conn = conn
        self._probability = probability
        self._rng = rng if rng is not None else random
        self._history = history
        self._fault: Operation | None = None

    def _inject(self) -> FailureInjection:
        pid = None if self._conn.closed else self._conn.info.backend_pid
        # Draw even at probability 0 or 1, so a seeded rng gives the same sequence whatever the probability.
        injected = self._rng.random() < self._probability
        if injected:
            ChaosInjector.break_connection(self._conn)
            if self._history is not None:
                self._fault = self._history.fault_began("cut", pid)
        return FailureInjection(injected=injected, backend_pid=pid)

    def _end(self) -> None:
        if self._fault is not None:
            self._history.fault_ended(self._fault)
            self._fault = None

    def __enter__(self) -> FailureInjection:
        return self._inject()

    def __exit__(self, *exc_info: object) -> None:
        self._end()

    async def __aenter__(self) -> FailureInjection:
        return self._inject()

    async def __aexit__(self, *exc_info: object) -> None:
        self._end()


class ChaosInjector:
    """Faults to inject into a test, and the retry that survives them.

    Stateless: every method is a classmethod or staticmethod. Randomness
    comes from ``rng`` (anything with ``random()`` and ``uniform()``, such
    as ``random.Random(seed)``); left out, it is the ``random`` module, which
    Hypothesis seeds inside a test so that a failure replays.

    Sync and async versions have separate names so that neither needs a
    flag: ``random_delay`` / ``arandom_delay``, ``with_retry`` /
    ``awith_retry``. ``simulate_connection_failure`` works with both
    ``with`` and ``async with``, on sync and async connections.

    ```python fixture:db_connection_string
    import random

    import psycopg
    from pggit_chaos.nemesis import ChaosInjector

    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        seconds = ChaosInjector.random_delay(1, 5, rng=random.Random(1))
        trinity_id = ChaosInjector.with_retry(
            lambda: conn.execute("SELECT pggit.commit_changes('main', 'retried')").fetchone()[0])
    assert 0.001 <= seconds <= 0.005 and trinity_id.startswith("TRN-")
    ```
    """

    # ---- delays -------------------------------------------------------------

    @staticmethod
    def _pick_delay(min_ms: float, max_ms: float, rng: Any) -> float:
        if min_ms < 0 or max_ms < min_ms:
            raise ValueError(f"need 0 <= min_ms <= max_ms, got min_ms={min_ms!r}, max_ms={max_ms!r}")
        return (rng if rng is not None else random).uniform(min_ms, max_ms) / 1000.0

    @classmethod
    def random_delay(cls, min_ms: float = 0, max_ms: float = 100, rng: Any = None) -> float:
        """Sleep (blocking) for a random time between ``min_ms`` and ``max_ms``; return the seconds chosen.

        ```python
        import random
        import time

        from pggit_chaos.nemesis import ChaosInjector

        started = time.monotonic()
        seconds = ChaosInjector.random_delay(10, 20, rng=random.Random(7))
        assert 0.010 <= seconds <= 0.020 and time.monotonic() - started >= seconds
        ```
        """
        seconds = cls._pick_delay(min_ms, max_ms, rng)
        time.sleep(seconds)
        return seconds

    @classmethod
    async def arandom_delay(cls, min_ms: float = 0, max_ms: float = 100, rng: Any = None) -> float:
        """``await`` a random time between ``min_ms`` and ``max_ms``; return the seconds chosen.

        ```python
        import asyncio
        import random

        from pggit_chaos.nemesis import ChaosInjector

        seconds = asyncio.run(ChaosInjector.arandom_delay(1, 3, rng=random.Random(7)))
        assert 0.001 <= seconds <= 0.003
        ```
        """
        seconds = cls._pick_delay(min_ms, max_ms, rng)
        await asyncio.sleep(seconds)
        return seconds

    # ---- broken connections -------------------------------------------------

    @staticmethod
    def break_connection(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
        """Cut ``conn``'s link to the server now, as a network failure would.

        The client socket is shut down in both directions: the next use of
        ``conn`` raises ``psycopg.OperationalError`` and leaves it ``broken``;
        the server sees the connection drop and rolls back its open
        transaction.

        ```python fixture:db_connection_string
        import psycopg
        import pytest
        from pggit_chaos.nemesis import ChaosInjector

        conn = psycopg.connect(db_connection_string, autocommit=True)
        ChaosInjector.break_connection(conn)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        assert conn.broken
        conn.close()
        ```
        """
        # A socket shutdown gives no goodbye, like a dropped link; pg_terminate_backend
        # would first send a polite FATAL AdminShutdown message that no real network failure sends.
        # shutdown() ignores the family given here: Unix-socket connections break the same way.
        with socket.fromfd(conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                # Already cut (and not used since): the link is as broken as asked.
                if exc.errno != errno.ENOTCONN:
                    raise

    @classmethod
    def simulate_connection_failure(
        cls,
        conn: psycopg.Connection | psycopg.AsyncConnection,
        probability: float = 0.1,
        rng: Any = None,
        history: History | None = None,
    ) -> _ConnectionFailure:
        """With the given probability, really break ``conn`` on entering the block.

        ``with`` (or ``async with``) yields a ``FailureInjection``; when its
        ``injected`` is true, the next statement on ``conn`` inside the block
        raises a real ``psycopg.OperationalError``. The block's exceptions are
        not swallowed. With ``history``, an injected failure is recorded as
        fault ``"cut"`` (with the session's pid), in force for the block.

        ```python fixture:db_connection_string
        import random

        import psycopg
        from pggit_chaos.nemesis import ChaosInjector

        rng, broken = random.Random(3), 0
        for _ in range(10):
            with psycopg.connect(db_connection_string, autocommit=True) as conn:
                with ChaosInjector.simulate_connection_failure(conn, probability=0.5, rng=rng) as failure:
                    try:
                        conn.execute("SELECT 1")
                    except psycopg.OperationalError:
                        assert failure.injected
                        broken += 1
        assert 0 < broken < 10
        ```
        """
        return _ConnectionFailure(conn, probability, rng, history)

    # ---- retry --------------------------------------------------------------

    @staticmethod
    def _retry_delay(attempt: int, backoff: float, jitter: float, rng: Any) -> float:
        base = backoff * 2**attempt
        # Jitter spreads retries of sessions that failed together, so they do not collide again.
        if not jitter:
            return base
        return base + (rng if rng is not None else random).uniform(0.0, base * jitter)

    @staticmethod
    def _check_retry_args(max_attempts: int, backoff: float, jitter: float) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if backoff < 0 or jitter < 0:
            raise ValueError(f"backoff and jitter must not be negative, got {backoff!r}, {jitter!r}")

    @classmethod
    def with_retry(
        cls,
        func: Callable[..., T],
        *args: Any,
        max_attempts: int = 3,
        backoff: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
        jitter: float = 0.1,
        sleep: Callable[[float], object] = time.sleep,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        rng: Any = None,
        **kwargs: Any,
    ) -> T:
        """Call ``func(*args, **kwargs)``; retry it when it raises one of ``retry_on``.

        After failed attempt number ``n`` (0-based) it waits ``backoff * 2**n``
        seconds plus up to ``jitter`` times that at random, then calls again.
        An exception that is not an instance of ``retry_on`` propagates at
        once; after ``max_attempts`` failures the last one propagates, with a
        note saying how many attempts were made. ``on_retry(attempt, error,
        delay)`` is called before each wait (``attempt`` counts from 1), so a
        test can count retries.

        ``func`` should run a whole transaction (``with conn.transaction():``)
        so that a failed attempt is rolled back before the next one.

        ```python
        import psycopg
        from pggit_chaos.nemesis import ChaosInjector

        attempts = []

        def flaky() -> str:
            attempts.append(len(attempts) + 1)
            if len(attempts) < 3:
                raise psycopg.errors.SerializationFailure("conflict")
            return "done"

        assert ChaosInjector.with_retry(flaky, max_attempts=3, backoff=0.001) == "done"
        assert attempts == [1, 2, 3]
        ```
        """
        cls._check_retry_args(max_attempts, backoff, jitter)
        for attempt in range(max_attempts):
            try:
                return func(*args, **kwargs)
            except retry_on as error:
                if attempt + 1 == max_attempts:
                    error.add_note(f"with_retry: gave up after {max_attempts} attempts")
                    raise
                delay = cls._retry_delay(attempt, backoff, jitter, rng)
                if on_retry is not None:
                    on_retry(attempt + 1, error, delay)
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    async def awith_retry(
        cls,
        func: Callable[..., Awaitable[T]],
        *args: Any,
        max_attempts: int = 3,
        backoff: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
        jitter: float = 0.1,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        rng: Any = None,
        **kwargs: Any,
    ) -> T:
        """``with_retry`` for a coroutine function: ``await func(*args, **kwargs)``, same rules.

        ```python
        import asyncio

        import psycopg
        from pggit_chaos.nemesis import ChaosInjector

        attempts = []

        async def flaky() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise psycopg.errors.DeadlockDetected("deadlock")
            return "done"

        assert asyncio.run(ChaosInjector.awith_retry(flaky, backoff=0.001)) == "done" and len(attempts) == 2
        ```
        """
        cls._check_retry_args(max_attempts, backoff, jitter)
        for attempt in range(max_attempts):
            try:
                return await func(*args, **kwargs)
            except retry_on as error:
                if attempt + 1 == max_attempts:
                    error.add_note(f"awith_retry: gave up after {max_attempts} attempts")
                    raise
                delay = cls._retry_delay(attempt, backoff, jitter, rng)
                if on_retry is not None:
                    on_retry(attempt + 1, error, delay)
                await sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
