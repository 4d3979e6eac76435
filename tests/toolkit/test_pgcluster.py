"""The throwaway cluster and its control handle, tested against real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from pggit_chaos import paths
from pggit_chaos import server
from pggit_chaos.server.processes import kill_and_wait

from tests import forked_pytest

REPO = paths.REPO


# ---------------------------------------------------------------------------
# The control handle (pg_cluster)
# ---------------------------------------------------------------------------


@pytest.mark.needs_control
def test_crash_kills_every_server_process_and_restart_recovers_committed_rows(pg_cluster, make_database):
    dsn = make_database(pggit=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE acknowledged (n int)")
        conn.execute("INSERT INTO acknowledged SELECT generate_series(1, 100)")
    postmaster = pg_cluster.postmaster_pid
    backends = server.children_of(postmaster)
    assert backends, "a running server has background processes"

    pg_cluster.crash()

    assert not server.pid_alive(postmaster)
    assert not any(server.pid_alive(p) for p in backends)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)
    pg_cluster.start()
    assert "database system was interrupted" in pg_cluster.logfile.read_text() or \
        "not properly shut down" in pg_cluster.logfile.read_text()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM acknowledged").fetchone()[0] == 100


@pytest.mark.needs_control
def test_databases_are_made_and_dropped_on_one_kept_session_that_a_crash_replaces(pg_cluster):
    before = {pg_cluster.create_database(pg_cluster.next_database_name("kept")) for _ in range(2)}
    with pg_cluster._admin() as admin:
        first = admin.info.backend_pid
    pg_cluster.crash()
    pg_cluster.start()
    after = pg_cluster.create_database(pg_cluster.next_database_name("kept"))
    with pg_cluster._admin() as admin:
        assert admin.info.backend_pid != first, "the session the crash ended was replaced"
    for name in (*before, after):
        pg_cluster.drop_database(name)
    with pg_cluster.connect() as conn:
        assert not {row[0] for row in conn.execute("SELECT datname FROM pg_database")} & {*before, after}


@pytest.mark.needs_control
@pytest.mark.timeout(60)
def test_a_smart_stop_does_not_wait_for_the_kept_session(start_own_cluster):
    own = start_own_cluster()
    own.drop_database(own.create_database(own.next_database_name("kept")))
    started = time.monotonic()
    own.stop("smart", timeout=30)
    assert not own.is_running()
    assert time.monotonic() - started < 30, "the stop timed out and killed the server"


@pytest.mark.needs_control
def test_restart_gives_a_new_postmaster_and_keeps_data(pg_cluster, make_database):
    dsn = make_database(pggit=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 1 AS n")
    before = pg_cluster.postmaster_pid
    pg_cluster.restart()
    assert pg_cluster.postmaster_pid != before
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone()[0] == 1


def test_terminate_backends_really_cuts_the_connection(pg_cluster, make_database):
    dsn = make_database(pggit=False)
    victim = psycopg.connect(dsn, autocommit=True, application_name="victim")
    bystander = psycopg.connect(dsn, autocommit=True, application_name="bystander")
    try:
        # Only in the test's own database: on a shared server (--dsn) other runs may use the same name.
        dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        assert pg_cluster.terminate_backends(dbname=dbname, application_name="victim") == 1
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        assert victim.broken
        assert bystander.execute("SELECT 1").fetchone()[0] == 1
    finally:
        victim.close()
        bystander.close()


@pytest.mark.needs_control
def test_set_config_reloads_or_restarts_as_postgresql_requires(pg_cluster):
    postmaster = pg_cluster.postmaster_pid
    assert pg_cluster.set_config(work_mem="1MB") == "reload"
    assert pg_cluster.setting("work_mem") == "1MB"
    assert pg_cluster.postmaster_pid == postmaster

    assert pg_cluster.set_config(max_connections=25) == "restart"
    assert pg_cluster.setting("max_connections") == "25"
    assert pg_cluster.postmaster_pid != postmaster

    pg_cluster.reset_config()
    assert pg_cluster.setting("work_mem") == "4MB"
    assert pg_cluster.setting("max_connections") == server.BASE_SETTINGS["max_connections"]


@pytest.mark.needs_control
def test_set_config_names_an_unknown_setting(pg_cluster):
    with pytest.raises(ValueError, match="'no_such_setting'"):
        pg_cluster.set_config(no_such_setting="1")


@pytest.mark.needs_control
def test_configured_restores_settings_after_the_block(pg_cluster):
    with pg_cluster.configured(temp_file_limit="1MB", fsync="on"):
        assert pg_cluster.setting("temp_file_limit") == "1MB"
        assert pg_cluster.setting("fsync") == "on"
    assert pg_cluster.setting("temp_file_limit") == "-1"
    assert pg_cluster.setting("fsync") == "off"


def test_each_test_database_is_fresh_and_private(make_database, pg_server):
    first, second = make_database(), make_database()
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("SELECT pggit.create_branch('only-in-first')")
    with psycopg.connect(second) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM pggit.branches")}
    assert names == {"main"}


def test_server_runs_as_an_unprivileged_account(pg_server):
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) belongs to someone else")
    owner = os.stat(pg_server.datadir).st_uid
    if os.geteuid() == 0:
        assert owner != 0, "initdb refuses root, so the server must run as another account"
    else:
        assert owner == os.geteuid()
    proc_uid = int(
        next(line for line in Path(f"/proc/{pg_server.postmaster_pid}/status").read_text().splitlines()
             if line.startswith("Uid:")).split()[1]
    )
    assert proc_uid == owner


def test_cluster_lives_in_a_private_directory_on_a_free_loopback_port(pg_server):
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) belongs to someone else")
    assert pg_server.root.name.startswith(server.TEMP_PREFIX)
    assert pg_server.setting("listen_addresses") == "127.0.0.1"
    assert pg_server.setting("unix_socket_directories") == str(pg_server.socket_dir)
    assert int(pg_server.setting("port")) == pg_server.port


def test_pggit_is_installed_into_the_clusters_own_share_directory(pg_server):
    """The real installation is shared by every run: pggit's files must never land there."""
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) belongs to someone else")
    installed = list((pg_server.root / "install").rglob("pggit.control"))
    assert len(installed) == 1
    control = installed[0]
    assert not control.is_symlink()
    assert control.resolve().is_relative_to(pg_server.root.resolve())
    for directory in control.resolve().relative_to(pg_server.root.resolve()).parents:
        assert not (pg_server.root / directory).is_symlink(), f"{directory} links out of the cluster"
    assert not (pg_server.install.sharedir / "extension" / "pggit.control").exists()


# ---------------------------------------------------------------------------
# Finding binaries
# ---------------------------------------------------------------------------


def test_unknown_version_error_names_the_three_ways_to_provide_binaries():
    with pytest.raises(server.BinariesNotFound) as err:
        server.find_install(pg_version=99)
    message = str(err.value)
    assert "PostgreSQL 99" in message
    for way in ("pip install", "--pg-bindir", "--pg-config", "--dsn"):
        assert way in message


def test_bad_bindir_is_named_in_the_error(tmp_path):
    with pytest.raises(server.BinariesNotFound, match=str(tmp_path)):
        server.find_install(pg_bindir=str(tmp_path))


def test_version_switch_finds_each_shipped_version():
    for install in server.wheel_installs():
        assert server.find_install(pg_version=install.major) == install


# ---------------------------------------------------------------------------
# Nothing left behind: a real pytest run in a subprocess, watched with ps
# ---------------------------------------------------------------------------

INNER_TEST = textwrap.dedent(
    """
    import gc, os, pathlib, time

    import pytest
    from pggit_chaos.server import sysv_segment_id

    @pytest.fixture(autouse=True)
    def teardown_that_waits():
        # With LINGER set, the teardown pauses until the outer test has sent its further signals.
        yield
        if os.environ.get("LINGER"):
            pathlib.Path(os.environ["REPORT"] + ".tearing-down").write_text("")
            deadline = time.monotonic() + 60
            while not pathlib.Path(os.environ["REPORT"] + ".go-on").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def test_inner(pg_server, pg_cluster):
        shmid = sysv_segment_id(pg_server.datadir)
        pathlib.Path(os.environ["REPORT"]).write_text(
            f"{pg_server.root}\\n{pg_server.postmaster_pid}\\n{shmid}\\n")
        mode = os.environ["MODE"]
        if mode == "fail":
            assert False, "failing on purpose"
        if mode == "crash":
            pg_cluster.crash()
            raise RuntimeError("server crashed and test errored")
        if mode == "interrupt":
            pathlib.Path(os.environ["REPORT"] + ".ready").write_text("")
            time.sleep(120)
        if mode == "finalizers":
            # The signal comes while the collector runs finalizers, where Python drops an exception: the run
            # must end all the same, not sleep on deaf to every signal.
            class Finalized:
                def __init__(self):
                    self.cycle = self  # only the collector frees it, and runs its __del__

                def __del__(self):
                    until = time.perf_counter() + 0.002
                    while time.perf_counter() < until:
                        pass

            pathlib.Path(os.environ["REPORT"] + ".ready").write_text("")
            until = time.monotonic() + 3
            while time.monotonic() < until:
                for _ in range(50):
                    Finalized()
                gc.collect()
            time.sleep(30)
            pathlib.Path(os.environ["REPORT"] + ".slept").write_text("")  # the signal was lost
    """
)


def _postgres_processes_under(root: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if root in line and "postgres" in line]


def _inner_run(tmp_path: Path, mode: str, *args: str, linger: bool = False) -> tuple[forked_pytest.PytestProcess, Path]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER_TEST)
    report = tmp_path / f"report-{mode}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "LINGER"))}
    env.update(MODE=mode, REPORT=str(report), PYTHONPATH=str(REPO), **({"LINGER": "1"} if linger else {}))
    proc = forked_pytest.popen(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
         "-p", "pggit_chaos.plugin.server_fixtures", "-c", os.devnull, "--rootdir", str(tmp_path), *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=forked_pytest.signals_as_in_a_terminal,
    )
    return proc, report


def _settled(probe, timeout: float = 10.0):
    """``probe()`` once it is falsy, or its last value after ``timeout`` seconds.

    What a killed server holds goes a moment after it (its children exit later),
    and a concurrent worker's initdb holds segments for a moment too.
    """
    deadline = time.monotonic() + timeout
    while (value := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def _new_shared_memory_segments(before: set[Path]) -> set[Path]:
    """PostgreSQL's POSIX dynamic shared memory segments in /dev/shm that were not there ``before``."""
    return _settled(lambda: set(Path("/dev/shm").glob("PostgreSQL.*")) - before)


def _sysv_segment_exists(shmid: str) -> bool:
    """Whether a System V shared memory segment (a postmaster's, named in postmaster.pid) still exists."""
    return _settled(lambda: any(row.split()[1] == shmid
                                for row in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]))


# How a run ends: (mode of the inner test, signal sent to the pytest process, its own arguments,
# signals sent again while its teardown runs).
ENDINGS = {
    "pass": ("pass", None, (), ()),
    "fail": ("fail", None, (), ()),
    "crash": ("crash", None, (), ()),
    "interrupt": ("interrupt", signal.SIGINT, (), ()),  # what Ctrl-C sends
    "sigterm": ("interrupt", signal.SIGTERM, (), ()),  # what a timeout (the mutation runner's) sends
    "sighup": ("interrupt", signal.SIGHUP, (), ()),  # a closed terminal
    "sigterm-xdist": ("interrupt", signal.SIGTERM, ("-n", "2"), ()),
    "sighup-xdist": ("interrupt", signal.SIGHUP, ("-n", "2"), ()),
    "interrupt-again-in-teardown": ("interrupt", signal.SIGINT, (), (signal.SIGINT, signal.SIGTERM)),
    # The run's exception raised inside a __del__ the collector runs, which Python drops.
    "sigterm-in-finalizers": ("finalizers", signal.SIGTERM, (), ()),
}


def _wait_for(path: Path, proc: forked_pytest.PytestProcess, what: str) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_no_server_process_or_directory_survives_the_run(tmp_path, ending):
    mode, sig, args, again = ENDINGS[ending]
    segments_before = set(Path("/dev/shm").glob("PostgreSQL.*"))
    proc, report = _inner_run(tmp_path, mode, *args, linger=bool(again))
    if sig is not None:
        _wait_for(Path(f"{report}.ready"), proc, "inner run never got going")
        proc.send_signal(sig)  # to the pytest process only (with xdist: the controller, not its workers)
    if again:
        _wait_for(Path(f"{report}.tearing-down"), proc, "inner run never began its teardown")
        for further in again:  # an impatient second Ctrl-C, a timeout's SIGTERM
            proc.send_signal(further)
        Path(f"{report}.go-on").write_text("")
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        # pytest's faulthandler prints every thread's stack on SIGABRT, wherever the run waits.
        proc.send_signal(signal.SIGABRT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate(timeout=30)
        if report.exists():  # the aborted run stopped nothing: its server goes now, its directory at the next sweep
            kill_and_wait([int(report.read_text().split()[1])])
        pytest.fail(f"the inner run was still going 120 s after its {ending}; its output, ending with the "
                    f"stack of every thread (SIGABRT):\n{output}")
    root, postmaster, shmid = report.read_text().split()
    assert server.wait_gone([int(postmaster)], 10), f"the server (pid {postmaster}) survived:\n{output}"
    assert _settled(lambda: Path(root).exists()) is False, f"cluster directory {root} survived:\n{output}"
    expected = {"pass": 0, "fail": 1, "crash": 1, "interrupt": 2, "finalizers": 2}[mode]
    assert proc.returncode == expected, output
    assert not Path(f"{report}.slept").exists(), f"the inner run slept on after its {ending}:\n{output}"
    assert _settled(lambda: _postgres_processes_under(root)) == []
    assert _new_shared_memory_segments(segments_before) == set(), "shared memory segments survived the run"
    assert not _sysv_segment_exists(shmid), f"the server's System V segment {shmid} survived the run"


@pytest.mark.slow
def test_a_killed_run_is_cleaned_up_by_the_next(tmp_path, cluster_base):
    # cluster_base: every cluster other tests start meanwhile sweeps the shared folder, and could sweep this first.
    segments_before = set(Path("/dev/shm").glob("PostgreSQL.*"))
    proc, report = _inner_run(tmp_path, "interrupt")
    deadline = time.monotonic() + 60
    while not Path(str(report) + ".ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no teardown can run
    proc.wait()
    root, postmaster, shmid = report.read_text().split()
    assert Path(root).exists() and Path(root).parent == cluster_base
    removed = server.remove_stale_directories(cluster_base)
    assert Path(root) in removed
    assert not Path(root).exists()
    assert server.wait_gone([int(postmaster)], 10)
    assert _postgres_processes_under(root) == []
    assert _new_shared_memory_segments(segments_before) == set(), "the killed server's shared memory survived"
    assert not _sysv_segment_exists(shmid), f"the killed server's System V segment {shmid} survived"


def test_missing_binaries_stop_the_run_with_one_clear_error(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x(pg_server):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = forked_pytest.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_x.py"), "-q", "-p", "no:cacheprovider",
         "-p", "pggit_chaos.plugin.server_fixtures", "-c", os.devnull, "--rootdir", str(tmp_path), "--pg-version", "99"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "PostgreSQL 99 requested" in output
    assert "--pg-bindir" in output and "--dsn" in output and "pip install" in output
