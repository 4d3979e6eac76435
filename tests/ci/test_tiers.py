"""The chaos tiers collect only the chaos suite's paths, and lose no chaos test by it.

``make smoke``, ``make full`` and ``make weekly`` pass ``-o testpaths=`` with
the Makefile's ``CHAOS_PATHS`` (the measuring tools' ``suite_run.CHAOS_PATHS``),
so their workers skip importing the toolkit's, the contract's and the
workflows' tests. That is only safe while no test marked ``chaos`` or ``soak``
lives anywhere else.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from pggit_chaos.measure import suite_run

from tests.ci import workflows as wf

# The suite's markers are collected once, on the worker that reads the workflows too.
pytestmark = pytest.mark.xdist_group("collected-suite")

CHAOS_TIERS = ("smoke", "full", "weekly")


def test_the_make_tiers_collect_the_measuring_tools_paths():
    defaults = {target: paths for target, (_, paths) in wf.make_targets().items()}
    assert {tier: defaults[tier] for tier in CHAOS_TIERS} == {tier: tuple(suite_run.CHAOS_PATHS) for tier in CHAOS_TIERS}
    assert defaults["test"] == tuple(suite_run.PGGIT_PATHS) == tuple(suite_run.MAKE_PATHS["test"])
    assert defaults["test-all"] == () and suite_run.MAKE_PATHS["test-all"] is None  # every test path


def test_make_test_holds_every_chaos_and_contract_test_and_test_all_adds_only_the_harnesss_own():
    marks = wf.collected_marks()
    pggit = tuple(f"{path}/" for path in suite_run.PGGIT_PATHS)
    harness = sorted(nodeid for nodeid in marks if not nodeid.startswith(pggit))
    # Positive control: both halves hold tests.
    assert harness and len(harness) < len(marks)
    assert [nodeid for nodeid in harness if {"chaos", "contract", "soak"} & marks[nodeid]] == []
    assert {nodeid.split("/")[0] if nodeid.startswith("tools/") else "/".join(nodeid.split("/")[:2])
            for nodeid in harness} == {"tests/toolkit", "tests/site", "tests/ci", "tools"}


def test_every_chaos_and_soak_test_lives_in_the_chaos_paths():
    marks = wf.collected_marks()
    chaos = {nodeid for nodeid, names in marks.items() if {"chaos", "soak"} & names}
    prefixes = tuple(f"{path}/" for path in suite_run.CHAOS_PATHS)
    # Positive control: each path holds chaos tests, and the suite holds tests outside them that this would see.
    assert all(any(nodeid.startswith(prefix) for nodeid in chaos) for prefix in prefixes)
    assert any(not nodeid.startswith(prefixes) for nodeid in marks)
    assert sorted(nodeid for nodeid in chaos if not nodeid.startswith(prefixes)) == []


def test_a_path_given_to_a_chaos_tier_narrows_it():
    """``make smoke PYTEST_ARGS=tests/chaos/test_partitions.py`` runs that file alone, not the chaos paths too."""
    command = suite_run.make_command("smoke", "0", 60, ["--collect-only", "tests/chaos/test_partitions.py"])
    assert command[command.index("-o") + 1] == f"testpaths={' '.join(suite_run.CHAOS_PATHS)}"
    assert "-o" not in suite_run.make_command("test-all", "0", 60)
    test = suite_run.make_command("test", "0", 60)
    assert test[test.index("-o") + 1] == f"testpaths={' '.join(suite_run.PGGIT_PATHS)}"
    result = subprocess.run([sys.executable, *command[1:]], cwd=suite_run.REPO, capture_output=True, text=True,
                            timeout=120)
    files = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert files == {"tests/chaos/test_partitions.py"}
