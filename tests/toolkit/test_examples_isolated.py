"""Each Hypothesis example gets a database of its own, so a failure shrinks to its minimal example.

A property whose examples share one connection poisons the next example
when one fails mid-transaction (InFailedSqlTransaction), and Hypothesis
reports a flaky failure instead of a minimal example; the plugin's profiles
therefore keep the function_scoped_fixture health check on. With
``fresh_connection`` the same property shrinks to the smallest failing
input and prints the blob that replays it. Both run for real, in a pytest
of their own that starts its own PostgreSQL.
"""

from __future__ import annotations

import os
import sys

from tests import forked_pytest

PROPERTIES = '''
from hypothesis import given, strategies as st


@given(n=st.integers(0, 1000))
def test_fails_mid_transaction_in_a_database_of_its_own(fresh_connection, n):
    with fresh_connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
        conn.execute("INSERT INTO t VALUES (%s)", (n,))
        if n > 10:
            conn.execute("SELECT 1 / 0")


@given(n=st.integers(0, 1000))
def test_fails_mid_transaction_on_a_shared_connection(sync_conn, n):
    sync_conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
    if n > 10:
        sync_conn.execute("SELECT 1 / 0")
'''


def _run(tmp_path, *names: str) -> str:
    (tmp_path / "test_properties.py").write_text(PROPERTIES)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "gate"}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = forked_pytest.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-c", os.devnull,
         "--rootdir", str(tmp_path), "test_properties.py", *(arg for name in names for arg in ("-k", name))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    return done.stdout + done.stderr


def test_a_failure_mid_transaction_shrinks_to_its_minimal_example_and_prints_the_blob(tmp_path):
    output = _run(tmp_path, "in_a_database_of_its_own")
    assert "1 failed" in output, output
    assert "DivisionByZero" in output, output
    assert "n=11," in output, output  # the smallest n that fails
    assert "@reproduce_failure(" in output, output
    assert "InFailedSqlTransaction" not in output and "Flaky" not in output, output


def test_a_property_sharing_a_per_test_connection_is_stopped_by_the_health_check(tmp_path):
    output = _run(tmp_path, "on_a_shared_connection")
    assert "1 failed" in output, output
    assert "uses a function-scoped fixture 'sync_conn'" in output, output
    assert "FailedHealthCheck" in output, output
