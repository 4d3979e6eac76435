"""Remove what interrupted test runs left on an existing server: only what a run created, once that run is over.

    pggit-chaos sweep --dsn 'postgresql://...' [--dry-run]

Every database and role a run creates is marked ``created by pggit_chaos
run <id> ...`` (``base.py``), and a run keeps a session named ``pggit_chaos
run <id>`` open while it lasts (``existing.py``). The sweep drops an object
only when it carries the mark, no session of its run is left, nobody is
connected to it (nothing is forced) and, for a database, the sweeping role
owns it; a superuser role is never dropped. Everything else stays, and the
report says why.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from pggit_chaos.server.base import MARK_PATTERN, drop_owned_everywhere

COMMAND = "sweep"
DESCRIPTION = __doc__.split("\n\n")[0]
RUN_SESSION = re.compile(r"pggit_chaos run ([0-9a-f]{16})")


@dataclass
class SweepReport:
    """What a sweep dropped, and what it left with the reason."""

    dropped: list[str] = field(default_factory=list)  # "database NAME", "role NAME"
    kept: dict[str, str] = field(default_factory=dict)


def describe(dsn: str) -> str:
    """A DSN's target without its secrets: ``host=... port=... dbname=... user=...``."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    shown = {k: params[k] for k in ("host", "hostaddr", "port", "dbname", "user") if params.get(k)}
    return psycopg.conninfo.make_conninfo(**shown) or "(libpq defaults)"


def sweep(dsn: str, dry_run: bool = False) -> SweepReport:
    """Drop what runs that are over left on the server ``dsn`` names; see the module docstring for the rules."""
    report = SweepReport()
    with psycopg.connect(dsn, autocommit=True) as conn:
        live = {m.group(1) for (app,) in conn.execute("SELECT application_name FROM pg_stat_activity")
                if app and (m := RUN_SESSION.fullmatch(app))}
        databases = conn.execute(
            "SELECT d.datname, shobj_description(d.oid, 'pg_database'), pg_get_userbyid(d.datdba) = current_user, "
            "(SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) FROM pg_database d ORDER BY 1").fetchall()
        roles = conn.execute(
            "SELECT r.rolname, shobj_description(r.oid, 'pg_authid'), r.rolsuper, "
            "(SELECT count(*) FROM pg_stat_activity a WHERE a.usesysid = r.oid) FROM pg_roles r ORDER BY 1").fetchall()

        def verdict(kind: str, name: str, comment: str | None, refusal: str | None) -> bool:
            mark = MARK_PATTERN.match(comment or "")
            if not mark:
                return False  # not the harness's: not even mentioned
            if mark.group(1) in live:
                refusal = f"its run {mark.group(1)} is still connected"
            if refusal:
                report.kept[f"{kind} {name}"] = refusal
                return False
            return True

        for name, comment, owned, sessions in databases:
            refusal = ("owned by another role" if not owned else
                       f"{sessions} session(s) connected" if sessions else None)
            if verdict("database", name, comment, refusal):
                _drop(report, conn, "database", name, dry_run, sql.SQL("DROP DATABASE {}"))
        for name, comment, superuser, sessions in roles:
            refusal = ("a superuser" if superuser else f"{sessions} session(s) connected" if sessions else None)
            if verdict("role", name, comment, refusal):
                if not dry_run:
                    drop_owned_everywhere(conn, _connector(dsn), name)
                _drop(report, conn, "role", name, dry_run, sql.SQL("DROP ROLE {}"))
    return report


def _connector(dsn: str) -> Callable[[str], psycopg.Connection]:
    return lambda dbname: psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname=dbname), autocommit=True)


def _drop(report: SweepReport, conn: psycopg.Connection, kind: str, name: str, dry_run: bool,
          statement: sql.SQL) -> None:
    if not dry_run:
        try:
            conn.execute(statement.format(sql.Identifier(name)))
        except psycopg.Error as exc:
            report.kept[f"{kind} {name}"] = " ".join(str(exc).split())
            return
    report.dropped.append(f"{kind} {name}")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The sweep's options, on ``parser`` (``pggit-chaos sweep``)."""
    parser.add_argument("--dsn", default=os.environ.get("PGGIT_TEST_DSN") or None, metavar="DSN",
                        help="the existing server to clean up, as a libpq connection string or URI "
                             "(default: the PGGIT_TEST_DSN environment variable).")
    parser.add_argument("--dry-run", action="store_true",
                        help="only list what would be dropped and what is kept, and drop nothing.")
    return parser


def run(args: argparse.Namespace) -> int:
    """Sweep the server ``args.dsn`` names and print what was dropped and what was kept."""
    if not args.dsn:
        args.command_parser.error("--dsn is required (or set PGGIT_TEST_DSN)")
    try:
        report = sweep(args.dsn, dry_run=args.dry_run)
    except psycopg.Error as exc:
        print(f"pggit-chaos sweep: --dsn {describe(args.dsn)}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    verb = "would drop" if args.dry_run else "dropped"
    for item in report.dropped:
        print(f"{verb} {item}")
    for item, reason in report.kept.items():
        print(f"kept {item}: {reason}")
    print(f"{len(report.dropped)} {verb}, {len(report.kept)} kept")
    return 0
