"""The fast mutation runner: coverage-selected tests, the first kill ends a mutant, one cluster per worker.

    pggit-chaos mutate-fast --catalog generated|hand --tier full [--jobs N] [--sample N] [--select coverage|all]

Where ``pggit-chaos mutate`` starts a pytest run and a cluster per mutant and
runs the whole tier, this runner starts ``--jobs`` workers once; each
collects the tier, starts its cluster and takes mutants from a shared queue
(``fast_loop.py``): a template database per mutant, only the tests the reach
map (``selection.py``) says can see the mutated function, past killers and
quick tests first, and the first failure ends the mutant. A mutant whose
function no test reaches is reported "unreached" without a run; one whose
script does not install is "stillborn". Neither counts as killed.

Results go to ``_build/metrics/mutation-fast-<catalog>-<tier>.json`` (with
``--only`` or ``--select all``, a name that says so; a ``--sample`` run
records its size). Ctrl-C (or SIGTERM) stops the workers and keeps every
verdict reached so far.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from pggit_chaos.measure import fast_loop, mutagen, mutant_triage, selection
from pggit_chaos.measure.options import positive_float, positive_int
from pggit_chaos.measure.suite_run import (CHAOS_PATHS, COMMITTED_METRICS_DIR, METRICS_DIR, TIERS, chaos_command,
                                           machine, run_parallel, run_pytest, tier_selection, write_results)
from pggit_chaos.paths import EXTENSION_SQL

COMMAND = "mutate-fast"
DESCRIPTION = __doc__.split("\n\n")[0]
VERDICTS = ("killed", "survived", "unreached", "stillborn", "error", "equivalent")


def function_at(sql: str, offset: int) -> str:
    """The function whose header or body holds byte ``offset`` of ``sql``, or SCRIPT."""
    for unit in mutagen.units(sql):
        if unit.tokens and unit.tokens[0].start <= offset < unit.tokens[-1].end and unit.kind != "script":
            return unit.function
    return mutagen.SCRIPT


def catalog(name: str, sql: str) -> list:
    """The mutants of a catalog: the hand-written one, or the generator's."""
    if name == "generated":
        return mutagen.generate(sql)
    from pggit_chaos.measure import mutants

    return list(mutants.MUTANTS)


def draw(mutants: list, n: int, seed: int) -> list:
    """N mutants, those whose seeded hash of the id is lowest, in catalog order.

    Unlike a draw of positions, a mutant's place in the sample depends on its own id alone: a change
    elsewhere in the script adds or removes only the mutants it makes or unmakes.
    """
    rank = sorted(mutants, key=lambda m: hashlib.sha256(f"{seed}:{m.name}".encode()).hexdigest())
    keep = {m.name for m in rank[:n]}
    return [m for m in mutants if m.name in keep]


def recorded_run(path: Path) -> dict:
    """A results file of this runner, or a clear error naming it."""
    try:
        run = json.loads(path.read_text())
        run["mutants"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise SystemExit(f"--again {path}: not a results file of mutate-fast with mutants ({error})") from None
    return run


def past_kills() -> tuple[dict[str, int], dict[str, list[str]]]:
    """From earlier runs (published and built): how many mutants each test killed, and each mutant's killers."""
    kills: dict[str, int] = {}
    killers: dict[str, list[str]] = {}
    for folder in (COMMITTED_METRICS_DIR, METRICS_DIR):
        for path in sorted(folder.glob("mutation-*.json")):
            try:
                for m in json.loads(path.read_text()).get("mutants", []):
                    found = m.get("killed_by") or []
                    for test in [found] if isinstance(found, str) else found:
                        kills[test] = kills.get(test, 0) + 1
                        mine = killers.setdefault(m.get("id") or m.get("name"), [])
                        if test not in mine:
                            mine.append(test)
            except (ValueError, AttributeError, TypeError):
                continue
    return kills, killers


def _progress_line(done: int, total: int, counts: dict[str, int], started: float) -> str:
    elapsed = time.monotonic() - started
    left = (elapsed / done) * (total - done) if done else float("nan")
    eta = f"{left / 60:.0f} min left" if done else "estimating"
    return (f"  [{done}/{total}] killed {counts.get('killed', 0)}, survived {counts.get('survived', 0)}, "
            f"unreached {counts.get('unreached', 0)}, stillborn {counts.get('stillborn', 0)}, "
            f"equivalent {counts.get('equivalent', 0)}; "
            f"{elapsed / 60:.1f} min, {eta}")


def _watch(futures, workdir: Path, records: dict, seen: set, counts: dict, total: int, started: float) -> None:
    """Print progress as verdicts arrive, until every worker has ended."""
    last = None
    while True:
        finished = all(f.done() for f in futures)
        for path in sorted((workdir / "results").glob("*.json")):
            if path.name not in seen:
                seen.add(path.name)
                status = json.loads(path.read_text())["status"]
                counts[status] = counts.get(status, 0) + 1
        line = _progress_line(len(records) + len(seen), total, counts, started)
        if line.split(";")[0] != last:
            print(line, flush=True)
            last = line.split(";")[0]
        if finished:
            return
        concurrent.futures.wait(futures, timeout=2)  # wakes at once when the last worker ends


def run_mutants(chosen: list, sql: str, tier: str, jobs: int, select: str, seed: int, test_timeout: int,
                run_timeout: float, workdir: Path, reach_map: dict | None = None,
                paths: list[str] = CHAOS_PATHS, skip_equivalent: bool = True,
                markexpr: str | None = None) -> tuple[list[dict], float]:
    """Run ``chosen`` mutants on ``jobs`` workers; their records in order, and the wall time.

    ``paths`` and ``markexpr`` (default: the tier's markers): the tests the workers collect; the
    selection keeps only tests under ``paths``.
    ``reach_map``: the coverage map (default: the full tier's, measured by ``pggit-chaos reach``).
    ``skip_equivalent``: a mutant the triage (``mutant_triage.py``) judged equivalent is recorded as
    such without a run."""
    reach_map = reach_map or selection.load("full", sql)
    kills, killers = past_kills()
    selector = selection.Selector(reach_map, sql, kills)
    markexpr = markexpr or TIERS[tier]
    inside = tuple(p.rstrip("/") + "/" for p in paths)

    def collected(tests: list[str]) -> list[str]:  # the map may hold tests of folders this run leaves out
        return [t for t in tests if (t.split("::")[0] + "/").startswith(inside) or t.split("::")[0] in paths]

    every_test = collected(selector.tests_for(None))
    for sub in ("claims", "results", "sql"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    records: dict[int, dict] = {}
    planned = []
    for index, mutant in enumerate(chosen):
        function, line = getattr(mutant, "function", None), getattr(mutant, "line", None)
        if function is None:  # a hand-written mutant: the function around its edit
            offset = sql.encode().find(mutant.find.encode())
            function, line = function_at(sql, offset), sql.encode().count(b"\n", 0, offset) + 1
        # A generated mutant's edit is known to the byte: the tests that ran its statement; a hand-written
        # one may span statements: the tests that reached its function.
        span = (mutant.start, mutant.end) if hasattr(mutant, "start") else None
        statement = selector.statement_for(function, span)
        tests = every_test if select == "all" else collected(selector.tests_for(function, span))
        # The tests that killed this very mutant before go first, and so do those its triage names as its
        # killers, even when the map does not know them yet (a test written for the mutant after the reach run).
        named = collected(mutant_triage.named_killers(mutant.name))
        tests = [t for t in named if t not in tests] + tests
        known = set(killers.get(mutant.name, ())) | set(named)
        own = [t for t in tests if t in known]
        tests = own + [t for t in tests if t not in set(own)]
        base = {"id": mutant.name, "operator": mutant.category, "function": function, "line": line,
                "description": mutant.description,
                "selected_by": f"statement at line {statement.line}" if statement and select != "all" else "function"}
        if skip_equivalent and mutant_triage.verdict(mutant.name) == "equivalent":  # judged so: nothing to learn
            records[index] = {**base, "status": "equivalent", "tests_selected": len(tests), "tests_run": 0,
                              "killed_by": None, "seconds": 0.0}
            continue
        if not tests:
            records[index] = {**base, "status": "unreached", "tests_selected": 0, "tests_run": 0,
                              "killed_by": None, "seconds": 0.0}
            continue
        path = workdir / "sql" / f"{index}.sql"
        path.write_text(mutant.apply(sql))
        planned.append((index, base, {"id": mutant.name, "function": function, "sql": str(path), "tests": tests,
                                      "own_killers": len(own)}))
    if not planned:  # every mutant unreached or judged equivalent: no worker to start
        return [records[i] for i in range(len(chosen))], 0.0
    # In a seeded random order: a run stopped early has verdicts for a fair sample, not for the top of the file.
    random.Random(seed).shuffle(planned)
    plan = {"claims": str(workdir / "claims"), "results": str(workdir / "results"),
            "durations": reach_map["durations"],
            "mutants": [p[2] for p in planned]}
    (workdir / "plan.json").write_text(json.dumps(plan))
    total, started = len(chosen), time.monotonic()
    print(f"mutate-fast: {total} mutants ({len(planned)} to run, {len(records)} unreached or equivalent), tier {tier}, "
          f"{jobs} worker(s), selection: {select}; work files in {workdir}", flush=True)

    def worker(number: int):
        script = workdir / f"worker-{number}.sql"
        script.write_text(sql)
        extra = [f"--hypothesis-seed={seed}", "-p", "no:xdist", "-p", fast_loop.__name__,
                 f"{fast_loop.PLAN_OPTION}={workdir / 'plan.json'}"]
        return lambda stop: run_pytest(chaos_command(script, paths, markexpr, test_timeout, extra),
                                       workdir, f"worker-{number}", run_timeout, stop)

    counts: dict[str, int] = {}
    for record in records.values():  # those decided without a run: unreached, or judged equivalent
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    seen: set[str] = set()
    # Ctrl-C or SIGTERM stops the workers (each in a session of its own) and keeps every verdict already reached.
    runs, interrupted = run_parallel([worker(n) for n in range(jobs)],
                                     lambda futures: _watch(futures, workdir, records, seen, counts, total, started))
    for position, (index, base, _) in enumerate(planned):
        path = workdir / "results" / f"{position}.json"
        if path.exists():
            records[index] = {**base, **{k: v for k, v in json.loads(path.read_text()).items() if k != "id"}}
        elif interrupted:
            records[index] = {**base, "status": "not run"}
        else:
            tail = "\n".join(r.output_tail for r in runs)[-2000:]
            records[index] = {**base, "status": "error", "tests_selected": None, "tests_run": 0,
                              "killed_by": None, "seconds": 0.0, "output_tail": tail}
    done = [records[i] for i in range(len(chosen)) if records[i]["status"] != "not run"]
    return done, time.monotonic() - started


def failing_unmutated(records: list[dict]) -> list[str]:
    """The tests that failed against a mutant and then against the unmutated script too (``fast_loop``)."""
    return sorted({test for r in records for test in r.get("failing_unmutated", [])})


def summarize(records: list[dict]) -> dict:
    counts = {v: sum(1 for r in records if r["status"] == v) for v in VERDICTS}
    scored = counts["killed"] + counts["survived"] + counts["unreached"]
    return {**counts, "total": len(records), "scored": scored,
            "score": round(counts["killed"] / scored, 4) if scored else None}


def write_agreement(coverage: list[dict], everything: list[dict], wall_all: float, args: argparse.Namespace) -> None:
    """The same mutants with and without selection, verdict by verdict, in selection-agreement.json; the time
    each way is the sum of the mutants' own run times (the selected run's wall time covers other mutants too)."""
    by_id = {a["id"]: a for a in everything}
    pairs = [{"id": c["id"], "coverage": c["status"], "all": by_id[c["id"]]["status"],
              "killed_by": by_id[c["id"]].get("killed_by"), "seconds_coverage": c.get("seconds"),
              "seconds_all": by_id[c["id"]].get("seconds")} for c in coverage if c["id"] in by_id]
    spent = round(sum(p["seconds_coverage"] or 0 for p in pairs), 1)
    spent_all = round(sum(p["seconds_all"] or 0 for p in pairs), 1)
    write_results(METRICS_DIR / "selection-agreement.json", {
        "what": f"{len(pairs)} mutants drawn from the run's {'sample' if args.sample else 'catalog'} "
                f"of the {args.catalog} catalog", "tier": args.tier, "contract": args.contract,
        "seconds_coverage": spent, "seconds_all": spent_all, "wall_all": round(wall_all, 1), "pairs": pairs})
    agree = sum(1 for p in pairs if p["coverage"] == p["all"])
    print(f"selection agrees with every-test runs for {agree} of {len(pairs)} mutants "
          f"({spent / 60:.1f} min of mutant run time against {spent_all / 60:.1f} min)")


def agreement_with_published(records: list[dict], tier: str) -> dict:
    """The hand-written catalog's verdicts against the last complete ``pggit-chaos mutate`` run of the tier."""
    path = COMMITTED_METRICS_DIR / f"mutation-{tier}.json"
    if not path.exists():
        return {}
    full = {m["name"]: m["status"] for m in json.loads(path.read_text())["mutants"]}
    compared = [(r["id"], r["status"], full[r["id"]]) for r in records if r["id"] in full]
    return {"compared": len(compared), "agree": sum(1 for _, a, b in compared if a == b),
            "differ": [{"id": i, "fast": a, "full_run": b} for i, a, b in compared if a != b],
            "full_run_wall_seconds": json.loads(path.read_text())["wall_seconds"]}


def append_trend(row: dict) -> None:
    """One row per run in mutation-trend.json, the page's trend table."""
    path = METRICS_DIR / "mutation-trend.json"
    # A fresh checkout has no build copy yet: go on from the published trend, which the import replaces.
    start = path if path.exists() else COMMITTED_METRICS_DIR / path.name
    rows = json.loads(start.read_text()) if start.exists() else []
    write_results(path, [*rows, row])


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--catalog", choices=("generated", "hand"), default="generated",
                        help="the generated mutants (mutagen.py) or the hand-written catalog (mutants.py).")
    parser.add_argument("--tier", choices=sorted(TIERS), default="full", help="the chaos tier every mutant meets (default %(default)s).")
    parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                        help="workers, each with one cluster for all its mutants (default: the cores, %(default)s).")
    parser.add_argument("--contract", action="store_true",
                        help="the contract tests (tests/extension) meet the mutants too, beside the tier's chaos tests.")
    parser.add_argument("--select", choices=("coverage", "all"), default="coverage",
                        help="coverage: only the tests that reach the mutated function (the reach map); "
                             "all: every test of the tier, still stopping at the first kill.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sample", type=positive_int, metavar="N",
                       help="a deterministic sample of N mutants (seeded by --seed), for a quick measure; a mutant "
                            "stays in it while its id exists, whatever else the script gains or loses.")
    which.add_argument("--again", type=Path, metavar="RESULTS",
                       help="the mutants a recorded run met (a results file), those the catalog still makes: "
                            "the same sample measured again after triage and new tests.")
    which.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants, given by id (generated) or name (hand-written).")
    parser.add_argument("--seed", type=int, default=0, help="the Hypothesis seed of every worker, and the seed of --sample (default 0).")
    parser.add_argument("--agreement", type=positive_int, metavar="N",
                        help="after the run, run N of its mutants (a seeded draw of those that ran) again against "
                             "every test and write selection-agreement.json: does selection change any verdict.")
    parser.add_argument("--include-equivalent", action="store_true",
                        help="run the mutants the triage judged equivalent too (by default they are recorded "
                             "as equivalent without a run).")
    parser.add_argument("--test-timeout", type=positive_int, default=120, metavar="SECONDS",
                        help="seconds one test may take before it counts as hung, and fails (default %(default)s).")
    parser.add_argument("--run-timeout", type=positive_float, default=4 * 3600, metavar="SECONDS",
                        help="seconds a worker may run before it is killed with its mutants (default %(default)s).")
    parser.add_argument("--sql", type=Path, default=EXTENSION_SQL, metavar="FILE",
                        help="the script to mutate (default: extension/pggit--1.0.0.sql); the reach map must "
                             "have been measured on the same script.")
    parser.add_argument("--output", type=Path, metavar="FILE", help="where the results go (default: _build/metrics/mutation-fast-<catalog>-<tier>.json).")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (scripts, logs, verdicts).")
    return parser


def run(args: argparse.Namespace) -> int:
    from pggit_chaos.measure.mutants import MutantError

    sql = args.sql.read_text()
    chosen, stale = [], []
    for mutant in catalog(args.catalog, sql):
        try:
            mutant.apply(sql)
            chosen.append(mutant)
        except MutantError:
            stale.append(mutant.name)
    if stale:
        print(f"warning: {len(stale)} mutant(s) do not apply to {args.sql} and are left out: {', '.join(stale)}")
    recorded = recorded_run(args.again) if args.again else None
    if args.only or recorded:
        wanted = set(args.only or [m["id"] for m in recorded["mutants"]])
        chosen = [m for m in chosen if m.name in wanted]
        if len(chosen) < len(wanted):
            print(f"warning: {len(wanted) - len(chosen)} of the {len(wanted)} mutants asked for are not in the catalog")
        if recorded:
            args.sample = recorded.get("sample")
    elif args.sample:
        chosen = draw(chosen, args.sample, args.seed)
    # A sample is a measure the page shows (naming its size); --only and --select all are not.
    suffix = "".join(s for s, on in (("-only", args.only), ("-all", args.select == "all")) if on)
    output = args.output or METRICS_DIR / f"mutation-fast-{args.catalog}-{args.tier}{suffix}.json"
    workdir = Path(tempfile.mkdtemp(prefix=f"pggit-fast-{args.catalog}-"))
    load = [round(x, 2) for x in os.getloadavg()]
    paths, markexpr = tier_selection(args.tier, args.contract)
    records, wall = run_mutants(chosen, sql, args.tier, args.jobs, args.select, args.seed, args.test_timeout,
                                args.run_timeout, workdir, paths=paths, markexpr=markexpr,
                                skip_equivalent=not args.include_equivalent)
    interrupted = len(records) < len(chosen)
    score = summarize(records)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - wall))
    if args.agreement and args.select == "coverage" and not interrupted:
        # A seeded draw of the run's mutants that ran (skipped ones have nothing to compare), every test each.
        ran = [m for m, r in zip(chosen, records) if r["status"] in ("killed", "survived")]
        again = sorted(random.Random(args.seed + 1).sample(ran, min(args.agreement, len(ran))), key=ran.index)
        everything, wall_all = run_mutants(again, sql, args.tier, args.jobs, "all", args.seed, args.test_timeout,
                                           args.run_timeout, workdir / "all", paths=paths, markexpr=markexpr,
                                           skip_equivalent=not args.include_equivalent)
        write_agreement(records, everything, wall_all, args)
    if args.catalog == "hand":
        score["agreement_with_full_run"] = agreement_with_published(records, args.tier)
    append_trend({"started": started, "catalog": args.catalog, "tier": args.tier, "contract": args.contract,
                  "select": args.select,
                  "mutants": len(records), "killed": score["killed"], "scored": score["scored"],
                  "wall_seconds": round(wall, 1), "jobs": args.jobs, "sample": args.sample})
    write_results(output, {
        "catalog": args.catalog, "tier": args.tier, "contract": args.contract, "select": args.select, "jobs": args.jobs,
        "sample": args.sample, "again_of": recorded["started"] if recorded else None,
        "complete": not (args.sample or args.only or recorded or interrupted),
        "interrupted_after": len(records) if interrupted else None, "hypothesis_seed": args.seed,
        "started": started,
        "wall_seconds": round(wall, 1), "machine": machine(), "load_average_at_start": load,
        "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(), "not_applying": stale, "score": score,
        "failing_unmutated": failing_unmutated(records),
        "statements_never_run": selection.never_run(selection.load(args.tier, sql), sql), "mutants": records})
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    percent = f" ({100 * score['score']:.0f}%)" if score["score"] is not None else ""
    print(f"{args.catalog} {args.tier}: {score['killed']}/{score['scored']} killed{percent}, "
          f"{score['survived']} survived, {score['unreached']} unreached, {score['stillborn']} stillborn, "
          f"{score['equivalent']} skipped as equivalent, "
          f"{score['error']} errors in {wall / 60:.1f} min; results in {output}")
    if failing_unmutated(records):
        print(f"warning: these tests fail against the unmutated script too, and killed nothing: "
              f"{', '.join(failing_unmutated(records))}")
    if interrupted:
        print(f"interrupted after {len(records)} of {len(chosen)} mutants")
        return 130  # as a shell reports a run ended by Ctrl-C
    return 1 if score["error"] else 0
