"""Where a tier's time goes: the per-test CPU recorder against a test that burns a known amount, a real bench-cpu run
of a sample, and the page's section."""

from __future__ import annotations

import json
import os
import sys

import pytest
from pggit_chaos import cli
from pggit_chaos.measure import bench_cpu, cpu_recorder, suite_run
from pggit_chaos.measure.metrics import suite_cpu
from pggit_chaos.server.janitor import cluster_base_dir

from tests import forked_pytest

SELECTION = ["tests/toolkit/test_package_shape.py::test_the_room_check_sees_a_wrong_arrow",
             "tests/extension/test_versions.py::test_get_version_of_a_new_table_is_1_0_0",
             "tests/extension/test_versions.py::test_get_version_is_what_the_history_made_it"]


def test_the_recorder_charges_each_test_what_it_spent(tmp_path):
    """A test that burns 0.6 CPU-seconds is charged at least what its own process counted, and no test is charged
    more than every core could give it in its wall time (a recorder reading totals, not deltas, would be)."""
    (tmp_path / "test_spend.py").write_text(
        "import time\n"
        "def test_burns():\n"
        "    start = time.process_time()\n"
        "    while time.process_time() - start < 0.6:\n"
        "        pass\n"
        "    open('burned', 'w').write(str(time.process_time() - start))\n"
        "def test_sleeps():\n"
        "    time.sleep(0.3)\n")
    record = tmp_path / "cpu.json"
    env = {**os.environ, cpu_recorder.RECORD_ENV: str(record)}
    run = forked_pytest.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                          "-p", cpu_recorder.__name__, "test_spend.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    tests = json.loads(record.read_text())["tests"]
    assert set(tests) == {"test_spend.py::test_burns", "test_spend.py::test_sleeps"}
    burned = float((tmp_path / "burned").read_text())
    assert tests["test_spend.py::test_burns"]["cpu_seconds"] >= burned - 0.05
    assert tests["test_spend.py::test_sleeps"]["wall_seconds"] >= 0.3
    for spent in tests.values():
        assert 0 <= spent["cpu_seconds"] <= spent["wall_seconds"] * os.cpu_count() + 0.05, spent


@pytest.mark.parametrize(("nodeid", "expected"), [
    ("tests/chaos/test_crash_recovery.py::test_x[a-b]", "tests/chaos"),
    ("tests/toolkit/test_x.py::TestY::test_z", "tests/toolkit"),
    ("docs/testing/PATTERNS.md::line-83::test_x", "docs"),
    ("examples/test_example_crash.py::test_x", "examples"),
    ("tools/pggit_chaos/nemesis/server.py::fail_over[CodeFence#1][line:61]", "tools"),
])
def test_each_test_is_summed_in_its_area(nodeid, expected):
    assert bench_cpu.area(nodeid) == expected


def test_a_sample_run_is_summed_by_area_and_shown_as_a_sample(tmp_path, capsys):
    output = tmp_path / "suite-cpu.json"
    argv = ["bench-cpu", "--tier", "test", "--top", "3", "--output", str(output)]
    assert cli.main([*argv, *(a for test in SELECTION for a in ("--select", test))]) == 0
    (entry,) = json.loads(output.read_text())["measurements"]
    assert (entry["tier"], entry["profile"], entry["selection"]) == ("test", "gate", " ".join(SELECTION))
    assert entry["exitstatus"] == 0 and entry["failed"] == [] and entry["pg_version"]
    assert set(entry["areas"]) == {"tests/toolkit", "tests/extension"}
    assert entry["areas"]["tests/toolkit"]["tests"] == 1 and entry["areas"]["tests/extension"]["tests"] > 1
    assert entry["tests"] == sum(a["tests"] for a in entry["areas"].values())
    by_file = [f["cpu_seconds"] for f in entry["files"].values()]
    assert by_file == sorted(by_file, reverse=True), "costliest file first"
    assert {name: f["tests"] for name, f in entry["files"].items()} == {
        "tests/toolkit/test_package_shape.py": 1, "tests/extension/test_versions.py": entry["tests"] - 1}
    assert entry["in_tests_cpu_seconds"] == pytest.approx(sum(a["cpu_seconds"] for a in entry["areas"].values()),
                                                          abs=0.2)
    # The whole run holds its tests and more: a worker's start-up and collection are nobody's test.
    assert entry["busy_cpu_seconds"] > entry["in_tests_cpu_seconds"] > 0 and entry["outside_tests_cpu_seconds"] > 0
    assert entry["cpu_budget_seconds"] == 90 * os.cpu_count()
    assert len(entry["costliest"]) == 3
    assert [t["cpu_seconds"] for t in entry["costliest"]] == sorted((t["cpu_seconds"] for t in entry["costliest"]),
                                                                   reverse=True)
    assert "tests/extension" in capsys.readouterr().out

    lines = "\n".join(suite_cpu.section(json.loads(output.read_text())))
    assert f"`make test`, only `{entry['selection']}`" in lines
    assert f"**{entry['busy_cpu_seconds']:.0f} CPU-seconds**" in lines
    assert "| `tests/extension` |" in lines and "| outside any test |" in lines
    assert "times that" not in lines, "a sample is never held against the tier's budget"
    before, after = entry["reference_seconds"]
    assert before > 0 and after > 0
    system_before, system_after = entry["system_reference_seconds"]
    assert system_before > 0 and system_after > 0
    assert (f"reference task {before:.2f} s before and {after:.2f} s after (system task {system_before:.2f} s "
            f"before and {system_after:.2f} s after)") in lines
    assert "the system task (40 processes forked" in lines, "the page says what the system task is"


def test_a_whole_tier_is_held_against_its_budget_and_nothing_measured_says_so():
    entry = {"tier": "test", "selection": "", "user": "root", "tests": 2, "failed": [], "exitstatus": 0,
             "seconds": 300.0, "pg_version": "16.1", "machine": {"cores": 2}, "started": "2026-01-01T00:00:00Z",
             "load_before": [0.5, 0.5, 0.5], "busy_cpu_seconds": 360.0, "in_tests_cpu_seconds": 340.0,
             "outside_tests_cpu_seconds": 20.0, "target_seconds": 90, "cpu_budget_seconds": 180,
             "areas": {"tests/chaos": {"tests": 2, "cpu_seconds": 340.0, "wall_seconds": 290.0}},
             "costliest": [{"nodeid": "tests/chaos/test_a.py::test_a", "cpu_seconds": 200.0, "wall_seconds": 150.0}]}
    lines = "\n".join(suite_cpu.section({"measurements": [entry]}))
    assert "leaves at most 180 CPU-seconds" in lines and "the tier needs 2.0 times that" in lines
    assert "| `tests/chaos` | 2 | 340.0 | 94 % | 170000 |" in lines
    assert "Not measured yet (`pggit-chaos bench-cpu`)." in suite_cpu.section(None)
    assert "reference task not measured" in lines, "a measurement made before the task existed says so"
    entry["reference_seconds"] = [0.1, 0.11]
    lines = "\n".join(suite_cpu.section({"measurements": [entry]}))
    assert "reference task 0.10 s before and 0.11 s after." in lines, "made before the system task: none shown"
    assert "system task" not in lines


def test_the_system_task_counts_its_processes_and_leaves_no_file_behind():
    """The system task's figure takes in the processes it forks (a backend's start and end), and its files
    go with it, in the folder the clusters use."""
    before = os.times()
    seconds = suite_run.system_reference_seconds()
    after = os.times()
    children = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    assert children > 0, "the forked processes' CPU is counted"
    assert 0 < seconds <= (sum(after[:4]) - sum(before[:4])) / 3 + 0.02, "the least of three tries"
    assert not list(cluster_base_dir().glob(f"pggit-chaos-reference-{os.getpid()}-*"))
