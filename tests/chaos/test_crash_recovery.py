"""Crash recovery: kill -9 the whole server in the middle of pggit work, restart, check.

The server runs with fsync on for these tests (the throwaway clusters
normally run with it off). A crash loses exactly the transactions that had
not committed: every commit a client was told about survives, nothing
half-written appears, and pggit's sequence never hands out a number twice.
Calls in flight at the crash raise OperationalError in the client: their
outcome is unknown, so the checks accept them present (whole) or absent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.history import History, run_workers
from pggit_chaos.monitor import TransactionMonitor

pytestmark = [
    pytest.mark.chaos, pytest.mark.crash, pytest.mark.transaction,
    pytest.mark.destructive, pytest.mark.needs_control,
]

WORKERS = 6
ACKNOWLEDGED_BEFORE_CRASH = 60


@pytest.fixture
def durable(pg_cluster):
    """The run's server with fsync and full-page writes on, for the length of the test."""
    with pg_cluster.configured(fsync="on", full_page_writes="on"):
        assert pg_cluster.setting("fsync") == "on"
        yield pg_cluster


@pytest.fixture
def database(make_database):
    """The name of a fresh pggit database (connect with ``pg_cluster.dsn(name)``: the port may change on restart)."""
    return psycopg.conninfo.conninfo_to_dict(make_database(prefix="crash"))["dbname"]


@contextlib.contextmanager
def _crash_when(event: threading.Event, pg_cluster, stop: threading.Event, history: History,
                timeout: float = 30.0) -> Iterator[None]:
    """While the block runs, a thread crashes and restarts the server once ``event`` is set (or after
    ``timeout``), recording the crash in ``history``; leaving the block waits for that thread and
    checks that the server did restart.

    Workers run until their connection dies with the server; ``stop``, set once the server is
    back, only stops one that connected late, after the restart.
    """

    def crash() -> None:
        event.wait(timeout)
        try:
            nemesis.crash_postmaster(pg_cluster, history=history)
        finally:
            stop.set()

    postmaster = pg_cluster.postmaster_pid
    crasher = threading.Thread(target=crash, name="crasher")
    crasher.start()
    yield
    crasher.join(60)
    assert not crasher.is_alive()
    assert pg_cluster.postmaster_pid not in (None, postmaster), "the server was not crashed and restarted"


def _all_acknowledged(history: History, op: str, workers: int) -> bool:
    """Whether every worker has had an ``op`` acknowledged: it is connected, so the crash will strike it inside
    a recorded operation (a worker still connecting when the server dies, on a busy machine, fails outside one)."""
    return len({o.worker for o in history.acknowledged(op)}) == workers


def test_a_crash_during_concurrent_commits_keeps_every_acknowledged_commit_and_nothing_partial(durable, database):
    """Six committers (three on main, three on their own branches) are killed mid-stream with the
    server: after recovery every acknowledged commit is there, each branch is one linear chain,
    no row is partial, IDs are unique, and the sequence is ahead of every ID issued before."""
    pg_cluster, dsn = durable, durable.dsn(database)
    enough, stop = threading.Event(), threading.Event()
    acknowledged = []

    def work(worker: int, history: History) -> None:
        branch = "main" if worker % 2 == 0 else f"worker/{worker}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(100_000):
                if stop.is_set():
                    return
                message = f"worker {worker} commit {i}"
                with history.record(worker, "commit", branch, message) as op:
                    op.result = commit(conn, branch, message)
                acknowledged.append(op.result)
                if len(acknowledged) >= ACKNOWLEDGED_BEFORE_CRASH and _all_acknowledged(history, "commit", WORKERS):
                    enough.set()

    history = History()
    with _crash_when(enough, pg_cluster, stop, history):
        run_workers(WORKERS, work, history, timeout=120)
    assert len(history.acknowledged("commit")) >= ACKNOWLEDGED_BEFORE_CRASH
    assert history.unknown("commit"), "no commit was in flight at the crash: the test did not test a crash"
    struck = checkers.fault_struck(history, "crash", "commit")
    assert all(o in struck for o in history.unknown("commit")), "an outcome was lost, but not at the crash"

    with psycopg.connect(pg_cluster.dsn(database), autocommit=True) as conn:
        # Every branch one chain, every row whole, every ID unique, acknowledged there, failed absent.
        checkers.pggit_consistent(conn, history, branch=checkers.EVERY_BRANCH)
        in_flight = [o.args[1] for o in history.unknown("commit")]
        duplicated = conn.execute("SELECT message, count(*) FROM pggit.commits WHERE message = ANY(%s) "
                                  "GROUP BY message HAVING count(*) > 1", (in_flight,)).fetchall()
        assert not duplicated, f"in-flight commits stored twice: {duplicated}"
        before_crash = [h for (h,) in conn.execute(
            "SELECT hash FROM pggit.commits ORDER BY substr(hash, 20, 12)::bigint").fetchall()]

        after_restart = [commit(conn, "main", f"after restart {i}") for i in range(20)]
        after_restart += [conn.execute("SELECT pggit.generate_trinity_id()").fetchone()[0] for _ in range(20)]
        # One ordered stream: every ID issued after the restart is above every ID from before it.
        checkers.trinity_sequence_increasing({"before and after the crash": before_crash + after_restart})
        checkers.unique_trinity_ids(conn, extra_ids=after_restart)
        checkers.pggit_consistent(conn)


def test_a_crash_during_ddl_leaves_history_and_objects_in_agreement(durable, database):
    """DDL committed before the crash is recorded; DDL in an open transaction, or waiting for a lock,
    at the crash is gone with its history; a DDL loop cut at any point leaves pggit's objects,
    versions and history agreeing with the catalog."""
    pg_cluster, dsn = durable, durable.dsn(database)
    with psycopg.connect(dsn, autocommit=True) as setup:
        for name in ("open_tx", "waited", "committed"):
            setup.execute(f"CREATE TABLE {name} (id int)")
        setup.execute("ALTER TABLE committed ADD COLUMN before_crash int")

    open_tx = psycopg.connect(dsn)  # DDL done, transaction open at the crash
    open_tx.execute("CREATE TABLE created_in_open_tx (id int)")
    open_tx.execute("ALTER TABLE open_tx ADD COLUMN uncommitted int")
    holder = psycopg.connect(dsn)  # holds a lock that the next ALTER waits for
    holder.execute("LOCK TABLE waited IN SHARE MODE")
    blocked = psycopg.connect(dsn, autocommit=True)
    blocked_thread = threading.Thread(
        target=lambda: _swallow(lambda: blocked.execute("ALTER TABLE waited ADD COLUMN never int")))

    enough, stop = threading.Event(), threading.Event()
    done = []

    def ddl_loop(worker: int, history: History) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(100_000):
                if stop.is_set():
                    return
                table = f"loop_{worker}_{i % 4}"
                for step in (f"CREATE TABLE {table} (id int)", f"ALTER TABLE {table} ADD COLUMN c int",
                             f"COMMENT ON TABLE {table} IS 'x'", f"ALTER TABLE {table} DROP COLUMN c",
                             f"DROP TABLE {table}"):
                    with history.record(worker, "ddl", step):
                        conn.execute(step)
                    done.append(step)
                if len(done) >= 40 and _all_acknowledged(history, "ddl", 2):
                    enough.set()

    with TransactionMonitor(dsn) as monitor:
        blocked_thread.start()
        monitor.wait_until_blocked(blocked.info.backend_pid)
    history = History()
    with _crash_when(enough, pg_cluster, stop, history):
        run_workers(2, ddl_loop, history, timeout=120)
    blocked_thread.join(10)
    for conn in (open_tx, holder, blocked):
        conn.close()
    assert history.acknowledged("ddl") and history.unknown("ddl")
    struck = checkers.fault_struck(history, "crash", "ddl")
    assert all(o in struck for o in history.unknown("ddl")), "an outcome was lost, but not at the crash"

    with psycopg.connect(pg_cluster.dsn(database), autocommit=True) as conn:
        versions = dict(conn.execute(
            "SELECT t, (SELECT full_version FROM pggit.get_version(t)) FROM unnest(%s::text[]) t",
            (["open_tx", "waited", "committed", "created_in_open_tx"],)).fetchall())
        assert versions == {"open_tx": "1.0.0", "waited": "1.0.0", "committed": "1.1.0", "created_in_open_tx": None}
        assert conn.execute("SELECT count(*) FROM pggit.objects WHERE object_name = 'created_in_open_tx'"
                            ).fetchone()[0] == 0
        # Tracked tables are the live ones, each with a whole history and its live hash; no drift.
        checkers.schema_consistent(conn)


def _swallow(call) -> None:
    try:
        call()
    except psycopg.OperationalError:
        pass  # the crash ended this session: expected


def test_a_crash_during_apply_migration_leaves_it_all_or_nothing(durable, database):
    """A migration caught by the crash half-way (its first statement done, the second waiting on a
    lock) is neither recorded nor partly applied; migrations committed before stay; a loop of
    migrations cut at any point leaves each one whole or absent, and the caught one applies later."""
    pg_cluster, dsn = durable, durable.dsn(database)
    caught_up = "CREATE TABLE m_half (a int); ALTER TABLE locked ADD COLUMN from_migration int"
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE locked (id int)")
        setup.execute("SELECT pggit.apply_migration('before-crash', 'CREATE TABLE m_before (a int)')")

    holder = psycopg.connect(dsn)
    holder.execute("LOCK TABLE locked IN SHARE MODE")
    migrating = psycopg.connect(dsn, autocommit=True)
    thread = threading.Thread(target=lambda: _swallow(lambda: migrating.execute(
        "SELECT pggit.apply_migration('caught', %s, 'DROP TABLE m_half')", (caught_up,))))

    enough, stop = threading.Event(), threading.Event()

    def migration_loop(worker: int, history: History) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(100_000):
                if stop.is_set():
                    return
                version = f"loop-{worker}-{i}"
                with history.record(worker, "migration", version) as op:
                    op.result = conn.execute(
                        "SELECT pggit.apply_migration(%s, %s)",
                        (version, f"CREATE TABLE m_{worker}_{i} (a int); INSERT INTO m_{worker}_{i} VALUES (1)"),
                    ).fetchone()[0]
                if len(history.acknowledged("migration")) >= 30 and _all_acknowledged(history, "migration", 2):
                    enough.set()

    with TransactionMonitor(dsn) as monitor:
        thread.start()
        monitor.wait_until_blocked(migrating.info.backend_pid)
    history = History()
    with _crash_when(enough, pg_cluster, stop, history):
        run_workers(2, migration_loop, history, timeout=120)
    thread.join(10)
    struck = checkers.fault_struck(history, "crash", "migration")
    assert all(o in struck for o in history.unknown("migration")), "an outcome was lost, but not at the crash"
    holder.close()
    migrating.close()

    with psycopg.connect(pg_cluster.dsn(database), autocommit=True) as conn:
        assert checkers.migration_all_or_nothing(conn, "before-crash", "SELECT to_regclass('m_before') IS NOT NULL")
        assert not checkers.migration_all_or_nothing(conn, "caught", "SELECT to_regclass('m_half') IS NOT NULL")
        assert conn.execute("SELECT count(*) FROM pggit.objects WHERE object_name = 'm_half'").fetchone()[0] == 0
        assert conn.execute("SELECT full_version FROM pggit.get_version('locked')").fetchone()[0] == "1.0.0"
        for op in history.of("migration"):
            worker, i = op.args[0].split("-")[1:]
            applied = checkers.migration_all_or_nothing(
                conn, op.args[0], f"SELECT to_regclass('m_{worker}_{i}') IS NOT NULL")
            if op.ok:
                assert applied, f"acknowledged migration {op.args[0]} is missing after recovery"
        checkers.schema_consistent(conn)

        assert conn.execute("SELECT pggit.apply_migration('caught', %s, 'DROP TABLE m_half')",
                            (caught_up,)).fetchone()[0] is True
        assert checkers.migration_all_or_nothing(conn, "caught", "SELECT to_regclass('m_half') IS NOT NULL")
