"""FaultyProxy under concurrency: one reset per reset_on, heal() wins, exact counts, a clean close, busy servers."""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
from collections.abc import Iterator

import psycopg
import pytest
from pggit_chaos.history import History
from pggit_chaos.nemesis import FaultyProxy


@pytest.fixture
def fine_switching() -> Iterator[None]:
    """Threads switch as often as CPython allows, so a race window of a few bytecodes gets hit."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def _proxy_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not alive in ``before`` (the proxy's, in these tests)."""
    return [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]


def _run_together(count: int, action) -> list[BaseException | None]:
    """``action(i)`` in ``count`` threads released together; each one's error (None: it succeeded)."""
    barrier = threading.Barrier(count)
    outcome: list[BaseException | None] = [None] * count

    def run(i: int) -> None:
        barrier.wait(10)
        try:
            action(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            outcome[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a client through the proxy never got an answer"
    return outcome


# --------------------------------------------------------------------------
# reset_on: one reset per call, and none once heal() has returned
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_one_reset_on_resets_one_link_when_several_carry_the_pattern_at_once(db_connection_string, fine_switching):
    links, rounds = 4, 150
    with FaultyProxy.for_dsn(db_connection_string) as proxy:
        dsn = proxy.dsn(db_connection_string)
        conns = [psycopg.connect(dsn, autocommit=True) for _ in range(links)]
        try:
            for round_ in range(rounds):
                marker = f"marker-{round_}"
                proxy.reset_on(marker.encode())
                outcome = _run_together(links, lambda i: conns[i].execute("SELECT %s::text", (marker,)))
                cut = [i for i, error in enumerate(outcome) if error is not None]
                assert all(isinstance(outcome[i], psycopg.OperationalError) for i in cut), outcome
                assert len(cut) == 1, f"round {round_}: one reset_on reset links {cut}"
                for i in cut:
                    conns[i].close()
                    conns[i] = psycopg.connect(dsn, autocommit=True)
            assert proxy.resets == 2 * rounds  # two RSTs per link: the client's side and the server's
        finally:
            for conn in conns:
                conn.close()


@pytest.mark.slow
def test_no_reset_strikes_once_heal_has_returned(db_connection_string, fine_switching):
    rounds, struck = 300, 0
    history = History()
    chance = random.Random(9)
    with FaultyProxy.for_dsn(db_connection_string, history=history) as proxy:
        dsn = proxy.dsn(db_connection_string)
        conn = psycopg.connect(dsn, autocommit=True)
        try:
            for round_ in range(rounds):
                marker = f"marker-{round_}"
                proxy.reset_on(marker.encode())
                outcome: list[BaseException] = []

                def query(marker: str = marker, outcome: list = outcome) -> None:
                    try:
                        conn.execute("SELECT %s::text", (marker,))
                    except psycopg.OperationalError as exc:
                        outcome.append(exc)

                client = threading.Thread(target=query)
                client.start()
                time.sleep(chance.uniform(0, 0.002))  # heal() lands before, during or after the request
                proxy.heal()
                after_heal = (proxy.resets, len(history.faults("reset")))
                client.join(30)
                assert not client.is_alive()
                after = (proxy.resets, len(history.faults("reset")))
                assert after == after_heal, f"round {round_}: a reset after heal()"
                if outcome:
                    struck += 1
                    conn.close()
                    conn = psycopg.connect(dsn, autocommit=True)
            assert proxy.resets == 2 * struck == 2 * len(history.faults("reset"))
        finally:
            conn.close()


# --------------------------------------------------------------------------
# resets: counts the RSTs actually sent, each socket once
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_resets_counts_each_reset_socket_once_when_reset_all_races_reset_on(db_connection_string, fine_switching):
    links, rounds = 4, 60
    with FaultyProxy.for_dsn(db_connection_string) as proxy:
        dsn = proxy.dsn(db_connection_string)
        for round_ in range(rounds):
            conns = [psycopg.connect(dsn, autocommit=True) for _ in range(links)]
            before = proxy.resets
            marker = f"marker-{round_}"
            proxy.reset_on(marker.encode())

            def act(i: int, conns: list = conns, marker: str = marker) -> None:
                if i == links:
                    proxy.reset_all()
                else:
                    conns[i].execute("SELECT %s::text", (marker,))

            assert _run_together(links + 1, act)[links] is None  # reset_all returned
            for conn in conns:
                conn.close()  # every link was reset, by reset_on or by reset_all, before the client let go
            assert proxy.resets - before == 2 * links, f"round {round_}"
        proxy.heal()
    assert proxy.resets == 2 * links * rounds  # close() found no link left to reset


def test_reset_all_and_close_count_two_rsts_per_open_link(db_connection_string):
    with FaultyProxy.for_dsn(db_connection_string) as proxy:
        dsn = proxy.dsn(db_connection_string)
        conns = [psycopg.connect(dsn, autocommit=True) for _ in range(3)]
        proxy.reset_all()
        assert proxy.resets == 6
        for conn in conns:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
            conn.close()
        idle = [psycopg.connect(dsn, autocommit=True) for _ in range(2)]
    assert proxy.resets == 10  # close() reset the two idle links
    for conn in idle:
        conn.close()


# --------------------------------------------------------------------------
# close(): every thread of the proxy has ended when it returns
# --------------------------------------------------------------------------


def test_close_returns_after_every_thread_of_the_proxy_has_ended(db_connection_string):
    for _ in range(3):
        before = set(threading.enumerate())
        proxy = FaultyProxy.for_dsn(db_connection_string)
        dsn = proxy.dsn(db_connection_string)
        conns = [psycopg.connect(dsn, autocommit=True) for _ in range(4)]
        for conn in conns:
            conn.execute("SELECT 1")
        assert _proxy_threads(before)
        proxy.close()
        assert _proxy_threads(before) == [], "threads of the proxy outlived close()"
        for conn in conns:
            conn.close()


def test_close_does_not_wait_out_a_latency_or_a_blackhole(db_connection_string):
    before = set(threading.enumerate())
    proxy = FaultyProxy.for_dsn(db_connection_string)
    dsn = proxy.dsn(db_connection_string)
    held = psycopg.connect(dsn, autocommit=True)
    silenced = psycopg.connect(dsn, autocommit=True)
    proxy.latency = 120.0
    errors: list[BaseException] = []

    def query(conn: psycopg.Connection) -> None:
        try:
            conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            errors.append(exc)

    clients = [threading.Thread(target=query, args=(held,))]
    clients[0].start()
    time.sleep(0.2)  # the request is now held by the latency
    proxy.latency = 0.0
    proxy.blackhole()
    clients.append(threading.Thread(target=query, args=(silenced,)))
    clients[1].start()
    time.sleep(0.2)  # and this one swallowed
    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 60, "close() waited out the latency"
    assert [thread for thread in _proxy_threads(before) if thread not in clients] == []
    for client in clients:
        client.join(30)
        assert not client.is_alive()
    assert len(errors) == 2  # both links were reset by close()
    held.close()
    silenced.close()


# --------------------------------------------------------------------------
# A busy server keeps its link: the proxy drops nothing it was not asked to
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_server_silent_and_reading_nothing_for_6_s_keeps_its_link(db_connection_string):
    """The server sleeps 6 s, longer than the 5 s the proxy once gave up after, while the client has 32 MB more
    to send: one way waits for a reply, the other for the server to read, and the proxy waits with both."""
    big = "x" * 32_000_000
    with FaultyProxy.for_dsn(db_connection_string) as proxy:
        with psycopg.connect(proxy.dsn(db_connection_string), autocommit=True) as conn:
            with conn.pipeline():
                slept = conn.execute("SELECT pg_sleep(6), 'answered'")
                measured = conn.execute("SELECT length(%s::text)", (big,))
            assert slept.fetchone() == ("", "answered")
            assert measured.fetchone() == (len(big),)
            assert proxy.resets == 0


@pytest.mark.slow
def test_a_link_busy_both_ways_at_once_keeps_flowing(db_connection_string):
    """The server writes a 20 MB answer while the client still writes 32 MB: neither way waits for the other."""
    big = "x" * 32_000_000
    with FaultyProxy.for_dsn(db_connection_string) as proxy:
        with psycopg.connect(proxy.dsn(db_connection_string), autocommit=True) as conn:
            with conn.pipeline():
                answer = conn.execute("SELECT repeat('y', 20000000)")
                measured = conn.execute("SELECT length(%s::text)", (big,))
            assert len(answer.fetchone()[0]) == 20_000_000
            assert measured.fetchone() == (len(big),)
            assert proxy.resets == 0


def test_an_unreachable_server_fails_the_client_at_once_and_is_recorded(db_connection_string):
    with FaultyProxy.for_dsn(db_connection_string) as reachable:
        port = reachable.port
    # Nothing listens on the closed proxy's port now.
    with FaultyProxy("127.0.0.1", port) as proxy:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(proxy.dsn(db_connection_string), connect_timeout=30)
    assert [type(error) for error in proxy.upstream_errors] == [ConnectionRefusedError]


def test_reset_all_breaks_off_a_send_to_a_client_that_reads_nothing(db_connection_string):
    with FaultyProxy.for_dsn(db_connection_string) as proxy:
        conn = psycopg.connect(proxy.dsn(db_connection_string), autocommit=True)
        conn.pgconn.send_query(b"SELECT repeat('y', 64000000)")  # the 64 MB answer is never read
        down = f"faulty-proxy:{proxy.port} link 0 down"
        deadline = time.monotonic() + 60
        while not any(thread.name == down and "sendall" in _stack(thread) for thread in threading.enumerate()):
            assert time.monotonic() < deadline, "the proxy never got stuck sending the answer"
            time.sleep(0.05)
        proxy.reset_all()
        assert proxy.resets == 2
        conn.close()


def _stack(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident)
    return "".join(traceback.format_stack(frame)) if frame else ""
