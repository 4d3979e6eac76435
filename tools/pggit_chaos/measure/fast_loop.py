"""The pytest plugin of one fast-runner worker: one cluster, many mutants, each in a template database of its own.

``fast_runner.py`` starts each worker as ``pytest -p
pggit_chaos.measure.fast_loop --pggit-fast-plan FILE ...`` over the whole
tier. The plugin replaces pytest's test loop: the tier is collected once,
the worker's cluster starts once, and then, for every mutant of the plan
this worker claims (a claim file made with O_EXCL, so workers share one
queue), it

1. writes the mutated script where the run's ``--pggit-sql`` and the
   cluster's extension directory read it,
2. rebuilds the pggit template database from it (a script that does not
   install makes the mutant stillborn, and no test runs),
3. runs the mutant's selected tests, each a fresh clone of the template,
   those that already killed mutants of the same function in this run
   first, then other killers of this run (most kills per second first),
   then the plan's order, under the ``mutation`` Hypothesis profile (no
   shrinking, the first failure ends a test), and stops
   at the first that fails (the mutant is killed) or when none is left (it
   survived); a test that fails for the first time is run once more
   against the unmutated script, and if it fails there too it kills
   nothing (it is reported as failing unmutated and skipped from then on),
4. tears down every fixture but the session's (the cluster, the template),
   empties the Hypothesis example database, and writes the verdict.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from pggit_chaos.server import ClusterError, janitor

PLAN_OPTION = "--pggit-fast-plan"
# Fixtures that clone the pggit template: a primer test must use one, so the template exists before mutant 1.
_USES_PGGIT = ("db_connection_string", "make_database", "pggit_template", "fresh_database")


class _SessionOnly:
    """A stand-in next item that needs only the session: teardown stops at the session's fixtures."""

    nodeid = ""

    def __init__(self, session):
        self.session = session

    def listchain(self):
        return [self.session]


# CREATE EXTENSION runs its script with check_function_bodies off: a body that does not compile installs,
# and fails only when called. Each function is compiled by its language's validator instead.
_FUNCTIONS = ("SELECT p.oid, p.oid::regprocedure::text, l.lanname FROM pg_catalog.pg_proc p "
              "JOIN pg_catalog.pg_language l ON l.oid = p.prolang "
              "WHERE p.pronamespace = 'pggit'::regnamespace AND l.lanname IN ('plpgsql', 'sql') ORDER BY 1")
_VALIDATORS = {"plpgsql": "SELECT pg_catalog.plpgsql_validator(%s)", "sql": "SELECT pg_catalog.fmgr_sql_validator(%s)"}


def compile_errors(conn) -> str | None:
    """The first pggit function of ``conn``'s database whose body does not compile, with the reason; None if all do."""
    import psycopg

    conn.execute("SET check_function_bodies = on")
    for oid, name, language in conn.execute(_FUNCTIONS).fetchall():
        try:
            with conn.transaction():
                conn.execute(_VALIDATORS[language], (oid,))
        except psycopg.Error as exc:
            return f"{name} does not compile: {' '.join(str(exc).split())}"
    return None


def overlay_script(cluster) -> Path:
    """The install script the cluster's server reads at CREATE EXTENSION (its private copy)."""
    bindir, sharedir = cluster.install.bindir.resolve(), cluster.install.sharedir.resolve()
    common = Path(os.path.commonpath([bindir, sharedir]))
    return cluster.root / "install" / (sharedir / "extension").relative_to(common) / "pggit--1.0.0.sql"


class FastLoop:
    """Runs the plan's mutants one after another on this worker's cluster."""

    def __init__(self, plan: dict, sql_file: Path):
        self.plan, self.sql_file = plan, sql_file
        self.server = None
        self.reports: list = []
        # Tests seen to pass against the unmutated script after failing against a mutant, and tests that
        # fail against it too (their failures say nothing about any mutant).
        self.confirmed: set[str] = set()
        self.failing_unmutated: set[str] = set()

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        result = yield
        if fixturedef.argname == "pg_server" and self.server is None:
            self.server = result
        return result

    def pytest_runtest_logreport(self, report) -> None:
        self.reports.append(report)

    def _run(self, session, item, nextitem) -> list:
        self.reports = []
        item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        return [r for r in self.reports if r.failed]

    def _install(self, text: str) -> str | None:
        """Put ``text`` where both the run and the cluster read pggit, rebuild the template; the error, if any."""
        self.sql_file.write_text(text)
        script = overlay_script(self.server)
        script.write_text(text)
        try:
            name = janitor.create_template(self.server, self.sql_file)
        except ClusterError as exc:
            return str(exc)
        with self.server.connect(name) as conn:
            return compile_errors(conn)

    def _fails_unmutated(self, session, item, keep, original: str, mutated: str) -> bool:
        """Whether ``item``, which just failed against a mutant, fails against the unmutated script too
        (a test broken by something else: a seed, the machine); the mutant's script is back in place after."""
        if item.nodeid in self.confirmed:
            return False
        if item.nodeid not in self.failing_unmutated:
            hypothesis_dir = Path(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY", ".hypothesis"))
            shutil.rmtree(hypothesis_dir, ignore_errors=True)  # the same examples as a first run of the test
            self._install(original)
            failed = bool(self._run(session, item, keep))
            (self.failing_unmutated if failed else self.confirmed).add(item.nodeid)
            shutil.rmtree(hypothesis_dir, ignore_errors=True)
            self._install(mutated)
        return item.nodeid in self.failing_unmutated

    def _reorder(self, mutant: dict, results: Path) -> list[str]:
        """The mutant's tests: its own killers (past runs, its triage) first, then those that killed mutants
        of the same function in this run, then those that killed any mutant of this run, then the plan's
        order (past kills, then the quickest)."""
        same, any_kill = {}, {}
        seconds = dict(self.plan.get("durations", {}))
        for path in results.glob("*.json"):
            try:
                done = json.loads(path.read_text())
            except ValueError:  # being written by another worker
                continue
            killer = done.get("killed_by")
            if killer:
                any_kill[killer] = any_kill.get(killer, 0) + 1
                if done.get("function") == mutant.get("function"):
                    same[killer] = same.get(killer, 0) + 1
                # A test may take far longer to fail than to pass (a state machine that runs into its timeout).
                spent = done.get("durations", {}).get(killer)
                if spent is not None:
                    seconds[killer] = max(seconds.get(killer, 0.0), spent)
        planned = {t: n for n, t in enumerate(mutant["tests"])}

        def rate(kills: dict, test: str) -> float:  # kills per second the test takes, failing or passing
            return kills.get(test, 0) / (seconds.get(test, 1.0) + 0.1)

        own = mutant["tests"][:mutant.get("own_killers", 0)]
        rest = mutant["tests"][len(own):]
        return own + sorted(rest, key=lambda t: (-rate(same, t), -rate(any_kill, t), planned[t]))

    def _claim(self, index: int) -> bool:
        try:
            os.close(os.open(Path(self.plan["claims"]) / str(index), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} errors during collection")
        items = {item.nodeid: item for item in session.items}
        keep = _SessionOnly(session)
        original = self.sql_file.read_text()
        primer = next((i for i in session.items if any(f in i.fixturenames for f in _USES_PGGIT)), None)
        if primer is None:
            raise session.Failed("no test of the tier clones the pggit template")
        self._run(session, primer, keep)  # starts the cluster and makes the template, unmutated
        if self.server is None:
            raise session.Failed("the primer test did not start a cluster")
        hypothesis_dir = Path(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY", ".hypothesis"))
        results = Path(self.plan["results"])
        for index, mutant in enumerate(self.plan["mutants"]):
            if not self._claim(index):
                continue
            mutant = {**mutant, "tests": self._reorder(mutant, results)}
            started = time.monotonic()
            record = {"id": mutant["id"], "function": mutant.get("function"), "tests_selected": len(mutant["tests"]),
                      "tests_run": 0, "killed_by": None}
            mutated = Path(mutant["sql"]).read_text()
            error = self._install(mutated)
            if error:
                record.update(status="stillborn", reason=error[-400:])
            else:
                shutil.rmtree(hypothesis_dir, ignore_errors=True)
                selected = [items[n] for n in mutant["tests"] if n in items and n not in self.failing_unmutated]
                record["tests_missing"] = len(mutant["tests"]) - len(selected)
                record["status"] = "survived"
                record["durations"] = {}
                for number, item in enumerate(selected):
                    nextitem = selected[number + 1] if number + 1 < len(selected) else keep
                    failures = self._run(session, item, nextitem)
                    record["durations"][item.nodeid] = round(sum(r.duration for r in self.reports), 3)
                    record["tests_run"] += 1
                    if failures:
                        crash = getattr(getattr(failures[0].longrepr, "reprcrash", None), "message", "") or ""
                        try:
                            session._setupstate.teardown_exact(keep)
                        except Exception:  # noqa: BLE001 - a teardown that fails after a kill changes no verdict
                            pass
                        if self._fails_unmutated(session, item, keep, original, mutated):
                            record.setdefault("failing_unmutated", []).append(item.nodeid)
                            continue
                        record.update(status="killed", killed_by=item.nodeid, message=crash.strip()[:300])
                        break
            record["seconds"] = round(time.monotonic() - started, 3)
            partial = results / f".{index}.partial"  # renamed whole: a reader never sees half a verdict
            partial.write_text(json.dumps(record))
            partial.rename(results / f"{index}.json")
        error = self._install(original)
        return True


def pytest_addoption(parser) -> None:
    parser.getgroup("pggit").addoption(PLAN_OPTION, default=None,
                                       help="run the mutants of this plan (pggit-chaos mutate-fast)")


def pytest_configure(config) -> None:
    path = config.getoption(PLAN_OPTION)
    if path:
        from hypothesis import settings

        # Before collection, so that the tests' own @settings, made as their modules are imported, copy it.
        settings.load_profile("mutation")
        plan = json.loads(Path(path).read_text())
        config.pluginmanager.register(FastLoop(plan, Path(config.getoption("--pggit-sql"))), "pggit-fast-loop")
