"""Hollow pggit: which tests pass against a pggit whose every function does nothing?

    pggit-chaos hollow [--workers N] [--only PATH ...] [--build FILE]

The hollow build is pggit's install script with the same schema, tables,
seed rows, grants, comments and event triggers, and every function keeping
its signature, language and attributes (SECURITY DEFINER, SET ...), but a
body that does nothing: it returns NULL, no rows, or nothing at all. A test
that calls pggit and still passes against it asserts nothing pggit does:
it compares two NULLs, or shows that something did not happen without
showing that it happens when it should. The suite (contract tests, chaos
tests, examples and the guides) runs once against the hollow build, and
every test that passes is listed; the only ones allowed to pass are those of
``ALLOWED`` (hollow_allowed.py), whose subject pggit's schema alone decides,
and those of ``NOT_CALLING_PGGIT``, which call no pggit function at all
(for a guide's SQL blocks, whose tests share one name: ``SQL_BLOCKS_ALLOWED``
and ``SQL_BLOCKS_NOT_CALLING_PGGIT``, keyed by page and a snippet of code),
and a guide's SQL blocks marked ``setup``, whose continuation is checked.

Results go to ``_build/metrics/hollow.json`` (with ``--only``:
``hollow-only.json``); the exit status is 1 when a test outside the
allow-list passes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pggit_chaos.measure import hollow_select
from pggit_chaos.measure.hollow_allowed import (
    ALLOWED,
    FIRST_MEASURED,
    NOT_CALLING_PGGIT,
    SETUP_KEY,
    SETUP_REASON,
    SQL_BLOCKS_ALLOWED,
    SQL_BLOCKS_NOT_CALLING_PGGIT,
    allowed_reason,
)
from pggit_chaos.measure.options import positive_float, positive_int
from pggit_chaos.measure.suite_run import METRICS_DIR, RunResult, chaos_command, machine, run_pytest, write_results
from pggit_chaos.paths import EXTENSION_SQL

COMMAND = "hollow"
DESCRIPTION = __doc__.split("\n\n")[0]

# Every folder whose tests call pggit: the contract tests, the chaos suite, the examples, the guides.
SUITE_PATHS = ["tests/extension", "tests/chaos", "examples", "docs"]
MARKEXPR = "not soak"
# The plugin's message when the install script fails: a hollow build that does not install measures nothing.
_BROKEN_INSTALL = "CREATE EXTENSION pggit failed"
# The dollar quote of every hollow body (no body of the real script uses it).
_QUOTE = "$hollow$"


class HollowError(Exception):
    """The install script holds a function this builder cannot hollow."""


@dataclass(frozen=True)
class HollowFunction:
    """One function of the script: its name, language, what it returns, and the body it gets."""

    name: str
    language: str
    returns: str
    body: str


def _strip_psql_commands(sql: str) -> str:
    """The script with its psql meta-command lines (``\\echo ... \\quit``) blanked, offsets unchanged."""
    lines = []
    for line in sql.splitlines(keepends=True):
        text = line.rstrip("\r\n")
        lines.append(" " * len(text) + line[len(text):] if text.startswith("\\") else line)
    return "".join(lines)


def _type_sql(type_name) -> str:
    """A TypeName node as SQL, without SETOF."""
    from pglast.stream import RawStream

    text = RawStream()(type_name)
    return text[len("SETOF "):] if text.startswith("SETOF ") else text


def hollow_body(stmt) -> tuple[str, str, str]:
    """(language, what it returns, do-nothing body) of a CreateFunctionStmt."""
    options = {o.defname: o.arg for o in stmt.options or ()}
    language = getattr(options.get("language"), "sval", "sql").lower()
    columns = [_type_sql(p.argType) for p in stmt.parameters or () if p.mode.value in ("o", "b", "t")]
    table = any(p.mode.value == "t" for p in stmt.parameters or ())
    setof = table or bool(stmt.returnType is not None and stmt.returnType.setof)
    returns = "record" if stmt.returnType is None else _type_sql(stmt.returnType)
    if table:
        returns = f"TABLE ({', '.join(columns)})"
    elif setof:
        returns = f"SETOF {returns}"
    if language == "plpgsql":
        if returns == "event_trigger":
            return language, returns, "BEGIN END"
        if setof or returns == "void" or (columns and stmt.returnType is None):
            return language, returns, "BEGIN RETURN; END"
        return language, returns, "BEGIN RETURN NULL; END"  # a scalar, a row type, or a trigger
    if language == "sql":
        if returns == "void":
            return language, returns, "SELECT NULL"
        if columns and returns.startswith(("TABLE", "record", "SETOF record")):
            values = ", ".join(f"NULL::{c}" for c in columns)  # one NULL per result column
        else:
            values = f"NULL::{returns.removeprefix('SETOF ')}"
        return language, returns, f"SELECT {values}" + (" WHERE false" if setof else "")
    raise HollowError(f"function {'.'.join(n.sval for n in stmt.funcname)}: no hollow body for LANGUAGE {language}")


def build(sql: str) -> tuple[str, list[HollowFunction]]:
    """The hollow build of install script ``sql``, and the functions it hollowed, in script order.

    pglast (PostgreSQL's own parser) finds each CREATE FUNCTION and what it
    returns; its scanner finds the string constant after AS, which is the
    only text replaced."""
    from pglast import ast, parse_sql
    from pglast.parser import scan

    clean = _strip_psql_commands(sql)
    edits: list[tuple[int, int, str]] = []
    functions = []
    for raw in parse_sql(clean):
        stmt = raw.stmt
        if not isinstance(stmt, ast.CreateFunctionStmt):
            continue
        name = ".".join(n.sval for n in stmt.funcname)
        if stmt.sql_body is not None:
            raise HollowError(f"function {name}: a BEGIN ATOMIC body; only AS '...' bodies are hollowed")
        start = raw.stmt_location
        tokens = scan(clean[start:start + raw.stmt_len])
        bodies = [t for before, t in zip(tokens, tokens[1:]) if before.name == "AS" and t.name == "SCONST"]
        if len(bodies) != 1:
            raise HollowError(f"function {name}: expected one AS '<body>', found {len(bodies)}")
        language, returns, body = hollow_body(stmt)
        edits.append((start + bodies[0].start, start + bodies[0].end + 1, f"{_QUOTE} {body} {_QUOTE}"))
        functions.append(HollowFunction(name, language, returns, body))
    if not functions:
        raise HollowError("the script defines no function")
    out = sql
    for begin, end, text in reversed(edits):
        out = out[:begin] + text + out[end:]
    header = "-- Hollow pggit (pggit-chaos hollow): every function body below does nothing.\n"
    return header + out, functions


def folder(nodeid: str) -> str:
    """The suite folder a test belongs to: tests/extension, tests/chaos, examples or docs."""
    parts = nodeid.split("::")[0].split("/")
    return "/".join(parts[:2]) if parts[0] == "tests" else parts[0]


def summarize(run: RunResult, functions: list[HollowFunction], paths: list[str]) -> dict:
    """What the run against the hollow build showed: the passing tests, allowed or not, by folder."""
    passing = sorted(n for n, t in run.tests.items() if t["outcome"] == "passed")
    unexplained = [n for n in passing if not allowed_reason(n)]
    by_folder: dict[str, int] = {}
    for nodeid in unexplained:
        by_folder[folder(nodeid)] = by_folder.get(folder(nodeid), 0) + 1
    return {
        "paths": paths,
        "markexpr": MARKEXPR,
        "functions": [f.__dict__ for f in functions],
        "tests": len(run.tests),
        "outcomes": {o: run.count(o) for o in ("passed", "failed", "error", "skipped", "xfailed")},
        "passing": passing,
        "unexplained": unexplained,
        "unexplained_by_folder": dict(sorted(by_folder.items())),
        # A guide's SQL block is listed by its page and the snippet of its code that names it.
        "allowed": {**{n: ALLOWED[n] for n in sorted(ALLOWED)},
                    **{f"{page}::sql block with \"{snippet}\"": why for (page, snippet), why in SQL_BLOCKS_ALLOWED.items()},
                    SETUP_KEY: SETUP_REASON},
        "not_calling_pggit": {**{f"{path}::{name}": why for (path, name), why in sorted(NOT_CALLING_PGGIT.items())},
                              **{f"{page}::sql block with \"{snippet}\"": why
                                 for (page, snippet), why in SQL_BLOCKS_NOT_CALLING_PGGIT.items()}},
        "allowed_passing": [n for n in passing if allowed_reason(n)],
        "first_measured": FIRST_MEASURED,
    }


def measure(paths: list[str], workers: int, seed: int, test_timeout: int, run_timeout: float,
            output: Path, keep: bool = False, source: Path = EXTENSION_SQL) -> dict:
    """Build the hollow pggit, run ``paths`` against it once, write and return the results."""
    sql = source.read_text()
    hollow, functions = build(sql)
    workdir = Path(tempfile.mkdtemp(prefix="pggit-hollow-"))
    script = workdir / "pggit-hollow.sql"
    script.write_text(hollow)
    parallel = ["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else ["-p", "no:xdist"]
    parallel += ["-p", hollow_select.__name__]  # only the tests that reach a server: the others cannot call pggit
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"hollow run: {len(functions)} functions hollowed, {' '.join(paths)} ({MARKEXPR}), "
          f"{workers} worker(s), work files in {workdir}", flush=True)
    run = run_pytest(chaos_command(script, paths, MARKEXPR, test_timeout, [f"--hypothesis-seed={seed}", *parallel]),
                     workdir, "hollow", run_timeout)
    broken = [n for n in run.failed if _BROKEN_INSTALL in (run.tests[n].get("failure") or {}).get("message", "")]
    if run.exitstatus not in (0, 1) or not run.tests or broken:
        raise SystemExit(f"error: the run against the hollow build broke (pytest exit status {run.exitstatus}, "
                         f"{len(broken)} test(s) could not install it); logs in {workdir}\n{run.output_tail}")
    data = {
        "started": started_at,
        "wall_seconds": run.seconds,
        "workers": workers,
        "hypothesis_seed": seed,
        "complete": paths == SUITE_PATHS,
        "machine": machine(),
        "pg_version": run.pg_version,
        "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
        **summarize(run, functions, paths),
    }
    write_results(output, data)
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return data


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The hollow run's options, on ``parser`` (its own, or ``pggit-chaos hollow``)."""
    parser.add_argument("--workers", type=positive_int, default=2, metavar="N",
                        help="pytest-xdist workers of the one run, each with a throwaway cluster of its own; "
                             "1 runs without xdist (default %(default)s).")
    parser.add_argument("--only", nargs="+", metavar="PATH",
                        help="run only these test paths (files, folders or node ids) instead of "
                             f"{' '.join(SUITE_PATHS)}; the results go to hollow-only.json.")
    parser.add_argument("--build", type=Path, metavar="FILE",
                        help="only write the hollow build to FILE (for pytest --pggit-sql FILE) and run nothing.")
    parser.add_argument("--sql", type=Path, default=EXTENSION_SQL, metavar="FILE",
                        help="the install script to hollow (default: the project's extension/pggit--1.0.0.sql).")
    parser.add_argument("--seed", type=int, default=0,
                        help="the Hypothesis seed of the run (default 0, so a run can be repeated exactly).")
    parser.add_argument("--test-timeout", type=positive_int, default=120, metavar="SECONDS",
                        help="seconds one test may take before it counts as hung, and fails (default %(default)s).")
    parser.add_argument("--run-timeout", type=positive_float, default=3600, metavar="SECONDS",
                        help="seconds the whole run may take before it is killed (default %(default)s).")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="where the results go (default: _build/metrics/hollow.json, or hollow-only.json "
                             "with --only).")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory with the hollow build, the run's log and its JUnit XML.")
    return parser


def run(args: argparse.Namespace) -> int:
    """Build (and unless --build, measure) as ``args`` say; 1 if a test outside the allow-list passes."""
    if args.build:
        hollow, functions = build(args.sql.read_text())
        args.build.write_text(hollow)
        print(f"{len(functions)} functions hollowed; hollow build in {args.build}")
        return 0
    output = args.output or METRICS_DIR / ("hollow-only.json" if args.only else "hollow.json")
    data = measure(args.only or SUITE_PATHS, args.workers, args.seed, args.test_timeout, args.run_timeout,
                   output, args.keep, args.sql)
    print(f"\n{len(data['passing'])} of {data['tests']} tests pass against the hollow build "
          f"({len(data['allowed_passing'])} allowed) in {data['wall_seconds']:.0f} s; results in {output}")
    for nodeid in data["unexplained"]:
        print(f"  passes against hollow: {nodeid}")
    return 1 if data["unexplained"] else 0
