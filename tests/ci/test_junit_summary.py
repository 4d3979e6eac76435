"""junit-summary judges real JUnit reports: it fails on tests that must pass, reports the rest, and sees a broken run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pggit_chaos.measure import junit
from pggit_chaos.measure.progression import Progression

from tests import forked_pytest

PROGRAM = Path(sys.executable).with_name("pggit-chaos")
TESTS = '''
import pytest

@pytest.mark.load
def test_load_only_fails():
    assert False, "load broke"

@pytest.mark.load
@pytest.mark.resource
def test_load_and_resource_fails():
    assert False, "resource broke"

@pytest.mark.resource
def test_resource_passes():
    pass

@pytest.mark.load
@pytest.mark.xfail(reason="a known bug")
def test_load_known_bug_is_fixed():
    pass

@pytest.mark.resource
def test_skipped():
    pytest.skip("not here")
'''


def _run_pytest(tmp_path: Path, body: str, *args: str) -> tuple[Path, int]:
    """A real pytest session in tmp_path with the plugin loaded; returns its JUnit file and exit status."""
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(body))
    (tmp_path / "pytest.ini").write_text("[pytest]\nxfail_strict = true\nmarkers =\n    load: l\n    resource: r\n")
    xml = tmp_path / "junit" / "sample.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = forked_pytest.run([sys.executable, "-m", "pytest", "-p", "pggit_chaos.measure.junit", "-p", "no:xdist",
                             "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
                             f"--junitxml={xml}", *args, str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return xml, result.returncode


@pytest.fixture
def load_may_fail(tmp_path) -> Progression:
    path = tmp_path / "progression.json"
    path.write_text(json.dumps({"can_fail": ["load"]}))
    return Progression.load(path)


def test_the_report_carries_each_tests_markers_and_the_status(tmp_path):
    xml, status = _run_pytest(tmp_path, TESTS)
    assert status == 1 and Path(f"{xml}.status").read_text() == "1\n"
    cases = {c.test.rsplit("::", 1)[-1]: c for c in junit.read_report(xml)}
    assert cases["test_load_and_resource_fails"].markers == {"load", "resource"}
    assert {n: c.outcome for n, c in cases.items()} == {
        "test_load_only_fails": "failed", "test_load_and_resource_fails": "failed", "test_resource_passes": "passed",
        "test_load_known_bug_is_fixed": "xpassed", "test_skipped": "skipped"}


def test_only_tests_that_must_pass_block(tmp_path, load_may_fail):
    xml, _ = _run_pytest(tmp_path, TESTS)
    verdict = junit.judge([xml], load_may_fail)
    assert [c.test.rsplit("::", 1)[-1] for c in verdict.must_pass_failures] == ["test_load_and_resource_fails"]
    assert [c.test.rsplit("::", 1)[-1] for c in verdict.may_fail_failures] == ["test_load_only_fails"]
    assert [c.test.rsplit("::", 1)[-1] for c in verdict.may_fail_xpassed] == ["test_load_known_bug_is_fixed"]
    assert not verdict.ok


def test_may_fail_failures_and_xpasses_are_reported_but_do_not_block(tmp_path, load_may_fail):
    body = TESTS.replace('assert False, "resource broke"', "pass")
    xml, _ = _run_pytest(tmp_path, body)
    summary = tmp_path / "summary.md"
    result = subprocess.run([str(PROGRAM), "junit-summary", str(xml), "--summary", str(summary),
                             "--progression", str(tmp_path / "progression.json"), "--merged", str(tmp_path / "m.xml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 2 and any("passed although marked xfail" in w for w in warnings)
    assert "| sample | 2 | 1 | 0 | 1 | 1 | 0 |" in summary.read_text()
    assert len(junit.read_report(tmp_path / "m.xml")) == 5


def test_a_failure_that_must_pass_fails_the_command_with_an_error_annotation(tmp_path, load_may_fail):
    xml, _ = _run_pytest(tmp_path, TESTS)
    result = subprocess.run([str(PROGRAM), "junit-summary", str(xml), "--summary", str(tmp_path / "s.md"),
                             "--progression", str(tmp_path / "progression.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    (error,) = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert "test_load_and_resource_fails failed (must pass)" in error and "resource broke" in error


def test_a_broken_run_blocks_even_without_a_failing_test(tmp_path, load_may_fail):
    xml, status = _run_pytest(tmp_path, TESTS, "-m", "load and not load")
    assert status == 5
    assert any("status 5 (no tests collected)" in p for p in junit.judge([xml], load_may_fail).blocking)
    missing = junit.judge([tmp_path / "never-written.xml"], load_may_fail)
    assert not missing.ok and "no such report" in missing.blocking[0]
