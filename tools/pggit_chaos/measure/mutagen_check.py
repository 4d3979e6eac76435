"""The generated mutants' command line and install check: list them, document the operators, find the stillborn.

    pggit-chaos mutants-generate [--list] [--operators] [--check-install]

A generated mutant is *stillborn* when its script does not install:
``CREATE EXTENSION pggit`` fails, or a function body does not compile
(PostgreSQL runs extension scripts with ``check_function_bodies`` off, so
the check compiles each body with its language's validator). The check
installs every mutant on one throwaway cluster, in one database, each
inside a transaction that is rolled back, and reports each failure with
PostgreSQL's reason; such a mutant is never counted as killed.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter
from pathlib import Path

import psycopg

from pggit_chaos.measure import mutagen
from pggit_chaos.measure.fast_loop import compile_errors, overlay_script
from pggit_chaos.measure.mutagen_clauses import OPERATORS, rule
from pggit_chaos.measure.suite_run import METRICS_DIR, write_results
from pggit_chaos.paths import EXTENSION_SQL

COMMAND = "mutants-generate"
DESCRIPTION = __doc__.split("\n\n")[0]


class _Rollback(Exception):
    """Ends the install's transaction: the next mutant installs into the same empty database."""


def stillborn(mutants: list, sql: str, install=None) -> dict[str, str]:
    """For each mutant whose script does not install, PostgreSQL's reason; one cluster, one database for all.

    ``install``: the PostgreSQL binaries (a ``server.PgInstall``; default: those a test run would use)."""
    from pggit_chaos import server

    cluster = server.start_cluster(install or server.find_install())
    script = overlay_script(cluster)
    failed = {}
    try:
        cluster.create_database("install_check")
        with cluster.connect("install_check") as conn:
            for mutant in mutants:
                script.write_text(mutant.apply(sql))
                try:
                    with conn.transaction():
                        conn.execute("CREATE EXTENSION pggit")
                        error = compile_errors(conn)
                        if error:
                            failed[mutant.name] = error[:300]
                        raise _Rollback
                except _Rollback:
                    pass
                except psycopg.Error as exc:
                    failed[mutant.name] = " ".join(str(exc).split())[:300]
    finally:
        cluster.destroy()
    return failed


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--list", action="store_true", help="print every mutant: id, line, function, edit.")
    parser.add_argument("--operators", action="store_true", help="print every operator and its rule.")
    parser.add_argument("--operator", nargs="+", choices=sorted(OPERATORS), metavar="NAME",
                        help="list or check only the mutants these operators make.")
    parser.add_argument("--check-install", action="store_true",
                        help="install every mutant on a throwaway cluster and report the stillborn ones; "
                             "writes _build/metrics/generated-mutants.json.")
    parser.add_argument("--sql", type=Path, default=EXTENSION_SQL, metavar="FILE",
                        help="the install script to mutate (default: extension/pggit--1.0.0.sql).")
    return parser


def run(args: argparse.Namespace) -> int:
    sql = args.sql.read_text()
    if args.operators:
        for name in OPERATORS:
            print(f"{name}: {rule(name)}")
        return 0
    mutants = mutagen.generate(sql, args.operator)
    if args.list:
        for m in mutants:
            print(f"{m.id}\tline {m.line}\t{m.function}\t{m.description}")
    per_operator = Counter(m.operator for m in mutants)
    print(f"{len(mutants)} generated mutants: " + ", ".join(f"{n} {o}" for o, n in per_operator.most_common()))
    if args.check_install:
        started = time.monotonic()
        dead = stillborn(mutants, sql)
        write_results(METRICS_DIR / "generated-mutants.json", {
            "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
            "seconds": round(time.monotonic() - started, 1),
            "per_operator": dict(sorted(per_operator.items())),
            "stillborn": dead,
            "stillborn_per_operator": dict(Counter(m.operator for m in mutants if m.name in dead)),
            "mutants": [{"id": m.id, "operator": m.operator, "function": m.function, "line": m.line,
                         "original": m.original, "replacement": m.replacement} for m in mutants],
        })
        print(f"{len(dead)} stillborn (do not install) in {time.monotonic() - started:.0f} s")
        for name, reason in dead.items():
            print(f"  stillborn: {name}: {reason}")
    return 0
