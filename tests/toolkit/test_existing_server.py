"""--dsn: the suite runs against a server it did not start, and skips what needs control of it."""

from __future__ import annotations

import os
import sys

import pytest
from pggit_chaos import paths
from pggit_chaos import server

from tests import forked_pytest

REPO = paths.REPO
# One worker starts the "existing" server once for all (the module fixture).
pytestmark = pytest.mark.xdist_group("existing-server")


@pytest.fixture(scope="module")
def existing_server():
    """A server started outside the test run under test (pggit's files installed, as --dsn requires)."""
    cluster = server.start_cluster(server.find_install())
    yield cluster
    cluster.destroy()


@pytest.mark.slow
def test_a_run_with_dsn_uses_that_server_and_skips_tests_that_need_control(existing_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    result = forked_pytest.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rs",
         "--dsn", existing_server.dsn(),
         "tests/toolkit/test_pgcluster.py::test_crash_kills_every_server_process_and_restart_recovers_committed_rows",
         "tests/toolkit/test_pgcluster.py::test_each_test_database_is_fresh_and_private",
         "tests/toolkit/test_pgcluster.py::test_terminate_backends_really_cuts_the_connection",
         "tests/toolkit/test_toolkit_fixtures.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 skipped" in output
    assert "needs a server this test run started" in output
    # The run used the existing server: its databases were made there, and dropped again.
    with existing_server.connect() as conn:
        leftovers = conn.execute(
            "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')"
        ).fetchall()
    assert leftovers == []
    assert "CREATE DATABASE" not in existing_server.log_tail()  # nothing went wrong in its log


# What a test on an existing server meets when it reaches for a control without the needs_control marker.
INNER_TEST = '''
import psycopg
import pytest


@pytest.fixture
def reconfigured(pg_cluster):
    with pg_cluster.configured(work_mem="1MB"):
        yield


def test_crash_in_the_test_body(pg_cluster):
    pg_cluster.crash()


def test_configured_in_a_fixture(reconfigured):
    pass


def test_databases_still_work(pg_cluster, make_database):
    with psycopg.connect(make_database()) as conn:
        assert conn.execute("SELECT count(*) FROM pggit.branches").fetchone()[0] == 1
'''


@pytest.mark.slow
def test_a_control_asked_of_an_existing_server_skips_the_test_saying_which(existing_server, tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = str(REPO)
    result = forked_pytest.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_inner.py"), "-q", "-rs", "-p", "no:cacheprovider",
         "-p", "pggit_chaos.plugin.server_fixtures", "-c", os.devnull, "--rootdir", str(tmp_path),
         "--dsn", existing_server.dsn()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed, 2 skipped" in output
    for control in ("crash()", "configured()"):
        assert f"{control} needs a server this test run started; --dsn/PGGIT_TEST_DSN points at an existing one" \
            in output
    assert existing_server.is_running(), "the existing server was left alone"


def test_an_existing_server_offers_databases_and_refuses_every_control(existing_server):
    other = server.ExistingServer(existing_server.dsn())
    assert isinstance(other, server.Server) and not other.can_control
    assert other.version == existing_server.version and other.major == existing_server.major
    assert other.setting("port") == str(existing_server.port)
    name = other.next_database_name("existing")
    assert name != other.next_database_name("existing")
    other.create_database(name)
    try:
        with other.connect(name) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name
    finally:
        other.drop_database(name)
    refused = {"start()": other.start, "stop()": other.stop, "restart()": other.restart, "crash()": other.crash,
               "set_config()": lambda: other.set_config(work_mem="1MB"), "reset_config()": other.reset_config,
               "configured()": lambda: other.configured(work_mem="1MB")}
    for control, call in refused.items():
        with pytest.raises(server.ServerNotControllable) as err:
            call()
        assert err.value.control == control
    postmaster = existing_server.postmaster_pid
    other.restore()
    other.destroy()
    assert existing_server.postmaster_pid == postmaster, "restore() and destroy() leave someone else's server alone"
    with_password = server.ExistingServer(existing_server.dsn(password=existing_server.password))
    try:
        assert existing_server.password not in repr(with_password) and "password" not in repr(with_password)
    finally:
        with_password.destroy()
