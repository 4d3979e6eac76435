"""Stability and wall time: the smoke tier (or make test, or make test-all) run N times, each with a new Hypothesis seed.

    pggit-chaos stability --runs 20 [--tier smoke|test|test-all] [--workers auto] [--full-runs 1] [--profile dev|gate|smoke]

Each run is what ``make smoke`` runs (pytest-xdist, one cluster per worker),
or with ``--tier test`` what ``make test`` runs (pggit's contract, the
chaos suite, examples and guides), with ``--tier test-all`` what ``make
test-all`` runs (every test path: the toolkit's and the site's too), with
``--hypothesis-seed`` drawn at random and recorded, so a failing run can
be replayed exactly (``--profile gate`` runs CI's derandomized examples
instead; the seed is then recorded but draws nothing). A test that fails in
some runs and passes in others is flaky. After those runs, the full tier
runs ``--full-runs`` times the same way, for its wall time. Each run
records the tier and the user (root, whose servers run as nobody, or an
ordinary one), the time it started and the load average before it.
Results go to ``_build/metrics/stability.json``, merged into
the runs recorded before (``--base``, else that file, else the committed
``docs/_data/metrics/stability.json``): this measurement's runs replace the
earlier ones of the same tier and user and keep the others, so root's and
an ordinary user's runs of both tiers stand side by side on the Metrics page.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from pggit_chaos.measure import mutants
from pggit_chaos.measure.options import non_negative_int, positive_int, workers_started, xdist_workers
from pggit_chaos.measure.suite_run import (
    CHAOS_PATHS,
    COMMITTED_METRICS_DIR,
    METRICS_DIR,
    TIERS,
    chaos_command,
    current_user,
    machine,
    make_command,
    run_pytest,
    write_results,
)

COMMAND = "stability"
DESCRIPTION = __doc__.split("\n\n")[0]
# Where the runs recorded before come from when the output file does not exist yet.
COMMITTED = COMMITTED_METRICS_DIR / "stability.json"
PROFILES = ("dev", "gate", "smoke")
# The profile a tier runs with unless --profile says otherwise: make smoke's own, and make test's default.
TIER_PROFILES = {"smoke": "smoke", "test": "dev", "test-all": "dev", "full": "dev"}


def run_tier(tier: str, seed: int, workers: str, workdir: Path, label: str, test_timeout: int,
             profile: str = "dev") -> dict:
    """One run of ``tier`` with ``seed``: the chaos suite's paths for smoke and full, the Makefile's for the others."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = [round(x, 2) for x in os.getloadavg()]
    extra = [f"--hypothesis-seed={seed}", "-p", "no:cacheprovider"]
    if tier not in TIERS:
        argv = make_command(tier, workers, test_timeout, [*extra, f"--pggit-sql={mutants.EXTENSION_SQL}"])
    else:
        argv = chaos_command(mutants.EXTENSION_SQL, CHAOS_PATHS, TIERS[tier], test_timeout,
                             [f"--hypothesis-seed={seed}", "-n", workers, "--dist", "loadgroup"])
    run = run_pytest(argv, workdir, label, run_timeout=3600, env_extra={"HYPOTHESIS_PROFILE": profile},
                     write_bytecode=True, fresh_examples=False)
    return {
        "tier": tier,
        "user": current_user(),
        "profile": profile,
        "workers": workers_started(workers),
        "seed": seed,
        # Each run keeps its own date and load: a merged file holds series measured on different days.
        "started": started,
        "load_before": load_before,
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


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The stability runs' options, on ``parser`` (its own, or ``pggit-chaos stability``)."""
    parser.add_argument("--runs", type=positive_int, default=20, metavar="N",
                        help="how many times the tier runs, each with a new random seed (default %(default)s).")
    parser.add_argument("--tier", choices=("smoke", "test", "test-all"), default="smoke",
                        help="what runs again and again: smoke (make smoke), test (make test) or test-all (every "
                             "test, make test-all) "
                             "(default %(default)s).")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="the Hypothesis profile: dev or smoke, a new random seed each run, or gate, CI's "
                             "derandomized examples (default: the tier's own, smoke for smoke, dev otherwise).")
    parser.add_argument("--base", type=Path, default=None, metavar="FILE",
                        help="the runs recorded before, to merge this measurement into (default: the output file, "
                             "else docs/_data/metrics/stability.json); another user's output file brings their "
                             "runs in.")
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


def merge_runs(base: Path | None, output: Path, runs: list[dict]) -> list[dict]:
    """The runs recorded before, less those of the same tier and user as ``runs``, then ``runs``."""
    source = next((p for p in (base, output, COMMITTED) if p is not None and p.exists()), None)
    earlier = json.loads(source.read_text())["runs"] if source else []
    measured = {(r["tier"], r["user"]) for r in runs}
    return [r for r in earlier if (r["tier"], r.get("user")) not in measured] + runs


def run(args: argparse.Namespace) -> int:
    """Run the tiers as ``args`` say and write the results; 1 if any run of this measurement failed."""
    workdir = Path(tempfile.mkdtemp(prefix="pggit-stability-"))
    seeds = random.SystemRandom()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    started = time.monotonic()
    runs = []
    plan = [(args.tier, i) for i in range(args.runs)] + [("full", i) for i in range(args.full_runs)]
    for tier, i in plan:
        seed = seeds.randrange(2**32)
        result = run_tier(tier, seed, args.workers, workdir, f"{tier}-{i}", args.test_timeout,
                          args.profile or TIER_PROFILES[tier])
        runs.append(result)
        verdict = "passed" if result["exitstatus"] == 0 else f"FAILED ({', '.join(result['failed']) or 'exit ' + str(result['exitstatus'])})"
        print(f"{tier} run {i + 1}: seed {seed}, {result['tests']} tests, {result['seconds']:.0f} s, {verdict}", flush=True)

    this_failed = sum(1 for r in runs if r["exitstatus"] != 0 and r["tier"] == args.tier)
    runs = merge_runs(args.base, args.output, runs)
    smoke = [r for r in runs if r["tier"] == "smoke"]
    flaky: dict[str, int] = {}
    for run in smoke:
        for nodeid in run["failed"]:
            flaky[nodeid] = flaky.get(nodeid, 0) + 1
    # The top-level date and load are this measurement's; the page reads each run's own, as merged runs differ.
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
    print(f"\n{this_failed} of {args.runs} {args.tier} runs as {current_user()} failed; results in {args.output}")
    return 1 if this_failed else 0
