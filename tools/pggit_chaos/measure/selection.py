"""Coverage-based test selection: one instrumented run of a tier records which pggit functions each test reaches.

    pggit-chaos reach --tier full

The run loads ``reach.py`` and writes ``_build/metrics/reach-<tier>.json``
(the tests' functions, their durations, the script's hash). It runs the
script with one change that alters no result: every SQL function gets a
meaningless SET option, which keeps the planner from inlining it, so the
server counts its calls like any PL/pgSQL function's; and before every
statement of a PL/pgSQL body it puts a marker that logs ``pggit-reach F N``
once per call (on the same line, so no line moves; it sets neither FOUND
nor ROW_COUNT), so the server log says which statements each test ran. A mutant of a
statement then meets only the tests that ran that statement (the innermost
one around the edit): a test that never runs it cannot behave differently
under the mutant. A mutant elsewhere in function F (its header, its
declarations) meets the tests that reached F, or a function whose
body names F (its callers: the planner inlines small SQL functions, whose
calls the server does not count), transitively; an edit outside every
function body (a grant, a table, a SET statement) meets every test, and so
does an edit of a function CREATE EXTENSION runs. A mutant of a function no
test reaches needs no run at all: nothing the suite does can see it.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pggit_chaos.measure import reach
from pggit_chaos.measure.options import positive_float, positive_int
from pggit_chaos.measure.suite_run import METRICS_DIR, TIERS, chaos_command, run_pytest, tier_selection, write_results
from pggit_chaos.paths import EXTENSION_SQL

COMMAND = "reach"
DESCRIPTION = __doc__.split("\n\n")[0]
SCRIPT = "(script)"


def reach_path(tier: str) -> Path:
    return METRICS_DIR / f"reach-{tier}.json"


def measure(tier: str, seed: int, test_timeout: int, run_timeout: float, output: Path,
            keep: bool = False, source: Path = EXTENSION_SQL) -> dict:
    """Run the tier once against the script ``source`` with the reach plugin; write and return the map."""
    sql = source.read_text()
    workdir = Path(tempfile.mkdtemp(prefix=f"pggit-reach-{tier}-"))
    script = workdir / "pggit.sql"
    script.write_text(instrumented_script(sql))
    extra = [f"--hypothesis-seed={seed}", "-p", reach.__name__, "-p", "no:xdist"]
    # The contract tests too: a mutation run that includes them (mutate-fast --contract) selects from one map.
    paths, markexpr = tier_selection(tier, contract=True)
    print(f"reach run: tier {tier} and the contract tests ({markexpr}), work files in {workdir}", flush=True)
    path = workdir / "reach.json"
    os.environ[reach.REACH_ENV] = str(path)  # the child's plugin writes there
    try:
        result = run_pytest(chaos_command(script, paths, markexpr, test_timeout, extra),
                            workdir, "reach", run_timeout)
    finally:
        os.environ.pop(reach.REACH_ENV, None)
    if not path.exists():
        raise SystemExit(f"error: the reach run wrote no map (pytest exit status {result.exitstatus}); "
                         f"logs in {workdir}\n{result.output_tail}")
    merged = json.loads(path.read_text())
    if not merged["tests"]:
        raise SystemExit(f"error: the reach run ran no test; logs in {workdir}\n{result.output_tail}")
    data = finish(merged, tier, sql, result.seconds)
    if data["failing"]:
        # A test that fails on the unmutated script cannot tell a mutant apart: it is never selected.
        print(f"warning: {len(data['failing'])} test(s) fail on the unmutated script and are left out of "
              f"every selection:\n  " + "\n  ".join(data["failing"]), flush=True)
    write_results(output, data)
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return data


def counted_script(sql: str) -> str:
    """``sql`` with every SQL function given a SET option that changes nothing, so the planner never inlines
    it (it inlines only functions without SET options) and the server counts each of its calls."""
    from pggit_chaos.measure.mutagen import units

    data = sql.encode()
    for unit in sorted((u for u in units(sql) if u.kind == "header" and u.language == "sql"),
                       key=lambda u: -u.tokens[-1].start):
        at = unit.tokens[-1].start  # the AS before the body
        data = data[:at] + COUNTED.encode() + data[at:]
    return data.decode()


# A placeholder setting of no meaning: its only effect is that a function with a SET option is not inlined.
COUNTED = "SET pggit_reach.counted = 'on'\n"


@dataclass(frozen=True)
class Statement:
    """One statement of a PL/pgSQL body: its function, its first line, the byte offsets of its first token and
    of the end of its closing semicolon."""

    function: str
    line: int
    start: int
    end: int


_BOUNDARY = {"ASCII_59", "THEN", "ELSE", "BEGIN_P"}


def _marker(function: str, line: int) -> str:
    """The marker of one statement: it logs once per call of its function (a loop would log each turn,
    gigabytes in a reach run), remembered in a transaction-local setting that the function's own SET
    clause ends with the call. An IF and a RAISE set neither FOUND nor ROW_COUNT."""
    seen = f"pggit_reach.m{line}"
    return (f"IF COALESCE(pg_catalog.current_setting('{seen}', true), '') = '' "
            f"AND pg_catalog.set_config('{seen}', 'y', true) = 'y' "
            f"THEN RAISE LOG '{reach.REACHED} {function} {line}'; END IF; ")


def statements(sql: str) -> list[Statement]:
    """The statements of every PL/pgSQL body that can carry a marker, one per line, in script order.

    A statement opens at the first token of its line (by ``parse_plpgsql``'s line numbers) that follows
    a statement boundary (``;``, THEN, ELSE, BEGIN, LOOP) and ends at the next ``;`` at its own nesting
    depth. Blocks carry no marker (the outer one's run is the function's call). A function whose marked
    body does not parse to the same statements plus one RAISE per marker gets no markers at all."""
    from pglast import parse_plpgsql

    from pggit_chaos.measure.mutagen import _plpgsql_statements, units

    data, found = sql.encode(), []
    for unit in units(sql):
        if unit.kind != "body" or unit.language != "plpgsql":
            continue
        toks, mine = unit.tokens, []
        for line in sorted({line for _, line in unit.plpgsql}):
            for i, t in enumerate(toks):
                if t.line != line or i == 0:
                    continue
                prev = toks[i - 1]
                # A block (BEGIN, DECLARE) carries none: the outer one is the call, an inner one may follow
                # its declarations, where no statement may stand; what it holds carries its own.
                if (prev.name in _BOUNDARY or prev.word == "LOOP") and t.name not in ("BEGIN_P", "DECLARE"):
                    end = next((k for k in range(i, len(toks)) if toks[k].name == "ASCII_59"
                                and unit.depth[k] == unit.depth[i]), None)
                    if end is not None:
                        mine.append(Statement(unit.function, line, t.start, toks[end].end))
                break
        if not mine:
            continue
        # The check: the marked function parses, to exactly its statements and one RAISE per marker.
        text = data[unit.stmt_start:unit.stmt_end]
        first = unit.body_line
        marked = text
        for st in sorted(mine, key=lambda st: -st.start):
            at = st.start - unit.stmt_start
            marked = marked[:at] + _marker(unit.function, st.line).encode() + marked[at:]
        try:
            before = _plpgsql_statements(parse_plpgsql(text.decode()), first)
            after = _plpgsql_statements(parse_plpgsql(marked.decode()), first)
        except Exception:  # noqa: BLE001 - pglast's parse errors: the function stays unmarked
            continue
        if set(after) == set(before) | {(kind, st.line) for st in mine for kind in ("if", "raise")}:
            found.extend(mine)
    return found


def instrumented_script(sql: str) -> str:
    """The reach run's script: ``counted_script`` plus a marker before every statement of ``statements``."""
    data = counted_script(sql).encode()
    shift = len(COUNTED.encode())
    headers = sorted(u.tokens[-1].start for u in _units(sql) if u.kind == "header" and u.language == "sql")
    for st in sorted(statements(sql), key=lambda st: -st.start):
        at = st.start + shift * bisect.bisect_right(headers, st.start)
        data = data[:at] + _marker(st.function, st.line).encode() + data[at:]
    return data.decode()


def _units(sql: str):
    from pggit_chaos.measure.mutagen import units

    return list(units(sql))


def statement_at(found: list[Statement], start: int, end: int) -> Statement | None:
    """The innermost statement whose span holds the edit ``[start, end)``, or None."""
    around = [st for st in found if st.start <= start and end <= st.end]
    return min(around, key=lambda st: st.end - st.start) if around else None


def finish(merged: dict, tier: str, sql: str, seconds: float) -> dict:
    """The map as written: the plugin's record, the script's hash, the marked statements, and the tests that
    failed unmutated."""
    failing = sorted(n for n, o in merged["outcomes"].items() if o == "failed")
    return {"tier": tier, "markexpr": TIERS[tier], "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
            "seconds": seconds, "sql_functions_counted": True, "install": merged["install"], "failing": failing,
            "marked": sorted(f"{st.function}:{st.line}" for st in statements(sql)),
            "tests": {n: f for n, f in merged["tests"].items() if n not in failing},
            "statements": {n: f for n, f in merged.get("statements", {}).items() if n not in failing},
            "durations": merged["durations"], "outcomes": merged["outcomes"]}


def never_run(data: dict, sql: str) -> list[dict]:
    """The marked statements no test of the map ran: code the suite never executes, with each first line."""
    ran = {mark for marks in data.get("statements", {}).values() for mark in marks}
    lines = sql.splitlines()
    out = []
    for mark in sorted(set(data.get("marked", ())) - ran, key=lambda m: int(m.rpartition(":")[2])):
        function, _, line = mark.rpartition(":")
        out.append({"function": function, "line": int(line), "text": " ".join(lines[int(line) - 1].split())})
    return out


def load(tier: str, sql: str) -> dict:
    """The reach map of ``tier``; refuses one measured on another script (a stale map selects wrongly)."""
    path = reach_path(tier)
    if not path.exists():
        raise SystemExit(f"error: no reach map for the {tier} tier; run: pggit-chaos reach --tier {tier}")
    data = json.loads(path.read_text())
    if data["sql_sha256"] != hashlib.sha256(sql.encode()).hexdigest():
        raise SystemExit(f"error: {path} was measured on another extension/pggit--1.0.0.sql; "
                         f"run again: pggit-chaos reach --tier {tier}")
    return data


def callers(sql: str) -> dict[str, set[str]]:
    """For each pggit function, the functions whose bodies name it, transitively (the static call graph reversed)."""
    bodies = _bodies(sql)
    names = {f: re.compile(r"\b" + re.escape(f.rpartition(".")[2]) + r"\b") for f in bodies}
    direct = {f: {g for g, texts in bodies.items() if g != f and any(names[f].search(t) for t in texts)}
              for f in bodies}
    out = {}
    for f in bodies:
        seen, todo = set(), list(direct[f])
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(direct.get(g, ()))
        out[f] = seen
    return out


def _bodies(sql: str) -> dict[str, list[str]]:
    from pggit_chaos.measure.mutagen import units

    bodies: dict[str, list[str]] = {}
    for unit in units(sql):
        if unit.kind == "body":
            bodies.setdefault(unit.function, []).append(" ".join(t.text for t in unit.tokens))
    return bodies


def inlinable(sql: str) -> set[str]:
    """The pggit functions written in SQL: the planner may inline their calls, which are then not counted."""
    from pggit_chaos.measure.mutagen import units

    return {u.function for u in units(sql) if u.kind == "header" and u.language == "sql"}


class Selector:
    """The tests a mutant meets, best killers first: past kills of the same function, then the quickest."""

    def __init__(self, data: dict, sql: str, past_kills: dict[str, int] | None = None):
        self.data, self.past = data, past_kills or {}
        self.reached: dict[str, set[str]] = {}
        for test, functions in data["tests"].items():
            for f in functions:
                self.reached.setdefault(f, set()).add(test)
        # A map without markers (measured before they existed) selects by function only.
        self.ran: dict[str, set[str]] = {}
        for test, marks in data.get("statements", {}).items():
            if test in data["tests"]:
                for mark in marks:
                    self.ran.setdefault(mark, set()).add(test)
        self.marked = set(data.get("marked", ())) if "statements" in data else set()
        self.statements = statements(sql) if self.marked else []
        self.callers = callers(sql)
        self.inlinable = inlinable(sql)
        self.install = set(data["install"])

    def order(self, tests) -> list[str]:
        """Most past kills per second of run time first, then the quickest."""
        durations = self.data["durations"]
        return sorted(tests, key=lambda t: (-self.past.get(t, 0) / (durations.get(t, 1.0) + 0.1),
                                            durations.get(t, 0.0), t))

    def statement_for(self, function: str | None, span: tuple[int, int] | None) -> Statement | None:
        """The marked statement around the edit ``span`` of ``function``, when the map knows who ran it."""
        if span is None or not self.marked or function in (None, SCRIPT) or function in self.install:
            return None
        st = statement_at(self.statements, *span)
        return st if st is not None and st.function == function and f"{function}:{st.line}" in self.marked else None

    def tests_for(self, function: str | None, span: tuple[int, int] | None = None) -> list[str]:
        """Every test that may see a change of ``function`` (None or SCRIPT: every test); given the edit's
        ``span``, a statement's change only by the tests that ran that statement."""
        if function in (None, SCRIPT) or function in self.install:
            return self.order(self.data["tests"])
        st = self.statement_for(function, span)
        if st is not None:
            return self.order(self.ran.get(f"{function}:{st.line}", set()))
        tests = set(self.reached.get(function, ()))
        if function in self.inlinable and not self.data.get("sql_functions_counted"):
            # A PL/pgSQL function's calls are always counted, an SQL one's not when the planner inlines it:
            # then its callers in pggit stand for it, and a test's own query may call a public one unseen.
            if not function.rpartition(".")[2].startswith("_"):
                return self.order(self.data["tests"])
            for caller in self.callers.get(function, ()):
                tests |= self.reached.get(caller, set())
        return self.order(tests)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--tier", choices=sorted(TIERS), default="full",
                        help="the tier whose tests are measured (default %(default)s; full holds smoke).")
    parser.add_argument("--seed", type=int, default=0, help="the Hypothesis seed of the run (default 0, so a run can be repeated exactly).")
    parser.add_argument("--test-timeout", type=positive_int, default=120, metavar="SECONDS",
                        help="seconds one test may take before it counts as hung, and fails (default %(default)s).")
    parser.add_argument("--run-timeout", type=positive_float, default=3600, metavar="SECONDS",
                        help="seconds the whole run may take before it is killed (default %(default)s).")
    parser.add_argument("--sql", type=Path, default=EXTENSION_SQL, metavar="FILE",
                        help="the script to measure (default: extension/pggit--1.0.0.sql).")
    parser.add_argument("--keep", action="store_true", help="keep the work directory with the run's log and its map.")
    return parser


def run(args: argparse.Namespace) -> int:
    data = measure(args.tier, args.seed, args.test_timeout, args.run_timeout, reach_path(args.tier),
                   args.keep, args.sql)
    functions = {f for fs in data["tests"].values() for f in fs}
    print(f"{len(data['tests'])} tests reach {len(functions)} pggit functions "
          f"({len(data['install'])} run by CREATE EXTENSION) in {data['seconds']:.0f} s; "
          f"map in {reach_path(args.tier)}")
    return 0
