"""--dsn: the suite runs against a server it did not start, and skips what needs control of it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pggit_chaos import paths
from pggit_chaos.server import cluster as pgcluster

REPO = paths.REPO


@pytest.fixture(scope="module")
def existing_server():
    """A server started outside the test run under test (pggit's files installed, as --dsn requires)."""
    cluster = pgcluster.start_cluster(pgcluster.find_install())
    yield cluster
    cluster.destroy()


@pytest.mark.slow
def test_a_run_with_dsn_uses_that_server_and_skips_tests_that_need_control(existing_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    result = subprocess.run(
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
