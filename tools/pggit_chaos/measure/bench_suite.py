"""What the everyday loop costs: a tier of the suite run N times as make runs it, each run's wall time and the median.

    pggit-chaos bench-suite [--tier test|test-all|smoke|full] [--runs 5] [--workers auto]

Each run is the Makefile's command for the tier (pggit's tests for
``make test``, every test path for ``make test-all``, the chaos suite's for
the chaos tiers; pytest-xdist with
``--dist loadgroup``, one throwaway cluster per worker),
with the Hypothesis profile the tier runs with: ``gate`` for ``make test``
and ``make test-all``, as ``.ci/run`` uses it (derandomized, so every run draws the same examples
and the runs differ only in what the machine was doing), ``smoke`` for
``make smoke``. Python's bytecode cache stays on, as in a developer's
checkout (the first run fills it, so it is the slowest). Recorded for each
run: its wall time, exit status and test counts, and the load average just
before and just after it; for the whole measurement: the median wall time
of the passing runs, the machine (cores, platform), the user (root or an
ordinary one) and the selection. The measurement goes into
``_build/metrics/suite-timing.json`` (started from the committed
``docs/_data/metrics`` copy), replacing the earlier one of the same tier,
user and selection and keeping the others, so root's and an ordinary
user's figures stand side by side on the Metrics page once ``pggit-chaos
metrics`` has imported them. The committed copy stays as it is until then,
so the suite's check that the page renders its data holds during a series
of measurements. Speed is measured here, never asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pggit_chaos.measure.options import positive_int, workers_started, xdist_workers
from pggit_chaos.measure.suite_run import (
    COMMITTED_METRICS_DIR,
    MAKE_TIERS,
    METRICS_DIR,
    current_user,
    machine,
    make_command,
    reference_seconds,
    run_pytest,
    system_reference_seconds,
    write_results,
)

COMMAND = "bench-suite"
DESCRIPTION = __doc__.split("\n\n")[0]
OUTPUT = METRICS_DIR / "suite-timing.json"
# The targets the everyday loop's medians are held against on a 2-core machine (shown on the Metrics page, never
# asserted); make test-all, every test, has none.
TARGET_SECONDS = {"smoke": 20, "test": 90}
# The Hypothesis profile of each tier as CI and make run it: the gate's derandomized examples for make test, the
# smoke profile's few for make smoke.
PROFILES = {"smoke": "smoke", "test": "gate", "test-all": "gate", "full": "gate"}


def run_once(tier: str, workers: str, selection: list[str], workdir: Path, label: str, test_timeout: int) -> dict:
    """One run of the tier: wall time, exit status, counts, and the load average around it."""
    argv = make_command(tier, workers, test_timeout, ["-p", "no:cacheprovider", *selection])
    load_before = [round(x, 2) for x in os.getloadavg()]
    run = run_pytest(argv, workdir, label, run_timeout=3600, env_extra={"HYPOTHESIS_PROFILE": PROFILES[tier]},
                     write_bytecode=True, fresh_examples=False)
    return {
        "seconds": run.seconds,
        "exitstatus": run.exitstatus,
        "tests": len(run.tests),
        "passed": run.count("passed"),
        "skipped": run.count("skipped"),
        "xfailed": run.count("xfailed"),
        "failed": run.failed,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "slowest": dict(sorted(((n, t["duration"]) for n, t in run.tests.items() if "duration" in t),
                               key=lambda kv: -kv[1])[:10]),
        "output_tail": run.output_tail if run.exitstatus not in (0, 1) else None,
    }


def earlier_results(output: Path, base: Path | None = None) -> dict:
    """The measurements a new one joins: ``output``'s, or before there is one ``base``'s, or none. A file that is
    not a results file stops the tool naming it; measuring tools ask first, so no measurement is lost to it."""
    earlier = output if output.exists() else base if base is not None and base.exists() else None
    if earlier is None:
        return {"measurements": []}
    try:
        data = json.loads(earlier.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("measurements"), list):
            raise ValueError("it holds no list of measurements")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        option = "--output" if earlier == output else "--base"
        raise SystemExit(f"error: {option} {earlier} is not a results file to add the measurement to: {exc}") from None
    return data


def merge(output: Path, entry: dict, base: Path | None = None) -> dict:
    """The measurements of ``output`` (or, before there is one, of ``base``) with ``entry`` in place of the one of its
    tier, user and selection."""
    data = earlier_results(output, base)
    key = (entry["tier"], entry["user"], entry["selection"])
    kept = [m for m in data["measurements"] if (m["tier"], m["user"], m["selection"]) != key]
    order = {tier: i for i, tier in enumerate(MAKE_TIERS)}
    data["measurements"] = sorted([*kept, entry], key=lambda m: (bool(m["selection"]), order.get(m["tier"], 99),
                                                                 m["user"] != "root", m["selection"]))
    return data


def tier_options(parser: argparse.ArgumentParser, output: Path) -> None:
    """The options of a measurement of a tier (this one's and ``bench-cpu``'s): which, a sample of it, the hung-test
    limit, and the results file the measurement is merged into."""
    parser.add_argument("--tier", choices=list(MAKE_TIERS), default="test",
                        help="the Makefile target whose selection runs: test (make test), test-all, smoke or full "
                             "(default %(default)s).")
    parser.add_argument("--select", action="append", default=[], metavar="ARG",
                        help="a path or node id to run instead of the tier's paths, for a quick try of the tool; "
                             "repeatable, and recorded with the figures, so a sample is never taken for a tier.")
    parser.add_argument("--test-timeout", type=positive_int, default=300, metavar="SECONDS",
                        help="seconds one test may take before it counts as hung (default %(default)s).")
    parser.add_argument("--output", type=Path, default=output, metavar="FILE",
                        help=f"the results file the measurement is merged into (default: _build/metrics/{output.name}, "
                             "which pggit-chaos metrics imports).")
    parser.add_argument("--base", type=Path, default=None, metavar="FILE",
                        help="the measurements to start from while --output does not exist yet (default: the "
                             f"committed docs/_data/metrics/{output.name} for the default --output, none for another).")


def merge_base(args: argparse.Namespace, default_output: Path) -> Path | None:
    """Where a measurement's file starts from: ``--base``, else the committed copy when the results go to the default
    place (so the page keeps the other measurements), else nothing."""
    if args.base is not None:
        return args.base
    return COMMITTED_METRICS_DIR / default_output.name if args.output == default_output else None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options, on ``parser`` (its own, or ``pggit-chaos bench-suite``)."""
    tier_options(parser, OUTPUT)
    parser.add_argument("--runs", type=positive_int, default=5, metavar="N",
                        help="how many times the tier runs; the median is the figure (default %(default)s).")
    parser.add_argument("--workers", type=xdist_workers, default="auto", metavar="WORKERS",
                        help="pytest-xdist workers per run, as make uses them (default %(default)s).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the tier as ``args`` say, merge the figures into the results file; 1 if any run failed."""
    earlier_results(args.output, merge_base(args, OUTPUT))  # a results file it could not add to: say so now
    workdir = Path(tempfile.mkdtemp(prefix="pggit-bench-suite-"))
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    runs = []
    reference_before, system_before = reference_seconds(), system_reference_seconds()
    try:
        for i in range(args.runs):
            result = run_once(args.tier, args.workers, args.select, workdir, f"{args.tier}-{i}", args.test_timeout)
            runs.append(result)
            verdict = "passed" if result["exitstatus"] == 0 else f"FAILED (exit {result['exitstatus']})"
            print(f"{args.tier} run {i + 1}: {result['tests']} tests, {result['seconds']:.1f} s, load "
                  f"{result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after, {verdict}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    passing = [r["seconds"] for r in runs if r["exitstatus"] == 0]
    entry = {
        "tier": args.tier,
        "markexpr": MAKE_TIERS[args.tier],
        "selection": " ".join(args.select),
        "user": current_user(),
        "workers": workers_started(args.workers),
        "profile": PROFILES[args.tier],
        "started": started_at,
        "machine": machine(),
        # How fast the machine was, before the first run and after the last (suite_run.reference_seconds).
        "reference_seconds": [reference_before, reference_seconds()],
        "system_reference_seconds": [system_before, system_reference_seconds()],
        "target_seconds": TARGET_SECONDS.get(args.tier),
        "median_seconds": round(statistics.median(passing), 1) if passing else None,
        "failed_runs": len(runs) - len(passing),
        "runs": runs,
    }
    write_results(args.output, merge(args.output, entry, merge_base(args, OUTPUT)))
    median = f"{entry['median_seconds']:.1f} s" if passing else "none passed"
    print(f"\n{args.tier}: median {median} over {len(runs)} runs as {entry['user']}; results in {args.output}")
    return 1 if entry["failed_runs"] else 0
