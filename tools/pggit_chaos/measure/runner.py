"""Mutation runner: how many of the catalog's bugs does a tier of the chaos suite catch?

    pggit-chaos mutate --tier smoke|full [--jobs N] [--only NAME ...]

For the unmutated SQL first (the baseline, which must pass) and then for each
mutant of ``tools/pggit_chaos/measure/mutants.py``, the runner writes the extension's SQL to a
file of its own and runs the tier in a pytest subprocess with
``--pggit-sql FILE``; every subprocess starts its own throwaway PostgreSQL.
A mutant is *killed* when at least one test fails, and every failing test
is recorded (no ``-x``). The contract tests of ``tests/extension`` run
against each mutant too, as an extra column; they do not count towards the
chaos suite's score.

Results go to ``_build/metrics/mutation-<tier>.json`` (with ``--only``:
``mutation-<tier>-only.json``, so a partial run never replaces a whole one).

``--quick`` gives the score in a fraction of the time: each mutant first
meets only the tests that killed it in the last complete run, quickest
first, stopping at the first failure; the whole tier runs only when none of
them fails any more. Its killing-test lists are then partial, so it writes
``mutation-<tier>-quick.json``, which the metrics page never uses.

Each subprocess is started by ``suite_run.py`` and loads the recorder plugin
(``recorder.py``), which writes each test's outcome, duration, failure
summary and Hypothesis statistics to a JSON file; ``stability.py`` runs
pytest the same way.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from pggit_chaos.measure.options import positive_float, positive_int
from pggit_chaos.measure.suite_run import (
    CHAOS_PATHS,
    COMMITTED_METRICS_DIR,
    CONTRACT_MARKERS,
    CONTRACT_PATHS,
    METRICS_DIR,
    TIERS,
    RunResult,
    chaos_command,
    machine,
    run_pytest,
    write_results,
)

COMMAND = "mutate"
DESCRIPTION = __doc__.split("\n\n")[0]

# pytest exit statuses: 0 all passed, 1 some tests failed; anything else is a broken run.
_BROKEN_INSTALL = "CREATE EXTENSION pggit failed"


def _verdict(run: RunResult) -> str:
    if run.exitstatus == 0:
        return "survived"
    if run.exitstatus == 1 and run.failed:
        if any(_BROKEN_INSTALL in (run.tests[n].get("failure") or {}).get("message", "") for n in run.failed):
            return "broken"
        return "killed"
    return "error"


def _property_kills(run: RunResult) -> list[dict]:
    """For each failing property test: examples until the failure, shrink steps, the minimal example."""
    kills = []
    for nodeid in run.failed:
        test = run.tests[nodeid]
        if "hypothesis" not in test:
            continue
        phases = test["hypothesis"]["phases"]
        kills.append({
            "test": nodeid,
            "examples_before_failure": sum(p.get("passing", 0) + p.get("invalid", 0) + p.get("failing", 0)
                                           for name, p in phases.items() if name != "shrink"),
            "shrinks_tried": phases.get("shrink", {}).get("shrinks_tried", 0),
            "shrinks_successful": phases.get("shrink", {}).get("shrinks_successful", 0),
            "shrink_seconds": phases.get("shrink", {}).get("seconds", 0.0),
            "falsifying_example": (test.get("failure") or {}).get("falsifying_example"),
        })
    return kills


def _mutant_record(mutant, chaos: RunResult, contract: RunResult | None) -> dict:
    record = {
        "name": mutant.name,
        "category": mutant.category,
        "description": mutant.description,
        "status": _verdict(chaos),
        "exitstatus": chaos.exitstatus,
        "seconds": chaos.seconds,
        "tests_run": len(chaos.tests),
        "quick": chaos.quick,
        "killed_by": chaos.failed,
        "failures": {n: chaos.tests[n].get("failure") for n in chaos.failed},
        "property_kills": _property_kills(chaos),
    }
    if record["status"] == "error":
        record["output_tail"] = chaos.output_tail
    if contract is not None:
        record["contract"] = {"status": _verdict(contract), "killed_by": contract.failed, "seconds": contract.seconds}
    return record


def _hypothesis_examples(run: RunResult) -> dict[str, dict]:
    """Examples run per property test in a passing run."""
    out = {}
    for nodeid, test in sorted(run.tests.items()):
        if "hypothesis" in test:
            phases = test["hypothesis"]["phases"]
            out[nodeid] = {
                "passing": sum(p.get("passing", 0) for p in phases.values()),
                "invalid": sum(p.get("invalid", 0) for p in phases.values()),
                "seconds": round(sum(p.get("seconds", 0.0) for p in phases.values()), 3),
                "stopped_because": test["hypothesis"]["stopped_because"],
            }
    return out


def _progress(text: str) -> None:
    print(text, flush=True)


def previous_killers(tier: str) -> dict[str, list[str]]:
    """The tests that killed each mutant in the last complete run of the tier (built or published),
    quickest first: property tests last (a failing one shrinks its example, which takes seconds)."""
    for path in (METRICS_DIR / f"mutation-{tier}.json", COMMITTED_METRICS_DIR / f"mutation-{tier}.json"):
        if path.exists():
            data = json.loads(path.read_text())
            durations, markers = data["baseline"]["durations"], data["baseline"]["markers"]

            def cost(nodeid: str) -> tuple[bool, float]:
                return "property" in markers.get(nodeid, []), durations.get(nodeid, 0.0)

            return {m["name"]: sorted(m["killed_by"], key=cost) for m in data["mutants"] if m["status"] == "killed"}
    return {}


def run_catalog(tier: str, jobs: int, only: list[str] | None, contract: bool, seed: int,
                test_timeout: int, run_timeout: float, output: Path, keep: bool = False,
                quick: bool = False) -> dict:
    from pggit_chaos.measure import mutants as catalog

    sql = catalog.EXTENSION_SQL.read_text()
    chosen = catalog.MUTANTS
    if only:
        known = catalog.by_name()
        unknown = [n for n in only if n not in known]
        if unknown:
            raise SystemExit(f"unknown mutant(s): {', '.join(unknown)} (see tools/pggit_chaos/measure/mutants.py)")
        chosen = [known[n] for n in only]
    # Refuse a stale catalog before running anything.
    mutated = {}
    for mutant in chosen:
        try:
            mutated[mutant.name] = mutant.apply(sql)
        except catalog.MutantError as exc:
            raise SystemExit(f"error: {exc}") from None

    markexpr = TIERS[tier]
    extra = [f"--hypothesis-seed={seed}", "-p", "no:xdist"]
    # Quick: a mutant's previous killers run first; only if none of them fails does the whole tier run.
    killers_before = previous_killers(tier) if quick else {}
    workdir = Path(tempfile.mkdtemp(prefix=f"pggit-mutants-{tier}-"))
    stop = threading.Event()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started_at = time.gmtime()
    started = time.monotonic()
    _progress(f"mutation run: tier {tier} ({markexpr}), {len(chosen)} mutants, {jobs} jobs, "
              f"Hypothesis seed {seed}, work files in {workdir}")

    def job(name: str, text: str) -> tuple[str, RunResult, RunResult | None]:
        if stop.is_set():
            return name, RunResult(-2, 0.0), None
        path = workdir / f"{name}.sql"
        path.write_text(text)
        chaos = None
        if killers_before.get(name):
            # One failure is enough for the score: stop at it (-x).
            first = run_pytest(chaos_command(path, killers_before[name], markexpr, test_timeout, [*extra, "-x"]),
                               workdir, f"{name}.quick", run_timeout, stop)
            if _verdict(first) == "killed":
                chaos, first.quick = first, True
        if chaos is None:
            chaos = run_pytest(chaos_command(path, CHAOS_PATHS, markexpr, test_timeout, extra),
                               workdir, name, run_timeout, stop)
        contract_run = None
        if contract and not stop.is_set():
            contract_run = run_pytest(chaos_command(path, CONTRACT_PATHS, CONTRACT_MARKERS, test_timeout, extra),
                                      workdir, f"{name}.contract", run_timeout, stop)
        return name, chaos, contract_run

    results: dict[str, dict] = {}
    baseline: dict | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(job, "baseline", sql)]
        futures += [pool.submit(job, m.name, mutated[m.name]) for m in chosen]
        by_name = catalog.by_name()
        for future in concurrent.futures.as_completed(futures):
            name, chaos, contract_run = future.result()
            if chaos.exitstatus == -2:
                continue
            if name == "baseline":
                if chaos.exitstatus != 0 or (contract_run is not None and contract_run.exitstatus != 0):
                    stop.set()
                    failing = chaos.failed + (contract_run.failed if contract_run else [])
                    detail = "\n  ".join(failing) or chaos.output_tail
                    raise SystemExit(
                        f"error: the unmutated extension does not pass the {tier} tier "
                        f"(pytest exit status {chaos.exitstatus}); fix the suite or the SQL first, "
                        f"mutation scores against a failing baseline mean nothing.\n  {detail}\n"
                        f"(logs in {workdir})")
                baseline = {
                    "seconds": chaos.seconds,
                    "tests": len(chaos.tests),
                    "passed": chaos.count("passed"),
                    "skipped": chaos.count("skipped"),
                    "xfailed": chaos.count("xfailed"),
                    "durations": {n: t["duration"] for n, t in sorted(chaos.tests.items())},
                    "markers": {n: t.get("markers", []) for n, t in sorted(chaos.tests.items())},
                    "hypothesis": _hypothesis_examples(chaos),
                    "pg_version": chaos.pg_version,
                    "contract_seconds": contract_run.seconds if contract_run else None,
                    "contract_tests": len(contract_run.tests) if contract_run else None,
                }
                _progress(f"  baseline: passed ({baseline['passed']} passed, {baseline['skipped']} skipped, "
                          f"{chaos.seconds:.0f} s)")
                continue
            record = _mutant_record(by_name[name], chaos, contract_run)
            results[name] = record
            contract_note = f", contract: {record['contract']['status']}" if contract_run else ""
            _progress(f"  {name}: {record['status']} by {len(record['killed_by'])} test(s) "
                      f"in {chaos.seconds:.0f} s{contract_note}")

    wall = time.monotonic() - started
    ordered = [results[m.name] for m in chosen]
    killed = sum(1 for r in ordered if r["status"] == "killed")
    data = {
        "tier": tier,
        "markexpr": markexpr,
        "paths": CHAOS_PATHS,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", started_at),
        "wall_seconds": round(wall, 1),
        "jobs": jobs,
        "hypothesis_seed": seed,
        "test_timeout": test_timeout,
        "complete": only is None and not quick,
        "quick": quick,
        "machine": machine(),
        # Other work on the machine slows every run: the 1, 5 and 15 minute load averages at the start.
        "load_average_at_start": load_at_start,
        "pg_version": baseline["pg_version"] if baseline else None,
        "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
        "baseline": baseline,
        "score": {
            "killed": killed,
            "total": len(ordered),
            "survived": [r["name"] for r in ordered if r["status"] == "survived"],
            "errors": [r["name"] for r in ordered if r["status"] in ("error", "broken")],
            "contract_killed": sum(1 for r in ordered if r.get("contract", {}).get("status") == "killed")
            if contract else None,
        },
        "mutants": ordered,
    }
    write_results(output, data)
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return data


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The runner's options, on ``parser`` (its own, or ``pggit-chaos mutate``)."""
    parser.add_argument("--tier", choices=sorted(TIERS), required=True,
                        help="the chaos tier every mutant meets: smoke (quick tests that leave the server alone) "
                             "or full (every chaos test but the soak tier).")
    parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                        help="how many mutants run at once, each in a throwaway cluster of its own "
                             "(default: the machine's cores, %(default)s).")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these mutants of the catalog; the results go to mutation-<tier>-only.json.")
    parser.add_argument("--no-contract", action="store_true",
                        help="skip the extra column: the contract tests of tests/extension run against each mutant.")
    parser.add_argument("--seed", type=int, default=0,
                        help="the Hypothesis seed of every run (default 0, so a run can be repeated exactly).")
    parser.add_argument("--test-timeout", type=positive_int, default=120, metavar="SECONDS",
                        help="seconds one test may take before it counts as hung (default %(default)s).")
    parser.add_argument("--run-timeout", type=positive_float, default=3600, metavar="SECONDS",
                        help="seconds one pytest run may take before it is killed (default %(default)s).")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="where the results go (default: _build/metrics/mutation-<tier>.json).")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory with each mutant's SQL, log and JUnit XML.")
    parser.add_argument("--quick", action="store_true",
                        help="the score alone: each mutant meets its killers of the last complete run first, up to "
                             "the first failure, and the whole tier only when none fails (killing-test lists are partial).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the catalog as ``args`` say and print the score; 1 if any run broke."""
    suffix = "-only" if args.only else "-quick" if args.quick else ""
    output = args.output or METRICS_DIR / f"mutation-{args.tier}{suffix}.json"
    data = run_catalog(args.tier, args.jobs, args.only, not args.no_contract, args.seed,
                       args.test_timeout, args.run_timeout, output, args.keep, args.quick)
    score = data["score"]
    print(f"\n{args.tier}: {score['killed']}/{score['total']} mutants killed "
          f"({100 * score['killed'] / max(1, score['total']):.0f}%) in {data['wall_seconds']:.0f} s; results in {output}")
    if score["contract_killed"] is not None:
        print(f"contract tests alone: {score['contract_killed']}/{score['total']} killed")
    for name in score["survived"]:
        print(f"  survived: {name}")
    for name in score["errors"]:
        print(f"  ERROR (run broken, see its output): {name}")
    return 1 if score["errors"] else 0
