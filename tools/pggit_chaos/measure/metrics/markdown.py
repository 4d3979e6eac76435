"""Markdown for the Metrics page: tables, cells, inline code, and numbers and test ids as a reader wants them."""

from __future__ import annotations

import re


def cell(text) -> str:
    """A table cell: a pipe would end the cell early, a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def prose(text) -> str:
    """Free text as it reads, not as Markdown: ``<schema>`` is not an HTML tag nor ``_name_`` emphasis.

    Backtick spans stay code; outside them the characters Markdown acts on are escaped.
    """
    parts = re.split(r"(`+[^`]*`+)", str(text))
    return "".join(p if p.startswith("`") else _escape(p) for p in parts)


def _escape(text: str) -> str:
    # An underscore between two letters or digits never starts emphasis, and a path like
    # tests/x/test_y.py must stay one word for a reader and for the page's path check.
    text = re.sub(r"([\\*<>\[\]#&~])", r"\\\1", text)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def code(text: str) -> str:
    """Inline code on one line; a double-backtick fence when the text holds a backtick."""
    text = re.sub(r"\s+", " ", text).strip().replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table's lines."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def pct(killed: int, total: int) -> str:
    """``killed`` of ``total`` as a whole percentage."""
    return f"{100 * killed / total:.0f}%" if total else "n/a"


def short_test(nodeid: str) -> str:
    """A test id as a reader finds it: file, class if any, and test name (parameters kept).

    A guide's block node (``line-80``) is left out: the test's name finds it on the page.
    """
    path, *parts = nodeid.split("::")
    return "::".join([path] + [p for p in parts if not re.fullmatch(r"line-\d+", p)])


def minutes(seconds: float) -> str:
    """A wall time: seconds up to two minutes, minutes beyond."""
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def mutant_verdict(mutant: dict | None) -> str:
    """What a tier did to a mutant, with the number of failing tests when it killed it."""
    if mutant is None:
        return "not run"
    if mutant["status"] == "killed":
        return f"killed ({len(mutant['killed_by'])})"
    return mutant["status"]


def tier_run(measurement: dict) -> str:
    """What a benchmark ran: the ``make`` tier, and its selection when it is a sample of the tier."""
    selection = measurement["selection"]
    return f"`make {measurement['tier']}`" + (f", only `{selection}`" if selection else "")


def reference(measurement: dict) -> str | None:
    """A measurement's reference task (``suite_run.reference_seconds``) as "0.11 s before and 0.12 s after",
    then the system task's (``suite_run.system_reference_seconds``) where it was measured; None when
    neither was."""
    if "reference_seconds" not in measurement:
        return None
    before, after = measurement["reference_seconds"]
    shown = f"{before:.2f} s before and {after:.2f} s after"
    if "system_reference_seconds" in measurement:  # measured since the system task exists
        before, after = measurement["system_reference_seconds"]
        shown += f" (system task {before:.2f} s before and {after:.2f} s after)"
    return shown
