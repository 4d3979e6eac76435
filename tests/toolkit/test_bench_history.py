"""The history benchmark: its exponent fitting, its option checks, and a quick real run that writes a valid result file."""

from __future__ import annotations

import argparse
import json
import math

import pytest
from pggit_chaos import cli
from pggit_chaos.measure import bench_history, mutants, mutants_scale
from pggit_chaos.measure.growth import growth_exponent
from pggit_chaos.measure.history_build import Shape

SIZES = [1000, 10000, 100000]


@pytest.mark.parametrize("power", [0.0, 1.0, 2.0])
def test_growth_exponent_recovers_the_power_of_exact_data(power):
    assert growth_exponent(SIZES, [2e-4 * n ** power for n in SIZES]) == pytest.approx(power, abs=1e-9)


def test_n_log_n_over_the_default_sizes_stays_under_the_pages_limit_and_n_squared_does_not():
    n_log_n = growth_exponent(SIZES, [n * math.log(n) for n in SIZES])
    assert 1.0 < n_log_n < 1.2
    assert growth_exponent(SIZES, [n * n for n in SIZES]) > 1.2


def test_growth_exponent_refuses_what_it_cannot_fit_naming_the_values():
    with pytest.raises(ValueError, match=r"positive: sizes \[10, 20\], seconds \[0.0, 1.0\]"):
        growth_exponent([10, 20], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"sizes must differ.*\[10, 10\]"):
        growth_exponent([10, 10], [1.0, 2.0])
    with pytest.raises(ValueError, match="two or more"):
        growth_exponent([10], [1.0])


def test_bad_sizes_and_mutant_names_are_refused_naming_them(tmp_path):
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit, match=r"\[5, 2000000\] outside 10..1000000"):
        cli.main(["bench-history", "--sizes", "5", "100", "2000000", "--output", str(out)])
    with pytest.raises(SystemExit, match=r"two or more different sizes.*\[50, 50\]"):
        cli.main(["bench-history", "--sizes", "50", "50", "--output", str(out)])
    with pytest.raises(SystemExit, match="no such mutant 'no_such_bug'"):
        cli.main(["bench-history", "--quick", "--mutant", "no_such_bug", "--output", str(out)])
    with pytest.raises(SystemExit):
        cli.main(["bench-history", "--repeat", "0", "--output", str(out)])
    assert not out.exists()


def test_the_history_mutants_are_in_the_catalog_as_performance_bugs_and_bench_describe_leaves_them_out():
    catalog = mutants.by_name()
    assert mutants_scale.NAMES and all(catalog[n].category == "performance" for n in mutants_scale.NAMES)
    assert set(mutants_scale.BENCH_SIZES) <= set(mutants_scale.NAMES)
    assert bench_history.mutant_names(None) == list(mutants_scale.NAMES)


@pytest.mark.parametrize("argv, name, expected", [
    ([], "cycle_check_scans_per_commit", list(mutants_scale.BENCH_SIZES["cycle_check_scans_per_commit"])),
    ([], "some_other_mutant", [1000, 10000, 100000]),
    (["--sizes", "100", "200"], "cycle_check_scans_per_commit", [1000, 10000, 100000]),  # pggit's own
    (["--mutant-sizes", "300", "100"], "some_other_mutant", [100, 300]),
    (["--quick"], "cycle_check_scans_per_commit", [1000, 10000, 100000]),
])
def test_each_mutant_is_measured_at_the_sizes_the_options_give(argv, name, expected):
    args = bench_history.add_arguments(argparse.ArgumentParser()).parse_args(argv)
    assert bench_history.sizes_for_mutant(args, name, [1000, 10000, 100000]) == expected


@pytest.mark.parametrize("n", [10, 60, 1000, 100000])
def test_a_history_of_size_n_has_n_commits_and_about_n_history_rows(n):
    shape = Shape(n).as_dict()
    assert shape["commits"] == n and shape["branches"] >= 2
    assert shape["live_tables"] >= 1 and shape["dropped_tables"] >= 1
    assert 0.5 * n <= shape["history_rows"] <= n or n < 100


def test_a_quick_run_builds_clean_histories_and_times_every_step_against_a_real_server(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench-history", "--quick", "--sizes", "20", "40", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["sizes"] == [20, 40] and data["pg_version"] and data["quick"] is True and data["repeat"] == 1
    assert len(data["load_average_at_start"]) == 3
    (result,) = data["results"]
    assert result["label"] == "pggit" and result["sizes"] == [20, 40]
    assert set(result["seconds"]) == {"20", "40"}
    for per_step in result["seconds"].values():
        assert list(per_step) == list(bench_history.STEPS) and all(t > 0 for t in per_step.values())
    assert set(result["growth_exponent"]) == set(bench_history.STEPS)
    for n in (20, 40):
        built, planned = data["histories"][str(n)], Shape(n).as_dict()
        assert built["commits"] == planned["commits"]
        assert built["branches"] == planned["branches"]
        assert built["tracked_tables"] == planned["live_tables"] + planned["dropped_tables"]
        assert built["history_rows"] == planned["history_rows"]


def test_the_recorded_benchmark_is_a_full_run_of_every_step_at_the_default_sizes():
    """What the Metrics page shows was measured, not a --quick check (its speed is the page's business, not a test's)."""
    from pggit_chaos.measure.metrics.results import DATA_DIR

    data = json.loads((DATA_DIR / "bench-history.json").read_text())
    assert data["quick"] is False and data["sizes"] == list(bench_history.DEFAULT_SIZES)
    assert data["steps"] == list(bench_history.STEPS)
    base = data["results"][0]
    assert base["label"] == "pggit" and base["sizes"] == data["sizes"]
    assert {r.get("mutant") for r in data["results"][1:]} == set(mutants_scale.NAMES)
