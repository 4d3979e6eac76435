"""The pytest plugin of a measured child run: each test's outcome, duration, failure and Hypothesis numbers, as JSON.

The mutation runner and the stability runs start pytest with ``-p
pggit_chaos.measure.recorder`` and ``PGGIT_RUN_RECORD=FILE``; at the end of
the session the plugin writes what it saw to FILE.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pggit_chaos.measure.hypothesis_report import falsifying_example, parse_hypothesis_statistics

RECORD_ENV = "PGGIT_RUN_RECORD"

# A test's outcome is the worst of its phases (setup, call, teardown).
_OUTCOME_RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "failed": 2, "error": 2}

# The markers worth recording: the suite's own, which decide tiers and categories.
_SUITE_MARKERS = {
    "chaos", "property", "concurrent", "transaction", "crash", "resource", "load", "corruption",
    "migration", "integrity", "recovery", "slow", "destructive", "soak",
}


class SeesPgVersion:
    """A recorder's base: the version of the PostgreSQL the run's first ``pg_server`` fixture started."""

    pg_version: str | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        result = yield
        if fixturedef.argname == "pg_server" and self.pg_version is None:
            self.pg_version = getattr(result, "version", None)
        return result


class RunRecorder(SeesPgVersion):
    """Collects per-test results of one pytest run and writes them as JSON at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.tests: dict[str, dict] = {}
        self.started = time.monotonic()

    def pytest_runtest_logreport(self, report) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
        entry["duration"] = round(entry["duration"] + report.duration, 4)
        if report.when == "call" or report.outcome != "passed":
            outcome = report.outcome
            if hasattr(report, "wasxfail"):
                outcome = "xfailed" if report.outcome == "skipped" else "passed"  # a strict XPASS is a failure without it
            elif report.outcome == "failed" and report.when != "call":
                outcome = "error"
            if _OUTCOME_RANK[outcome] > _OUTCOME_RANK[entry["outcome"]]:
                entry["outcome"] = outcome
            if outcome in ("failed", "error"):
                entry["failure"] = _failure_summary(report)
        stats = report.__dict__.get("_hypothesis_stats")
        if stats:
            entry["hypothesis"] = parse_hypothesis_statistics(stats)
        if report.when == "call":
            entry["markers"] = sorted(k for k in report.keywords if k in _SUITE_MARKERS)

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self.path.write_text(json.dumps({
            "exitstatus": int(exitstatus),
            "seconds": round(time.monotonic() - self.started, 3),
            "pg_version": self.pg_version,
            "tests": self.tests,
        }, indent=1, sort_keys=True))


def _failure_summary(report) -> dict:
    """The crash line and, for a property test, Hypothesis's falsifying example."""
    text = str(report.longrepr) if report.longrepr is not None else ""
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None) or text.strip().splitlines()[-1:] or [""]
    crash = crash if isinstance(crash, str) else crash[0]
    summary = {"when": report.when, "message": crash.strip()[:400]}
    example = falsifying_example(text)
    if example:
        summary["falsifying_example"] = example[:1500]
    return summary


def pytest_configure(config) -> None:
    path = os.environ.get(RECORD_ENV)
    if path and not hasattr(config, "workerinput"):  # xdist workers report to the controller
        config.pluginmanager.register(RunRecorder(Path(path)), "pggit-run-recorder")
