"""The Metrics page's section on what pggit's tracking adds to a DDL statement, in a new session and a warm one."""

from __future__ import annotations

import json

from pggit_chaos.measure.metrics.markdown import table
from pggit_chaos.measure.metrics.results import DATA_DIR

FILE = "bench-ddl.json"


def load() -> dict | None:
    """The recorded ``bench-ddl`` result, or None when none has been made."""
    path = DATA_DIR / FILE
    return json.loads(path.read_text()) if path.exists() else None


def section(bench: dict | None) -> list[str]:
    """The medians of each statement without and with pggit, cold and warm, and the script's totals."""
    lines = ["### What tracking adds to a DDL statement", ""]
    if not bench:
        return lines + ["Not measured yet (`pggit-chaos bench-ddl`).", ""]
    ms = bench["median_ms"]
    lines += [
        "pggit records DDL from event triggers that find, describe and hash the tables a",
        "statement touched. `tools/pggit_chaos/measure/bench_ddl.py` runs the same five",
        "statements in new sessions on a plain database and on one with pggit, twice per",
        "session: cold (the session's first statements, while PostgreSQL still compiles",
        "pggit's functions and plans their queries) and then warm. Median milliseconds of",
        f"{bench['sessions']} sessions per database, on PostgreSQL {bench['pg_version']}, "
        f"{bench['started'][:10]}, load average {bench['load_average_at_start'][0]:.1f} at the start; "
        f"pggit wrote the {bench['history_rows']} history rows the statements make.",
        "",
    ]
    # A connection is made once per session: it has no warm figure.
    rows = [["connect", f"{ms['plain']['cold']['connect']:.2f}", f"{ms['pggit']['cold']['connect']:.2f}", "", ""]]
    totals = {(db, r): 0.0 for db in ms for r in ("cold", "warm")}
    for step in bench["script"]:
        for db in ms:
            for r in ("cold", "warm"):
                totals[db, r] += ms[db][r][step]
        rows.append([f"`{step}`", *(f"{ms[db][r][step]:.2f}" for r in ("cold", "warm") for db in ("plain", "pggit"))])
    rows.append(["**all five**", *(f"**{totals[db, r]:.2f}**" for r in ("cold", "warm") for db in ("plain", "pggit"))])
    lines += table(["statement", "cold, plain", "cold, pggit", "warm, plain", "warm, pggit"], rows)
    cold, warm = (totals["pggit", r] - totals["plain", r] for r in ("cold", "warm"))
    return lines + [
        "",
        f"pggit adds {cold:.1f} ms to the five statements in a new session and {warm:.1f} ms once the",
        "session is warm. A tool that opens a session per change pays the first figure each time.",
        "",
    ]
