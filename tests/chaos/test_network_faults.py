"""Network chaos: a slow link, a link cut mid-request, a link that goes silent.

Every client here talks to the server through ``FaultyProxy``. When the link
breaks after the request left, the client gets an OperationalError and
cannot know whether the server did the work: pggit's guarantee is that the
work is then either wholly there or wholly absent, never half done, and the
metadata stays whole either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.client import commit
from pggit_chaos.history import History, run_workers
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.nemesis import FaultyProxy

pytestmark = [pytest.mark.chaos]


def _wait_until(monitor: TransactionMonitor, pid: int, state: str, timeout: float = 10.0) -> None:
    """Until server session ``pid`` is in ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        activity = monitor.activity(pid)
        current = activity.state if activity else None
        if current == state:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {pid} is {current!r}, expected {state!r}")
        time.sleep(0.01)


@pytest.fixture
def proxy(db_connection_string: str) -> Iterator[FaultyProxy]:
    with FaultyProxy.for_dsn(db_connection_string) as faulty:
        yield faulty


@pytest.fixture
def monitor(db_connection_string: str) -> Iterator[TransactionMonitor]:
    with TransactionMonitor(db_connection_string) as watching:
        yield watching


@pytest.mark.concurrent
def test_latency_on_every_packet_leaves_concurrent_commits_correct(db_connection_string, proxy):
    """With every packet delayed, four workers committing at once on a shared branch and their own still leave linear chains holding exactly the acknowledged commits."""
    history = History()
    proxy.history = history
    proxy.latency = 0.005
    slow_dsn = proxy.dsn(db_connection_string)

    def work(worker: int, history: History) -> None:
        with psycopg.connect(slow_dsn, autocommit=True) as conn:
            for i in range(6):
                branch = "main" if i % 2 == 0 else f"slow/w{worker}"
                message = f"slow w{worker} c{i}"
                with history.record(worker, "commit", branch, message) as op:
                    op.result = commit(conn, branch, message)

    run_workers(4, work, history)
    assert len(history.acknowledged("commit")) == 24, history.dump()
    assert history.overlapping()
    assert len(checkers.fault_struck(history, "latency", "commit")) == 24  # every commit crossed the slow link
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        chains = checkers.pggit_consistent(conn, history, branch=["main"] + [f"slow/w{w}" for w in range(4)]).chains
        assert [len(chain) for chain in chains.values()] == [12, 3, 3, 3, 3], chains


@pytest.mark.transaction
@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "explicit-transaction"])
def test_reset_in_the_middle_of_a_commit_leaves_it_whole_or_absent(db_connection_string, proxy, monitor, autocommit):
    """A link reset just after commit_changes reached the server gives the client an OperationalError, and the commit is then either all there (its exact message, on the head's chain) or not there at all; inside an open transaction it is never there."""
    history = History()
    proxy.history = history
    with psycopg.connect(db_connection_string, autocommit=True) as direct:
        for round_ in range(4):
            direct_id = commit(direct, "main", f"direct {round_}")
            with history.record(0, "commit", "main", f"direct {round_}") as op:
                op.result = direct_id
            conn = psycopg.connect(proxy.dsn(db_connection_string), autocommit=autocommit)
            pid = conn.info.backend_pid
            message = f"cut {round_}: it's \"whole\" or absent"
            proxy.reset_on(b"commit_changes")
            with pytest.raises(psycopg.OperationalError):
                with history.record(1, "commit", "main", message):
                    commit(conn, "main", message)
            conn.close()
            monitor.wait_until_gone(pid)

            stored = direct.execute("SELECT hash, message FROM pggit.commits WHERE message LIKE %s",
                                    (f"cut {round_}:%",)).fetchall()
            assert len(stored) <= 1, stored
            if not autocommit:
                assert stored == [], "a commit inside a transaction that never committed survived"
            chain = checkers.linear_chain_invariant(direct, "main")
            if stored:
                assert stored[0][1] == message
                assert stored[0][0] in chain
            checkers.integrity_ok(direct)
        assert proxy.resets >= 8
        assert len(history.unknown("commit")) == 4
        # Each reset struck while its commit was in flight: exactly the four whose outcome is unknown.
        assert checkers.fault_struck(history, "reset", "commit") == history.unknown("commit")
        checkers.pggit_consistent(direct, history)


# Blackhole scenarios: the request reaches the server, which is held on a lock until the link
# has gone silent; it then finishes, its answer is swallowed, and finally the link is reset.
def _hold_branch(holder: psycopg.Connection) -> None:
    holder.execute("SELECT 1 FROM pggit.branches WHERE name = 'main' FOR UPDATE")


def _hold_table(holder: psycopg.Connection) -> None:
    holder.execute("LOCK TABLE accounts IN ACCESS SHARE MODE")


SCENARIOS = {
    "commit": dict(
        hold=_hold_branch,
        call="SELECT pggit.commit_changes('main', 'silenced commit')",
        done="SELECT count(*) = 1 FROM pggit.commits WHERE message = 'silenced commit'",
    ),
    "migration": dict(
        hold=_hold_table,
        call=("SELECT pggit.apply_migration('net-1', "
              "'ALTER TABLE accounts ADD COLUMN email text; CREATE INDEX accounts_email_idx ON accounts (email)', "
              "'DROP INDEX accounts_email_idx; ALTER TABLE accounts DROP COLUMN email')"),
        done="SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'email')",
    ),
}


@pytest.mark.transaction
@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "explicit-transaction"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_blackhole_then_reset_during_a_call_leaves_it_whole_or_absent(
        db_connection_string, proxy, monitor, scenario, autocommit):
    """When the link goes silent while a commit or migration runs and is then reset, the client gets an OperationalError although the server finished the call: in autocommit the work is wholly there, inside a transaction wholly absent, never half."""
    spec = SCENARIOS[scenario]
    with psycopg.connect(db_connection_string, autocommit=True) as direct:
        direct.execute("CREATE TABLE accounts (id int PRIMARY KEY)")
        first = commit(direct, "main", "before the blackhole")
        holder = psycopg.connect(db_connection_string)
        spec["hold"](holder)

        client = psycopg.connect(proxy.dsn(db_connection_string), autocommit=autocommit)
        pid = client.info.backend_pid
        outcome: dict[str, BaseException | object] = {}

        def call() -> None:
            try:
                outcome["result"] = client.execute(spec["call"]).fetchone()
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                outcome["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        wait = monitor.wait_until_blocked(pid)
        assert holder.info.backend_pid in wait.blocking_pids
        proxy.blackhole()
        holder.commit()  # the call proceeds and finishes; its answer disappears
        _wait_until(monitor, pid, "idle" if autocommit else "idle in transaction")
        caller.join(0.2)
        assert caller.is_alive(), "the answer crossed a black-holed link"
        proxy.reset_all()
        caller.join(10)
        assert not caller.is_alive()
        assert isinstance(outcome.get("error"), psycopg.OperationalError), outcome
        client.close()
        holder.close()
        monitor.wait_until_gone(pid)

        assert direct.execute(spec["done"]).fetchone()[0] is autocommit
        chain = checkers.linear_chain_invariant(direct, "main")
        if scenario == "commit":
            assert chain[0] == first and len(chain) == (2 if autocommit else 1)
        else:
            assert checkers.migration_all_or_nothing(direct, "net-1", spec["done"]) is autocommit
            assert checkers.versions_strictly_increasing(direct, "accounts") == (
                ["1.0.0", "1.1.0", "1.1.1"] if autocommit else ["1.0.0"])
        checkers.drift_is(direct)
        checkers.integrity_ok(direct)


@pytest.mark.transaction
@pytest.mark.migration
def test_reset_in_the_middle_of_apply_migration_is_all_or_nothing(db_connection_string, proxy, monitor):
    """A link reset just after apply_migration reached the server leaves the migration either applied with every statement's effect and its record, or absent with neither."""
    up = ("CREATE TABLE invoices (id int PRIMARY KEY, total numeric); "
          "INSERT INTO invoices SELECT g, g * 1.5 FROM generate_series(1, 500) g; "
          "CREATE INDEX invoices_total_idx ON invoices (total)")
    with psycopg.connect(db_connection_string, autocommit=True) as direct:
        conn = psycopg.connect(proxy.dsn(db_connection_string), autocommit=True)
        pid = conn.info.backend_pid
        proxy.reset_on(b"apply_migration")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT pggit.apply_migration('net-2', %s, 'DROP TABLE invoices')", (up,))
        conn.close()
        monitor.wait_until_gone(pid)

        effect = ("SELECT to_regclass('invoices') IS NOT NULL "
                  "AND (SELECT count(*) = 500 FROM invoices) AND to_regclass('invoices_total_idx') IS NOT NULL")
        partial = "SELECT to_regclass('invoices') IS NOT NULL"
        applied = checkers.migration_all_or_nothing(direct, "net-2", effect)
        assert checkers.migration_all_or_nothing(direct, "net-2", partial) is applied
        # Whatever happened, re-applying is safe: it runs now or reports it ran already.
        assert direct.execute("SELECT pggit.apply_migration('net-2', %s, 'DROP TABLE invoices')",
                              (up,)).fetchone() == (not applied,)
        assert checkers.migration_all_or_nothing(direct, "net-2", effect)
        assert checkers.versions_strictly_increasing(direct, "invoices") == ["1.0.0", "1.0.1"]
        checkers.drift_is(direct)
        checkers.integrity_ok(direct)
