"""JUnit reports of CI runs: each test's markers written into them, and the summary that decides a job.

    pytest -p pggit_chaos.measure.junit --junitxml=_build/junit/full.xml ...
    pggit-chaos junit-summary _build/junit/*.xml [--merged FILE] [--summary FILE]

Loaded with ``-p``, this module is a pytest plugin: each test case of the
JUnit report gets a ``markers`` property (its markers' names), the run's
exit status goes next to the report (``full.xml.status``), and when a test
fails, the tail of the run's server log is appended to ``server-logs/`` beside
the report, for the job to upload.

``junit-summary`` reads any number of such reports (one per job, shard or
version), merges them, writes a Markdown summary (``$GITHUB_STEP_SUMMARY``
by default) and a GitHub annotation per failure, and exits 1 only when a
test that must pass (``progression``: not every one of its categories may
fail) failed, errored or unexpectedly passed, or a run broke (a report
missing or empty, pytest interrupted, a status the report does not
explain). Failures of tests that may fail, and their unexpected passes
(time to leave the list), are reported as warnings.
"""

from __future__ import annotations

import argparse
import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from pggit_chaos.measure.progression import PROGRESSION_FILE, Progression

COMMAND = "junit-summary"
DESCRIPTION = ("Merge JUnit reports, write a summary and an annotation per failure, and fail only for tests "
               "the progression says must pass.")

MARKERS_PROPERTY = "markers"
# pytest's exit statuses: 0 and 1 are runs that finished; the others broke.
EXIT_STATUSES = {0: "all passed", 1: "tests failed", 2: "interrupted", 3: "internal error", 4: "usage error",
                 5: "no tests collected"}
LOG_LINES = 200
BAD = ("failed", "error", "xpassed")


# ---- the plugin -------------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = sorted({mark.name for mark in item.iter_markers()})
        item.user_properties.append((MARKERS_PROPERTY, " ".join(names)))


def _report_path(config: pytest.Config) -> Path | None:
    xml = getattr(config.option, "xmlpath", None)
    return Path(xml) if xml else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    xml = _report_path(item.config)
    server = getattr(item, "funcargs", {}).get("pg_server")
    logfile = getattr(server, "logfile", None)
    if report.failed and xml is not None and logfile is not None:
        try:
            tail = Path(logfile).read_text(errors="replace").splitlines()[-LOG_LINES:]
        except OSError as error:
            tail = [f"(the server log could not be read: {error})"]
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        out = xml.parent / "server-logs" / f"{xml.stem}-{worker}.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as log:
            log.write(f"==== {report.nodeid} ({report.when}) failed; last {len(tail)} lines of {logfile}\n")
            log.write("\n".join(tail) + "\n")
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    xml = _report_path(session.config)
    if xml is not None and not hasattr(session.config, "workerinput"):
        xml.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{xml}.status").write_text(f"{int(exitstatus)}\n")


# ---- reading reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One test case of a report: where it ran, what became of it, and its markers (None: not recorded)."""

    report: str
    test: str
    outcome: str  # passed, failed, error, skipped, xfailed, xpassed
    message: str
    markers: frozenset[str] | None
    seconds: float


def _outcome(case: ET.Element) -> tuple[str, str]:
    found = {child.tag: child for child in case if child.tag in ("failure", "error", "skipped")}
    if "failure" in found:
        message = found["failure"].get("message", "")
        return ("xpassed" if message.startswith("[XPASS") else "failed"), message
    if "error" in found:
        return "error", found["error"].get("message", "")
    if "skipped" in found:
        skipped = found["skipped"]
        return ("xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"), skipped.get("message", "")
    return "passed", ""


def read_report(path: Path) -> list[Case]:
    """Every test case of a JUnit file (pytest's xunit1 or xunit2 flavour)."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = _outcome(case)
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        markers = frozenset(props[MARKERS_PROPERTY].split()) if MARKERS_PROPERTY in props else None
        name = "::".join(part for part in (case.get("classname", ""), case.get("name", "")) if part)
        cases.append(Case(path.stem, name, outcome, " ".join(message.split())[:300], markers,
                          float(case.get("time") or 0)))
    return cases


def merge(paths: list[Path], out: Path) -> None:
    """One file holding every report's test suites."""
    merged = ET.Element("testsuites")
    for path in paths:
        root = ET.parse(path).getroot()
        merged.extend(root.iter("testsuite") if root.tag == "testsuites" else [root])
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(merged).write(out, encoding="utf-8", xml_declaration=True)


# ---- deciding ---------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the reports say: the blocking problems, the reported ones, and the counts per report."""

    blocking: list[str]
    reported: list[str]
    must_pass_failures: list[Case]
    may_fail_failures: list[Case]
    may_fail_xpassed: list[Case]
    counts: dict[str, Counter]

    @property
    def ok(self) -> bool:
        return not self.blocking


def judge(paths: list[Path], progression: Progression) -> Verdict:
    """Read every report (and its exit status, when the plugin wrote one) and decide."""
    verdict = Verdict([], [], [], [], [], {})
    for path in paths:
        if not path.is_file():
            verdict.blocking.append(f"{path}: no such report (the run broke before writing it)")
            continue
        cases = read_report(path)
        verdict.counts[path.stem] = Counter(c.outcome for c in cases)
        if not cases:
            verdict.blocking.append(f"{path}: no test ran (the selection selected nothing)")
        for case in cases:
            if case.outcome not in BAD:
                continue
            may_fail = case.markers is not None and progression.test_may_fail(case.markers)
            if not may_fail:
                verdict.must_pass_failures.append(case)
            elif case.outcome == "xpassed":
                verdict.may_fail_xpassed.append(case)
            else:
                verdict.may_fail_failures.append(case)
        status_file = Path(f"{path}.status")
        if status_file.is_file():
            status = int(status_file.read_text().strip() or 3)
            if status not in (0, 1):
                verdict.blocking.append(f"{path}: pytest ended with status {status} "
                                        f"({EXIT_STATUSES.get(status, 'unknown')})")
            elif status == 1 and not any(c.outcome in BAD for c in cases):
                verdict.blocking.append(f"{path}: pytest ended with status 1 but the report names no failing test")
    verdict.blocking += [f"{c.report}: {c.test} {c.outcome} (must pass): {c.message}"
                         for c in verdict.must_pass_failures]
    verdict.reported += [f"{c.report}: {c.test} {c.outcome} (may fail): {c.message}"
                         for c in verdict.may_fail_failures]
    verdict.reported += [f"{c.report}: {c.test} passed although marked xfail: remove the mark, and the "
                         f"category from the may-fail list once it is reliably green" for c in verdict.may_fail_xpassed]
    return verdict


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotations(verdict: Verdict) -> list[str]:
    """GitHub workflow commands: an error per blocking problem, a warning per reported one."""
    lines = [f"::error title=must pass::{_escape(p)}" for p in verdict.blocking]
    lines += [f"::warning title=may fail::{_escape(p)}" for p in verdict.reported]
    return lines


def markdown(verdict: Verdict, title: str) -> str:
    """The job summary: a table of outcomes per report, then every problem."""
    outcomes = ("passed", "failed", "error", "xpassed", "skipped", "xfailed")
    lines = [f"## {title}", "", f"**{'passed' if verdict.ok else 'failed'}**: "
             f"{len(verdict.must_pass_failures)} must-pass failure(s), {len(verdict.may_fail_failures)} may-fail "
             f"failure(s), {len(verdict.may_fail_xpassed)} may-fail XPASS.", "",
             "| report | " + " | ".join(outcomes) + " |", "|---|" + "---|" * len(outcomes)]
    for report, counts in sorted(verdict.counts.items()):
        lines.append(f"| {report} | " + " | ".join(str(counts.get(o, 0)) for o in outcomes) + " |")
    for heading, items in (("Blocking", verdict.blocking), ("Reported, not blocking", verdict.reported)):
        if items:
            lines += ["", f"### {heading}", ""] + [f"- {item}" for item in items]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The summary's arguments: the reports, and where its outputs go."""
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT",
                        help="JUnit XML files written by pytest --junitxml.")
    parser.add_argument("--merged", type=Path, default=None, metavar="FILE",
                        help="also write every report's test suites into this one JUnit file.")
    parser.add_argument("--summary", type=Path, default=None, metavar="FILE",
                        help="append the Markdown summary to this file (default: $GITHUB_STEP_SUMMARY, else stdout).")
    parser.add_argument("--title", default="Test results", metavar="TEXT",
                        help="the heading of the Markdown summary (default: %(default)s).")
    parser.add_argument("--progression", type=Path, default=PROGRESSION_FILE, metavar="FILE",
                        help="the progression file that says which tests may fail (default: .github/chaos-progression.json).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Judge the reports; print annotations, write the summary; 1 when something that must pass did not."""
    verdict = judge(args.reports, Progression.load(args.progression))
    present = [p for p in args.reports if p.is_file()]
    if args.merged and present:
        merge(present, args.merged)
    for line in annotations(verdict):
        print(line)
    text = markdown(verdict, args.title)
    target = args.summary or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None)
    if target is None:
        sys.stdout.write(text)
    else:
        with target.open("a") as out:
            out.write(text)
    return 0 if verdict.ok else 1
