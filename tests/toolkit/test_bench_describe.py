"""The describe benchmark measures real pggit work and fits its growth exponent correctly."""

from __future__ import annotations

import json

import pytest
from pggit_chaos import cli
from pggit_chaos.measure import bench_describe


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_growth_exponent_recovers_the_power_of_exact_data(power):
    widths = [100, 200, 400, 800, 1600]
    assert bench_describe.growth_exponent(widths, [3e-5 * w ** power for w in widths]) == pytest.approx(power)


def test_growth_exponent_refuses_what_it_cannot_fit_naming_the_values():
    with pytest.raises(ValueError, match=r"positive: sizes \[100, 200\], seconds \[0.0, 1.0\]"):
        bench_describe.growth_exponent([100, 200], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"sizes must differ.*\[100, 100\]"):
        bench_describe.growth_exponent([100, 100], [1.0, 2.0])
    with pytest.raises(ValueError, match="two or more"):
        bench_describe.growth_exponent([100], [1.0])


def test_bad_widths_and_mutant_names_are_refused_naming_them(tmp_path):
    with pytest.raises(SystemExit, match=r"\[0, 1601\] outside 1..1600"):
        cli.main(["bench-describe", "--widths", "0", "100", "1601", "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match=r"two or more different widths.*\[50, 50\]"):
        cli.main(["bench-describe", "--widths", "50", "50", "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="no such mutant 'no_such_bug'"):
        cli.main(["bench-describe", "--widths", "10", "20", "--mutant", "no_such_bug", "--output", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_a_small_run_times_every_step_of_every_width_against_a_real_server(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench-describe", "--widths", "5", "20", "--repeat", "1", "--mutant", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["widths"] == [5, 20] and data["pg_version"]
    (result,) = data["results"]
    assert result["label"] == "pggit"
    assert set(result["seconds"]) == {"5", "20"}
    for per_step in result["seconds"].values():
        assert set(per_step) == set(bench_describe.STEPS) and all(t > 0 for t in per_step.values())
    assert set(result["growth_exponent"]) == set(bench_describe.STEPS)
