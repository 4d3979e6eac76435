"""run_workers hands a worker's stray error to the caller and bounds the run; faults go into the history."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import traceback

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.history import NEMESIS, History, recorded_operation, run_workers

# --------------------------------------------------------------------------
# run_workers: errors outside a recorded operation
# --------------------------------------------------------------------------


def _committer(dsn: str, stray_error_in: int | None = None):
    """A workload of two commits per worker; worker ``stray_error_in`` then fails outside any operation."""

    def work(worker: int, history: History) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(2):
                with history.record(worker, "commit", "main", f"w{worker}-{i}") as op:
                    op.result = commit(conn, "main", f"w{worker}-{i}")
        if worker == stray_error_in:
            raise LookupError(f"a bug in the workload of worker {worker}")

    return work


def test_a_worker_that_raises_outside_an_operation_fails_run_workers_with_its_traceback(db_connection_string):
    history = History()
    with pytest.raises(LookupError, match="a bug in the workload of worker 2") as error:
        run_workers(4, _committer(db_connection_string, stray_error_in=2), history)
    assert "run_workers: worker 2 raised this outside any recorded operation" in error.value.__notes__
    # The traceback is the worker's own: it runs through the workload's function.
    frames = [frame.name for frame in traceback.extract_tb(error.value.__traceback__)]
    assert frames[-1] == "work" and "run_workers" in frames
    assert recorded_operation(error.value) is None
    # The other workers, and the failing one's operations before its error, are in the history.
    assert len(history.acknowledged("commit")) == 8, history.dump()


def test_the_same_workload_without_the_stray_error_returns_its_history(db_connection_string):
    history = run_workers(4, _committer(db_connection_string))
    assert len(history.acknowledged("commit")) == 8, history.dump()


def test_every_worker_with_a_stray_error_is_named(db_connection_string):
    def work(worker: int, history: History) -> None:
        if worker in (1, 3):
            raise KeyError(f"worker {worker}")

    with pytest.raises(KeyError, match="worker 1") as error:
        run_workers(4, work)
    notes = "\n".join(error.value.__notes__)
    assert "worker 1 raised this outside any recorded operation" in notes
    assert "worker 3 also raised outside any recorded operation" in notes and "KeyError: 'worker 3'" in notes


def test_a_connect_that_fails_outside_an_operation_is_not_swallowed(db_connection_string):
    unknown_database = psycopg.conninfo.make_conninfo(db_connection_string, dbname="no_such_database")

    def work(worker: int, history: History) -> None:
        psycopg.connect(unknown_database, connect_timeout=5).close()

    with pytest.raises(psycopg.OperationalError, match="no_such_database") as error:
        run_workers(2, work)
    assert any("outside any recorded operation" in note for note in error.value.__notes__)


def test_errors_inside_recorded_operations_stay_in_the_history(db_connection_string):
    def work(worker: int, history: History) -> None:
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            with history.record(worker, "commit", "", f"blank branch {worker}") as op:
                op.result = commit(conn, "", f"blank branch {worker}")  # refused: 22023

    history = run_workers(3, work)
    failed = history.failed("commit")
    assert len(failed) == 3 and {op.sqlstate for op in failed} == {"22023"}, history.dump()


def test_a_non_database_error_inside_a_recorded_operation_stays_in_the_history():
    def work(worker: int, history: History) -> None:
        with history.record(worker, "divide", worker, 0):
            worker / 0

    history = run_workers(2, work)
    assert [(op.ok, op.error) for op in history.of("divide")] == [(False, "ZeroDivisionError: division by zero")] * 2


# --------------------------------------------------------------------------
# run_workers: the timeout bounds a hung worker
# --------------------------------------------------------------------------


def _locker(dsn: str, held: threading.Event):
    """Worker 0 reads a table the test has locked: it hangs on the lock until the test lets go."""

    def work(worker: int, history: History) -> None:
        if worker != 0:
            return
        with psycopg.connect(dsn, autocommit=True) as conn:
            held.wait(10)
            with history.record(worker, "read"):
                conn.execute("SELECT count(*) FROM locked")

    return work


@pytest.mark.parametrize("hangs", [True, False], ids=["hung", "released"])
def test_the_timeout_bounds_a_worker_hung_on_a_lock(db_connection_string, hangs):
    held = threading.Event()
    with psycopg.connect(db_connection_string) as holder:
        holder.execute("CREATE TABLE locked (id int)")
        holder.commit()
        if hangs:
            holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")  # held until the rollback below
        held.set()
        started = time.monotonic()
        try:
            if hangs:
                with pytest.raises(TimeoutError, match=r"worker\(s\) \[0\] still running after 1.0 s") as error:
                    run_workers(2, _locker(db_connection_string, held), timeout=1.0)
                assert "worker 0 is at:" in str(error.value) and "execute" in str(error.value)
            else:
                history = run_workers(2, _locker(db_connection_string, held), timeout=1.0)
                assert [op.ok for op in history.of("read")] == [True]
        finally:
            holder.rollback()  # frees a hung worker, which then finishes on its own
        assert time.monotonic() - started < 5.0


def _terminate(dsn: str, application_name: str) -> int:
    """End the server sessions named ``application_name``; how many there were."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE application_name = %s", (application_name,)).fetchone()[0]


def test_the_timeout_bounds_a_worker_that_never_returns_from_the_server(db_connection_string):
    """A worker in pg_sleep(3600), which nothing here ends, makes run_workers raise; then its backend is ended."""
    name = "hung-worker-in-process"
    started = threading.Event()

    def work(worker: int, history: History) -> None:
        if worker == 0:
            with psycopg.connect(db_connection_string, autocommit=True, application_name=name) as conn:
                started.set()
                conn.execute("SELECT pg_sleep(3600)")

    try:
        with pytest.raises(TimeoutError, match=r"worker\(s\) \[0\] still running after 1.0 s") as error:
            run_workers(2, work, timeout=1.0)
        assert started.is_set() and 'conn.execute("SELECT pg_sleep(3600)")' in str(error.value)  # its stack
    finally:
        deadline = time.monotonic() + 30
        while _terminate(db_connection_string, name) == 0 and started.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)  # the session may not be in pg_stat_activity yet
    deadline = time.monotonic() + 30
    while any(thread.name == "run_workers-0" for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "the hung worker outlived its backend"
        time.sleep(0.05)


_HUNG_RUN = """
import sys
import psycopg
from pggit_chaos.history import run_workers

def work(worker, history):
    with psycopg.connect(sys.argv[1], autocommit=True, application_name=sys.argv[2]) as conn:
        conn.execute("SELECT pg_sleep(3600)")

try:
    run_workers(2, work, timeout=1.0)
except TimeoutError as error:
    print("raised", str(error).splitlines()[0])
"""


@pytest.mark.slow
def test_a_process_whose_worker_hangs_in_the_server_still_exits(db_connection_string):
    """Nothing ends the hung backend until the process is gone: the process must exit on its own all the same."""
    name = "hung-worker-subprocess"
    try:
        done = subprocess.run([sys.executable, "-c", _HUNG_RUN, db_connection_string, name],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["raised run_workers: worker(s) [0, 1] still running after 1.0 s"]
    finally:
        _terminate(db_connection_string, name)


# --------------------------------------------------------------------------
# Faults in the history
# --------------------------------------------------------------------------


def test_a_fault_is_recorded_with_its_span_and_the_operations_it_struck():
    history = History()
    with history.record(0, "commit", "main", "before") as before:
        before.result = "TRN-0"
    with history.fault("crash") as crash, history.record(1, "commit", "main", "during") as during:
        during.result = "TRN-1"
    with history.record(0, "commit", "main", "after") as after:
        after.result = "TRN-2"
    assert (crash.worker, crash.kind, crash.ok) == (NEMESIS, "fault", True)
    assert crash.started <= during.started and crash.ended >= during.ended
    assert checkers.fault_struck(history, "crash", "commit") == [during]
    # Faults are not workers' operations: they stay out of of(), overlapping() and the checkers' counts.
    assert [op.args[1] for op in history.of("commit")] == ["before", "during", "after"]
    assert not history.overlapping()


def test_fault_struck_names_a_missing_fault_and_a_fault_that_hit_nothing():
    history = History()
    with history.record(0, "commit", "main", "alone") as op:
        op.result = "TRN-0"
    with pytest.raises(checkers.InvariantViolation, match="no 'crash' fault in the history"):
        checkers.fault_struck(history, "crash")
    with history.fault("crash"):
        pass  # nothing running
    with pytest.raises(checkers.InvariantViolation, match="no commit operation was running during"):
        checkers.fault_struck(history, "crash", "commit")


def test_a_fault_that_failed_is_not_a_fault_that_struck():
    history = History()
    with pytest.raises(RuntimeError), history.record(0, "commit", "main", "m"), history.fault("crash"):
        raise RuntimeError("the kill did not happen")
    (crash,) = history.faults("crash")
    assert crash.ok is False and "the kill did not happen" in crash.error
    with pytest.raises(checkers.InvariantViolation, match="did not complete"):
        checkers.fault_struck(history, "crash", "commit")


def test_nemesis_functions_record_their_faults(pg_cluster, db_connection_string, sync_conn):
    sync_conn.autocommit = True
    history = History()
    victim = psycopg.connect(db_connection_string, autocommit=True)
    pid = nemesis.terminate_backend(pg_cluster, victim, history=history)
    victim.close()
    cut = psycopg.connect(db_connection_string, autocommit=True)
    cut_pid = cut.info.backend_pid
    nemesis.cut_connection(cut, history=history)
    cut.close()
    with nemesis.tracking_paused(sync_conn, history=history):
        sync_conn.execute("CREATE TABLE untracked (id int)")
    with nemesis.session_configured(sync_conn, history, work_mem="64kB"):
        pass
    assert [(f.op, f.args, f.ok) for f in history.faults()] == [
        ("terminate", (pid,), True),
        ("cut", (cut_pid,), True),
        ("tracking paused", ("disable", ("pggit_ddl_command_end", "pggit_sql_drop")), True),
        ("session configured", (sync_conn.info.backend_pid, (("work_mem", "64kB"),)), True),
    ]
    assert all(f.ended >= f.started for f in history.faults())


@pytest.mark.parametrize("probability", [1.0, 0.0])
def test_an_injected_connection_failure_is_recorded_only_when_injected(db_connection_string, probability):
    history = History()
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        pid = conn.info.backend_pid
        with nemesis.ChaosInjector.simulate_connection_failure(conn, probability, history=history) as failure:
            try:
                with history.record(0, "commit", "main", "maybe cut"):
                    commit(conn, "main", "maybe cut")
            except psycopg.OperationalError:
                pass
    if probability:
        assert failure.injected and [(f.op, f.args) for f in history.faults()] == [("cut", (pid,))]
        assert checkers.fault_struck(history, "cut", "commit") == history.unknown("commit")
    else:
        assert not failure.injected and history.faults() == [] and history.acknowledged("commit")


def test_faulty_proxy_records_latency_for_as_long_as_it_is_in_force(db_connection_string):
    history = History()
    with nemesis.FaultyProxy.for_dsn(db_connection_string, history=history) as proxy:
        with psycopg.connect(proxy.dsn(db_connection_string), autocommit=True) as conn:
            with history.record(0, "commit", "main", "fast") as fast:
                fast.result = commit(conn, "main", "fast")
            proxy.latency = 0.05
            with history.record(0, "commit", "main", "slow") as slow:
                slow.result = commit(conn, "main", "slow")
            proxy.heal()
            with history.record(0, "commit", "main", "fast again") as fast_again:
                fast_again.result = commit(conn, "main", "fast again")
    (latency,) = history.faults("latency")
    assert latency.args == (0.05,) and latency.ended is not None
    assert checkers.fault_struck(history, "latency", "commit") == [slow]
    assert slow.ended - slow.started >= 0.1 > fast.ended - fast.started  # the latency was real, both ways


@pytest.mark.destructive
@pytest.mark.needs_control
def test_a_crash_recorded_by_the_nemesis_struck_the_commits_in_flight(pg_cluster, db_connection_string):
    history = History()
    # The crash waits until every worker has committed once: a worker still connecting when the server dies
    # (a busy machine) would fail outside any recorded operation.
    committing, lock, all_committing = set(), threading.Lock(), threading.Event()

    def work(worker: int, history: History) -> None:
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            for i in range(100_000):
                with history.record(worker, "commit", "main", f"w{worker}-{i}") as op:
                    op.result = commit(conn, "main", f"w{worker}-{i}")
                with lock:
                    committing.add(worker)
                    if len(committing) == 3:
                        all_committing.set()

    crasher = threading.Thread(target=lambda: (all_committing.wait(30), nemesis.crash_postmaster(pg_cluster, history)))
    crasher.start()
    run_workers(3, work, history, timeout=60)
    crasher.join(60)
    struck = checkers.fault_struck(history, "crash", "commit")
    assert history.unknown("commit") and all(op in struck for op in history.unknown("commit")), history.dump()
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        checkers.pggit_consistent(conn, history)


# --------------------------------------------------------------------------
# Composed checkers
# --------------------------------------------------------------------------


def _forge_fork(conn: psycopg.Connection, branch: str) -> None:
    """A second child of the branch's first commit, written behind pggit's back."""
    conn.execute(
        "INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message, author, committed_at) "
        "SELECT 'FORGED-FORK-' || c.id, c.branch_id, c.hash, 'forged', 'x', now() FROM pggit.commits c "
        "JOIN pggit.branches b ON b.id = c.branch_id WHERE b.name = %s ORDER BY c.id LIMIT 1", (branch,))


def test_pggit_consistent_passes_a_whole_history_and_returns_what_it_checked(sync_conn):
    sync_conn.autocommit = True
    history = History()
    for i in range(3):
        with history.record(0, "commit", "main", f"c{i}") as op:
            op.result = commit(sync_conn, "main", f"c{i}")
    with pytest.raises(psycopg.Error), history.record(0, "commit", "main", "x" * 10_001):
        commit(sync_conn, "main", "x" * 10_001)
    result = checkers.pggit_consistent(sync_conn, history)
    assert result.chains == {"main": [op.result for op in history.acknowledged("commit")]}
    assert (result.commits, result.acknowledged, result.failed) == (3, 3, 1) and result.integrity_checks > 0


def test_pggit_consistent_names_the_part_that_fails(sync_conn):
    sync_conn.autocommit = True
    history = History()
    for i in range(2):
        with history.record(0, "commit", "feature/f", f"f{i}") as op:
            op.result = commit(sync_conn, "feature/f", f"f{i}")
    # The default looks at main's chain only; EVERY_BRANCH at each branch's.
    assert list(checkers.pggit_consistent(sync_conn, history).chains) == ["main"]
    chains = checkers.pggit_consistent(sync_conn, history, branch=checkers.EVERY_BRANCH).chains
    assert chains == {"feature/f": [op.result for op in history.acknowledged("commit")], "main": []}
    with pytest.raises(checkers.InvariantViolation, match=r"^linear_chain_invariant\('no/such'\) \(linear chain\)"):
        checkers.pggit_consistent(sync_conn, branch="no/such")
    _forge_fork(sync_conn, "feature/f")
    with pytest.raises(checkers.InvariantViolation, match=r"(?s)^integrity_ok \(verify_integrity\).*FORGED-FORK"):
        checkers.pggit_consistent(sync_conn)


def test_pggit_consistent_names_a_lost_acknowledged_commit(sync_conn):
    sync_conn.autocommit = True
    history = History()
    with history.record(0, "commit", "main", "told it succeeded") as op:
        op.result = commit(sync_conn, "main", "told it succeeded")
    with history.record(0, "commit", "main", "lost") as lost:
        lost.result = "TRN-00000000000000-999999999999-deadbeef"  # an ID the database never issued
    with pytest.raises(checkers.InvariantViolation, match=r"^acknowledged_commits_present"):
        checkers.pggit_consistent(sync_conn, history)


def test_table_and_schema_consistent_pass_tracked_tables_and_name_drift(sync_conn):
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE t (a int)")
    sync_conn.execute("ALTER TABLE t ADD COLUMN b int")
    assert checkers.table_consistent(sync_conn, "t", {"MINOR": 1}) == ["1.0.0", "1.1.0"]
    assert checkers.schema_consistent(sync_conn) == {"public.t"}
    with pytest.raises(checkers.InvariantViolation, match=r"^version_steps_match_changes\('t'\)"):
        checkers.table_consistent(sync_conn, "t", {"MINOR": 2})
    with nemesis.tracking_paused(sync_conn):
        sync_conn.execute("ALTER TABLE t ADD COLUMN behind_the_back int")
    with pytest.raises(checkers.InvariantViolation, match=r"^recorded_hash_is_live\('public.t'\)"):
        checkers.schema_consistent(sync_conn)


def test_schema_consistent_names_a_table_pggit_never_saw(sync_conn):
    sync_conn.autocommit = True
    with nemesis.tracking_paused(sync_conn):
        sync_conn.execute("CREATE TABLE unseen (id int)")
    with pytest.raises(checkers.InvariantViolation, match=r"(?s)^tracked_tables_match_catalog .*public.unseen"):
        checkers.schema_consistent(sync_conn)
