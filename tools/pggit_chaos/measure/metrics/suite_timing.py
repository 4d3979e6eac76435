"""The Metrics page's everyday-loop section: each tier's wall time by user (``bench-suite``) and the stability runs by tier and user."""

from __future__ import annotations

import json
import statistics

from pggit_chaos.measure.metrics.markdown import reference, table, tier_run
from pggit_chaos.measure.metrics.measured import run_days
from pggit_chaos.measure.metrics.results import DATA_DIR

FILE = "suite-timing.json"


def load() -> dict | None:
    """The recorded ``bench-suite`` measurements, or None when none has been made."""
    path = DATA_DIR / FILE
    return json.loads(path.read_text()) if path.exists() else None


def _loads(runs: list[dict]) -> str:
    """The 1-minute load average before the first run and after the last, and its highest in between."""
    seen = [r["load_before"][0] for r in runs] + [r["load_after"][0] for r in runs]
    return f"{runs[0]['load_before'][0]:.1f} → {runs[-1]['load_after'][0]:.1f} (highest {max(seen):.1f})"


def _timing_rows(timing: dict) -> list[list]:
    rows = []
    for m in timing["measurements"]:
        seconds = [r["seconds"] for r in m["runs"] if r["exitstatus"] == 0]
        spread = f"{min(seconds):.0f}–{max(seconds):.0f} s" if seconds else "none passed"
        median = f"**{m['median_seconds']:.0f} s**" if m["median_seconds"] is not None else "none passed"
        target = m.get("target_seconds")
        verdict = ("" if target is None or m["median_seconds"] is None or m["selection"]
                   else " (met)" if m["median_seconds"] < target else " (not met)")
        tests = max(r["tests"] for r in m["runs"])
        rows.append([tier_run(m), m["user"], tests, f"{len(m['runs'])} ({m['failed_runs']} failed)", median, spread,
                     f"{target} s{verdict}" if target else "none", f"{m['machine']['cores']}, {m['workers']}",
                     _loads(m["runs"]), m["started"][:10]])
    return rows


def _references(timing: dict) -> list[str]:
    """How fast the machine was during each measurement: the reference task's CPU-seconds before and after."""
    measured = [f"{tier_run(m)} as {m['user']} {reference(m)}" for m in timing["measurements"] if reference(m)]
    if not measured:
        return []
    system = any("system_reference_seconds" in m for m in timing["measurements"])
    return ["How fast the machine was: the CPU-seconds of a fixed task (a pure-Python loop and PBKDF2,",
            "`suite_run.reference_seconds`" + ("; the system task forks processes and writes files,"
                                               " `suite_run.system_reference_seconds`" if system else "")
            + "), " + "; ".join(measured) + ".", ""]


def _stability_rows(stability: dict) -> list[list]:
    groups: dict[tuple, list[dict]] = {}
    for run in stability["runs"]:
        key = (run["tier"], run.get("user", "not recorded"), run.get("profile", "dev"), run.get("workers",
                                                                                             stability["workers"]))
        groups.setdefault(key, []).append(run)
    order = {"smoke": 0, "test": 1, "test-all": 2, "full": 3}
    rows = []
    for (tier, user, profile, workers), runs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0])):
        failed = sum(r["exitstatus"] != 0 for r in runs)
        passing = [r["seconds"] for r in runs if r["exitstatus"] == 0]
        seeds = f"`{profile}` (fixed examples)" if profile == "gate" else f"`{profile}`, a random seed each run"
        days = run_days(runs)
        loads = [r["load_before"][0] for r in runs if r.get("load_before")]
        rows.append([f"`make {tier}`", user, len(runs), f"**{failed}**", seeds, workers,
                     f"{statistics.median(passing):.0f} s" if passing else "none passed",
                     f"{loads[0]:.1f} (highest {max(loads):.1f})" if loads else "not recorded",
                     " to ".join(dict.fromkeys([days[0], days[-1]])) if days else "not recorded"])
    return rows


def section(timing: dict | None, stability: dict | None) -> list[str]:
    """The section's lines: the benchmark's table, then the stability runs grouped by tier and user."""
    lines = ["## The everyday loop", ""]
    if timing and timing.get("measurements"):
        lines += [
            "Wall time of a tier as `make` runs it (pytest-xdist, `--dist loadgroup`, one",
            "throwaway PostgreSQL per worker), with the tier's Hypothesis profile (`gate`'s",
            "fixed examples for `make test` and `make test-all`, as `.ci/run` has it; `smoke` for `make smoke`) and",
            "the checkout's `.hypothesis` directory, measured",
            "by `pggit-chaos bench-suite` (`tools/pggit_chaos/measure/bench_suite.py`): the",
            "median of the passing runs, against the target for a 2-core machine. The load",
            "average is the machine's, before the first run and after the last: other work",
            "running at the same time makes every figure longer.",
            "",
            *table(["tier", "user", "tests", "runs", "median", "range", "target", "cores, workers",
                    "load average", "measured"], _timing_rows(timing)),
            "",
            *_references(timing),
        ]
    else:
        lines += ["The tiers' wall time as `make` runs them has not been measured yet",
                  "(`pggit-chaos bench-suite --tier test`, then `--tier smoke`).", ""]
    lines += ["Stability runs by tier and user (`pggit-chaos stability`), with the 1-minute load average",
              "before the first run and the highest before any run; \"not recorded\" marks runs made before",
              "the tool recorded who ran them, when, and under what load:", ""]
    if stability:
        lines += table(["tier", "user", "runs", "failed", "Hypothesis", "workers", "median wall time",
                        "load average before a run", "measured"],
                       _stability_rows(stability))
    else:
        lines += ["None recorded yet."]
    return lines + [""]
