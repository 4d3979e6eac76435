"""What describing a wide table costs pggit, by width: a benchmark, not a test.

    pggit-chaos bench-describe [--widths 100 200 400 800 1600] [--repeat 3] [--mutant NAME ...]

pggit describes a table (one line per column, default, constraint and
index) whenever DDL touches it, and hashes that description. The cost must
grow in proportion to the table's width; a description that grows far
faster (say, each default printed with the whole table as deparse context)
still gives the right answers, so no correctness test notices it, and a
timed assertion would flake on a busy machine. This benchmark measures it
instead and reports the numbers.

For the unmutated extension, and for each mutant named (by default every
mutant of the catalog's ``performance`` category but those of pggit's history,
which ``bench_history.py`` measures), a throwaway cluster is
started and, for each width, a table with a default on every column is
created (pggit versions it), hashed with ``calculate_schema_hash`` and
altered (``SET DEFAULT`` on its last column, which pggit versions again).
The median of ``--repeat`` rounds is kept per width and step, and the
growth exponent k of ``time ~ width**k`` is fitted over the widths (least
squares on a log-log scale): about 1 is linear, about 2 quadratic.

Results go to ``_build/metrics/bench-describe.json``; ``pggit-chaos metrics``
shows them on the Metrics page.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from psycopg import sql

from pggit_chaos import server
from pggit_chaos.measure import mutants, mutants_scale
from pggit_chaos.measure.bench_cluster import timed
from pggit_chaos.measure.growth import growth_exponent
from pggit_chaos.measure.options import benchmark_target_options, positive_int
from pggit_chaos.measure.suite_run import METRICS_DIR, machine, write_results

DEFAULT_WIDTHS = (100, 200, 400, 800, 1600)
STEPS = ("create", "hash", "alter")
MAX_COLUMNS = 1600  # PostgreSQL's limit on the columns of a table

COMMAND = "bench-describe"
DESCRIPTION = __doc__.split("\n\n")[0]


def measure_round(conn, width: int, round_: int) -> dict[str, float]:
    """One table of ``width`` columns, each with a default: seconds per step."""
    table = sql.Identifier(f"wide_{width}_{round_}")
    columns = sql.SQL(", ").join(
        sql.SQL("{} int DEFAULT {}").format(sql.Identifier(f"c{i:04d}"), sql.Literal(i)) for i in range(width))
    last = sql.Identifier(f"c{width - 1:04d}")
    times = {
        "create": timed(lambda: conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))),
        "hash": timed(lambda: conn.execute(sql.SQL("SELECT pggit.calculate_schema_hash({})").format(
            sql.Literal(table.as_string(conn))))),
        "alter": timed(lambda: conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT -1").format(table, last))),
    }
    # pggit must have versioned both DDL statements, or the times measure nothing of pggit's.
    recorded = conn.execute("SELECT major, minor, patch FROM pggit.get_version(%s)",
                            (table.as_string(conn),)).fetchone()
    if recorded != (1, 0, 1):
        raise RuntimeError(f"pggit recorded version {recorded} for the {width}-column table, not (1, 0, 1) "
                           "after CREATE and SET DEFAULT: the benchmark would measure no pggit work")
    conn.execute(sql.SQL("DROP TABLE {}").format(table))
    return times


def bench_extension(install: server.PgInstall, label: str, pggit_sql: Path | None,
                    widths: list[int], repeat: int) -> dict:
    cluster = server.start_cluster(install, pggit_sql=pggit_sql)
    try:
        cluster.create_database("bench")
        with cluster.connect("bench") as conn:
            conn.execute("CREATE EXTENSION pggit")
            measure_round(conn, min(widths), -1)  # warm the caches once, untimed
            per_width = {}
            for width in widths:
                rounds = [measure_round(conn, width, r) for r in range(repeat)]
                per_width[width] = {step: statistics.median(r[step] for r in rounds) for step in STEPS}
                print(f"  {label:<44} {width:>5} columns: "
                      + "  ".join(f"{step} {per_width[width][step] * 1000:8.1f} ms" for step in STEPS), flush=True)
    finally:
        cluster.destroy()
    exponents = {step: round(growth_exponent(widths, [per_width[w][step] for w in widths]), 2) for step in STEPS}
    return {
        "label": label,
        "seconds": {str(w): {s: round(t, 6) for s, t in v.items()} for w, v in per_width.items()},
        "growth_exponent": exponents,
    }


def parse_widths(values: list[int]) -> list[int]:
    bad = [w for w in values if not 1 <= w <= MAX_COLUMNS]
    if bad:
        raise SystemExit(f"--widths: {bad} outside 1..{MAX_COLUMNS} (PostgreSQL's column limit)")
    widths = sorted(set(values))
    if len(widths) < 2:
        raise SystemExit(f"--widths: need two or more different widths to fit a growth exponent, got {values}")
    return widths


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options, on ``parser`` (its own, or ``pggit-chaos bench-describe``)."""
    parser.add_argument("--widths", type=int, nargs="+", default=list(DEFAULT_WIDTHS), metavar="COLUMNS",
                        help=f"the table widths measured, in columns: two or more, each 1 to {MAX_COLUMNS} "
                             f"(default: {' '.join(map(str, DEFAULT_WIDTHS))}).")
    parser.add_argument("--repeat", type=positive_int, default=3, metavar="N",
                        help="rounds per width and step, of which the median is kept (default %(default)s).")
    parser.add_argument("--mutant", nargs="*", default=None, metavar="NAME",
                        help="mutants of the catalog measured beside pggit (default: the performance mutants but the history ones; "
                             "none if given without names).")
    benchmark_target_options(parser, METRICS_DIR / "bench-describe.json")
    return parser


def run(args: argparse.Namespace) -> int:
    """Benchmark pggit and the chosen mutants as ``args`` say, and write the results."""
    widths = parse_widths(args.widths)
    catalog = mutants.by_name()
    names = ([m.name for m in mutants.MUTANTS if m.category == "performance" and m.name not in mutants_scale.NAMES]
             if args.mutant is None else args.mutant)
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise SystemExit(f"--mutant: no such mutant {', '.join(map(repr, unknown))} in tools/pggit_chaos/measure/mutants.py")

    install = server.find_install(pg_version=args.pg_version)
    print(f"describe benchmark: PostgreSQL {install.version}, widths {widths}, median of {args.repeat}", flush=True)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = [bench_extension(install, "pggit", None, widths, args.repeat)]
    with tempfile.TemporaryDirectory(prefix="pggit-bench-") as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.sql"
            path.write_text(catalog[name].apply(mutants.EXTENSION_SQL.read_text()))
            record = bench_extension(install, f"mutant {name}", path, widths, args.repeat)
            record["mutant"] = name
            results.append(record)

    write_results(args.output, {
        "started": started_at,
        "pg_version": install.version,
        "machine": machine(),
        "widths": widths,
        "repeat": args.repeat,
        "steps": list(STEPS),
        "results": results,
    })
    for r in results:
        print(f"{r['label']}: growth exponent " + ", ".join(f"{s} {k}" for s, k in r["growth_exponent"].items()))
    print(f"wrote {args.output}")
    return 0
