"""The mutant generator: pggit's install script parsed with pglast, mutation operators applied mechanically.

    pggit-chaos mutants-generate [--list] [--operator NAME ...] [--check-install]

The hand-written catalog (``mutants.py``) holds the bugs its authors could
imagine; this module makes mutants nobody chose. PostgreSQL's own parser
(pglast) splits ``extension/pggit--1.0.0.sql`` into statements; each
function's body is scanned into tokens with byte offsets (PL/pgSQL bodies
are also parsed by ``parse_plpgsql`` for their statements and lines), and
every operator of ``mutagen_rules.py`` proposes exact edits at exact offsets.
Nothing is re-printed: a mutant is the script with one span replaced.

Every mutant is deterministic: the same script gives the same list, in
script order, and a mutant's id hashes its operator, its function, the
normalized text of the line(s) it edits and its occurrence among identical
ones, so ids survive unrelated edits elsewhere in the file.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pggit_chaos.measure.mutants import MutantError
from pggit_chaos.paths import EXTENSION_SQL

SCRIPT = "(script)"  # the "function" of an edit outside every function body: grants, tables, SET, ...


@dataclass(frozen=True)
class Tok:
    """One token: byte offsets into the whole script (``end`` exclusive), pglast's name, its text."""

    start: int
    end: int
    name: str
    text: str
    line: int

    @property
    def word(self) -> str:
        """The text upper-cased: PL/pgSQL's keywords (RAISE, LOOP, EXCEPTION) scan as identifiers."""
        return self.text.upper()


@dataclass
class Unit:
    """A span of the script an operator works on: a function's body, its header, or a top-level statement."""

    kind: str            # "body", "header" or "script"
    function: str        # schema.name, or SCRIPT
    language: str        # plpgsql, sql, or "" outside bodies
    returns: str         # the function's result type ("" outside functions)
    tokens: list[Tok]
    depth: list[int] = field(default_factory=list)   # nesting: parentheses, BEGIN/IF/LOOP/CASE ... END
    closer: dict[int, int] = field(default_factory=dict)  # index of an opener -> index of its closer
    stmt: object = None  # the pglast statement node
    plpgsql: list[tuple[str, int]] = field(default_factory=list)  # (statement kind, absolute line)
    body_line: int = 0   # the line of the body's opening quote
    stmt_start: int = 0  # byte offsets of the whole statement (CREATE FUNCTION ... ;) in the script
    stmt_end: int = 0


@dataclass(frozen=True)
class GeneratedMutant:
    """One generated mutant: an operator's exact edit of one span of the script."""

    id: str
    operator: str
    function: str
    line: int
    start: int
    end: int
    original: str
    replacement: str

    # The hand-written Mutant's interface, so the runners take either kind.
    @property
    def name(self) -> str:
        return self.id

    @property
    def category(self) -> str:
        return self.operator

    @property
    def description(self) -> str:
        return (f"{self.operator} in {self.function}, line {self.line}: "
                f"{_short(self.original)!r} -> {_short(self.replacement)!r}")

    def apply(self, sql: str) -> str:
        """The mutated script; raises MutantError when the span no longer holds the original text."""
        data = sql.encode()
        if data[self.start:self.end].decode(errors="replace") != self.original:
            raise MutantError(f"generated mutant {self.id}: the script changed at line {self.line}; "
                              f"generate the mutants again")
        return (data[:self.start] + self.replacement.encode() + data[self.end:]).decode()


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _blank_psql_lines(sql: str) -> str:
    """The script with psql meta-command lines (``\\echo ... \\quit``) blanked, byte offsets unchanged."""
    return "".join(" " * len(line.rstrip("\r\n")) + line[len(line.rstrip("\r\n")):] if line.startswith("\\")
                   else line for line in sql.splitlines(keepends=True))


def _tokens(data: bytes, start: int, end: int, newlines: list[int]) -> list[Tok]:
    from pglast.parser import scan

    piece = data[start:end]
    # Comments are no tokens of the rules: a statement after a comment still follows its boundary.
    return [Tok(start + t.start, start + t.end + 1, t.name, piece[t.start:t.end + 1].decode(),
                bisect.bisect_right(newlines, start + t.start) + 1)
            for t in scan(piece.decode()) if t.name not in ("SQL_COMMENT", "C_COMMENT")]


_OPENERS = {"ASCII_40", "CASE", "BEGIN_P"}


def nest(unit: Unit) -> None:
    """Fill ``unit.depth`` and ``unit.closer``: parentheses, CASE ... END, BEGIN ... END, IF ... END IF, LOOP ... END LOOP.

    An opener sits at the depth outside it, so does its closer; what is between is one deeper."""
    stack: list[int] = []
    toks = unit.tokens
    depth = []
    for i, t in enumerate(toks):
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        after_end = prev is not None and prev.name == "END_P"
        opens = (t.name in _OPENERS and not (t.name == "CASE" and after_end)) \
            or (t.name == "IF_P" and not after_end and not (nxt and nxt.name in ("EXISTS", "NOT"))) \
            or (t.word == "LOOP" and t.name == "IDENT" and not after_end)
        closes = t.name == "ASCII_41" or t.name == "END_P"
        if closes and stack:
            unit.closer[stack.pop()] = i
        depth.append(len(stack))
        if opens:
            stack.append(i)
    unit.depth = depth


def _plpgsql_statements(tree, first_line: int) -> list[tuple[str, int]]:
    """Every statement of a parse_plpgsql tree: (kind without the PLpgSQL_stmt_ prefix, absolute line)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key.startswith("PLpgSQL_stmt_") and isinstance(value, dict) and "lineno" in value:
                    found.append((key[len("PLpgSQL_stmt_"):], first_line + value["lineno"] - 1))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree)
    return sorted(set(found), key=lambda s: s[1])


def units(sql: str) -> Iterator[Unit]:
    """The spans of ``sql`` the operators work on, in script order."""
    from pglast import ast, parse_plpgsql, parse_sql
    from pglast.stream import RawStream

    clean = _blank_psql_lines(sql)
    data = clean.encode()
    newlines = [m.start() for m in re.finditer(b"\n", data)]
    for raw in parse_sql(clean):
        stmt, start = raw.stmt, raw.stmt_location
        end = start + raw.stmt_len
        if not isinstance(stmt, ast.CreateFunctionStmt):
            unit = Unit("script", SCRIPT, "", "", _tokens(data, start, end, newlines), stmt=stmt)
            nest(unit)
            yield unit
            continue
        name = ".".join(n.sval for n in stmt.funcname)
        options = {o.defname: o.arg for o in stmt.options or ()}
        language = getattr(options.get("language"), "sval", "sql").lower()
        returns = "" if stmt.returnType is None else RawStream()(stmt.returnType)
        tokens = _tokens(data, start, end, newlines)
        at = next((i for i, (a, b) in enumerate(zip(tokens, tokens[1:])) if a.name == "AS" and b.name == "SCONST"),
                  None)
        if at is None:
            continue
        body = tokens[at + 1]
        header = Unit("header", name, language, returns, tokens[:at + 1], stmt=stmt)
        nest(header)
        yield header
        quote = re.match(r"\$[A-Za-z_0-9]*\$", body.text)
        if quote is None:  # a body in a plain '...' literal: its text is escaped, not mutated here
            continue
        inner = (body.start + len(quote.group()), body.end - len(quote.group()))
        unit = Unit("body", name, language, returns, _tokens(data, *inner, newlines), stmt=stmt,
                    body_line=data[:body.start].count(b"\n") + 1, stmt_start=start, stmt_end=end)
        nest(unit)
        if language == "plpgsql":
            text = data[start:end].decode()
            unit.plpgsql = _plpgsql_statements(parse_plpgsql(text), unit.body_line)
        yield unit


def generate(sql: str | None = None, operators: list[str] | None = None) -> list[GeneratedMutant]:
    """Every mutant the operators make of ``sql`` (default: the project's script), in script order."""
    from pggit_chaos.measure.mutagen_clauses import OPERATORS

    sql = EXTENSION_SQL.read_text() if sql is None else sql
    data = sql.encode()
    chosen = {name: OPERATORS[name] for name in (operators or OPERATORS)}
    edits = []
    for unit in units(sql):
        for name, rule in chosen.items():
            for start, end, replacement in rule(unit):
                if data[start:end].decode() != replacement:
                    edits.append((start, end, name, unit.function, replacement))
    mutants, seen = [], {}
    for start, end, operator, function, replacement in sorted(set(edits)):
        first = data.rfind(b"\n", 0, start) + 1
        last = data.find(b"\n", end)
        context = " ".join(data[first:last if last >= 0 else len(data)].decode().split())
        key = (operator, function, context, replacement.strip())
        seen[key] = seen.get(key, -1) + 1
        digest = hashlib.sha256("\x00".join([*key, str(seen[key])]).encode()).hexdigest()[:10]
        mutants.append(GeneratedMutant(
            id=f"{operator}:{function.rpartition('.')[2]}:{digest}", operator=operator, function=function,
            line=data[:start].count(b"\n") + 1, start=start, end=end,
            original=data[start:end].decode(), replacement=replacement))
    return mutants


def by_id(mutants: list[GeneratedMutant]) -> dict[str, GeneratedMutant]:
    return {m.id: m for m in mutants}
