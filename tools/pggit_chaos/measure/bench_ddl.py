"""What pggit's tracking adds to each DDL statement, in a new session and in a warm one: a benchmark, not a test.

    pggit-chaos bench-ddl [--sessions 40] [--pg-version N] [--quick]

pggit records DDL from event triggers that find, describe and hash the
tables a statement touched, so every statement costs more than it would
without pggit, and most in a new session, where PostgreSQL still has to
compile pggit's functions and plan each of their queries. A migration tool
or a test suite that opens a session per change pays that first-statement
price every time.

One throwaway cluster, two databases made alike: one plain, one with
pggit. In each of ``--sessions`` new sessions per database, the same script
runs twice on fresh table names: first cold (the session's first
statements), then warm. Each statement and the connection are timed; the
median per statement, database and round is kept. Sessions alternate
between the two databases, so other work on the machine slows both alike.
Afterwards pggit's history must hold one row per tracked statement, so the
figures are those of real tracking, not of triggers that did nothing.

Results go to ``_build/metrics/bench-ddl.json``; ``pggit-chaos metrics``
shows them on the Metrics page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from pggit_chaos import server
from pggit_chaos.measure.bench_cluster import timed
from pggit_chaos.measure.options import benchmark_target_options, positive_int
from pggit_chaos.measure.suite_run import METRICS_DIR, benchmark_record, write_results

COMMAND = "bench-ddl"
DESCRIPTION = __doc__.split("\n\n")[0]
DATABASES = ("plain", "pggit")
ROUNDS = ("cold", "warm")
# The script each round runs, on a table of its own ({t}); every statement is one pggit records.
SCRIPT = {
    "CREATE TABLE": "CREATE TABLE bench.{t} (id bigint PRIMARY KEY, name text NOT NULL DEFAULT '', "
                    "amount numeric CHECK (amount >= 0))",
    "CREATE INDEX": "CREATE INDEX ON bench.{t} (name)",
    "ADD COLUMN": "ALTER TABLE bench.{t} ADD COLUMN note text",
    "RENAME COLUMN": "ALTER TABLE bench.{t} RENAME COLUMN note TO remark",
    "DROP TABLE": "DROP TABLE bench.{t}",
}
STEPS = ("connect", *SCRIPT)
QUICK_SESSIONS = 3


def run_session(cluster: server.Server, database: str, session: int) -> dict[str, dict[str, float]]:
    """One new session: connect, then the script cold and warm; seconds per round and step."""
    times: dict[str, dict[str, float]] = {r: {} for r in ROUNDS}
    started = time.perf_counter()
    with cluster.connect(database) as conn:
        times["cold"]["connect"] = time.perf_counter() - started
        for round_ in ROUNDS:
            table = f"t_{session}_{round_}"
            for step, statement in SCRIPT.items():
                times[round_][step] = timed(lambda s=statement.format(t=table): conn.execute(s))
    return times


def tracked_rows(cluster: server.Server, database: str) -> int:
    """pggit's history rows of the benchmark's tables."""
    with cluster.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id "
                            "WHERE o.schema_name = 'bench'").fetchone()[0]


def measure(install: server.PgInstall, sessions: int, pggit_sql: Path | None = None) -> dict:
    """The medians in milliseconds by database, round and step, and the history rows pggit wrote.

    ``pggit_sql``: the install script to measure instead of the package's pggit."""
    cluster = server.start_cluster(install, pggit_sql=pggit_sql)
    # A session connects once, before its cold round: the warm round has no connect.
    samples = {db: {r: {s: [] for s in STEPS if r == "cold" or s != "connect"} for r in ROUNDS} for db in DATABASES}
    try:
        for database in DATABASES:
            cluster.create_database(database)
            with cluster.connect(database) as conn:
                conn.execute("CREATE SCHEMA bench")
                if database == "pggit":
                    conn.execute("CREATE EXTENSION pggit")
        for session in range(sessions):
            for database in DATABASES:
                for round_, steps in run_session(cluster, database, session).items():
                    for step, seconds in steps.items():
                        samples[database][round_][step].append(seconds)
        rows = tracked_rows(cluster, "pggit")
    finally:
        cluster.destroy()
    expected = sessions * len(ROUNDS) * len(SCRIPT)
    if rows != expected:
        raise SystemExit(f"pggit recorded {rows} history rows of the benchmark's tables, not the {expected} of "
                         f"{sessions} sessions x {len(ROUNDS)} rounds x {len(SCRIPT)} statements: the figures would "
                         "not be those of tracking")
    return {
        "median_ms": {db: {r: {s: round(statistics.median(v) * 1000, 3) for s, v in steps.items()}
                           for r, steps in rounds.items()} for db, rounds in samples.items()},
        "history_rows": rows,
    }


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options, on ``parser`` (its own, or ``pggit-chaos bench-ddl``)."""
    parser.add_argument("--sessions", type=positive_int, default=None, metavar="N",
                        help=f"new sessions per database, each running the script cold and warm (default 40, "
                             f"{QUICK_SESSIONS} with --quick).")
    parser.add_argument("--quick", action="store_true",
                        help="a check that the benchmark runs, not a measurement: "
                             f"{QUICK_SESSIONS} sessions unless --sessions says otherwise.")
    benchmark_target_options(parser, METRICS_DIR / "bench-ddl.json")
    return parser


def run(args: argparse.Namespace) -> int:
    """Measure as ``args`` say and write the results."""
    sessions = args.sessions or (QUICK_SESSIONS if args.quick else 40)
    install = server.find_install(pg_version=args.pg_version)
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"DDL benchmark: PostgreSQL {install.version}, {sessions} sessions per database, "
          f"load average {load[0]:.2f}", flush=True)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = measure(install, sessions)
    write_results(args.output, {
        **benchmark_record(started_at, install.version, load),
        "sessions": sessions,
        "quick": bool(args.quick),
        "script": SCRIPT,
        **result,
    })
    medians = result["median_ms"]
    for round_ in ROUNDS:
        print(f"{round_}: " + ", ".join(f"{step} {medians['plain'][round_][step]:.2f} -> "
                                        f"{medians['pggit'][round_][step]:.2f} ms"
                                        for step in medians["pggit"][round_]))
    print(f"wrote {args.output}")
    return 0
