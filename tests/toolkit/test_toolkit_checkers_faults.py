"""The checkers catch what they name, and the faults really happen."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.history import run_workers
from pggit_chaos.monitor import TransactionMonitor


def test_linear_chain_invariant_returns_the_chain_and_names_a_fork(sync_conn):
    sync_conn.autocommit = True
    ids = [commit(sync_conn, "main", f"c{i}") for i in range(3)]
    assert checkers.linear_chain_invariant(sync_conn, "main") == ids
    # Forge a fork behind pggit's back: a second child of the first commit.
    sync_conn.execute(
        "INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message, author, committed_at) "
        "SELECT 'FORGED-FORK-0001', branch_id, hash, 'forged', 'x', now() FROM pggit.commits WHERE hash = %s",
        (ids[0],),
    )
    with pytest.raises(checkers.InvariantViolation, match="forks") as err:
        checkers.linear_chain_invariant(sync_conn, "main")
    assert "FORGED-FORK-0001" in str(err.value)


def test_linear_chain_invariant_names_a_lost_head(sync_conn):
    sync_conn.autocommit = True
    ids = [commit(sync_conn, "main", f"c{i}") for i in range(3)]
    sync_conn.execute("UPDATE pggit.branches SET head_commit_hash = %s WHERE name = 'main'", (ids[1],))
    with pytest.raises(checkers.InvariantViolation, match="not reachable") as err:
        checkers.linear_chain_invariant(sync_conn, "main")
    assert ids[2] in str(err.value)


def test_history_and_acknowledged_commit_checker(db_connection_string, sync_conn):
    def work(worker, history):
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            for i in range(5):
                message = f"w{worker}-{i}"
                with history.record(worker, "commit", "main", message) as op:
                    op.result = commit(conn, "main", message)

    # Hold main's row so the workers' first commits queue behind it: they overlap by construction, not by luck
    # (four threads left to themselves on a busy machine once ran one after another).
    with ThreadPoolExecutor(1) as pool, TransactionMonitor(db_connection_string) as monitor:
        sync_conn.execute("SELECT 1 FROM pggit.branches WHERE name = 'main' FOR UPDATE")
        running = pool.submit(run_workers, 4, work)
        deadline = time.monotonic() + 30
        while len(monitor.who_blocks_whom()) < 2 and time.monotonic() < deadline and not running.done():
            time.sleep(0.01)
        sync_conn.commit()
        history = running.result(timeout=120)
    assert len(history.acknowledged("commit")) == 20
    assert history.overlapping()
    assert checkers.acknowledged_commits_present(sync_conn, history) == 20
    sync_conn.execute("DELETE FROM pggit.commits WHERE message = 'w0-0'")
    with pytest.raises(checkers.InvariantViolation, match="acknowledged but missing"):
        checkers.acknowledged_commits_present(sync_conn, history)


def test_versions_checker_follows_ddl_and_names_a_gap(sync_conn):
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE t (a int)")
    sync_conn.execute("ALTER TABLE t ADD COLUMN b int")
    sync_conn.execute("ALTER TABLE t DROP COLUMN a")
    assert checkers.versions_strictly_increasing(sync_conn, "t") == ["1.0.0", "1.1.0", "2.0.0"]
    sync_conn.execute("DELETE FROM pggit.history WHERE new_version = '1.1.0'")
    with pytest.raises(checkers.InvariantViolation, match="previous step ended at 1.0.0"):
        checkers.versions_strictly_increasing(sync_conn, "t")


def test_integrity_and_drift_checkers(sync_conn):
    sync_conn.autocommit = True
    assert checkers.integrity_ok(sync_conn) > 0
    assert checkers.drift_is(sync_conn) == set()
    sync_conn.execute("CREATE TABLE d (a int)")
    with nemesis.tracking_paused(sync_conn):
        sync_conn.execute("ALTER TABLE d ADD COLUMN behind_the_back int")
    with pytest.raises(checkers.InvariantViolation, match="public.d"):
        checkers.drift_is(sync_conn)
    assert checkers.drift_is(sync_conn, {"public.d"}) == {"public.d"}


def test_migration_checker_compares_record_and_effect(sync_conn):
    sync_conn.autocommit = True
    sync_conn.execute("SELECT pggit.apply_migration('m1', 'CREATE TABLE m1_t (a int)')")
    assert checkers.migration_all_or_nothing(sync_conn, "m1", "SELECT to_regclass('m1_t') IS NOT NULL")
    sync_conn.execute("DROP TABLE m1_t")
    with pytest.raises(checkers.InvariantViolation, match="'m1'"):
        checkers.migration_all_or_nothing(sync_conn, "m1", "SELECT to_regclass('m1_t') IS NOT NULL")


def test_proxy_latency_is_real(db_connection_string):
    with nemesis.FaultyProxy.for_dsn(db_connection_string) as proxy:
        with psycopg.connect(proxy.dsn(db_connection_string), autocommit=True) as conn:
            started = time.monotonic()
            conn.execute("SELECT 1")
            fast = time.monotonic() - started
            proxy.latency = 0.2
            started = time.monotonic()
            conn.execute("SELECT 1")
            slow = time.monotonic() - started
    assert slow >= 0.4 > fast  # one hold each way


def test_proxy_blackhole_hangs_and_reset_breaks_the_connection(db_connection_string):
    with nemesis.FaultyProxy.for_dsn(db_connection_string) as proxy:
        conn = psycopg.connect(proxy.dsn(db_connection_string), autocommit=True)
        proxy.blackhole()
        outcome = {}

        def query():
            try:
                conn.execute("SELECT 1")
                outcome["result"] = "answered"
            except psycopg.OperationalError as exc:
                outcome["result"] = exc

        worker = threading.Thread(target=query)
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), "a black-holed query must not get an answer"
        proxy.reset_all()
        worker.join(10)
        assert isinstance(outcome["result"], psycopg.OperationalError)
        assert conn.broken
        conn.close()


def test_proxy_reset_mid_commit_leaves_the_commit_whole_or_absent(db_connection_string, sync_conn):
    sync_conn.autocommit = True
    with nemesis.FaultyProxy.for_dsn(db_connection_string) as proxy:
        conn = psycopg.connect(proxy.dsn(db_connection_string), autocommit=True)
        cut_pid = conn.info.backend_pid
        proxy.reset_on(b"commit_changes")
        with pytest.raises(psycopg.OperationalError):
            commit(conn, "main", "cut mid-commit")
        conn.close()
    assert proxy.resets >= 1
    # The verdict waits for the cut session's backend to end: whatever it was doing has landed or rolled back by then.
    with TransactionMonitor(sync_conn) as monitor:
        deadline = time.monotonic() + 30
        while monitor.activity(cut_pid) is not None:
            assert time.monotonic() < deadline, f"the cut session {cut_pid} is still on the server"
            time.sleep(0.05)
    rows = sync_conn.execute("SELECT hash FROM pggit.commits WHERE message = 'cut mid-commit'").fetchall()
    assert len(rows) <= 1
    checkers.linear_chain_invariant(sync_conn, "main")
    checkers.integrity_ok(sync_conn)


@pytest.mark.needs_control
def test_connections_exhausted_holds_every_slot_then_frees_them(pg_cluster, db_connection_string):
    with nemesis.server_configured(pg_cluster, max_connections=12):
        with nemesis.connections_exhausted(db_connection_string) as held:
            assert len(held) >= 5
            with pytest.raises(psycopg.OperationalError, match="too many clients|reserved"):
                psycopg.connect(db_connection_string, connect_timeout=5)
        with psycopg.connect(db_connection_string) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.needs_control
def test_crash_postmaster_keeps_acknowledged_commits(pg_cluster, db_connection_string):
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        ids = [commit(conn, "main", f"before crash {i}") for i in range(5)]
    nemesis.crash_postmaster(pg_cluster)
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        assert checkers.linear_chain_invariant(conn, "main") == ids


def test_terminate_backend_ends_that_session_only(pg_cluster, db_connection_string, sync_conn):
    victim = psycopg.connect(db_connection_string, autocommit=True)
    nemesis.terminate_backend(pg_cluster, victim)
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    assert sync_conn.execute("SELECT 1").fetchone() == (1,)
    victim.close()


# How far the writer may run ahead: this many commits per checker read. Unpaced, it made 400 to 750 tables
# in 2 s and each schema check read them all again; stopped at a fixed count, a busy machine's checker
# could be left with too few reads.
COMMITS_PER_READ = 10


@pytest.mark.parametrize("checker", ["linear_chain_invariant", "pggit_consistent", "schema_consistent"])
def test_a_checker_reads_one_snapshot_while_writers_commit(db_connection_string, sync_conn, checker):
    """A checker run while commits (and tables) land reads one moment of the database: it never sees a new
    commit without the head that points to it, nor a new table without its pggit record. Positive control:
    the writer's commits landed while the checker ran, and the checker saw the chain grow."""
    sync_conn.autocommit = True
    stop, landed, reads = threading.Event(), [], [0]

    def write() -> None:
        with psycopg.connect(db_connection_string, autocommit=True) as writer:
            while not stop.is_set():
                n = len(landed)
                if n >= COMMITS_PER_READ * (reads[0] + 1):
                    time.sleep(0.001)
                    continue
                if checker == "schema_consistent":
                    writer.execute(f"CREATE TABLE t{n} (a int)")
                landed.append(commit(writer, "main", f"landing {n}"))

    seen_lengths = set()
    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(write)
        try:
            # Until the checker has read 30 lengths as they grew: 0.1 s for a chain, up to 2 s for the slower schema.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not writing.done() and len(seen_lengths) < 30:
                if checker == "linear_chain_invariant":
                    seen_lengths.add(len(checkers.linear_chain_invariant(sync_conn, "main")))
                elif checker == "pggit_consistent":
                    seen_lengths.add(len(checkers.pggit_consistent(sync_conn).chains["main"]))
                else:
                    seen_lengths.add(len(checkers.schema_consistent(sync_conn)))
                reads[0] += 1
        finally:
            stop.set()
        writing.result()
    assert len(landed) >= 20 and len(seen_lengths) >= 5, (len(landed), sorted(seen_lengths))
    assert sync_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # nothing left open


@pytest.mark.parametrize("checker", ["schema_consistent", "drift_is"])
def test_a_whole_schema_check_reads_every_table_whole_while_others_are_dropped(db_connection_string, sync_conn,
                                                                               checker):
    """Tables dropped (and made) while a checker reads: its snapshot still lists a table that is gone, and
    every name lookup (regclass, pggit's hash functions) reads the catalog as it is now. The checker holds
    the tables it reads before its snapshot, so a DROP waits for it instead of failing it. Positive control:
    drops landed while the checker ran, and it saw the set of tables change."""
    sync_conn.autocommit = True
    stop, dropped, reads = threading.Event(), [0], [0]

    def churn() -> None:
        with psycopg.connect(db_connection_string, autocommit=True) as writer:
            n = 0
            while not stop.is_set():
                if n - reads[0] > 2 * COMMITS_PER_READ:  # paced by the checker's reads, as above
                    time.sleep(0.001)
                    continue
                writer.execute(f"CREATE TABLE churn{n} (a int PRIMARY KEY, b text DEFAULT 'x')")
                if n >= 3:
                    writer.execute(f"DROP TABLE churn{n - 3}")
                    dropped[0] += 1
                n += 1

    seen = set()
    with ThreadPoolExecutor(1) as pool:
        churning = pool.submit(churn)
        try:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not churning.done() and reads[0] < 40:
                if checker == "schema_consistent":
                    seen.add(frozenset(checkers.schema_consistent(sync_conn)))
                else:
                    assert checkers.drift_is(sync_conn) == set()
                    seen.add(sync_conn.execute("SELECT count(*) FROM pggit.objects").fetchone()[0])
                reads[0] += 1
        finally:
            stop.set()
        churning.result()
    assert dropped[0] >= 10 and len(seen) >= 5, (dropped[0], len(seen))
    assert sync_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.needs_control
def test_a_whole_schema_check_reads_unheld_when_the_lock_table_cannot_hold_every_table(pg_cluster,
                                                                                      db_connection_string):
    """More tables than the server's lock table has room for: the checker reads them unheld, as before
    it held any, instead of failing with "out of shared memory". Positive control: locking them all in
    one transaction does fail so, so the checker really took that path."""
    with nemesis.server_configured(pg_cluster, max_connections=20, max_locks_per_transaction=10):
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            conn.execute("CREATE TABLE tracked (a int)")
            conn.execute("ALTER EVENT TRIGGER pggit_ddl_command_end DISABLE")  # untracked: quick to make
            for batch in range(20):  # one transaction each: the lock table holds a batch, not all of them
                with conn.transaction():
                    for i in range(50):
                        conn.execute(f"CREATE TABLE many{batch}_{i} ()")
            conn.execute("ALTER EVENT TRIGGER pggit_ddl_command_end ENABLE")
            tables = [name for (name,) in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'")]
            assert len(tables) == 1001
            with pytest.raises(psycopg.errors.OutOfMemory), conn.transaction():
                conn.execute(f"LOCK TABLE ONLY {', '.join(tables)} IN ACCESS SHARE MODE NOWAIT")
            assert checkers.drift_is(conn) == set()
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_whole_schema_check_reads_unheld_after_ddl_keeps_a_table_locked(db_connection_string, sync_conn):
    """A transaction keeps its DDL open: the checker tries to hold the tables for ``HOLD_SECONDS``, then
    reads them unheld, as it did before it held any, instead of waiting on that transaction. Positive
    control: the table really was locked all along, and the checker's answer is the one from before the
    open DDL."""
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE kept (a int)")
    with psycopg.connect(db_connection_string) as ddl, psycopg.connect(db_connection_string) as probe:
        ddl.execute("ALTER TABLE kept ADD COLUMN b int")  # ACCESS EXCLUSIVE until the transaction ends
        started = time.monotonic()
        assert checkers.schema_consistent(sync_conn) == {"public.kept"}
        waited = time.monotonic() - started
        with pytest.raises(psycopg.errors.LockNotAvailable):
            probe.execute("LOCK TABLE kept IN ACCESS SHARE MODE NOWAIT")
        ddl.rollback()
    assert waited >= checkers.HOLD_SECONDS, "it tried to hold the tables first"
    assert sync_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
