"""Where a tier's time goes: every test run one at a time, the CPU-seconds the machine spent on each, by area.

    pggit-chaos bench-cpu [--tier test|smoke|full] [--select ARG] [--top 15]

``bench-suite`` measures how long a tier takes; this says why. The tier
runs as make runs it, but with one pytest-xdist worker, so one test runs at
a time and everything the machine spends between a test's start and its
end is that test's (``cpu_recorder.py``): its PostgreSQL backends, the
pytest runs, Sphinx builds and browsers it starts, and its own Python. The
whole run's busy CPU-seconds are measured too; what no test spent is
start-up, collection and stopping the server. Tests are summed by area (a
folder of ``tests/``, or ``docs``, ``examples``, ``tools``), beside the
budget the tier's target leaves on this machine: target times cores, which
only a run keeping every core busy from start to end would reach. Other
work on the machine counts as the tests' own, so run it on an idle machine
(the load average is recorded). Linux only.

The measurement goes into ``_build/metrics/suite-cpu.json`` (started from
the committed copy), replacing the earlier one of the same tier, user and
selection; ``pggit-chaos metrics`` imports it and shows it on the Metrics
page.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from pggit_chaos.measure import cpu_recorder, suite_run
from pggit_chaos.measure.bench_suite import (PROFILES, TARGET_SECONDS, earlier_results, merge, merge_base,
                                             tier_options)
from pggit_chaos.measure.options import positive_int

COMMAND = "bench-cpu"
DESCRIPTION = __doc__.split("\n\n")[0]
OUTPUT = suite_run.METRICS_DIR / "suite-cpu.json"


def area(nodeid: str) -> str:
    """The part of the project a test is in: ``tests/<folder>``, or the top folder (``docs``, ``examples``, ``tools``)."""
    parts = nodeid.split("::", 1)[0].split("/")
    return "/".join(parts[:2]) if parts[0] == "tests" and len(parts) > 2 else parts[0]


def _costliest_first(groups: dict[str, dict]) -> dict[str, dict]:
    return {name: {"tests": t["tests"], "cpu_seconds": round(t["cpu_seconds"], 1), "wall_seconds": round(t["wall_seconds"], 1)}
            for name, t in sorted(groups.items(), key=lambda kv: -kv[1]["cpu_seconds"])}


def summarize(tests: dict[str, dict[str, float]], busy_cpu: float, top: int) -> dict:
    """The run's CPU-seconds: in all, in tests and outside them, by area and by file (costliest first), and the
    ``top`` tests."""
    areas: dict[str, dict] = {}
    files: dict[str, dict] = {}
    for nodeid, spent in tests.items():
        for group, name in ((areas, area(nodeid)), (files, nodeid.split("::", 1)[0])):
            totals = group.setdefault(name, {"tests": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0})
            totals["tests"] += 1
            totals["cpu_seconds"] += spent["cpu_seconds"]
            totals["wall_seconds"] += spent["wall_seconds"]
    in_tests = sum(t["cpu_seconds"] for t in tests.values())
    costliest = sorted(tests.items(), key=lambda kv: -kv[1]["cpu_seconds"])[:top]
    return {
        "busy_cpu_seconds": round(busy_cpu, 1),
        "in_tests_cpu_seconds": round(in_tests, 1),
        "outside_tests_cpu_seconds": round(busy_cpu - in_tests, 1),
        "areas": _costliest_first(areas),
        "files": _costliest_first(files),
        "costliest": [{"nodeid": nodeid, **spent} for nodeid, spent in costliest],
    }


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options, on ``parser`` (its own, or ``pggit-chaos bench-cpu``)."""
    tier_options(parser, OUTPUT)
    parser.add_argument("--top", type=positive_int, default=15, metavar="N",
                        help="how many of the costliest tests the results name (default %(default)s).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the tier one test at a time, merge its CPU figures into the results file; 1 if a test failed."""
    earlier_results(args.output, merge_base(args, OUTPUT))  # a results file it could not add to: say so now
    if not cpu_recorder.PROC_STAT.exists():
        raise SystemExit(f"bench-cpu reads the machine's CPU time from {cpu_recorder.PROC_STAT}, "
                         "which this system does not have (Linux only)")
    workdir = Path(tempfile.mkdtemp(prefix="pggit-bench-cpu-"))
    record = workdir / "cpu.json"
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    argv = suite_run.make_command(args.tier, "1", args.test_timeout,
                                  ["-p", "no:cacheprovider", "-p", cpu_recorder.__name__, *args.select])
    load_before = [round(x, 2) for x in os.getloadavg()]
    reference_before = suite_run.reference_seconds()
    system_before = suite_run.system_reference_seconds()
    print(f"{args.tier}: one test at a time, load average {load_before[0]:.2f}, reference tasks "
          f"{reference_before:.3f} (Python) and {system_before:.3f} (system) CPU-seconds", flush=True)
    try:
        busy_before = cpu_recorder.busy_cpu_seconds()
        result = suite_run.run_pytest(argv, workdir, "cpu", run_timeout=4 * 3600, write_bytecode=True,
                                      fresh_examples=False,
                                      env_extra={"HYPOTHESIS_PROFILE": PROFILES[args.tier],
                                                 cpu_recorder.RECORD_ENV: str(record)})
        busy_cpu = cpu_recorder.busy_cpu_seconds() - busy_before
        if not record.exists():
            raise SystemExit(f"the run recorded no test's CPU time (exit {result.exitstatus}):\n{result.output_tail}")
        recorded = json.loads(record.read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    tests = recorded["tests"]
    target = TARGET_SECONDS.get(args.tier)
    entry = {
        "tier": args.tier,
        "markexpr": suite_run.MAKE_TIERS[args.tier],
        "selection": " ".join(args.select),
        "user": suite_run.current_user(),
        "profile": PROFILES[args.tier],
        "started": started_at,
        "machine": suite_run.machine(),
        "pg_version": recorded["pg_version"],  # the worker's: xdist's controller never starts the server
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        # How fast the machine was, before the run and after it (suite_run.reference_seconds).
        "reference_seconds": [reference_before, suite_run.reference_seconds()],
        "system_reference_seconds": [system_before, suite_run.system_reference_seconds()],
        "exitstatus": result.exitstatus,
        "seconds": result.seconds,
        "tests": len(tests),
        "failed": result.failed,
        "target_seconds": target,
        # The most CPU a run that meets the target can use: every core busy from its start to its end.
        "cpu_budget_seconds": target * os.cpu_count() if target else None,
        **summarize(tests, busy_cpu, args.top),
    }
    suite_run.write_results(args.output, merge(args.output, entry, merge_base(args, OUTPUT)))
    print(f"{args.tier}: {entry['busy_cpu_seconds']:.0f} CPU-seconds busy in {result.seconds:.0f} s, "
          f"{entry['in_tests_cpu_seconds']:.0f} of them in {len(tests)} tests; results in {args.output}")
    for name, totals in entry["areas"].items():
        print(f"  {totals['cpu_seconds']:7.1f}  {totals['tests']:5d} tests  {name}")
    return 1 if result.failed or result.exitstatus != 0 else 0
