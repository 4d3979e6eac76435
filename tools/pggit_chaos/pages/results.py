"""The page results file (``_build/doc-results.json``): its shape, the pytest plugin that writes it, and the reader the site uses.

Every run that includes page tests merges its blocks' results into the file
(a run of one page keeps the other pages' results); the Sphinx extension
(``pages/sphinx.py``) shows them next to each block. Runs may overlap, so the
read-modify-write happens under a lock on ``doc-results.json.lock`` and the
new file replaces the old in one rename: a reader sees the old file or the new
one, never half of one.

Each page's results name what they ran against: the checksum of the pggit
script the run installed and the kind of server (``own``: a throwaway server
the run started; ``existing``: ``--dsn``). Only a run of the project's own
pggit on a server of its own is the site's: another build (``--pggit-sql``, a
mutant) or another server (``--dsn``) never writes the site's file, and the
site shows no result that does not match the pggit in ``extension/`` now.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NotRequired, TypedDict

import pytest

from pggit_chaos.paths import EXTENSION_SQL, REPO
from pggit_chaos.server.settings import SOURCES, ServerSettings, SettingsError

RESULTS_FILE = REPO / "_build" / "doc-results.json"
# The server kinds a result names: a throwaway server the run started, or an existing one (--dsn).
OWN_SERVER, EXISTING_SERVER = "own", "existing"


class BlockResult(TypedDict):
    """One block's tests in the latest run that ran them."""

    outcome: str  # the worst of its tests: "passed" < "skipped" = "xfailed" < "failed"
    duration: float  # seconds, every phase of every test of the block, rounded to milliseconds
    tests: int  # how many tests the block made


class RunSource(TypedDict):
    """What a run tested: the pggit script it installed and the server it ran on."""

    pggit_sha256: str | None  # sha256 of the installed script; None when an existing server's own files were used
    server: str  # OWN_SERVER or EXISTING_SERVER


class PageResult(TypedDict):
    sha256: str | None  # the page's checksum when it ran: a page changed since then shows stale results
    blocks: dict[str, BlockResult]  # by the block's opening-fence line (a string: JSON keys are)
    # What the page ran against, when and on which PostgreSQL (files written before these were kept lack them).
    pggit_sha256: NotRequired[str | None]
    server: NotRequired[str]
    finished: NotRequired[str]
    pg_versions: NotRequired[list[str]]


class Results(TypedDict):
    pages: dict[str, PageResult]  # by the page's path relative to the repository, with "/" separators
    finished: NotRequired[str]  # when the latest run ended, "YYYY-MM-DD HH:MM:SS UTC"
    pg_versions: NotRequired[list[str]]  # PostgreSQL versions page tests ran on in the latest run that knew


class CorruptResults(ValueError):
    """The results file exists but is not in the shape above; the message names the file."""


class ResultsFileWarning(pytest.PytestWarning):
    """The results file could not be read, so this run started it afresh."""


def empty_results() -> Results:
    return {"pages": {}}


def own_pggit_sha256() -> str:
    """The checksum of the project's own pggit script (``extension/pggit--1.0.0.sql``) as it is now."""
    return hashlib.sha256(EXTENSION_SQL.read_bytes()).hexdigest()


def run_source(options: Mapping[str, object], environ: Mapping[str, str]) -> RunSource | None:
    """What a run with these server options (keyed by setting name: ``dsn``, ``pggit_sql``, ...) tests.

    None when the settings are refused (the run then stops with their message).
    """
    try:
        settings = ServerSettings.resolve(options, environ)
    except SettingsError:
        return None
    if settings.dsn:
        return {"pggit_sha256": None, "server": EXISTING_SERVER}
    script = Path(settings.pggit_sql) if settings.pggit_sql else EXTENSION_SQL
    return {"pggit_sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "server": OWN_SERVER}


def foreign_reason(page: PageResult | RunSource | None, own_sha256: str) -> str | None:
    """Why these results are not the site's (another server, another pggit, or unknown), or None if they are."""
    if page is None or "server" not in page:
        return "no record of the pggit and server it ran against"
    if page["server"] != OWN_SERVER:
        return "ran on an existing server (--dsn), not on one the run started"
    if page.get("pggit_sha256") != own_sha256:
        return "ran against another pggit build than extension/pggit--1.0.0.sql now is"
    return None


def read_results(path: Path = RESULTS_FILE) -> Results:
    """The results in ``path``: empty if there is no file yet, CorruptResults if it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty_results()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptResults(f"{path}: not a results file ({exc})") from exc
    pages = data.get("pages") if isinstance(data, dict) else None
    if not isinstance(pages, dict) or not all(
        isinstance(page, dict) and isinstance(page.get("blocks"), dict) for page in pages.values()
    ):
        raise CorruptResults(f"{path}: not a results file (no pages with blocks)")
    return data


def update_results(path: Path, pages: dict[str, PageResult], pg_versions: list[str],
                   root: Path = REPO) -> str | None:
    """Merge one run's pages into the file; return a warning if the old file was unreadable and so replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    warning = None
    with _locked(path):
        try:
            results = read_results(path)
        except CorruptResults as exc:
            results = empty_results()
            warning = f"{exc}; starting it afresh with this run's results"
        results["pages"].update(pages)  # a partial run (one page) keeps the others' results
        results["pages"] = {p: v for p, v in results["pages"].items() if (root / p).exists()}
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        results["pg_versions"] = pg_versions or results.get("pg_versions", [])
        _write_atomically(path, json.dumps(results, indent=1, sort_keys=True))
    return warning


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file beside ``path`` (the lock file stays; only the lock is released)."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    # A temporary file in the same directory, so the rename stays on one file system and is atomic.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the results are for anyone who builds the site
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------
# The pytest plugin that records a run
# --------------------------------------------------------------------------

_SEVERITY = {"passed": 0, "skipped": 1, "xfailed": 1, "failed": 2}


class ResultsRecorder:
    """Collects the outcome of every page block (on the xdist controller, or alone) and merges it into the file."""

    def __init__(self, config: pytest.Config, path: Path = RESULTS_FILE, site_file: Path = RESULTS_FILE):
        self.config = config
        self.path = path
        self.site_file = site_file  # the file the site reads: only the project's own pggit and server write it
        self.blocks: dict[str, dict[str, dict]] = {}
        self.pg_versions: set[str] = set()
        self._pages: dict[str, str | None] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path, _, rest = report.nodeid.partition("::")
        page = self._page_key(path)
        line = block_line(rest)
        if page is None or line is None:
            return
        for key, value in report.user_properties:
            if key == "pg_version":
                self.pg_versions.add(value)
        entry = self.blocks.setdefault(page, {}).setdefault(
            str(line), {"outcome": "passed", "duration": 0.0, "tests": set()}
        )
        entry["duration"] += report.duration
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            entry["tests"].add(rest)
            outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            entry["outcome"] = _worse(entry["outcome"], outcome)
        elif report.outcome == "failed":
            entry["outcome"] = "failed"

    def _page_key(self, path: str) -> str | None:
        """The page's path relative to the repository, or None for a non-page or a page outside it."""
        if path not in self._pages:
            key = None
            if path.endswith(".md"):
                try:
                    key = (self.config.rootpath / path).resolve().relative_to(REPO.resolve()).as_posix()
                except ValueError:
                    key = None  # results are for the handbook's own pages only
            self._pages[path] = key
        return self._pages[path]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.blocks:
            return
        options = {name: self.config.getoption(option, default=None) for name, (option, _) in SOURCES.items()}
        source = run_source(options, os.environ)
        if source is None:
            return  # refused settings: the run stopped before any page ran against anything
        reason = foreign_reason(source, own_pggit_sha256())
        if reason and self.path.resolve() == self.site_file.resolve():
            self._say(f"page results not recorded for the site ({display(self.path)}): this run {reason}; "
                      "only runs of the project's own pggit on a server they start are")
            return
        finished = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        pages: dict[str, PageResult] = {}
        for key, blocks in self.blocks.items():
            page = REPO / key
            pages[key] = {
                "sha256": hashlib.sha256(page.read_bytes()).hexdigest() if page.exists() else None,
                "blocks": {
                    line: {"outcome": e["outcome"], "duration": round(e["duration"], 3), "tests": len(e["tests"])}
                    for line, e in blocks.items()
                },
                **source, "finished": finished, "pg_versions": sorted(self.pg_versions),
            }
        warning = update_results(self.path, pages, sorted(self.pg_versions))
        if warning:
            # Issued now, not when the session's hooks end, so the run's warnings summary shows it.
            self.config.issue_config_time_warning(ResultsFileWarning(warning), stacklevel=2)


    def _say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)


def display(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO.resolve()).as_posix()
    except ValueError:
        return str(path)


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY.get(a, 0) >= _SEVERITY.get(b, 0) else b


def block_line(rest: str) -> int | None:
    """The opening-fence line of the block a test came from, from the part of its node id after the page."""
    match = re.match(r"line-(\d+)::", rest)
    if match:
        return int(match.group(1))
    match = re.search(r"\[line:(\d+)\]", rest)  # pytest-markdown-docs names the fence line too
    if match:
        return int(match.group(1))
    return None
