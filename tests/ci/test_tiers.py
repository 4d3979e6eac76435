"""The chaos tiers collect only the chaos suite's paths, and lose no chaos test by it.

``make smoke``, ``make full`` and ``make weekly`` pass ``-o testpaths=`` with
the Makefile's ``CHAOS_PATHS`` (the measuring tools' ``suite_run.CHAOS_PATHS``),
so their workers skip importing the toolkit's, the contract's and the
workflows' tests. That is only safe while no test marked ``chaos`` or ``soak``
lives anywhere else.
"""

from __future__ import annotations

import collections
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


DANGEROUS_PAIRS = "tests/chaos/test_isolation_levels.py::test_dangerous_pairs_end_like_a_serial_order_or_with_a_retryable_error"


def _test_of(nodeid: str) -> str:
    return nodeid.split("[")[0]


def test_the_smoke_tier_runs_each_quick_chaos_test_once_or_in_the_cases_it_chose():
    """The root conftest marks every case of a parametrized test but one ``variant``, unless the test chose."""
    smoke = suite_run.TIERS["smoke"]
    assert smoke.endswith(" and not variant")
    chosen = wf.selected(smoke, tuple(suite_run.CHAOS_PATHS))
    every_case = wf.selected(smoke.removesuffix(" and not variant"), tuple(suite_run.CHAOS_PATHS))
    # Positive control: the variants are many, and the rest of the tier is there.
    assert len(every_case) > 1.5 * len(chosen) and set(chosen) < set(every_case)
    # No quick chaos test leaves the tier: each is there once, the dangerous pairs once per pair.
    assert {_test_of(n) for n in chosen} == {_test_of(n) for n in every_case}
    once = collections.Counter(_test_of(n) for n in chosen)
    assert once.pop(DANGEROUS_PAIRS) == 9
    marks = wf.collected_marks()
    distinct = {_test_of(n) for n in every_case if "distinct_cases" in marks[n]}
    assert distinct, "no test keeps its every case in smoke"  # positive control for the loop below
    for test in distinct:
        assert once.pop(test) == sum(_test_of(n) == test for n in every_case) > 1, test
    assert set(once.values()) == {1}


def test_the_dangerous_pairs_stand_in_smoke_once_each_at_repeatable_read_in_both_orders():
    chosen = [n for n in wf.selected(suite_run.TIERS["smoke"], ("tests/chaos",)) if n.startswith(DANGEROUS_PAIRS)]
    cases = [n.split("[")[1].rstrip("]").rsplit("-", 2) for n in chosen]
    assert {level for _, level, _ in cases} == {"repeatable_read"}
    assert {order for _, _, order in cases} == {"interleaved", "a_commits_first"}
    assert len({pair for pair, _, _ in cases}) == len(cases) == 9


def test_only_parametrized_cases_are_variants():
    marks = wf.collected_marks()
    variants = [n for n, names in marks.items() if "variant" in names]
    assert variants and all("[" in n for n in variants)
