"""Every job of every workflow selects tests, with the progression's rule, for every matrix entry and manual choice.

The suite is collected once (with each test's markers); each job's
``-m`` expression and paths are then evaluated against it with the
package's own marker parser (``pggit_chaos.pages.markexpr``).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
from pggit_chaos.measure import progression

from tests.ci import workflows as wf

# One worker collects the suite for all of them (--dist loadgroup): a collection per worker would cost as
# much again.
pytestmark = pytest.mark.xdist_group("collected-suite")

# Jobs that run no pytest selection of their own, and what they run instead.
NO_SELECTION = {
    ("weekly.yml", "mutants"): "pggit-chaos mutate (the runner picks the tier's tests itself)",
    ("weekly.yml", "stability"): "pggit-chaos stability and bench-describe",
    ("weekly.yml", "hollow"): "pggit-chaos hollow",
    ("weekly.yml", "metrics"): "pggit-chaos metrics",
    ("weekly.yml", "summary"): "pggit-chaos junit-summary over every shard's report",
}


@pytest.fixture(scope="module")
def runs() -> list[wf.JobRun]:
    return wf.all_job_runs()


@pytest.fixture(scope="module")
def rule() -> progression.Progression:
    return progression.Progression.load()


def test_every_job_of_every_workflow_is_read(runs):
    read = {(r.workflow, r.job) for r in runs}
    for name, data in wf.workflows().items():
        for job in data["jobs"]:
            assert job == "plan" or (name, job) in read, f"{name}: job {job} was not read"


def test_every_job_runs_a_selection_or_says_what_it_runs_instead(runs):
    for run in runs:
        key = (run.workflow, run.job)
        if key in NO_SELECTION:
            assert not run.selections, f"{key} runs tests: check its selection too"
            continue
        empty_may_fail = any(c[1] == "may-fail" and not wf.progression_outputs(c).get("markers")
                             for c in run.progression_calls)
        assert run.selections or empty_may_fail, f"{key} with {run.context} runs no test command"


def test_every_selection_selects_tests(runs):
    """For every job, matrix entry and manual category: pytest would run at least one test."""
    empty = []
    for selection in {(s.markers, s.paths): s for r in runs for s in r.selections}.values():
        if not wf.selected(selection.markers, selection.paths):
            empty.append(f"{selection.workflow} {selection.job} {selection.context}: -m {selection.markers!r} "
                         f"{' '.join(selection.paths)}")
    assert not empty, "selections that select nothing:\n" + "\n".join(empty)


def test_every_test_job_applies_the_progression(runs, rule):
    """Blocking jobs select no test that may fail; may-fail jobs select only such tests."""
    may = {t for t, marks in wf.collected_marks().items() if rule.test_may_fail(marks)}
    for run in runs:
        calls = {c[1] for c in run.progression_calls}
        for selection in run.selections:
            tests = wf.selected(selection.markers, selection.paths)
            may_fail = [t for t in tests if t in may]
            if "may-fail" in calls:
                assert len(may_fail) == len(tests), f"{run.job}: selects tests that must pass"
            elif run.workflow != "weekly.yml":
                assert "must-pass" in calls and not may_fail, f"{run.workflow} {run.job}: runs {may_fail[:3]} as must-pass"


def test_manual_weekly_runs_offer_every_category_and_each_selects_its_tests(runs, rule):
    weekly = wf.workflows()["weekly.yml"]
    options = weekly["on"]["workflow_dispatch"]["inputs"]["category"]["options"]
    assert options == ["all", *rule.categories]
    for category in rule.categories:
        context = f'"category": "{category}"'
        mine = [s for r in runs if r.workflow == "weekly.yml" and context in r.context for s in r.selections]
        assert mine, f"a manual run of {category} runs nothing"
        for selection in mine:
            tests = wf.selected(selection.markers, selection.paths)
            assert tests and all(category in wf.collected_marks()[t] for t in tests), (category, selection.markers)


def test_the_soak_categories_are_those_of_the_soak_tests(rule):
    """A manual run of a category with soak tests runs them; one without has no soak job to run empty."""
    carried = set().union(*(marks for marks in wf.collected_marks().values() if "soak" in marks))
    assert progression.SOAK_CATEGORIES == carried & set(rule.categories)


def test_the_weekly_suite_shards_run_every_test_once_on_every_version(runs):
    scheduled = [r for r in runs if r.workflow == "weekly.yml" and r.job == "suite" and '"inputs": {}' in r.context]
    suite = set(wf.selected(progression.SUITE))
    for version in progression.PG_VERSIONS:
        counts = Counter(t for r in scheduled if json.loads(r.context)["matrix"]["pg"] == version
                         for s in r.selections for t in wf.selected(s.markers, s.paths))
        assert set(counts) == suite and set(counts.values()) == {1}, version


def test_a_selection_of_nothing_is_caught(tmp_path):
    """Positive control: a job whose expression selects nothing, or a command the reader cannot read, is red."""
    main = copy.deepcopy(wf.workflows()["main.yml"])
    main["jobs"]["full-must-pass"]["steps"][3]["run"] = main["jobs"]["full-must-pass"]["steps"][3]["run"].replace(
        '"chaos and not soak"', '"chaos and soak and not chaos"')
    (run,) = [r for r in wf.job_runs("main.yml", main) if r.job == "full-must-pass"]
    assert any(not wf.selected(s.markers, s.paths) for s in run.selections)
    with pytest.raises(wf.Unreadable, match="-k"):
        wf.test_command('.venv/bin/pytest -k "disk" tests/chaos', {})
    with pytest.raises(wf.Unreadable, match="MARKERS"):
        wf.test_command('make test PYTEST_ARGS="-m \\"$MARKERS\\""', {})


def test_an_empty_progression_runs_every_test_as_must_pass(tmp_path):
    empty = tmp_path / "progression.json"
    empty.write_text(json.dumps({"can_fail": []}))
    outputs = wf.progression_outputs(["progression", "may-fail", "not soak", "--output-name", "markers",
                                      "--progression", str(empty)])
    assert outputs == {"markers": ""}
    assert wf.progression_outputs(["progression", "must-pass", "not soak", "--output-name", "markers",
                                   "--progression", str(empty)]) == {"markers": "not soak"}
    assert Path(wf.REPO / ".github" / "chaos-progression.json").is_file()
