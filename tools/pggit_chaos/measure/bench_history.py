"""What each pggit function costs as pggit's history grows: a benchmark, not a test.

    pggit-chaos bench-history [--sizes 1000 10000 100000] [--repeat 5] [--mutant NAME ...] [--quick]

pggit promises that no function's cost grows faster than n log n in the size
of its history, and that verify_integrity() answers within seconds on 10^5
commits (the contract's "Scale"). A query that walks the whole commit chain
once per commit still gives the right answers, so no correctness test
notices it, and a timed assertion would flake on a busy machine. This
benchmark measures it instead and reports the numbers.

For the unmutated extension, and for each mutant named (by default the
catalog's history mutants, in ``mutants_scale.py``), a throwaway cluster is
started and, for each size n, a fresh database gets a history of that size
(``history_build.py``: n commits over n/100 branches, n/10 tracked tables of
which n/100 live, n history rows, n/100 migrations; bulk-loaded in the shape
pggit writes, then checked clean with verify_integrity() and detect_drift()).
Then every reader and writer is called once untimed (warm caches) and
``--repeat`` times timed, in rounds over all steps; the median per size and
step is kept, and the growth exponent k of ``time ~ n**k`` is fitted over
the sizes (least squares on a log-log scale): about 0 is constant, about 1
linear (n log n fits to about 1.1 over 10^3..10^5), about 2 quadratic.

Results go to ``_build/metrics/bench-history.json``; ``pggit-chaos metrics``
shows them on the Metrics page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from pggit_chaos import server
from pggit_chaos.measure import mutants, mutants_scale
from pggit_chaos.measure.bench_cluster import timed
from pggit_chaos.measure.growth import growth_exponent
from pggit_chaos.measure.history_build import build_history, check_clean
from pggit_chaos.measure.options import benchmark_target_options, positive_int
from pggit_chaos.measure.suite_run import METRICS_DIR, benchmark_record, write_results

DEFAULT_SIZES = (1000, 10000, 100000)
QUICK_SIZES = (20, 60)
MIN_SIZE, MAX_SIZE = 10, 1_000_000

COMMAND = "bench-history"
DESCRIPTION = __doc__.split("\n\n")[0]

# Each step: the SQL, and its parameters for round r (names unique per round, so writers never collide).
STEPS: dict[str, tuple[str, object]] = {
    "verify_integrity": ("SELECT count(*) FROM pggit.verify_integrity()", lambda r: ()),
    "detect_drift": ("SELECT count(*) FROM pggit.detect_drift()", lambda r: ()),
    "get_version": ("SELECT * FROM pggit.get_version('bench_live.t_1')", lambda r: ()),
    "calculate_schema_hash": ("SELECT pggit.calculate_schema_hash('bench_live.t_1')", lambda r: ()),
    "generate_trinity_id": ("SELECT pggit.generate_trinity_id()", lambda r: ()),
    "commit_changes": ("SELECT pggit.commit_changes('main', %s)", lambda r: (f"round {r}",)),
    "create_branch": ("SELECT pggit.create_branch(%s, 'main')", lambda r: (f"bench/round-{r}",)),
    "delete_branch_simple": ("SELECT pggit.delete_branch_simple(%s)", lambda r: (f"bench/round-{r}",)),
    "apply_migration": ("SELECT pggit.apply_migration(%s, 'SELECT 1', 'SELECT 2')", lambda r: (f"round_{r}",)),
    "rollback_migration": ("SELECT pggit.rollback_migration(%s)", lambda r: (f"round_{r}",)),
    "create_table": ("CREATE TABLE bench_live.round_{r} (id bigint PRIMARY KEY)", None),
    "alter_table": ("ALTER TABLE bench_live.round_{r} ADD COLUMN note text", None),
    "drop_table": ("DROP TABLE bench_live.round_{r}", None),
    "create_data_branch": ("SELECT pggit.create_data_branch('bench_live.t_1', 'main', %s)", lambda r: (f"round{r}",)),
}


def measure_round(conn, r: str) -> dict[str, float]:
    """Every step once, in order: seconds per step."""
    times = {}
    for step, (query, params) in STEPS.items():
        if params is None:  # DDL: the name is part of the statement
            times[step] = timed(lambda q=query: conn.execute(q.format(r=r)))
        else:
            times[step] = timed(lambda q=query, p=params(r): conn.execute(q, p).fetchall())
    return times


def bench_extension(install: server.PgInstall, label: str, pggit_sql: Path | None,
                    sizes: list[int], repeat: int) -> tuple[dict, dict]:
    """One cluster, a database per size: the medians per size and step, and each history's counts."""
    cluster = server.start_cluster(install, pggit_sql=pggit_sql)
    per_size, shapes = {}, {}
    try:
        for n in sizes:
            db = cluster.create_database(f"history_{n}")
            with cluster.connect(db) as conn:
                conn.execute("CREATE EXTENSION pggit")
                started = time.perf_counter()
                shape = build_history(conn, n)
                shape["build_seconds"] = round(time.perf_counter() - started, 2)
                shapes[str(n)] = shape
                measure_round(conn, "warm")  # untimed: caches and plans warm
                rounds = [measure_round(conn, str(i)) for i in range(repeat)]
                check_clean(conn)  # the writers left pggit's history intact
            cluster.drop_database(db)
            per_size[n] = {step: statistics.median(r[step] for r in rounds) for step in STEPS}
            slowest = sorted(per_size[n].items(), key=lambda kv: -kv[1])[:3]
            print(f"  {label:<40} n={n:>7} (built in {shape['build_seconds']:.1f} s): slowest "
                  + ", ".join(f"{s} {t * 1000:.1f} ms" for s, t in slowest), flush=True)
    finally:
        cluster.destroy()
    exponents = {step: round(growth_exponent(sizes, [per_size[n][step] for n in sizes]), 2) for step in STEPS}
    result = {
        "label": label,
        "seconds": {str(n): {s: round(t, 6) for s, t in v.items()} for n, v in per_size.items()},
        "growth_exponent": exponents,
    }
    return result, shapes


def parse_sizes(values: list[int]) -> list[int]:
    """The sizes, sorted and distinct; SystemExit naming the bad ones."""
    bad = [n for n in values if not MIN_SIZE <= n <= MAX_SIZE]
    if bad:
        raise SystemExit(f"--sizes: {bad} outside {MIN_SIZE}..{MAX_SIZE} commits")
    sizes = sorted(set(values))
    if len(sizes) < 2:
        raise SystemExit(f"--sizes: need two or more different sizes to fit a growth exponent, got {values}")
    return sizes


def mutant_names(requested: list[str] | None) -> list[str]:
    """The mutants to measure beside pggit; SystemExit naming any the catalog does not have."""
    names = list(mutants_scale.NAMES) if requested is None else requested
    unknown = [n for n in names if n not in mutants.by_name()]
    if unknown:
        raise SystemExit(f"--mutant: no such mutant {', '.join(map(repr, unknown))} in tools/pggit_chaos/measure/mutants.py")
    return names


def sizes_for_mutant(args: argparse.Namespace, name: str, sizes: list[int]) -> list[int]:
    """--mutant-sizes if given; else --sizes if given (or --quick); else the mutant's own sizes, or pggit's."""
    if args.mutant_sizes:
        return parse_sizes(args.mutant_sizes)
    if args.sizes or args.quick:
        return sizes
    return list(mutants_scale.BENCH_SIZES.get(name, sizes))


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options, on ``parser`` (its own, or ``pggit-chaos bench-history``)."""
    parser.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                        help=f"the history sizes measured, in commits (with n/10 tracked tables and n history rows): "
                             f"two or more, each {MIN_SIZE} to {MAX_SIZE} "
                             f"(default: {' '.join(map(str, DEFAULT_SIZES))}).")
    parser.add_argument("--repeat", type=positive_int, default=None, metavar="N",
                        help="timed rounds per size, of which the median per step is kept (default 5, 1 with --quick).")
    parser.add_argument("--mutant", nargs="*", default=None, metavar="NAME",
                        help="mutants of the catalog measured beside pggit (default: the history mutants of "
                             "mutants_scale.py; none if given without names).")
    parser.add_argument("--mutant-sizes", type=int, nargs="+", default=None, metavar="N",
                        help="the sizes at which the mutants are measured (default: --sizes, or the smaller sizes "
                             "mutants_scale.py gives a mutant whose slow version takes minutes at the larger ones).")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check that the benchmark runs, not a measurement: sizes "
                             f"{' '.join(map(str, QUICK_SIZES))} unless --sizes says otherwise, one round, no mutants "
                             "unless --mutant names some.")
    benchmark_target_options(parser, METRICS_DIR / "bench-history.json")
    return parser


def run(args: argparse.Namespace) -> int:
    """Benchmark pggit and the chosen mutants as ``args`` say, and write the results."""
    sizes = parse_sizes(args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES))
    repeat = args.repeat or (1 if args.quick else 5)
    names = mutant_names([] if args.quick and args.mutant is None else args.mutant)
    catalog = mutants.by_name()

    install = server.find_install(pg_version=args.pg_version)
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"history benchmark: PostgreSQL {install.version}, sizes {sizes}, median of {repeat}, "
          f"load average {load[0]:.2f}", flush=True)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    base, shapes = bench_extension(install, "pggit", None, sizes, repeat)
    base["sizes"] = sizes
    results = [base]
    with tempfile.TemporaryDirectory(prefix="pggit-bench-") as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.sql"
            path.write_text(catalog[name].apply(mutants.EXTENSION_SQL.read_text()))
            at = sizes_for_mutant(args, name, sizes)
            record, more = bench_extension(install, f"mutant {name}", path, at, repeat)
            shapes = {**more, **shapes}
            record["mutant"] = name
            record["sizes"] = at
            record["function"] = mutants_scale.FUNCTION.get(name, "verify_integrity")
            results.append(record)

    write_results(args.output, {
        **benchmark_record(started_at, install.version, load),
        "sizes": sizes,
        "repeat": repeat,
        "quick": bool(args.quick),
        "steps": list(STEPS),
        "histories": dict(sorted(shapes.items(), key=lambda kv: int(kv[0]))),
        "results": results,
    })
    for r in results:
        print(f"{r['label']}: growth exponent " + ", ".join(f"{s} {k}" for s, k in r["growth_exponent"].items()))
    print(f"wrote {args.output}")
    return 0
