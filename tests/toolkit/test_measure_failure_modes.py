"""The failure-mode collector recognises faults in a test's code and in the helpers and fixtures it uses."""

from __future__ import annotations

from pggit_chaos.measure.metrics.failure_modes import FAULTS, _ModuleSource, faults_in

MODULE = '''
import pytest
from hypothesis import given, strategies as st

LIMIT = 1600


def helper(cluster):
    cluster.crash()


def unused_helper(conn):
    conn.execute("SET work_mem = '64kB'")


@pytest.fixture
def crashed(pg_cluster):
    helper(pg_cluster)
    yield


@given(n=st.integers(1, LIMIT))
def test_uses_the_fixture(crashed, n):
    pass
'''


def test_every_fault_has_a_pattern_and_a_description():
    for name, (pattern, description) in FAULTS.items():
        assert pattern and description.strip(), name


def test_a_fault_with_several_patterns_needs_them_all():
    assert "failing migration" not in faults_in("client.apply_migration(conn, 'v2', sql)")
    assert "failing migration" in faults_in(
        "with pytest.raises(psycopg.errors.SyntaxError):\n    client.apply_migration(conn, 'v2', 'BROKEN')")


def test_a_tests_source_follows_its_fixtures_and_helpers_but_not_the_rest(tmp_path):
    path = tmp_path / "test_module.py"
    path.write_text(MODULE)
    source = _ModuleSource(path).source_of(["test_uses_the_fixture", "crashed"])
    assert "@given" in source, "decorators belong to the test"
    assert "cluster.crash()" in source and "LIMIT = 1600" in source
    assert "work_mem" not in source
    assert faults_in(source) == ["server crash", "input at a limit", "generated inputs"]
