"""The harness never harms what it did not create: on a shared machine, and on someone else's server.

Each attack or accident is played for real (planted directories, unrelated
processes and shared memory, other accounts, a second run from the same pid),
next to a positive control showing the guarded action still works on what
the harness did create.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from pggit_chaos import nemesis, paths, server
from pggit_chaos.server import janitor
from psycopg import sql

from tests import forked_pytest

REPO = paths.REPO
# An account nobody on this machine uses: not the run's, not the server's.
STRANGER_UID = 54321
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another account needs root")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _segment_exists(shmid: int) -> bool:
    rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return any(int(row.split()[1]) == shmid for row in rows)


@pytest.fixture
def unrelated_segment():
    """A System V shared memory segment that belongs to no cluster (as another program's would)."""
    shmid = _libc().shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    yield shmid
    _libc().shmctl(shmid, IPC_RMID, None)


@pytest.fixture
def unrelated_process():
    """A live process that has nothing to do with PostgreSQL."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _plant(base: Path, postmaster_pid: int, shmid: int) -> Path:
    """A cluster directory as a dead run would leave it, but naming someone else's process and segment."""
    planted = base / f"{server.TEMP_PREFIX}planted{uuid.uuid4().hex[:8]}"
    (planted / "data").mkdir(parents=True)
    (planted / "owner.pid").write_text(str(_dead_pid()))
    (planted / "data" / "postmaster.pid").write_text(
        f"{postmaster_pid}\n{planted / 'data'}\n1700000000\n5432\n{planted}\n127.0.0.1\n"
        f"  5432001  {shmid}\nready   \n")
    return planted


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


# ---------------------------------------------------------------------------
# 1. The stale-cluster sweep touches only what is provably a dead run's own
# ---------------------------------------------------------------------------


def test_the_sweep_spares_a_live_process_and_a_segment_named_in_a_planted_directory(
        tmp_path, monkeypatch, unrelated_process, unrelated_segment):
    monkeypatch.setenv("PGGIT_CLUSTER_DIR", str(tmp_path))
    planted = _plant(tmp_path, unrelated_process.pid, unrelated_segment)

    server.remove_stale_directories()

    assert _alive(unrelated_process), "the sweep killed a process that is not a cluster's postmaster"
    assert _segment_exists(unrelated_segment), "the sweep freed a segment that is not a cluster's"
    assert not planted.exists(), "a stale directory of the run's own account is still removed"


@needs_root
def test_the_sweep_leaves_a_directory_of_another_account_untouched(
        tmp_path, monkeypatch, unrelated_process, unrelated_segment):
    monkeypatch.setenv("PGGIT_CLUSTER_DIR", str(tmp_path))
    planted = _plant(tmp_path, unrelated_process.pid, unrelated_segment)
    for path in (planted, *planted.rglob("*")):
        os.lchown(path, STRANGER_UID, STRANGER_UID)

    server.remove_stale_directories()

    assert planted.exists() and (planted / "data" / "postmaster.pid").exists()
    assert _alive(unrelated_process)
    assert _segment_exists(unrelated_segment)


KILLED_OWNER = textwrap.dedent("""
    import sys, time
    from pggit_chaos import server
    cluster = server.start_cluster(server.find_install())
    print(cluster.root, cluster.postmaster_pid, server.sysv_segment_id(cluster.datadir), flush=True)
    time.sleep(300)
""")


def test_the_sweep_still_removes_a_killed_runs_cluster(cluster_base):
    """Positive control: a real cluster whose owner was SIGKILLed is stopped, freed and removed."""
    owner = subprocess.Popen([sys.executable, "-c", KILLED_OWNER], stdout=subprocess.PIPE, text=True)
    try:
        root, postmaster, shmid = owner.stdout.readline().split()
    finally:
        owner.kill()
        owner.wait()
    assert server.pid_alive(int(postmaster)), "the killed owner's server outlives it, as a leak would"

    removed = server.remove_stale_directories()

    assert Path(root) in removed and not Path(root).exists()
    assert server.wait_gone([int(postmaster)], 10)
    deadline = time.monotonic() + 10
    while _segment_exists(int(shmid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _segment_exists(int(shmid))


def test_a_running_clusters_directory_is_never_swept(pg_server):
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) has no cluster directory")
    assert pg_server.root not in server.remove_stale_directories()
    assert pg_server.root.exists() and pg_server.is_running()


# ---------------------------------------------------------------------------
# 2. Only the run can log in to its throwaway cluster
# ---------------------------------------------------------------------------


def _without_credentials(dsn: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    for secret in ("password", "passfile", "require_auth"):
        params.pop(secret, None)
    return psycopg.conninfo.make_conninfo(**params, passfile=os.devnull)


def test_a_connection_without_the_runs_password_is_refused(pg_server, monkeypatch):
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) has its own authentication")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(_without_credentials(pg_server.dsn()), connect_timeout=5)
    with psycopg.connect(pg_server.dsn(), connect_timeout=5) as conn:  # positive control
        assert conn.execute("SELECT current_user").fetchone()[0] == server.SUPERUSER


@pytest.mark.needs_control
@pytest.mark.parametrize("rounds", [1, 4096])
def test_a_verifier_made_here_lets_in_its_password_and_no_other(pg_server, rounds):
    """The run's own verifiers (1 round on its throwaway servers, PostgreSQL's 4096 elsewhere) are real SCRAM."""
    name = f"verifier_{rounds}_{uuid.uuid4().hex[:8]}"
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(server.scram_verifier("right horse", rounds))))
        try:
            stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()[0]
            assert stored.startswith(f"SCRAM-SHA-256${rounds}:") and "right horse" not in stored
            dsn = _without_credentials(pg_server.dsn(user=name))
            with psycopg.connect(dsn, password="right horse", connect_timeout=5) as conn:
                assert conn.execute("SELECT current_user").fetchone()[0] == name
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(dsn, password="wrong horse", connect_timeout=5)
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.xdist_group("shared-server")  # one worker starts shared_server once for both
def test_roles_get_one_round_on_the_runs_server_and_postgresqls_4096_on_an_existing_one(shared_server):
    # A DSN that carries its password: roles an existing server's run makes log in with it.
    existing = server.ExistingServer(shared_server.dsn(password=shared_server.password))
    made = {shared_server.create_role(): 1, existing.create_role(): 4096}
    try:
        with shared_server.connect() as admin:
            for role, rounds in made.items():
                stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()[0]
                assert stored.startswith(f"SCRAM-SHA-256${rounds}:"), (role, stored[:20])
                with psycopg.connect(shared_server.dsn(user=role), connect_timeout=5) as conn:
                    assert conn.execute("SELECT current_user").fetchone()[0] == role
    finally:
        shared_server.drop_role(next(iter(made)))
        existing.drop_role(list(made)[1])
        existing.destroy()


REACH_SOCKET = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"


def _reach_socket_as(uid: int, socket_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/python3", "-c", REACH_SOCKET, str(socket_path)], user=uid, group=uid,
                          extra_groups=[], capture_output=True, text=True, timeout=30, cwd="/")


def test_the_socket_directory_is_private_to_the_servers_account(pg_server):
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) has no socket directory of the run's")
    assert pg_server.socket_dir.stat().st_mode & 0o077 == 0, oct(pg_server.socket_dir.stat().st_mode)
    socket_path = pg_server.socket_dir / f".s.PGSQL.{pg_server.port}"
    if os.geteuid() == 0:
        refused = _reach_socket_as(STRANGER_UID, socket_path)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr, refused
        owner = pg_server.datadir.stat().st_uid
        assert _reach_socket_as(owner, socket_path).returncode == 0  # positive control: the server's account
    else:
        import socket
        socket.socket(socket.AF_UNIX).connect(str(socket_path))  # positive control: the run's account


# ---------------------------------------------------------------------------
# 3. On an existing server, a run drops only what it created
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server():
    """A server started outside the runs under test, as a team's shared PostgreSQL would be."""
    cluster = server.start_cluster(server.find_install())
    yield cluster
    cluster.destroy()


@pytest.mark.xdist_group("shared-server")  # one worker starts shared_server once for both
def test_two_runs_with_the_same_pid_keep_their_templates_and_sessions(shared_server):
    """In containers PIDs coincide: two jobs aimed at one server are two runs in one pid here."""
    first, second = server.ExistingServer(shared_server.dsn()), server.ExistingServer(shared_server.dsn())
    first_template = janitor.create_template(first)
    session = psycopg.connect(first.dsn(first_template), autocommit=True)
    try:
        second_template = janitor.create_template(second)
        assert second_template != first_template
        assert session.execute("SELECT 1").fetchone()[0] == 1, "the second run ended the first run's session"
        janitor.drop_template(second, second_template)
        assert session.execute("SELECT current_database()").fetchone()[0] == first_template
    finally:
        session.close()
        janitor.drop_template(first, first_template)
        first.destroy()
        second.destroy()
    with shared_server.connect() as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname IN (%s, %s)",
                            (first_template, second_template)).fetchone()[0]
    assert left == 0


def test_two_runs_with_the_same_pid_name_their_databases_apart(shared_server):
    first, second = server.ExistingServer(shared_server.dsn()), server.ExistingServer(shared_server.dsn())
    try:
        assert first.next_database_name() != second.next_database_name()
    finally:
        first.destroy()
        second.destroy()


def test_a_run_refuses_to_drop_a_database_it_did_not_create(shared_server):
    first, second = server.ExistingServer(shared_server.dsn()), server.ExistingServer(shared_server.dsn())
    theirs = first.create_database(first.next_database_name())
    try:
        with pytest.raises(server.ForeignObjectError, match=theirs):
            second.drop_database(theirs)
        with shared_server.connect() as conn:
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (theirs,)).fetchone()
        first.drop_database(theirs)  # positive control: the run that made it drops it
        with shared_server.connect() as conn:
            assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (theirs,)).fetchone()
    finally:
        first.destroy()
        second.destroy()


# ---------------------------------------------------------------------------
# 4. A run ended by a signal leaves no server behind: tests/toolkit/test_pgcluster.py
#    (test_no_server_process_or_directory_survives_the_run, with SIGTERM and SIGHUP, with and without xdist)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# 5. --dsn says what it does, refuses what it cannot do safely, and can clean up after a killed run
# ---------------------------------------------------------------------------


def _pytest(tmp_path: Path, test_source: str, *args: str, **environ: str) -> subprocess.CompletedProcess:
    """A pytest run of ``test_source`` in a subprocess, the run's own settings kept out of it."""
    (tmp_path / "test_inner.py").write_text(test_source)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PGGIT_", "PYTEST_XDIST")) and k not in ("PG_CONFIG", "PGPASSWORD")}
    env.update(PYTHONPATH=str(REPO), **environ)
    return forked_pytest.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_inner.py"), "-q", "-rs", "-p", "no:cacheprovider",
         "-p", "pggit_chaos.plugin.server_fixtures", "-c", os.devnull, "--rootdir", str(tmp_path), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


PLAIN_TEST = "def test_plain(pg_server):\n    assert pg_server.version\n"


def test_the_report_header_names_the_existing_server_but_never_the_password(shared_server, tmp_path):
    dsn = shared_server.dsn(password=shared_server.password)  # a DSN that carries the password itself
    result = _pytest(tmp_path, PLAIN_TEST, "-v", PGGIT_TEST_DSN=dsn)  # -q -v: the header shows
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (f"pggit server: existing server (PGGIT_TEST_DSN) host=127.0.0.1 port={shared_server.port} "
            f"dbname=postgres user=postgres, PostgreSQL {shared_server.version}, role a superuser") in output
    assert shared_server.password not in output


SUPERUSER_TESTS = '''
import pytest


def test_without_pggit(make_database):
    make_database(pggit=False)


def test_with_pggit(db_connection_string):
    pass


@pytest.mark.needs_superuser
def test_marked():
    pass
'''


@pytest.fixture
def ordinary_role(shared_server):
    """A login role that may create databases but is not a superuser, as a CI account often is."""
    name = f"ci_{uuid.uuid4().hex[:8]}"
    with shared_server.connect() as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN CREATEDB PASSWORD '{shared_server.password}'")
    yield name
    with shared_server.connect() as conn:
        conn.execute(f"DROP ROLE {name}")


def test_tests_that_need_a_superuser_skip_saying_why_when_the_role_is_not_one(shared_server, ordinary_role,
                                                                               tmp_path):
    as_ordinary = _pytest(tmp_path, SUPERUSER_TESTS, "--dsn", shared_server.dsn(user=ordinary_role))
    output = as_ordinary.stdout + as_ordinary.stderr
    assert as_ordinary.returncode == 0, output
    assert "1 passed, 2 skipped" in output
    assert f"needs a superuser (pggit's control file says superuser = true); the role '{ordinary_role}' " \
           "of --dsn is not one" in output
    as_superuser = _pytest(tmp_path, SUPERUSER_TESTS, "--dsn", shared_server.dsn())  # positive control
    assert "3 passed" in as_superuser.stdout, as_superuser.stdout + as_superuser.stderr


def _databases(cluster) -> set[str]:
    with cluster.connect() as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _roles(cluster) -> set[str]:
    with cluster.connect() as conn:
        return {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}


def _sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("pggit-chaos")), "sweep", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_sweep_drops_only_what_runs_that_are_over_created(shared_server):
    killed = server.ExistingServer(shared_server.dsn())  # a run interrupted before its teardown
    killed_db = killed.create_database(killed.next_database_name())
    killed_role = killed.create_role()
    in_use_db = killed.create_database(killed.next_database_name())
    killed.destroy()  # its anchor session goes, as the process's would; what it made stays
    live = server.ExistingServer(shared_server.dsn())  # a run still going
    live_db = live.create_database(live.next_database_name())
    bystander = f"theirs_{uuid.uuid4().hex[:8]}"  # someone else's, with a look-alike name
    with shared_server.connect() as conn:
        conn.execute(f"CREATE DATABASE {bystander}")
    user = psycopg.connect(shared_server.dsn(in_use_db), autocommit=True)  # somebody works in there
    try:
        dry = _sweep("--dsn", shared_server.dsn(), "--dry-run")
        assert f"would drop database {killed_db}" in dry.stdout and killed_db in _databases(shared_server)

        result = _sweep("--dsn", shared_server.dsn())
        assert result.returncode == 0, result.stderr
        assert f"dropped database {killed_db}" in result.stdout
        assert f"dropped role {killed_role}" in result.stdout
        assert f"kept database {live_db}: its run {live.run_id} is still connected" in result.stdout
        assert f"kept database {in_use_db}: 1 session(s) connected" in result.stdout
        assert bystander not in result.stdout
        assert killed_db not in _databases(shared_server) and killed_role not in _roles(shared_server)
        assert {live_db, in_use_db, bystander} <= _databases(shared_server)
    finally:
        user.close()
        live.drop_database(live_db)
        live.destroy()
        with shared_server.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {bystander}")
            conn.execute(f'DROP DATABASE IF EXISTS "{in_use_db}"')


def test_the_sweep_names_an_unreachable_server_in_one_line_without_the_password():
    result = _sweep("--dsn", f"host=127.0.0.1 port={server.free_port()} user=postgres password=hunter2 "
                             "connect_timeout=5")
    assert result.returncode == 1
    assert result.stderr.startswith("pggit-chaos sweep: --dsn host=127.0.0.1 port=")
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr


def test_an_existing_server_ends_only_sessions_of_its_own_databases(shared_server):
    run = server.ExistingServer(shared_server.dsn())
    own = run.create_database(run.next_database_name())
    mine = psycopg.connect(shared_server.dsn(own), autocommit=True)
    theirs = psycopg.connect(shared_server.dsn(), autocommit=True)
    try:
        with pytest.raises(server.ServerNotControllable):
            run.terminate_backends()
        with pytest.raises(server.ServerNotControllable):
            run.terminate_backends(dbname="postgres")
        assert run.terminate_backends(dbname=own) == 1  # positive control
        with pytest.raises(psycopg.OperationalError):
            mine.execute("SELECT 1")
        assert theirs.execute("SELECT 1").fetchone()[0] == 1
    finally:
        mine.close()
        theirs.close()
        run.drop_database(own)
        run.destroy()


def test_roles_are_marked_as_the_runs_and_only_the_runs_own_are_dropped(shared_server):
    first, second = server.ExistingServer(shared_server.dsn()), server.ExistingServer(shared_server.dsn())
    role = first.create_role()
    try:
        with shared_server.connect() as conn:
            mark = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                                (role,)).fetchone()[0]
        assert mark.startswith(f"created by pggit_chaos run {first.run_id} (pid {os.getpid()} on ")
        with pytest.raises(server.ForeignObjectError, match=role):
            second.drop_role(role)
        assert role in _roles(shared_server)
        first.drop_role(role)  # positive control
        assert role not in _roles(shared_server)
    finally:
        first.destroy()
        second.destroy()


def _checkpoints_requested(cluster) -> int:
    return cluster.logfile.read_text(errors="replace").count("checkpoint starting: immediate force wait")


def test_an_existing_server_is_not_made_to_checkpoint_for_every_database(shared_server):
    run = server.ExistingServer(shared_server.dsn())
    template = janitor.create_template(run)
    try:
        before = _checkpoints_requested(shared_server)
        clone = run.create_database(run.next_database_name(), template)
        assert _checkpoints_requested(shared_server) == before
        run.drop_database(clone)  # (DROP DATABASE checkpoints whatever the strategy)
        # Positive control: the run's own server clones with FILE_COPY, which checkpoints.
        before = _checkpoints_requested(shared_server)
        own = shared_server.create_database(shared_server.next_database_name(), template)
        assert _checkpoints_requested(shared_server) > before
        shared_server.drop_database(own)
    finally:
        janitor.drop_template(run, template)
        run.destroy()


def test_the_fault_proxy_keeps_tls_towards_a_remote_server():
    with nemesis.FaultyProxy("db.example.invalid", 5432) as remote:  # nothing is sent: no client connects
        params = psycopg.conninfo.conninfo_to_dict(remote.dsn("host=db.example.invalid password=x sslmode=require"))
    assert params["sslmode"] == "require" and params["password"] == "x" and params["host"] == "127.0.0.1"
    with nemesis.FaultyProxy("127.0.0.1", 5432) as local:  # positive control: a local server's link is readable
        assert psycopg.conninfo.conninfo_to_dict(local.dsn("host=127.0.0.1 password=x"))["sslmode"] == "disable"


# ---------------------------------------------------------------------------
# 7. A bad option stops the run with one message naming it
# ---------------------------------------------------------------------------


def test_an_unreachable_dsn_stops_the_run_once_naming_dsn_without_the_password(tmp_path):
    port = server.free_port()
    result = _pytest(tmp_path, PLAIN_TEST * 1 + PLAIN_TEST.replace("test_plain", "test_other"),
                     "--dsn", f"host=127.0.0.1 port={port} user=postgres password=hunter2 connect_timeout=5")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    message = f"--dsn host=127.0.0.1 port={port} user=postgres: cannot connect: "
    # Once, at the start (pytest shows it on each stream), not once per test.
    assert result.stderr.count(message) == 1 and result.stdout.count(message) <= 1, output
    assert "hunter2" not in output and "Traceback" not in output


def test_a_pggit_sql_that_does_not_install_names_the_file_in_one_line(tmp_path):
    script = tmp_path / "not-sql.sql"
    script.write_text("this is not SQL\n")
    result = _pytest(tmp_path, "def test_x(db_connection_string):\n    pass\n", "--pggit-sql", str(script))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"--pggit-sql {script}: CREATE EXTENSION pggit failed on PostgreSQL " in output
    assert "syntax error" in output and "Traceback" not in output and "pggit_chaos/" not in output


def test_a_hanging_pg_config_is_named_with_the_timeout(tmp_path):
    hanging = tmp_path / "pg_config"
    hanging.write_text("#!/bin/sh\nsleep 300\n")  # a child process keeps the pipe open too
    hanging.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(server.BinariesNotFound) as err:
        server.install_from_pg_config(hanging, timeout=1)
    assert str(err.value).startswith(f"pg_config '{hanging}' did not answer within 1 s (timed out)")
    assert time.monotonic() - started < 60, "the hung pg_config and its child were not killed"
    real = server.find_install()  # positive control: a working pg_config answers within the same limit
    assert server.install_from_pg_config(real.bindir / "pg_config", origin=real.origin, timeout=1) == real
