"""What a SQL block prints, as ``psql`` prints it, and whether that is what its page shows.

A SQL block on a page is followed by a ```` ```text output ```` block: what
``psql -X`` prints for it, in psql's default aligned format. ``run`` sends
the block as one query string and renders each statement's result in turn:

- a statement that returns rows: its table, header, separator, rows and
  ``(N rows)`` footer, numbers right-aligned, NULL as nothing;
- any other statement: its command tag (``CREATE TABLE``, ``INSERT 0 1``,
  ``DO``);
- the first error: ``ERROR:  message``, then ``DETAIL:`` and ``HINT:`` lines
  if the server sent them (not ``CONTEXT:``, which names line numbers of
  pggit's code). Nothing after an error runs, as with
  ``psql -v ON_ERROR_STOP=1``.

Notices and warnings are not part of the output.

``compare`` matches the page's text against the real output line by line,
after normalizing what psql's layout varies: blank lines are dropped,
whitespace runs count as one space, and a separator line (``---+---``)
counts only by its columns, so a page need not pad its columns to the
widths of the run's values. Values that differ from run to run are written
as named placeholders (``PLACEHOLDERS``); anything else is literal.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import psycopg
from psycopg import pq

# Named placeholders a page's expected output may use for values that differ from run to run.
# Each matches inside one normalized line; none matches an empty value, so a NULL never passes for one.
PLACEHOLDERS: dict[str, str] = {
    "trinity-id": r"TRN-\d{14}-\d{12}-[0-9a-f]{8}",  # a generated Trinity ID
    "timestamp": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?(?:[+-]\d\d(?::\d\d)?)?",  # timestamp(tz), as psql prints it
    "integer": r"-?\d+",  # a pid, an oid, a count that depends on the run
    "sha256": r"[0-9a-f]{64}",  # a schema hash: 64 hex digits no reader compares by eye
    "text": r"[^|\s](?:[^|]*[^|\s])?",  # any non-empty text within one column
}
_PLACEHOLDER = re.compile(r"<(" + "|".join(re.escape(name) for name in PLACEHOLDERS) + r")>")

# Types psql right-aligns (print.c, column_type_alignment): the numeric ones.
_NUMERIC_OIDS = {20, 21, 23, 26, 28, 29, 700, 701, 790, 1700, 5069}


@dataclass
class SqlError:
    """The error that ended a block: its SQLSTATE, condition name and primary message."""

    sqlstate: str
    condition: str
    message: str


@dataclass
class SqlRun:
    """What a block printed (psql's text) and the error that ended it, if one did."""

    output: str
    error: SqlError | None


def run(dsn: str, code: str) -> SqlRun:
    """Run ``code`` as one query string on a connection of its own; return what psql would print."""
    conn = pq.PGconn.connect(dsn.encode())
    try:
        if conn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError(conn.get_error_message())
        conn.notice_handler = lambda _result: None  # notices are not part of the output
        conn.send_query(code.encode())
        chunks: list[str] = []
        error = None
        while (result := conn.get_result()) is not None:
            status = pq.ExecStatus(result.status)
            if status == pq.ExecStatus.TUPLES_OK:
                chunks.append(render_table(result))
            elif status == pq.ExecStatus.COMMAND_OK:
                chunks.append(result.command_status.decode())
            elif status == pq.ExecStatus.FATAL_ERROR:
                error = _error(result)
                chunks.append(_render_error(result))
            elif status != pq.ExecStatus.EMPTY_QUERY:
                raise AssertionError(f"a SQL block cannot use {status.name} (COPY and the like): it runs without psql")
        return SqlRun("\n".join(chunks), error)
    finally:
        conn.finish()


def _field(result: pq.PGresult, field: pq.DiagnosticField) -> str | None:
    value = result.error_field(field)
    return value.decode() if value is not None else None


def _error(result: pq.PGresult) -> SqlError:
    sqlstate = _field(result, pq.DiagnosticField.SQLSTATE) or ""
    cls = psycopg.errors.lookup(sqlstate) if sqlstate else psycopg.Error
    condition = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()  # UniqueViolation -> unique_violation
    return SqlError(sqlstate, condition, _field(result, pq.DiagnosticField.MESSAGE_PRIMARY) or "")


def _render_error(result: pq.PGresult) -> str:
    lines = [f"ERROR:  {_field(result, pq.DiagnosticField.MESSAGE_PRIMARY)}"]
    for label, field in (("DETAIL", pq.DiagnosticField.MESSAGE_DETAIL), ("HINT", pq.DiagnosticField.MESSAGE_HINT)):
        if (value := _field(result, field)) is not None:
            lines.append(f"{label}:  {value}")
    return "\n".join(lines)


def render_table(result: pq.PGresult) -> str:
    """A result with rows, in psql's aligned format (border 1), with its ``(N rows)`` footer."""
    names = [result.fname(i).decode() for i in range(result.nfields)]
    right = [result.ftype(i) in _NUMERIC_OIDS for i in range(result.nfields)]
    rows = []
    for r in range(result.ntuples):
        values = [result.get_value(r, c) for c in range(result.nfields)]
        rows.append([(v.decode() if v is not None else "").split("\n") for v in values])
    widths = [max([len(name)] + [len(line) for row in rows for line in row[c]]) for c, name in enumerate(names)]
    lines = [" " + " | ".join(name.center(w) for name, w in zip(names, widths)),
             "+".join("-" * (w + 2) for w in widths) or "--"]
    for row in rows:
        for i in range(max((len(cell) for cell in row), default=1)):
            parts = []
            for c, cell in enumerate(row):
                text = cell[i] if i < len(cell) else ""
                text = text.rjust(widths[c]) if right[c] else text.ljust(widths[c])
                more = "+" if i + 1 < len(cell) else " "  # psql marks a value that goes on below with +
                parts.append(f" {text}{more}")
            lines.append("|".join(parts))
    count = result.ntuples
    lines.append(f"({count} row{'' if count == 1 else 's'})")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def normalize(line: str) -> str:
    """A line as compared: whitespace runs as one space, and a separator line by its column count only."""
    line = " ".join(line.split())
    if line and set(line) <= set("-+ "):
        return "+".join("---" for _ in line.replace(" ", "").split("+"))
    return line


def _significant(text: str, first_line: int = 1) -> list[tuple[int, str]]:
    """(line number, normalized line) of each non-blank line."""
    return [(first_line + i, normalize(raw)) for i, raw in enumerate(text.splitlines()) if raw.strip()]


def _line_pattern(expected: str) -> re.Pattern:
    parts = _PLACEHOLDER.split(expected)
    # split keeps the captured names at the odd positions.
    return re.compile("".join(PLACEHOLDERS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


def compare(expected: str, actual: str, first_line: int = 1) -> tuple[int, str, str] | None:
    """None if ``actual`` is what ``expected`` shows; else (page line, expected line, actual line) of the first difference.

    ``first_line`` is the page line of the expected text's first line; at the
    end of either text the missing side reads ``(nothing)``.
    """
    shown = _significant(expected, first_line)
    real = _significant(actual)
    end = shown[-1][0] + 1 if shown else first_line
    for i in range(max(len(shown), len(real))):
        if i >= len(shown):
            return end, "(nothing)", real[i][1]
        line, want = shown[i]
        if i >= len(real):
            return line, want, "(nothing)"
        if not _line_pattern(want).fullmatch(real[i][1]):
            return line, want, real[i][1]
    return None


def mismatch_message(where: str, output_line: int, expected: str, actual: str,
                     difference: tuple[int, str, str]) -> str:
    """The failure message: where the outputs part, both outputs as a diff, and the real one to paste."""
    line, want, got = difference
    diff = "\n".join(difflib.unified_diff(expected.strip("\n").splitlines(), actual.strip("\n").splitlines(),
                                          "shown on the page", "real output", lineterm=""))
    return (
        f"SQL block at {where}: its output differs from the ```text output block at line {output_line}; "
        f"first difference at line {line}:\n"
        f"  shown: {want}\n"
        f"  real:  {got}\n"
        f"{diff}\n"
        f"The real output (placeholders: {', '.join(f'<{n}>' for n in PLACEHOLDERS)}):\n{actual}"
    )
