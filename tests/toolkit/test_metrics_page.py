"""The Metrics page is generated, whole and current: never typed by hand, never about another catalog."""

from __future__ import annotations

import json
import os
import sys
from html import unescape

import pytest
from hypothesis import given, strategies as st
from markdown_it import MarkdownIt
from pggit_chaos.measure import mutants, recorder
from pggit_chaos.measure.hypothesis_report import example_text
from pggit_chaos.measure.metrics import ddl_cost, page, plots, suite_cpu, suite_timing
from pggit_chaos.measure.metrics.markdown import prose
from pggit_chaos.measure.metrics.results import DATA_DIR, load_fast_results

from tests import forked_pytest

DATA = DATA_DIR


def _load(name: str) -> dict:
    path = DATA / name
    assert path.exists(), f"{path} is missing: run make metrics"
    return json.loads(path.read_text())


@pytest.fixture
def results():
    return {name: _load(name) for name in ("mutation-smoke.json", "mutation-full.json", "stability.json",
                                           "failure-modes.json", "bench-describe.json", "hollow.json",
                                           "bench-history.json")}


def test_the_page_and_the_guide_summary_are_exactly_what_the_recorded_results_render(results, tmp_path, monkeypatch):
    committed_plots = plots.PLOT_DIR
    monkeypatch.setattr(plots, "PLOT_DIR", tmp_path)  # leave the committed plots alone
    smoke, full = results["mutation-smoke.json"], results["mutation-full.json"]
    rendered = page.render(smoke, full, results["stability.json"], results["failure-modes.json"],
                           results["bench-describe.json"], results["hollow.json"], results["bench-history.json"],
                           load_fast_results(), timing=suite_timing.load(), ddl=ddl_cost.load(),
                           cpu=suite_cpu.load())
    assert page.PAGE.read_text() == rendered, "docs/metrics.md was edited by hand: run pggit-chaos metrics"
    summary = page.render_summary(smoke, full, results["stability.json"], results["bench-describe.json"],
                                  results["bench-history.json"])
    assert page.SUMMARY.read_text() == summary
    for plot in ("killed-by-category.png", "time-per-tier.png", "stability-runs.png", "describe-cost.png",
                 "history-cost.png"):
        assert (committed_plots / plot).stat().st_size > 0, f"plot {plot} is not committed"
        assert f"_static/metrics/{plot}" in rendered


@pytest.mark.parametrize("tier", ["smoke", "full"])
def test_the_recorded_mutation_runs_are_complete_and_cover_the_current_catalog(results, tier):
    run = results[f"mutation-{tier}.json"]
    assert run["tier"] == tier and run["complete"] is True
    assert run["baseline"]["tests"] == run["baseline"]["passed"] + run["baseline"]["skipped"] + run["baseline"]["xfailed"]
    recorded = {m["name"]: m["category"] for m in run["mutants"]}
    catalog = {m.name: m.category for m in mutants.MUTANTS}
    # A mutant measured and since removed or moved to another category means the numbers describe another catalog.
    assert recorded.items() <= catalog.items(), (
        "the catalog lost or changed mutants since the metrics were measured: run make metrics")
    # Mutants added since are named on the page as not measured yet, never counted silently.
    page_text = page.PAGE.read_text()
    unmeasured = sorted(set(catalog) - set(recorded))
    if unmeasured:
        section = page_text[page_text.index("### Not measured yet"):]
        section = section[: section.index("\n#")]
        assert all(f"`{name}`" in section for name in unmeasured), unmeasured
    killed = sum(m["status"] == "killed" for m in run["mutants"])
    assert run["score"]["killed"] == killed and run["score"]["total"] == len(run["mutants"])


def test_the_recorded_stability_runs_are_the_twenty_the_page_promises(results):
    runs = [r for r in results["stability.json"]["runs"] if r["tier"] == "smoke"]
    assert len(runs) >= 20
    assert results["stability.json"]["failed_runs"] == sum(r["exitstatus"] != 0 for r in runs)
    assert len({r["seed"] for r in runs}) == len(runs), "two runs shared a Hypothesis seed"


FAILING_PROPERTY_TESTS = '''
from hypothesis import given, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule


@given(x=st.integers(), label=st.text())
def test_small_numbers(x, label):
    assert x < 10


class Counter(RuleBasedStateMachine):
    total = 0

    @rule(k=st.integers(0, 5))
    def add(self, k):
        self.total += k
        assert self.total < 7


TestCounter = Counter.TestCase
'''


def test_the_recorder_keeps_hypothesis_minimal_examples_and_the_page_shows_them(tmp_path):
    """Real failing property tests run through the recorder plugin: their shrunk inputs reach the page's column."""
    (tmp_path / "test_failing.py").write_text(FAILING_PROPERTY_TESTS)
    record = tmp_path / "record.json"
    env = {**os.environ, recorder.RECORD_ENV: str(record)}
    env.pop("PYTEST_XDIST_WORKER", None)
    forked_pytest.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                    "-p", recorder.__name__, "-c", os.devnull, "--rootdir", str(tmp_path),
                    "--hypothesis-seed=0", "test_failing.py"],
                   cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                   check=False)
    tests = json.loads(record.read_text())["tests"]
    examples = {nodeid.split("::")[-1]: t["failure"]["falsifying_example"] for nodeid, t in tests.items()}
    assert example_text(examples["test_small_numbers"]) == "x=10, label=''"
    assert example_text(examples["runTest"]) == "add(k=2); add(k=5)"


@given(st.text(alphabet="ab1 _*<>[]#&~\\!().", max_size=40).map(str.strip))
def test_free_text_in_a_cell_reads_as_written(text):
    """A triage reason like ``ON <schema>.<table>`` or ``pggit._a(x) and pggit._b`` is neither HTML nor emphasis."""
    rendered = MarkdownIt("commonmark").renderInline(prose(text))
    assert "<" not in rendered.replace("&lt;", "")
    assert unescape(rendered) == text


def test_free_text_keeps_its_code_spans():
    assert prose("see `pggit._x_` and _y_") == "see `pggit._x_` and \\_y\\_"
    assert prose("killed by tests/x/test_y.py::test_z") == "killed by tests/x/test_y.py::test_z"
