"""The suite benchmark and the stability runs' records: a real two-test run of bench-suite, the merging by tier and user, and the page's section."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys

import pytest
from pggit_chaos import cli
from pggit_chaos.measure import bench_suite, stability
from pggit_chaos.measure.options import auto_workers
from pggit_chaos.measure.metrics import suite_timing
from pggit_chaos.measure.metrics.results import DATA_DIR, RESULT_FILES
from pggit_chaos.measure.suite_run import MAKE_TIERS, METRICS_DIR, current_user
from pggit_chaos.paths import REPO

from tests import forked_pytest

SHAPE = "tests/toolkit/test_package_shape.py"
SELECTION = [f"{SHAPE}::test_no_module_is_longer_than_one_concept_needs", f"{SHAPE}::test_the_room_check_sees_a_wrong_arrow"]


def test_a_two_test_benchmark_records_each_run_the_median_the_user_and_the_machine(tmp_path, capsys):
    output = tmp_path / "suite-timing.json"
    argv = ["bench-suite", "--tier", "test", "--runs", "2", "--workers", "1", "--output", str(output)]
    assert cli.main([*argv, *(a for test in SELECTION for a in ("--select", test))]) == 0
    (entry,) = json.loads(output.read_text())["measurements"]
    assert (entry["tier"], entry["markexpr"], entry["profile"]) == ("test", MAKE_TIERS["test"], "gate")
    assert entry["selection"] == " ".join(SELECTION), "a sample must never pass for the whole tier"
    assert entry["user"] == ("root" if os.geteuid() == 0 else "ordinary") == current_user()
    assert entry["machine"]["cores"] == os.cpu_count() and entry["workers"] == "1"
    assert len(entry["runs"]) == 2 and entry["failed_runs"] == 0
    for run in entry["runs"]:
        assert (run["exitstatus"], run["tests"], run["passed"], run["failed"]) == (0, 2, 2, [])
        assert run["seconds"] > 0 and len(run["load_before"]) == len(run["load_after"]) == 3
        assert set(run["slowest"]) == set(SELECTION)
    assert entry["median_seconds"] == round(statistics.median(r["seconds"] for r in entry["runs"]), 1)
    assert "median" in capsys.readouterr().out

    # The page shows the measurement as a sample of the tier, with its user and the load around it.
    lines = "\n".join(suite_timing.section(json.loads(output.read_text()), None))
    assert f"`make test`, only `{entry['selection']}`" in lines
    assert f"| {entry['user']} | 2 | 2 (0 failed) |" in lines
    assert "target" in lines and "(met)" not in lines, "a sample is never held against the tier's target"
    before, after = entry["reference_seconds"]
    system_before, system_after = entry["system_reference_seconds"]
    assert before > 0 and after > 0 and system_before > 0 and system_after > 0
    # The machine's speed is named by what ran, the selection too: two samples of one tier are told apart.
    assert (f"`make test`, only `{entry['selection']}` as {entry['user']} {before:.2f} s before and {after:.2f} s "
            f"after (system task {system_before:.2f} s before and {system_after:.2f} s after)") in lines


def _entry(tier: str, user: str, selection: str = "", seconds: float = 10.0) -> dict:
    run = {"seconds": seconds, "exitstatus": 0, "tests": 5, "load_before": [1.0, 1, 1], "load_after": [2.0, 1, 1]}
    return {"tier": tier, "user": user, "selection": selection, "workers": "auto", "started": "2026-01-01T00:00:00Z",
            "machine": {"cores": 2}, "target_seconds": bench_suite.TARGET_SECONDS.get(tier),
            "median_seconds": seconds, "failed_runs": 0, "runs": [run]}


def test_a_measurement_replaces_the_one_of_its_tier_and_user_and_keeps_the_others(tmp_path):
    output = tmp_path / "suite-timing.json"
    for entry in (_entry("smoke", "ordinary"), _entry("test", "root"), _entry("smoke", "root"),
                  _entry("test", "root", selection="tests/x.py")):
        output.write_text(json.dumps(bench_suite.merge(output, entry)))
    output.write_text(json.dumps(bench_suite.merge(output, _entry("test", "root", seconds=80.0))))
    kept = json.loads(output.read_text())["measurements"]
    assert [(m["tier"], m["user"], m["selection"], m["median_seconds"]) for m in kept] == [
        ("test", "root", "", 80.0), ("smoke", "root", "", 10.0), ("smoke", "ordinary", "", 10.0),
        ("test", "root", "tests/x.py", 10.0)]
    page = "\n".join(suite_timing.section({"measurements": kept}, None))
    assert "| **80 s** |" in page and "| 90 s (met) |" in page and "| 20 s (met) |" in page


def test_a_first_measurement_starts_from_the_committed_copy_and_leaves_it_alone(tmp_path):
    """Results go to _build/metrics; the first one there keeps the committed measurements of other tiers, and the
    committed file (which the page is checked against) is not touched until pggit-chaos metrics imports."""
    base, output = tmp_path / "committed.json", tmp_path / "build" / "suite-timing.json"
    base.write_text(json.dumps({"measurements": [_entry("smoke", "root"), _entry("test", "root")]}))
    output.parent.mkdir()
    output.write_text(json.dumps(bench_suite.merge(output, _entry("test", "root", seconds=70.0), base)))
    assert [(m["tier"], m["median_seconds"]) for m in json.loads(output.read_text())["measurements"]] == [
        ("test", 70.0), ("smoke", 10.0)]
    assert [m["median_seconds"] for m in json.loads(base.read_text())["measurements"]] == [10.0, 10.0]
    # Once the file exists, it is what the next measurement merges into.
    base.write_text(json.dumps({"measurements": []}))
    output.write_text(json.dumps(bench_suite.merge(output, _entry("smoke", "ordinary"), base)))
    assert len(json.loads(output.read_text())["measurements"]) == 3

    parser = bench_suite.add_arguments(argparse.ArgumentParser())
    assert bench_suite.merge_base(parser.parse_args([]), bench_suite.OUTPUT) == DATA_DIR / "suite-timing.json"
    assert bench_suite.merge_base(parser.parse_args(["--output", str(output)]), bench_suite.OUTPUT) is None
    assert bench_suite.merge_base(parser.parse_args(["--output", str(output), "--base", str(base)]),
                                  bench_suite.OUTPUT) == base
    assert bench_suite.OUTPUT.parent == METRICS_DIR and "suite-timing.json" in RESULT_FILES


def test_stability_runs_replace_those_of_their_tier_and_user_and_the_page_groups_them(tmp_path):
    def runs(tier, user, n, failed=0, day="2026-01-02"):
        return [{"tier": tier, "user": user, "profile": "dev", "workers": "auto", "seconds": 30.0 + i,
                 "started": f"{day}T0{i}:00:00Z", "load_before": [1.0 + i, 1.0, 1.0],
                 "exitstatus": 1 if i < failed else 0, "failed": []} for i in range(n)]

    base = tmp_path / "stability.json"
    older = [{"tier": "smoke", "seconds": 40.0, "exitstatus": 0, "failed": []}]  # recorded before users were
    base.write_text(json.dumps({"runs": older + runs("test", "root", 3) + runs("test", "ordinary", 2)}))
    merged = stability.merge_runs(base, tmp_path / "absent.json", runs("test", "root", 4, failed=1, day="2026-03-04"))
    assert [(r["tier"], r.get("user")) for r in merged] == [("smoke", None)] + [("test", "ordinary")] * 2 + [
        ("test", "root")] * 4
    # The file's own date is the last measurement's; each series shows the days and loads its runs recorded.
    lines = "\n".join(suite_timing.section(None, {"workers": "auto", "started": "2026-03-04", "runs": merged}))
    assert "| `make smoke` | not recorded | 1 | **0** |" in lines and lines.count("| not recorded | not recorded |") == 1
    assert "| `make test` | ordinary | 2 | **0** |" in lines and "| 1.0 (highest 2.0) | 2026-01-02 |" in lines
    assert "| `make test` | root | 4 | **1** |" in lines and "| 1.0 (highest 4.0) | 2026-03-04 |" in lines
    assert "has not been measured yet" in lines


def _workers_started(*env: tuple[str, str]) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_AUTO_NUM_WORKERS"} | dict(env)
    result = forked_pytest.run(
        [sys.executable, "-m", "pytest", "-n", "auto", "-p", "no:cacheprovider", SELECTION[1]],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=environment,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    found = re.search(r"created: (\d+)/\d+ workers?", result.stdout)
    assert found, result.stdout[-2000:]
    return found.group(1)


def test_n_auto_starts_a_worker_more_than_there_are_cores_unless_told_a_number():
    cores = len(os.sched_getaffinity(0))
    assert auto_workers() == cores + 1
    assert _workers_started() == str(cores + 1)
    assert _workers_started(("PYTEST_XDIST_AUTO_NUM_WORKERS", "1")) == "1"  # the variable still decides


@pytest.mark.parametrize("tool", ["bench-suite", "bench-cpu"])
@pytest.mark.parametrize("bad", ["not json", '{"runs": []}', "binary"])
@pytest.mark.parametrize("option", ["--output", "--base"])
def test_a_results_file_it_cannot_add_to_stops_it_before_it_measures(tmp_path, capsys, tool, bad, option):
    """The file the measurement would join is read first: a wrong one stops the tool at once, naming it,
    instead of after an hour of measuring. Positive control: a results file passes that check."""
    wrong = tmp_path / "wrong.json"
    wrong.write_bytes(b"\xff\xfe\x00" if bad == "binary" else bad.encode())
    output = wrong if option == "--output" else tmp_path / "new.json"
    argv = [tool, "--select", "tests/nothing_here.py", "--output", str(output)]
    if option == "--base":
        argv += ["--base", str(wrong)]
    with pytest.raises(SystemExit, match=f"error: {option} {re.escape(str(wrong))} is not a results file"):
        cli.main(argv)
    assert capsys.readouterr().out == "", "nothing measured: no reference task, no run"
    assert not (tmp_path / "new.json").exists()
    assert wrong.read_bytes() == (b"\xff\xfe\x00" if bad == "binary" else bad.encode()), "left as it was"
    wrong.write_text('{"measurements": []}')
    assert bench_suite.earlier_results(output, wrong if option == "--base" else None) == {"measurements": []}
