"""The weekly soaks: sustained pggit work under a schedule of faults, and crash after crash under load.

Workers commit, branch, alter their tables and apply migrations without a
pause, reconnecting after every fault, while the nemesis strikes in turn
with a crash of the whole server, cut connections, a full disk and changed
settings. After each fault the workers finish what they were doing and
wait; the checkers then compare the database with everything the clients
were told (acknowledged work present, refused work absent, work whose
outcome is unknown whole or absent) and the workers go on. The server runs
with fsync on, so a crash may lose only what was never acknowledged.

The length is an option: ``--soak-minutes`` (default 2; the weekly workflow
runs 30) and ``--crash-cycles`` (default 50). Each test writes its history,
one JSON line per operation and fault, under ``--soak-history`` (default
``_build/soak``), whether it passes or fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from hypothesis import settings
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import apply_migration, commit, create_branch
from pggit_chaos.history import History, run_workers
from psycopg import sql

# The long stateful runs drive the contract suite's own model of pggit.
from tests.chaos.test_property_based_data import PggitModel, pggit_model_databases  # noqa: F401

pytestmark = [pytest.mark.chaos, pytest.mark.soak, pytest.mark.slow]

WORKERS = 8
# Seconds of plain load between two faults, and how long a settings fault or a full disk stays in force.
GAP = 4.0
WINDOW = 3.0
# Seconds a worker keeps trying to reconnect after a fault before the soak fails: the server did not come back.
RECONNECT = 90.0
# Commits acknowledged between two crashes of the crash soak.
COMMITS_PER_CYCLE = 10
# Branches each worker may create (then it commits instead), and the longest pause between two of its operations.
BRANCHES_PER_WORKER = 4
PAUSE = 0.05


class Soak:
    """Workers doing pggit work on the run's server until stopped, each reconnecting after every fault.

    ``quiet()`` lets every operation in flight finish and holds the workers
    for the block, so a check sees a still database.
    """

    def __init__(self, pg_cluster, database: str, history: History, operations: tuple[str, ...], seed: int):
        self.pg_cluster, self.database, self.history = pg_cluster, database, history
        self.operations, self.seed = operations, seed
        self.stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self._busy = 0
        self._idle = threading.Condition()
        self.connections: dict[int, psycopg.Connection] = {}

    def dsn(self) -> str:
        return self.pg_cluster.dsn(self.database)

    @contextlib.contextmanager
    def quiet(self, timeout: float = 300.0) -> Iterator[None]:
        self.running.clear()
        try:
            with self._idle:
                if not self._idle.wait_for(lambda: self._busy == 0, timeout):
                    raise TimeoutError(f"{self._busy} worker(s) still busy after {timeout} s")
            yield
        finally:
            self.running.set()

    @contextlib.contextmanager
    def _operation(self) -> Iterator[None]:
        while True:
            self.running.wait()
            with self._idle:
                if self.running.is_set():
                    self._busy += 1
                    break
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _connect(self) -> psycopg.Connection:
        deadline = time.monotonic() + RECONNECT
        while True:
            try:
                return psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5)
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.stop.is_set():
                    raise
                time.sleep(0.2)

    def work(self, worker: int, history: History) -> None:
        rng = random.Random(self.seed * 1000 + worker)
        conn, branches = None, ["main"]
        try:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                with self._operation():
                    if conn is None or conn.closed or conn.broken:
                        if conn is not None:
                            conn.close()
                        conn = self.connections[worker] = self._connect()
                    with contextlib.suppress(psycopg.Error):  # recorded in the history
                        self._one(conn, rng.choice(self.operations), worker, i, rng, branches)
        finally:
            if conn is not None:
                conn.close()

    def _one(self, conn, operation: str, worker: int, i: int, rng: random.Random, branches: list[str]) -> None:
        history = self.history
        if operation == "branch" and len(branches) > BRANCHES_PER_WORKER:
            operation = "commit"
        if operation == "commit":
            branch, message = rng.choice(branches), f"w{worker} #{i}"
            with history.record(worker, "commit", branch, message) as op:
                op.result = commit(conn, branch, message)
        elif operation == "branch":
            name = f"soak/w{worker}-{i}"
            with history.record(worker, "branch", name) as op:
                op.result = create_branch(conn, name, rng.choice(branches))
            branches.append(name)
        elif operation == "ddl":
            # A new default is a schema change pggit versions, and the table stays one column wide however long the soak.
            table = f"soak_w{worker}"
            with history.record(worker, "ddl", table, i):
                conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN id SET DEFAULT {}").format(
                    sql.Identifier(table), sql.Literal(i)))
        elif operation == "migration":
            version = f"soak-{worker}-{i}"
            with history.record(worker, "migration", version) as op:
                op.result = apply_migration(conn, version, f"INSERT INTO soak_log VALUES ({worker}, {i})",
                                            f"DELETE FROM soak_log WHERE worker = {worker} AND i = {i}")
        time.sleep(rng.uniform(0, PAUSE))

    def check(self) -> None:
        """Everything acknowledged is there, everything refused is not, nothing is half done."""
        history = self.history
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            checkers.pggit_consistent(conn, history, branch=checkers.EVERY_BRANCH)
            checkers.schema_consistent(conn)
            migrations = dict(conn.execute("SELECT version, upper(status) FROM pggit.migrations").fetchall())
            logged = {f"soak-{w}-{i}" for w, i in conn.execute("SELECT worker, i FROM soak_log").fetchall()}
            branches = {name for (name,) in conn.execute("SELECT name FROM pggit.branches").fetchall()}
            defaults = dict(conn.execute(
                "SELECT c.relname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
                "JOIN pg_class c ON c.oid = d.adrelid WHERE c.relname LIKE 'soak_w%'").fetchall())
        for op in history.of("migration"):
            (version,) = op.args
            applied = migrations.get(version) == "APPLIED"
            assert applied == (version in logged), f"migration {version}: recorded as applied: {applied}, its row there: {version in logged}"
            assert applied or not op.acknowledged, f"acknowledged migration {version} is missing"
            assert not applied or op.ok is not False, f"refused migration {version} is applied"
        for op in history.of("branch"):
            assert (op.args[0] in branches) or not op.acknowledged, f"acknowledged branch {op.args[0]} is missing"
            assert (op.args[0] not in branches) or op.ok is not False, f"refused branch {op.args[0]} exists"
        for worker in range(WORKERS):
            table = f"soak_w{worker}"
            mine = [o for o in history.of("ddl") if o.args[0] == table]
            last = max((k for k, o in enumerate(mine) if o.acknowledged), default=None)
            # The live default is the last acknowledged one's, or that of a later change whose outcome is unknown.
            allowed = {str(o.args[1]) for o in mine[last or 0:] if o.ok is not False} | ({None} if last is None else set())
            assert defaults.get(table) in allowed, f"{table}: default {defaults.get(table)}, expected one of {allowed}"


@contextlib.contextmanager
def _workers(soak: Soak, seconds: float) -> Iterator[None]:
    """The workload runs in the background for the block; leaving it stops the workers and raises their errors."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            run_workers(WORKERS, soak.work, soak.history, timeout=seconds + 600)
        except BaseException as error:  # noqa: BLE001 - raised in the test's thread below
            failure.append(error)

    thread = threading.Thread(target=run, name="soak-workers", daemon=True)
    thread.start()
    try:
        yield
    finally:
        soak.stop.set()
        soak.running.set()
        thread.join(seconds + 660)
    if failure:
        raise failure[0]


def _durable(pg_cluster):
    return pg_cluster.configured(fsync="on", full_page_writes="on")


def _setup(pg_cluster, make_database) -> str:
    database = psycopg.conninfo.conninfo_to_dict(make_database(prefix="soak"))["dbname"]
    with psycopg.connect(pg_cluster.dsn(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE soak_log (worker int, i int, PRIMARY KEY (worker, i))")
        for worker in range(WORKERS):
            conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(f"soak_w{worker}")))
    return database


def _fill(space: str, dsn: str) -> None:
    """Write into the tablespace on the tiny file system until PostgreSQL says it is full."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE soak_filler (pad text) TABLESPACE {}").format(sql.Identifier(space)))
        with pytest.raises(psycopg.errors.DiskFull):
            for _ in range(1000):
                conn.execute("INSERT INTO soak_filler SELECT string_agg(md5(g::text || i::text), '') "
                             "FROM generate_series(1, 3000) g, generate_series(1, 30) i GROUP BY g")


def _faults(pg_cluster, soak: Soak, unavailable: dict[str, str]) -> dict[str, Callable[[], None]]:
    history = soak.history

    def crash() -> None:
        nemesis.crash_postmaster(pg_cluster, history=history)

    def cut() -> None:
        """Cut up to three connections, each while a statement of it is in flight."""
        active = psycopg.pq.TransactionStatus.ACTIVE
        cut, deadline = 0, time.monotonic() + 10
        while cut < 3 and time.monotonic() < deadline:
            for conn in list(soak.connections.values()):
                if cut < 3 and not conn.closed and not conn.broken and conn.info.transaction_status == active:
                    with contextlib.suppress(psycopg.Error, OSError):
                        nemesis.cut_connection(conn, history=history)
                        cut += 1
            time.sleep(0.001)

    def disk_full() -> None:
        try:
            with nemesis.disk_full(pg_cluster, soak.dsn(), size="8m", history=history) as space:
                _fill(space, soak.dsn())
                time.sleep(WINDOW)
        except nemesis.FaultUnavailable as reason:
            unavailable["disk full"] = str(reason)

    def settings_changed() -> None:
        with nemesis.server_configured(pg_cluster, history=history, work_mem="64kB", lock_timeout="20ms",
                                       statement_timeout="500ms"):
            time.sleep(WINDOW)

    return {"crash": crash, "cut": cut, "disk full": disk_full, "configured": settings_changed}


@pytest.mark.concurrent
@pytest.mark.load
@pytest.mark.crash
@pytest.mark.resource
@pytest.mark.settings
@pytest.mark.migration
@pytest.mark.destructive
@pytest.mark.needs_control
@pytest.mark.timeout(0)
def test_sustained_work_under_scheduled_faults_keeps_every_invariant(pg_cluster, make_database, soak_minutes,
                                                                      soak_history, record_property):
    """For --soak-minutes, workers commit, branch, alter and migrate while crashes, cut connections, a full
    disk and changed settings strike in turn; after every fault everything acknowledged is there, everything
    refused is not, and pggit's metadata agrees with the catalog."""
    database = _setup(pg_cluster, make_database)
    history, unavailable = History(), {}
    soak = Soak(pg_cluster, database, history, ("commit", "commit", "branch", "ddl", "migration"), seed=1)
    faults = _faults(pg_cluster, soak, unavailable)
    deadline = time.monotonic() + soak_minutes * 60
    checks = 0
    try:
        with _durable(pg_cluster), _workers(soak, soak_minutes * 60):
            for name in itertools.cycle(faults):
                time.sleep(GAP)
                faults[name]()
                with soak.quiet():
                    soak.check()
                    checks += 1
                if time.monotonic() > deadline and checks >= len(faults):
                    break
        with soak.quiet():
            soak.check()
    finally:
        summary = {"checks": checks, "unavailable": unavailable,
                   "faults": {n: len(history.faults(n)) for n in faults},
                   "operations": {o: len(history.of(o)) for o in ("commit", "branch", "ddl", "migration")}}
        path = soak_history(history.dump() + "\n" + json.dumps({"summary": summary}))
        record_property("soak_history", str(path))
        record_property("soak_summary", json.dumps(summary))
    for name in faults:
        if name not in unavailable:
            assert checkers.fault_struck(history, name), name
    for op in ("commit", "branch", "ddl", "migration"):
        assert history.acknowledged(op), f"no {op} was acknowledged: the workload did not run"


@pytest.mark.crash
@pytest.mark.recovery
@pytest.mark.load
@pytest.mark.destructive
@pytest.mark.needs_control
@pytest.mark.timeout(0)
def test_crash_after_crash_under_load_loses_no_acknowledged_commit(pg_cluster, make_database, crash_cycles,
                                                                    soak_history, record_property):
    """--crash-cycles times, the server is killed while workers commit and is started again; after every
    recovery each acknowledged commit is on its branch's linear chain and no refused one is anywhere."""
    database = _setup(pg_cluster, make_database)
    history = History()
    soak = Soak(pg_cluster, database, history, ("commit", "commit", "commit", "branch"), seed=2)
    try:
        with _durable(pg_cluster), _workers(soak, crash_cycles * 60):
            for _ in range(crash_cycles):
                wanted = len(history.acknowledged("commit")) + COMMITS_PER_CYCLE
                deadline = time.monotonic() + 120
                while len(history.acknowledged("commit")) < wanted and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert len(history.acknowledged("commit")) >= wanted, "the workload stopped committing"
                nemesis.crash_postmaster(pg_cluster, history=history)
                with soak.quiet(), psycopg.connect(soak.dsn(), autocommit=True) as conn:
                    checkers.pggit_consistent(conn, history, branch=checkers.EVERY_BRANCH)
    finally:
        path = soak_history(history.dump())
        record_property("soak_history", str(path))
    assert len(history.faults("crash")) == crash_cycles
    struck = checkers.fault_struck(history, "crash", "commit")
    assert any(o.ok is None for o in struck), "no commit was ever in flight at a crash"


@pytest.mark.property
@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("pggit_model_databases")
class TestPggitModelLongRuns(PggitModel.TestCase):
    """The model of pggit's branches, commits and DDL, in runs ten times as long as the gate's."""

    settings = settings(stateful_step_count=200, max_examples=40)

