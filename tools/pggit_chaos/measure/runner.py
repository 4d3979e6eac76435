"""Mutation runner: how many of the catalog's bugs does a tier of the chaos suite catch?

    python -m pggit_chaos.measure.runner --tier smoke|full [--jobs N] [--only NAME ...]

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

This module is also the pytest plugin the subprocesses load (``-p
pggit_chaos.measure.runner``): with ``PGGIT_RUN_RECORD`` set, it writes each
test's outcome, duration, failure summary and Hypothesis statistics to that
file as JSON. ``tools/pggit_chaos/measure/stability.py`` uses the same plugin.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pggit_chaos.paths import REPO

METRICS_DIR = REPO / "_build" / "metrics"

# The tiers, as the Makefile's smoke and full targets define them.
TIERS = {
    "smoke": "chaos and not slow and not destructive and not soak",
    "full": "chaos and not soak",
}
# The chaos suite: its own folder, the examples and the guides' chaos tests.
CHAOS_PATHS = ["tests/chaos", "examples", "docs"]
# The contract tests: reported beside the chaos suite's score, never part of it.
CONTRACT_PATHS = ["tests/extension"]
CONTRACT_MARKERS = "not soak"

RECORD_ENV = "PGGIT_RUN_RECORD"


# --------------------------------------------------------------------------
# The pytest plugin (inside the subprocesses)
# --------------------------------------------------------------------------

_OUTCOME_RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "failed": 2, "error": 2}


class RunRecorder:
    """Collects per-test results of one pytest run and writes them as JSON at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.tests: dict[str, dict] = {}
        self.pg_version: str | None = None
        self.started = time.monotonic()

    def pytest_runtest_logreport(self, report) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
        entry["duration"] = round(entry["duration"] + report.duration, 4)
        if report.when == "call" or report.outcome != "passed":
            outcome = report.outcome
            if hasattr(report, "wasxfail"):
                outcome = "xfailed" if report.outcome == "skipped" else "passed"  # a strict XPASS is a failure without it
            elif report.outcome == "failed" and report.when != "call":
                outcome = "error"
            if _OUTCOME_RANK[outcome] > _OUTCOME_RANK[entry["outcome"]]:
                entry["outcome"] = outcome
            if outcome in ("failed", "error"):
                entry["failure"] = _failure_summary(report)
        stats = report.__dict__.get("_hypothesis_stats")
        if stats:
            entry["hypothesis"] = parse_hypothesis_statistics(stats)
        if report.when == "call":
            entry["markers"] = sorted(k for k in report.keywords if k in _SUITE_MARKERS)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        result = yield
        if fixturedef.argname == "pg_server" and self.pg_version is None:
            self.pg_version = getattr(result, "version", None)
        return result

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self.path.write_text(json.dumps({
            "exitstatus": int(exitstatus),
            "seconds": round(time.monotonic() - self.started, 3),
            "pg_version": self.pg_version,
            "tests": self.tests,
        }, indent=1, sort_keys=True))


_SUITE_MARKERS = {
    "chaos", "property", "concurrent", "transaction", "crash", "resource", "load", "corruption",
    "migration", "integrity", "recovery", "slow", "destructive", "soak",
}


def _failure_summary(report) -> dict:
    """The crash line and, for a property test, Hypothesis's falsifying example."""
    text = str(report.longrepr) if report.longrepr is not None else ""
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None) or text.strip().splitlines()[-1:] or [""]
    crash = crash if isinstance(crash, str) else crash[0]
    summary = {"when": report.when, "message": crash.strip()[:400]}
    example = falsifying_example(text)
    if example:
        summary["falsifying_example"] = example[:1500]
    return summary


# Hypothesis's report of the minimal failing input: older releases say "Falsifying example",
# newer ones "Failing test case"; a state machine's steps follow as "state.rule(...)" lines.
_EXAMPLE = re.compile(
    r"^((?:Falsifying (?:explicit )?example|Failing test case)[^\n]*\n(?:(?:[ \t)]|state\b).*\n?)*)", re.M)


def falsifying_example(text: str) -> str | None:
    """The minimal failing example in a failed test's report, or None if it has none."""
    plain = "\n".join(re.sub(r"^E {1,7}", "", line) for line in text.splitlines())  # pytest's "E   " prefix
    match = _EXAMPLE.search(plain)
    return match.group(1).strip() if match else None


_PHASE = re.compile(r"- during (\w+) phase \(([\d.]+) seconds\):(.*?)(?=\n  - |\Z)", re.S)


def parse_hypothesis_statistics(text: str) -> dict:
    """Hypothesis's ``--hypothesis-show-statistics`` text for one test, as numbers per phase."""
    phases = {}
    for name, seconds, body in _PHASE.findall(text):
        phase = {"seconds": float(seconds)}
        counts = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", body)
        if counts:
            phase.update(passing=int(counts.group(1)), failing=int(counts.group(2)), invalid=int(counts.group(3)))
        shrinks = re.search(r"Tried (\d+) shrinks of which (\d+) were successful", body)
        if shrinks:
            phase.update(shrinks_tried=int(shrinks.group(1)), shrinks_successful=int(shrinks.group(2)))
        phases[name] = phase
    stopped = re.search(r"Stopped because (.*)", text)
    return {"phases": phases, "stopped_because": stopped.group(1).strip() if stopped else None}


def pytest_configure(config) -> None:
    path = os.environ.get(RECORD_ENV)
    if path and not hasattr(config, "workerinput"):  # xdist workers report to the controller
        config.pluginmanager.register(RunRecorder(Path(path)), "pggit-run-recorder")


# --------------------------------------------------------------------------
# Running pytest in a subprocess
# --------------------------------------------------------------------------


@dataclass
class RunResult:
    """One pytest subprocess: its exit status, wall time and per-test results."""

    exitstatus: int
    seconds: float
    tests: dict[str, dict] = field(default_factory=dict)
    pg_version: str | None = None
    output_tail: str = ""
    quick: bool = False  # only the mutant's previous killers ran

    @property
    def failed(self) -> list[str]:
        return sorted(n for n, t in self.tests.items() if t["outcome"] in ("failed", "error"))

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.tests.values() if t["outcome"] == outcome)


def chaos_command(sql: Path, paths: list[str], markexpr: str, test_timeout: int, extra: list[str] = ()) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *paths,
        f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        "-m", markexpr, "-q", "-p", "no:cacheprovider", "-p", "no:pggit-doc-results",
        "-p", "pggit_chaos.measure.runner",
        f"--pggit-sql={sql}", f"--timeout={test_timeout}", "--hypothesis-show-statistics",
        *extra,
    ]


def run_pytest(argv: list[str], workdir: Path, label: str, run_timeout: float,
               stop: threading.Event | None = None) -> RunResult:
    """Run one pytest subprocess in its own process group; kill the group on timeout or stop."""
    record = workdir / f"{label}.record.json"
    junit = workdir / f"{label}.junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PGGIT_TEST_DSN", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env[RECORD_ENV] = str(record)
    # A fresh example database per run: a failure found on one mutant must not replay on the next.
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(workdir / f"{label}.hypothesis")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    log = workdir / f"{label}.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([*argv, f"--junitxml={junit}"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        exitstatus = None
        while exitstatus is None:
            try:
                exitstatus = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if (stop is not None and stop.is_set()) or time.monotonic() - started > run_timeout:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        exitstatus = proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        exitstatus = proc.wait()
                    exitstatus = -1 if not (stop is not None and stop.is_set()) else -2
    seconds = time.monotonic() - started
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    result = RunResult(exitstatus, round(seconds, 3), output_tail=tail)
    if record.exists():
        data = json.loads(record.read_text())
        result.tests, result.pg_version = data["tests"], data["pg_version"]
    return result


# --------------------------------------------------------------------------
# The mutation run
# --------------------------------------------------------------------------

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


def machine() -> dict:
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pytest": version("pytest"),
        "hypothesis": version("hypothesis"),
    }


def _progress(text: str) -> None:
    print(text, flush=True)


def previous_killers(tier: str) -> dict[str, list[str]]:
    """The tests that killed each mutant in the last complete run of the tier (built or published),
    quickest first: property tests last (a failing one shrinks its example, which takes seconds)."""
    for path in (METRICS_DIR / f"mutation-{tier}.json", REPO / "docs" / "_data" / "metrics" / f"mutation-{tier}.json"):
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
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=1) + "\n")
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pggit_chaos.measure.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=sorted(TIERS), required=True)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants run at once (default: cores)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--no-contract", action="store_true", help="skip the contract tests' extra column")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed of every run (default 0: reproducible)")
    parser.add_argument("--test-timeout", type=int, default=120, help="seconds per test before it counts as hung")
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds per pytest run before it is killed")
    parser.add_argument("--output", type=Path, help="results file (default _build/metrics/mutation-<tier>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (SQL, logs, JUnit XML)")
    parser.add_argument("--quick", action="store_true",
                        help="score only: each mutant meets its killers from the last complete run first, up to "
                             "the first failure; the whole tier runs only when none fails (killed_by is partial)")
    args = parser.parse_args(argv)
    suffix = "-only" if args.only else "-quick" if args.quick else ""
    output = args.output or METRICS_DIR / f"mutation-{args.tier}{suffix}.json"
    data = run_catalog(args.tier, max(1, args.jobs), args.only, not args.no_contract, args.seed,
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


if __name__ == "__main__":
    sys.exit(main())
