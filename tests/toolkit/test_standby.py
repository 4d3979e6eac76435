"""The streaming standby of a throwaway cluster (server/standby.py): made, promoted, removed, swept, refused; its stalled link healed before it reconnects."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from pggit_chaos import nemesis, paths, server
from pggit_chaos.server import processes

from tests import forked_pytest

pytestmark = [pytest.mark.needs_control]

KILLED_OWNER = textwrap.dedent("""
    import time
    from pggit_chaos import paths, server
    pair = server.start_pair(server.find_install())
    print(pair.primary.root, pair.primary.postmaster_pid, pair.standby.postmaster_pid,
          server.sysv_segment_id(pair.standby.datadir), flush=True)
    time.sleep(300)
""")


@pytest.fixture
def install(pg_server):
    if not pg_server.can_control:
        pytest.skip("an existing server (--dsn) has no binaries of this run")
    return pg_server.install


def _segment_exists(shmid: int) -> bool:
    rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return any(int(row.split()[1]) == shmid for row in rows)


def test_a_standby_streams_is_promoted_and_is_removed_with_its_primary(install, cluster_base):
    pair = server.start_pair(install)
    try:
        assert pair.primary.root.parent == cluster_base
        assert pair.standby.root.parent == pair.primary.root and pair.standby.in_recovery()
        with pair.primary.connect() as conn:
            assert conn.execute("SELECT slot_type, active FROM pg_replication_slots WHERE slot_name = %s",
                                (pair.standby.slot,)).fetchone() == ("physical", True)
            conn.execute("CREATE TABLE replicated (a int)")
        pair.standby.wait_streaming()
        with pair.standby.connect() as conn:
            assert conn.execute("SELECT to_regclass('replicated') IS NOT NULL").fetchone()[0]
        pair.fail_over()
        assert not pair.primary.is_running() and not pair.standby.in_recovery()
        with psycopg.connect(pair.dsn(), autocommit=True) as conn:
            assert conn.info.port == pair.standby.port
            conn.execute("INSERT INTO replicated VALUES (1)")
        standby_pid = pair.standby.postmaster_pid
    finally:
        pair.destroy()
    assert processes.wait_gone([standby_pid], 10) and not pair.primary.root.exists()


def test_a_killed_runs_standby_is_stopped_and_removed_by_the_next_sweep(install, cluster_base):
    owner = subprocess.Popen([sys.executable, "-c", KILLED_OWNER], stdout=subprocess.PIPE, text=True)
    try:
        root, primary, standby, shmid = owner.stdout.readline().split()
    finally:
        owner.kill()  # SIGKILL: no teardown runs
        owner.wait()
    assert server.pid_alive(int(standby)), "the killed owner's standby outlives it, as a leak would"

    removed = server.remove_stale_directories()

    assert Path(root) in removed and not Path(root).exists()
    assert server.wait_gone([int(primary), int(standby)], 10), "a server of the killed run survived the sweep"
    deadline = time.monotonic() + 10
    while _segment_exists(int(shmid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _segment_exists(int(shmid)), f"the standby's System V segment {shmid} survived the sweep"


def test_binaries_without_pg_basebackup_are_refused_naming_the_directory(install, tmp_path, cluster_base):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for binary in install.bindir.iterdir():
        if binary.name != "pg_basebackup":
            (bindir / binary.name).symlink_to(binary)
    lacking = dataclasses.replace(install, bindir=bindir)
    with pytest.raises(server.BinariesNotFound, match=f"pg_basebackup is missing from {bindir}"):
        server.start_pair(lacking)
    # A base of the test's own: the shared one holds other workers' clusters, coming and going. The test
    # above shows a pair's clusters do go there.
    assert list(cluster_base.iterdir()) == [], "a cluster was started anyway"


def test_a_failover_test_skips_saying_why_where_the_binaries_lack_pg_basebackup(install, tmp_path):
    """End to end: --pg-config names an installation without pg_basebackup; standby_pair skips, naming it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for binary in install.bindir.iterdir():
        if binary.name != "pg_basebackup":
            (bindir / binary.name).symlink_to(binary)
    pg_config = tmp_path / "pg_config"
    pg_config.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(
        f"'{value}'" for value in (bindir, install.sharedir, install.pkglibdir, install.libdir,
                                   f"PostgreSQL {install.version}")) + "\n")
    pg_config.chmod(0o755)
    (tmp_path / "test_x.py").write_text("def test_x(standby_pair):\n    raise AssertionError('ran')\n")
    result = forked_pytest.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_x.py"), "-rs", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), "--pg-config", str(pg_config)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(paths.REPO)}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"pg_basebackup is missing from {bindir}" in result.stdout and "1 skipped" in result.stdout, result.stdout


def test_a_standby_name_the_sweep_would_not_find_is_refused_naming_it(install):
    with pytest.raises(ValueError, match="'replica'"):
        server.Standby(install=install, primary=None, name="replica").create()


def test_a_link_opened_as_a_replication_stall_ends_gets_through(db_connection_string):
    """The standby reconnects the moment its stalled link is reset: that new link must not be swallowed too
    (its startup packet lost, it would hang until the primary's authentication_timeout, 60 s). The check
    connects through the proxy right after the reset, as the standby does, and must get an answer."""
    with nemesis.FaultyProxy.for_dsn(db_connection_string) as link:
        reset_all, answers = link.reset_all, []

        def reset_then_reconnect() -> None:
            reset_all()
            with psycopg.connect(link.dsn(db_connection_string), connect_timeout=3) as conn:
                answers.append(conn.execute("SELECT 1").fetchone()[0])

        link.reset_all = reset_then_reconnect
        with psycopg.connect(link.dsn(db_connection_string), autocommit=True) as streaming:
            with nemesis.replication_stalled(SimpleNamespace(link=link)):
                pass
            with pytest.raises(psycopg.OperationalError):  # positive control: the stalled link really was reset
                streaming.execute("SELECT 1")
    assert answers == [1]
