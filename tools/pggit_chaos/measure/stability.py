"""Stability and wall time: the smoke tier run N times, each with a new Hypothesis seed.

    pggit-chaos stability --runs 20 [--workers auto] [--full-runs 1]

Each run is what ``make smoke`` runs (pytest-xdist, one cluster per worker),
with ``--hypothesis-seed`` drawn at random and recorded, so a failing run can
be replayed exactly. A test that fails in some runs and passes in others is
flaky. After the smoke runs, the full tier runs ``--full-runs`` times the
same way, for its wall time. Results go to ``_build/metrics/stability.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from pggit_chaos.measure import mutants
from pggit_chaos.measure.options import non_negative_int, positive_int
from pggit_chaos.measure.suite_run import CHAOS_PATHS, METRICS_DIR, TIERS, chaos_command, machine, run_pytest, write_results

COMMAND = "stability"
DESCRIPTION = __doc__.split("\n\n")[0]


def run_tier(tier: str, seed: int, workers: str, workdir: Path, label: str, test_timeout: int) -> dict:
    argv = chaos_command(mutants.EXTENSION_SQL, CHAOS_PATHS, TIERS[tier], test_timeout,
                         [f"--hypothesis-seed={seed}", "-n", workers, "--dist", "loadgroup"])
    run = run_pytest(argv, workdir, label, run_timeout=3600)
    return {
        "tier": tier,
        "seed": seed,
        "exitstatus": run.exitstatus,
        "seconds": run.seconds,
        "tests": len(run.tests),
        "passed": run.count("passed"),
        "skipped": run.count("skipped"),
        "xfailed": run.count("xfailed"),
        "failed": run.failed,
        "failures": {n: run.tests[n].get("failure") for n in run.failed},
        "output_tail": run.output_tail if run.exitstatus not in (0, 1) else None,
    }


def xdist_workers(text: str) -> str:
    """pytest-xdist's -n value: auto, logical, or a number of 1 or more."""
    if text in ("auto", "logical") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, logical or a number of 1 or more, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The stability runs' options, on ``parser`` (its own, or ``pggit-chaos stability``)."""
    parser.add_argument("--runs", type=positive_int, default=20, metavar="N",
                        help="how many times the smoke tier runs, each with a new random seed (default %(default)s).")
    parser.add_argument("--full-runs", type=non_negative_int, default=1, metavar="N",
                        help="how many times the full tier runs afterwards, for its wall time; 0 skips it "
                             "(default %(default)s).")
    parser.add_argument("--workers", type=xdist_workers, default="auto", metavar="WORKERS",
                        help="pytest-xdist workers per run, as make smoke uses them: auto, logical or a number "
                             "(default %(default)s).")
    parser.add_argument("--test-timeout", type=positive_int, default=300, metavar="SECONDS",
                        help="seconds one test may take before it counts as hung (default %(default)s).")
    parser.add_argument("--output", type=Path, default=METRICS_DIR / "stability.json", metavar="FILE",
                        help="where the results go (default: _build/metrics/stability.json).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the tiers as ``args`` say and write the results; 1 if any smoke run failed."""
    workdir = Path(tempfile.mkdtemp(prefix="pggit-stability-"))
    seeds = random.SystemRandom()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    started = time.monotonic()
    runs = []
    plan = [("smoke", i) for i in range(args.runs)] + [("full", i) for i in range(args.full_runs)]
    for tier, i in plan:
        seed = seeds.randrange(2**32)
        result = run_tier(tier, seed, args.workers, workdir, f"{tier}-{i}", args.test_timeout)
        runs.append(result)
        verdict = "passed" if result["exitstatus"] == 0 else f"FAILED ({', '.join(result['failed']) or 'exit ' + str(result['exitstatus'])})"
        print(f"{tier} run {i + 1}: seed {seed}, {result['tests']} tests, {result['seconds']:.0f} s, {verdict}", flush=True)

    smoke = [r for r in runs if r["tier"] == "smoke"]
    flaky: dict[str, int] = {}
    for run in smoke:
        for nodeid in run["failed"]:
            flaky[nodeid] = flaky.get(nodeid, 0) + 1
    data = {
        "started": started_at,
        "wall_seconds": round(time.monotonic() - started, 1),
        "workers": args.workers,
        "machine": machine(),
        "load_average_at_start": load_at_start,
        "smoke_runs": len(smoke),
        "failed_runs": sum(1 for r in smoke if r["exitstatus"] != 0),
        "failures_by_test": dict(sorted(flaky.items())),
        "runs": runs,
    }
    write_results(args.output, data)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{data['failed_runs']} of {len(smoke)} smoke runs failed; results in {args.output}")
    return 1 if data["failed_runs"] else 0
