"""The pytest plugin of the coverage run: which pggit functions each test reaches, as PostgreSQL itself counts them.

    PGGIT_REACH_FILE=reach.json pytest -p pggit_chaos.measure.reach ...

Every cluster of the run starts with ``track_functions = 'all'``, so the
server counts each call of a PL/pgSQL or SQL function in
``pg_stat_user_functions``: direct calls, calls through EXECUTE, trigger and
event-trigger functions alike (an SQL function the planner inlines is not
counted; the selection adds its callers for that). The counts are per
database and a backend reports its own when it ends, so the plugin reads
them where they are final: before a database is dropped (after ending its
sessions, which report on the way out), before a cluster is crashed or
destroyed, and at the end of each test for the databases still alive. A
test reached a function when its count rose while the test ran (set-up and
teardown included). The template's own counts, made by CREATE EXTENSION,
are the functions the install runs.

The reach run's script (``selection.instrumented_script``) also has a
marker before every PL/pgSQL statement that logs ``pggit-reach F N`` once
per call: the log lines each cluster wrote while a test ran name the
statements it ran, written before the statement, so an error cannot hide
them.

A call that ends in an error is never counted, and neither are the calls
around it; the server log names them instead: every error is logged with
its CONTEXT lines, one per function on the stack ("PL/pgSQL function
pggit._check_branch_name(text) line 5 at RAISE"), and the plugin reads the
lines each cluster logged while the test ran.

At the end of the run the plugin writes ``{"tests": {nodeid: [function,
...]}, "statements": {nodeid: ["function:line", ...]}, "install": [...],
"durations": {...}, "outcomes": {...}}``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import psycopg
import pytest

from pggit_chaos.server import cluster as cluster_module
from pggit_chaos.server.janitor import TEMPLATE_DATABASE

REACH_ENV = "PGGIT_REACH_FILE"
REACHED = "pggit-reach"  # the log line of a statement's marker: "pggit-reach <function> <line>"
_REACHED_LINE = re.compile(REACHED + r" (\S+) (\d+)")
# A function on the stack of a logged error: PL/pgSQL's and SQL's CONTEXT lines, quoted or not, qualified or not.
_CONTEXT = re.compile(r'(?:PL/pgSQL|SQL) function (?:"?pggit"?\.)?"?([A-Za-z_][A-Za-z_0-9]*)"?[ (]')
_QUERY = ("SELECT schemaname || '.' || funcname, sum(calls)::bigint FROM pg_catalog.pg_stat_user_functions "
          "WHERE schemaname = 'pggit' GROUP BY 1")


def reached_statements(log_text: str) -> set[str]:
    """The ``function:line`` of every statement marker in a stretch of server log."""
    return {f"{f}:{n}" for f, n in _REACHED_LINE.findall(log_text)}


def _counts(server, dbname: str) -> dict[str, int]:
    """The function call counts of one database, or nothing when it cannot be reached."""
    try:
        with psycopg.connect(server.dsn(dbname), autocommit=True, connect_timeout=5) as conn:
            return dict(conn.execute(_QUERY).fetchall())
    except psycopg.Error:
        return {}


def _databases(server) -> list[str]:
    try:
        with server.connect() as conn:
            return [r[0] for r in conn.execute(
                "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn "
                "AND datname NOT IN ('postgres', 'template1')").fetchall()]
    except psycopg.Error:
        return []


def _end_sessions(server, dbname: str) -> None:
    """End every other session of ``dbname`` and wait until they are gone: each reports its counts as it ends."""
    try:
        with server.connect() as conn:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                left = conn.execute(
                    "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()", (dbname,)).fetchone()[0]
                if not left:
                    return
                time.sleep(0.02)
    except psycopg.Error:
        pass


class Reach:
    """Per test, the pggit functions whose call counts rose while it ran."""

    def __init__(self, path: Path):
        self.path = path
        self.clusters: list = []
        self.tests: dict[str, set[str]] = {}
        self.statements: dict[str, set[str]] = {}
        self.durations: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.install: set[str] = set()
        self.current: str | None = None
        self.template_read = False  # read once: a session on a template would stop its next clone
        self.log_offsets: dict[int, int] = {}
        self.base: dict[tuple[int, str], dict[str, int]] = {}

    # ---- reading --------------------------------------------------------------

    def _note(self, server, dbname: str, counts: dict[str, int]) -> None:
        if dbname == TEMPLATE_DATABASE:
            self.install |= set(counts)
            self.template_read = True
            return
        if self.current is None:
            return
        before = self.base.get((id(server), dbname), {})
        self.tests[self.current] |= {f for f, n in counts.items() if n > before.get(f, 0)}
        self.base[(id(server), dbname)] = counts

    def _read_log(self, server) -> None:
        """The functions named by errors the cluster logged since the last read, for the current test."""
        try:
            with open(server.logfile, "rb") as log:
                log.seek(self.log_offsets.get(id(server), 0))
                text = log.read().decode(errors="replace")
                self.log_offsets[id(server)] = log.tell()
        except OSError:
            return
        if self.current is not None:
            self.tests[self.current] |= {f"pggit.{name}" for name in _CONTEXT.findall(text)}
            self.statements[self.current] |= reached_statements(text)

    def _snapshot(self) -> None:
        for server in self.clusters:
            self._read_log(server)
            if server.is_running():
                for dbname in _databases(server):
                    if dbname == TEMPLATE_DATABASE:
                        if self.template_read:
                            continue
                        _end_sessions(server, dbname)
                    self._note(server, dbname, _counts(server, dbname))

    # ---- the hooks into the server room --------------------------------------

    def install_hooks(self) -> None:
        reach, Cluster = self, cluster_module.Cluster
        cluster_module.BASE_SETTINGS["track_functions"] = "all"
        start, drop, crash, destroy = Cluster.start, Cluster.drop_database, Cluster.crash, Cluster.destroy

        def start_hook(self, *args, **kwargs):
            if self not in reach.clusters:
                reach.clusters.append(self)
                # What the cluster logged before the run's first test (its start) belongs to no test.
                reach.log_offsets[id(self)] = self.logfile.stat().st_size if self.logfile.exists() else 0
            return start(self, *args, **kwargs)

        def drop_hook(self, name):
            if self.is_running():
                _end_sessions(self, name)
                reach._note(self, name, _counts(self, name))
            return drop(self, name)

        def crash_hook(self, *args, **kwargs):
            if self.is_running():
                reach._snapshot()
            return crash(self, *args, **kwargs)

        def destroy_hook(self, *args, **kwargs):
            if self in reach.clusters:
                reach._read_log(self)
            if self.is_running() and self in reach.clusters:
                for dbname in _databases(self):
                    _end_sessions(self, dbname)
                    reach._note(self, dbname, _counts(self, dbname))
            if self in reach.clusters:
                reach.clusters.remove(self)
            return destroy(self, *args, **kwargs)

        Cluster.start, Cluster.drop_database, Cluster.crash, Cluster.destroy = \
            start_hook, drop_hook, crash_hook, destroy_hook

    # ---- pytest hooks ------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.current = item.nodeid
        self.tests.setdefault(item.nodeid, set())
        self.statements.setdefault(item.nodeid, set())
        self._snapshot()  # counts made between tests (a module's set-up) belong to the next test
        try:
            return (yield)
        finally:
            self._snapshot()
            self.current = None

    def pytest_runtest_logreport(self, report) -> None:
        self.durations[report.nodeid] = round(self.durations.get(report.nodeid, 0.0) + report.duration, 4)
        if report.when == "call" or report.outcome != "passed":
            if self.outcomes.get(report.nodeid) in (None, "passed"):
                self.outcomes[report.nodeid] = report.outcome

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self.path.write_text(json.dumps({
            "exitstatus": int(exitstatus),
            "install": sorted(self.install),
            "tests": {n: sorted(f) for n, f in sorted(self.tests.items())},
            "statements": {n: sorted(f) for n, f in sorted(self.statements.items())},
            "durations": dict(sorted(self.durations.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
        }, indent=1))


def pytest_configure(config) -> None:
    path = os.environ.get(REACH_ENV)
    if path and not hasattr(config, "workerinput"):
        reach = Reach(Path(path))
        reach.install_hooks()
        config.pluginmanager.register(reach, "pggit-reach")
