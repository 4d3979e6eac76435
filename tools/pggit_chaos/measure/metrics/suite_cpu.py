"""The Metrics page's section on where a tier's time goes (``bench-cpu``): CPU-seconds by area, against the target's budget."""

from __future__ import annotations

import json

from pggit_chaos.measure.metrics.markdown import reference, table, tier_run
from pggit_chaos.measure.metrics.results import DATA_DIR

FILE = "suite-cpu.json"


def load() -> dict | None:
    """The recorded ``bench-cpu`` measurements, or None when none has been made."""
    path = DATA_DIR / FILE
    return json.loads(path.read_text()) if path.exists() else None


def _measurement(m: dict) -> list[str]:
    cores = m["machine"]["cores"]
    verdict = "all passed" if not m["failed"] and m["exitstatus"] == 0 else f"{len(m['failed'])} failed"
    lines = [
        f"{tier_run(m)} as {m['user']}, one test at a time ({m['tests']} tests, {verdict}; {m['seconds']:.0f} s), "
        f"PostgreSQL {m['pg_version']}, {cores} cores, {m['started'][:10]}, load average "
        f"{m['load_before'][0]:.1f} at the start, reference task {reference(m) or 'not measured'}. "
        f"The machine was busy for **{m['busy_cpu_seconds']:.0f} CPU-seconds**: {m['in_tests_cpu_seconds']:.0f} "
        f"in the tests and {m['outside_tests_cpu_seconds']:.0f} outside any test (start-up, collection, stopping the server).",
        "",
    ]
    if m["cpu_budget_seconds"] and not m["selection"]:
        need = m["busy_cpu_seconds"] / m["cpu_budget_seconds"]
        lines += [f"The target of {m['target_seconds']} s on {cores} cores leaves at most "
                  f"{m['cpu_budget_seconds']} CPU-seconds, and only with every core busy from start to end: "
                  f"the tier needs {need:.1f} times that.", ""]
    rows = [[f"`{name}`", a["tests"], f"{a['cpu_seconds']:.1f}", f"{100 * a['cpu_seconds'] / m['busy_cpu_seconds']:.0f} %",
             f"{1000 * a['cpu_seconds'] / a['tests']:.0f}"] for name, a in m["areas"].items()]
    rows.append(["outside any test", "", f"{m['outside_tests_cpu_seconds']:.1f}",
                 f"{100 * m['outside_tests_cpu_seconds'] / m['busy_cpu_seconds']:.0f} %", ""])
    lines += table(["area", "tests", "CPU-seconds", "share", "CPU ms per test"], rows)
    lines += ["", f"The {len(m['costliest'])} tests that cost the most:", ""]
    lines += table(["test", "CPU-seconds", "wall seconds"],
                   [[f"`{t['nodeid']}`", f"{t['cpu_seconds']:.1f}", f"{t['wall_seconds']:.1f}"] for t in m["costliest"]])
    return lines + [""]


def section(cpu: dict | None) -> list[str]:
    """Each measurement: its total against the budget, its areas, and its costliest tests."""
    lines = ["### Where the time goes", ""]
    if not cpu or not cpu.get("measurements"):
        return lines + ["Not measured yet (`pggit-chaos bench-cpu`).", ""]
    lines += [
        "`pggit-chaos bench-cpu` (`tools/pggit_chaos/measure/bench_cpu.py`) runs a tier with one",
        "worker, so that one test runs at a time, and charges each test what the whole machine",
        "spent while it ran: its PostgreSQL backends, the pytest runs, Sphinx builds and browsers",
        "it starts, and its own Python. A tier cannot finish faster than its CPU-seconds divided",
        "by the cores, whatever the number of workers. The reference task (a fixed pure-Python",
        "loop and PBKDF2, `suite_run.reference_seconds`) says how fast the machine was while it",
        "ran: figures measured on different days compare only beside it.",
    ]
    if any("system_reference_seconds" in m for m in cpu["measurements"]):
        lines += ["It says nothing of the kernel, where the servers spend half their time:",
                  "the system task (40 processes forked and 300 files written and removed,",
                  "`suite_run.system_reference_seconds`) does."]
    lines.append("")
    for m in cpu["measurements"]:
        lines += _measurement(m)
    return lines
