"""The chaos toolkit does what its names say, against a real server.

One test (or a few) per tool of ``pggit_chaos.nemesis.injector``, ``snapshot`` and ``monitor``; nothing is
mocked. Tests that need no pggit use ``plain_dsn``, a bare database made
directly on the run's server.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pggit_chaos.interleavings import run_blocked
from pggit_chaos.monitor import BlockingPair, TransactionMonitor
from pggit_chaos.nemesis import ChaosInjector
from pggit_chaos.snapshot import DatabaseStateSnapshot
from psycopg import pq

RAISE_SERIALIZATION_FAILURE = "DO $$ BEGIN RAISE EXCEPTION 'forced conflict' USING ERRCODE = '40001'; END $$"
RAISE_DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'forced deadlock' USING ERRCODE = '40P01'; END $$"


@pytest.fixture
def plain_dsn(pg_server):
    """A bare database (no pggit) of this test's own."""
    name = pg_server.next_database_name("toolkit")
    pg_server.create_database(name)
    yield pg_server.dsn(name)
    pg_server.drop_database(name)


@pytest.fixture
def admin(plain_dsn):
    """An autocommit connection to ``plain_dsn`` for setting up and checking from outside."""
    with psycopg.connect(plain_dsn, autocommit=True) as conn:
        yield conn


def wait_for_backend_exit(admin: psycopg.Connection, pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0:
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------
# ChaosInjector.random_delay / arandom_delay
# --------------------------------------------------------------------------


def test_random_delay_sleeps_the_time_it_returns_within_bounds():
    rng, replay = random.Random(7), random.Random(7)
    for _ in range(5):
        started = time.monotonic()
        chosen = ChaosInjector.random_delay(10, 30, rng=rng)
        elapsed = time.monotonic() - started
        assert 0.010 <= chosen <= 0.030
        assert chosen <= elapsed < chosen + 0.25  # generous: a loaded CI machine oversleeps
        assert chosen == replay.uniform(10, 30) / 1000  # the seed decides the delay
    with pytest.raises(ValueError):
        ChaosInjector.random_delay(50, 10)


@pytest.mark.asyncio
async def test_arandom_delay_waits_without_blocking_the_event_loop():
    started = time.monotonic()
    chosen = await asyncio.gather(*(ChaosInjector.arandom_delay(100, 110) for _ in range(4)))
    elapsed = time.monotonic() - started
    assert all(0.100 <= c <= 0.110 for c in chosen)
    # Four 100-110 ms waits side by side take one wait's time, not the 400 ms of four in a row.
    assert max(chosen) <= elapsed < 0.3


# --------------------------------------------------------------------------
# ChaosInjector.simulate_connection_failure
# --------------------------------------------------------------------------


def test_connection_failure_at_probability_one_breaks_the_connection_for_real(plain_dsn, admin):
    admin.execute("CREATE TABLE ledger (id int PRIMARY KEY)")
    conn = psycopg.connect(plain_dsn, autocommit=False)
    try:
        conn.execute("INSERT INTO ledger VALUES (1)")  # left uncommitted when the link drops
        with ChaosInjector.simulate_connection_failure(conn, probability=1.0) as failure:
            assert failure.injected
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        assert conn.broken and conn.closed
        # The server saw the connection go too: its backend exits, its transaction rolls back.
        assert wait_for_backend_exit(admin, failure.backend_pid)
        assert admin.execute("SELECT count(*) FROM ledger").fetchone()[0] == 0
    finally:
        conn.close()


def test_connection_failure_at_probability_zero_leaves_the_connection_working(plain_dsn):
    with psycopg.connect(plain_dsn) as conn:
        with ChaosInjector.simulate_connection_failure(conn, probability=0.0) as failure:
            assert not failure.injected
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert not conn.broken and not conn.closed


def test_breaking_an_already_broken_connection_is_not_an_error(plain_dsn):
    conn = psycopg.connect(plain_dsn, autocommit=True)
    try:
        ChaosInjector.break_connection(conn)
        ChaosInjector.break_connection(conn)  # cut twice, not used in between
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()


def test_connection_failure_decisions_follow_the_seeded_rng(plain_dsn):
    expected_rng, rng = random.Random(2024), random.Random(2024)
    expected = [expected_rng.random() < 0.5 for _ in range(8)]
    observed = []
    for _ in expected:
        with psycopg.connect(plain_dsn, autocommit=True) as conn:
            with ChaosInjector.simulate_connection_failure(conn, probability=0.5, rng=rng) as failure:
                try:
                    conn.execute("SELECT 1")
                    broke = False
                except psycopg.OperationalError:
                    broke = True
            assert broke == failure.injected
            observed.append(failure.injected)
    assert observed == expected
    assert True in observed and False in observed  # this seed exercises both branches


@pytest.mark.asyncio
async def test_connection_failure_breaks_an_async_connection(plain_dsn):
    conn = await psycopg.AsyncConnection.connect(plain_dsn, autocommit=True)
    try:
        async with ChaosInjector.simulate_connection_failure(conn, probability=1.0) as failure:
            assert failure.injected
            with pytest.raises(psycopg.OperationalError):
                await conn.execute("SELECT 1")
        assert conn.broken
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# ChaosInjector.with_retry / awith_retry
# --------------------------------------------------------------------------


def test_with_retry_survives_a_real_serialization_failure(plain_dsn, admin):
    admin.execute("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
    admin.execute("INSERT INTO counter VALUES (1, 0)")
    attempts, retries = [], []
    with psycopg.connect(plain_dsn, autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE

        def increment() -> int:
            attempts.append(1)
            with conn.transaction():
                n = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]
                if len(attempts) == 1:
                    # Another session commits a change to the row this transaction has read.
                    admin.execute("UPDATE counter SET n = n + 100 WHERE id = 1")
                conn.execute("UPDATE counter SET n = %s WHERE id = 1", (n + 1,))
            return n + 1

        result = ChaosInjector.with_retry(
            increment, backoff=0.01, jitter=0, on_retry=lambda *call: retries.append(call)
        )
    assert result == 101
    assert len(attempts) == 2
    assert [(attempt, type(error), delay) for attempt, error, delay in retries] == [
        (1, psycopg.errors.SerializationFailure, 0.01)
    ]
    # The retry read the other session's update: nothing was lost.
    assert admin.execute("SELECT n FROM counter").fetchone()[0] == 101


def test_with_retry_gives_up_after_max_attempts_with_exponential_backoff(admin):
    calls, delays = [], []

    def always_conflicts():
        calls.append(1)
        admin.execute(RAISE_SERIALIZATION_FAILURE)

    started = time.monotonic()
    with pytest.raises(psycopg.errors.SerializationFailure) as raised:
        ChaosInjector.with_retry(
            always_conflicts, max_attempts=4, backoff=0.01, jitter=0,
            on_retry=lambda attempt, error, delay: delays.append(delay),
        )
    assert len(calls) == 4
    assert delays == [0.01, 0.02, 0.04]
    assert time.monotonic() - started >= sum(delays)  # it really slept between attempts
    assert "gave up after 4 attempts" in " ".join(raised.value.__notes__)


def test_with_retry_jitter_stays_within_its_fraction(admin):
    delays = []
    with pytest.raises(psycopg.errors.DeadlockDetected):
        ChaosInjector.with_retry(
            admin.execute, RAISE_DEADLOCK, max_attempts=4, backoff=0.001, jitter=0.5,
            rng=random.Random(1), on_retry=lambda attempt, error, delay: delays.append(delay),
        )
    bases = [0.001, 0.002, 0.004]
    assert len(delays) == 3
    assert all(base <= delay <= base * 1.5 for base, delay in zip(bases, delays))


def test_with_retry_does_not_retry_an_unlisted_error(admin):
    admin.execute("CREATE TABLE once (id int PRIMARY KEY)")
    admin.execute("INSERT INTO once VALUES (1)")
    calls, retries = [], []

    def insert_duplicate():
        calls.append(1)
        admin.execute("INSERT INTO once VALUES (1)")

    with pytest.raises(psycopg.errors.UniqueViolation):
        ChaosInjector.with_retry(insert_duplicate, max_attempts=5, on_retry=lambda *call: retries.append(call))
    assert len(calls) == 1 and retries == []
    with pytest.raises(ValueError):
        ChaosInjector.with_retry(insert_duplicate, max_attempts=0)


@pytest.mark.asyncio
async def test_awith_retry_retries_a_coroutine_until_it_succeeds(plain_dsn):
    attempts = []
    conn = await psycopg.AsyncConnection.connect(plain_dsn, autocommit=True)
    try:
        async def conflicts_twice() -> str:
            attempts.append(1)
            if len(attempts) < 3:
                await conn.execute(RAISE_SERIALIZATION_FAILURE)
            return (await (await conn.execute("SELECT 'done'")).fetchone())[0]

        result = await ChaosInjector.awith_retry(conflicts_twice, backoff=0.01, jitter=0)
    finally:
        await conn.close()
    assert result == "done"
    assert len(attempts) == 3


# --------------------------------------------------------------------------
# DatabaseStateSnapshot
# --------------------------------------------------------------------------

ITEMS = {"items": "SELECT id, label FROM items ORDER BY id"}


@pytest.fixture
def items(admin):
    admin.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
    admin.execute("INSERT INTO items VALUES (1, 'one')")
    return admin


def test_snapshot_detects_an_inserted_and_a_changed_row(plain_dsn, items):
    before = DatabaseStateSnapshot.capture(plain_dsn, extra=ITEMS)
    assert "user_tables" in before and "branches" not in before  # no pggit in this database
    items.execute("INSERT INTO items VALUES (2, 'two')")
    items.execute("UPDATE items SET label = 'uno' WHERE id = 1")
    after = DatabaseStateSnapshot.capture(plain_dsn, extra=ITEMS)

    difference = before.diff(after)
    assert list(difference.changes) == ["items"]
    assert difference["items"].added == ((1, "uno"), (2, "two"))
    assert difference["items"].removed == ((1, "one"),)
    with pytest.raises(AssertionError, match=r"(?s)items:.*\(2, 'two'\).*\(1, 'one'\)"):
        before.assert_unchanged(after)


def test_snapshot_sees_no_difference_after_a_rolled_back_change(plain_dsn, items):
    before = DatabaseStateSnapshot.capture(plain_dsn, extra=ITEMS)
    with psycopg.connect(plain_dsn, autocommit=False) as other:
        other.execute("INSERT INTO items VALUES (2, 'two')")
        other.execute("CREATE TABLE scratch (x int)")
        other.rollback()
    after = DatabaseStateSnapshot.capture(plain_dsn, extra=ITEMS)
    assert not before.diff(after)
    before.assert_unchanged(after)


def test_snapshot_inside_a_transaction_is_read_only_and_leaves_it_intact(plain_dsn, items):
    with psycopg.connect(plain_dsn, autocommit=False) as conn:
        idle = DatabaseStateSnapshot.capture(conn, queries=ITEMS)
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE  # it started nothing that stays open

        conn.execute("INSERT INTO items VALUES (2, 'two')")
        inside = DatabaseStateSnapshot.capture(conn, queries=ITEMS)
        assert inside["items"].rows == ((1, "one"), (2, "two"))  # sees its own uncommitted row
        assert idle.diff(inside)["items"].added == ((2, "two"),)

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            DatabaseStateSnapshot.capture(conn, queries={"write": "INSERT INTO items VALUES (3, 'three') RETURNING id"})
        # The failed capture did not abort the caller's transaction.
        assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
        conn.commit()
    assert DatabaseStateSnapshot.capture(plain_dsn, queries=ITEMS)["items"].rows == ((1, "one"), (2, "two"))


@pytest.mark.asyncio
async def test_async_snapshot_matches_the_sync_one(plain_dsn, items):
    conn = await psycopg.AsyncConnection.connect(plain_dsn, autocommit=True)
    try:
        async_snapshot = await DatabaseStateSnapshot.acapture(conn, extra=ITEMS)
    finally:
        await conn.close()
    DatabaseStateSnapshot.capture(plain_dsn, extra=ITEMS).assert_unchanged(async_snapshot)


def test_snapshot_defaults_cover_pggit_and_see_a_commit(sync_conn):
    before = DatabaseStateSnapshot.capture(sync_conn)
    assert set(before.names) == {"branches", "commits", "objects", "history", "migrations", "user_tables"}
    assert "main" in [row["name"] for row in before["branches"].as_dicts()]

    commit_id = sync_conn.execute("SELECT pggit.commit_changes('main', 'snapshot test')").fetchone()[0]
    sync_conn.commit()
    difference = before.diff(DatabaseStateSnapshot.capture(sync_conn))

    added = [dict(zip(difference["commits"].columns, row)) for row in difference["commits"].added]
    assert [(c["hash"], c["message"]) for c in added] == [(commit_id, "snapshot test")]
    assert "branches" in difference  # main's head moved to the new commit


# --------------------------------------------------------------------------
# TransactionMonitor
# --------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_monitor_shows_a_real_lock_wait_and_names_the_blocker(plain_dsn, admin):
    admin.execute("CREATE TABLE guarded (id int PRIMARY KEY)")
    with (
        psycopg.connect(plain_dsn, autocommit=False) as holder,
        psycopg.connect(plain_dsn, autocommit=True) as waiter,
        TransactionMonitor(plain_dsn) as monitor,
        ThreadPoolExecutor(1) as pool,
    ):
        holder.execute("LOCK TABLE guarded IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET lock_timeout = '20s'")  # never hang the run if something goes wrong
        holder_pid, waiter_pid = holder.info.backend_pid, waiter.info.backend_pid
        blocked_read = pool.submit(lambda: waiter.execute("SELECT count(*) FROM guarded").fetchone()[0])

        wait = monitor.wait_until_blocked(waiter_pid, timeout=10)
        assert wait.blocking_pids == (holder_pid,)
        assert wait.wait_event == "relation"
        assert monitor.who_blocks_whom() == {waiter_pid: (holder_pid,)}
        [pair] = monitor.blocking_pairs()
        assert pair == BlockingPair(
            blocked_pid=waiter_pid, blocking_pid=holder_pid,
            blocked_query="SELECT count(*) FROM guarded",
            blocking_query="LOCK TABLE guarded IN ACCESS EXCLUSIVE MODE",
            blocking_state="idle in transaction", wait_event="relation",
        )
        assert [(lock.relation, lock.mode, lock.granted) for lock in monitor.locks(waiter_pid)
                if lock.locktype == "relation"] == [("guarded", "AccessShareLock", False)]
        assert ("guarded", "AccessExclusiveLock", True) in [
            (lock.relation, lock.mode, lock.granted) for lock in monitor.locks(holder_pid)
        ]
        sessions = {s.pid: s for s in monitor.active_transactions()}
        assert sessions[holder_pid].state == "idle in transaction"
        assert sessions[waiter_pid].state == "active" and sessions[waiter_pid].waiting_on_lock

        holder.commit()
        assert blocked_read.result(timeout=10) == 0
        assert monitor.who_blocks_whom() == {}


def test_monitor_wait_until_blocked_times_out_on_a_session_that_never_waits(plain_dsn):
    with psycopg.connect(plain_dsn) as idle, TransactionMonitor(plain_dsn) as monitor:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=rf"session {idle.info.backend_pid} did not block"):
            monitor.wait_until_blocked(idle.info.backend_pid, timeout=0.2)
        assert time.monotonic() - started < 2
        with pytest.raises(LookupError):
            monitor.wait_until_blocked(2**31 - 1, timeout=0.2)  # no such backend
        with psycopg.connect(plain_dsn, autocommit=False) as in_transaction, pytest.raises(ValueError):
            TransactionMonitor(in_transaction)


def test_monitor_wait_until_blocked_gives_up_at_once_when_the_call_finished_without_waiting(plain_dsn):
    with psycopg.connect(plain_dsn, autocommit=True) as session, TransactionMonitor(plain_dsn) as monitor, \
            ThreadPoolExecutor(1) as pool:
        call = pool.submit(lambda: session.execute("SELECT 1").fetchone()[0])
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=rf"session {session.info.backend_pid} finished its call without"):
            monitor.wait_until_blocked(session.info.backend_pid, timeout=30, finished=call.done)
        assert time.monotonic() - started < 10
        assert call.result() == 1


@pytest.mark.timeout(60)
def test_monitor_names_the_statement_that_waits_never_the_one_before_it(plain_dsn, admin):
    # pg_stat_activity reads the wait event live and the query from a copy taken a moment before: a look that
    # lands between the two once named the previous statement (1 to 13 in 400 tries on a loaded machine).
    admin.execute("CREATE TABLE guarded (id int)")
    seen = []
    with (psycopg.connect(plain_dsn) as holder, psycopg.connect(plain_dsn, autocommit=True) as waiter,
          TransactionMonitor(plain_dsn) as monitor):
        for i in range(200):
            waiter.execute(f"SELECT {i}")
            holder.execute("LOCK TABLE guarded")
            wait = run_blocked(monitor, holder, waiter, lambda: waiter.execute("SELECT 1 FROM guarded")).wait
            seen.append(wait.query)
    assert set(seen) == {"SELECT 1 FROM guarded"}, [q for q in seen if q != "SELECT 1 FROM guarded"][:5]
