"""Coverage-based selection and the fast runner (``pggit_chaos.measure.reach``, ``selection``, ``fast_loop``, ``fast_runner``) on a real cluster.

The reach map is only as good as PostgreSQL's function counters: the first
test shows they count every call, direct, through EXECUTE and from an event
trigger, once the session that made them has ended. The others run the
reach plugin and the fast runner for real, on one chaos test.
"""

from __future__ import annotations

import json
import os
import sys

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos import server
from pggit_chaos.measure import fast_runner, mutagen, mutants, reach, selection
from pggit_chaos.paths import EXTENSION_SQL, REPO

from tests import forked_pytest

SQL = EXTENSION_SQL.read_text()
COMMIT_TEST = "tests/chaos/test_concurrent_commits.py::test_blocked_committer_builds_on_the_commit_it_waited_for"
# Its one call of pggit ends in an error, which the server does not count: the reach plugin reads the log.
ERROR_TEST = "tests/chaos/test_property_based_core.py::test_increment_version_refuses_a_negative_part_naming_it"

# One worker makes the reach map once for all (the module fixture: an instrumented run, about 3.5 CPU-seconds).
pytestmark = [pytest.mark.needs_control, pytest.mark.xdist_group("reach-map")]


@pytest.fixture(scope="module")
def controlled(pg_server):
    if not getattr(pg_server, "can_control", False):
        pytest.skip("needs a server this run started (not --dsn)")
    return pg_server


def test_the_server_counts_direct_execute_and_event_trigger_calls_once_the_session_ends(controlled, tmp_path):
    counted = tmp_path / "pggit-counted.sql"
    counted.write_text(selection.counted_script(SQL))  # the reach run's script: no SQL function is inlined
    cluster = server.start_cluster(controlled.install, pggit_sql=counted, track_functions="all")
    try:
        cluster.create_database("counted")
        with cluster.connect("counted") as setup:
            setup.execute("CREATE EXTENSION pggit")
        session = psycopg.connect(cluster.dsn("counted"), autocommit=True)
        for i in range(3):
            session.execute("SELECT pggit.commit_changes('main', %s)", (f"commit {i}",))
        session.execute("CREATE TABLE counted_table (id int)")
        session.execute("SELECT * FROM pggit.get_version('counted_table')")  # an SQL function, inlinable
        reach._end_sessions(cluster, "counted")  # the open session reports its counts as it ends
        counts = reach._counts(cluster, "counted")
    finally:
        cluster.destroy()
    assert counts["pggit.commit_changes"] == 3
    assert counts["pggit._write_commit"] == 3  # called only through EXECUTE
    assert counts.get("pggit._on_ddl_command_end", 0) >= 1  # an event trigger's function
    assert counts.get("pggit.get_version") == 1  # counted only because the reach script keeps it from inlining


def test_the_reach_script_differs_only_by_a_set_option_of_each_sql_function():
    counted = selection.counted_script(SQL)
    assert counted.replace(selection.COUNTED, "") == SQL
    assert counted.count(selection.COUNTED) == len(selection.inlinable(SQL)) > 0


def test_the_reach_script_adds_only_a_marker_before_every_statement_of_every_plpgsql_body():
    marked = selection.instrumented_script(SQL)
    found = selection.statements(SQL)
    markers = [selection._marker(st.function, st.line) for st in found]
    assert len(markers) == len(set(markers)) == marked.count("THEN RAISE LOG 'pggit-reach ") > 300
    stripped = marked
    for marker in markers:
        stripped = stripped.replace(marker, "", 1)
    assert stripped == selection.counted_script(SQL)
    bodies = {u.function for u in mutagen.units(SQL) if u.kind == "body" and u.language == "plpgsql"}
    assert {st.function for st in found} == bodies


def _line(text: str) -> int:
    return SQL.count("\n", 0, SQL.index(text)) + 1


def test_an_edit_belongs_to_the_innermost_statement_around_it():
    found = selection.statements(SQL)
    condition = SQL.index("IF p_current_major < 0")
    negative = _line("'invalid version %.%.%: parts must not be negative'")
    around_if = selection.statement_at(found, condition + 3, condition + 20)
    around_raise = selection.statement_at(found, SQL.index("parts must not be negative"), SQL.index("parts must not be negative") + 5)
    assert (around_if.function, around_if.line) == ("pggit.increment_version", _line("IF p_current_major < 0"))
    assert (around_raise.function, around_raise.line) == ("pggit.increment_version", negative)
    assert around_if.start < around_raise.start < around_raise.end < around_if.end
    header = SQL.index("CREATE FUNCTION pggit.increment_version")
    assert selection.statement_at(found, header, header + 6) is None


@pytest.fixture(scope="module")
def reach_map(controlled, tmp_path_factory):
    """The reach map of one chaos test that commits, measured by the plugin in a pytest run of its own."""
    folder = tmp_path_factory.mktemp("reach")
    out, counted = folder / "reach.json", folder / "pggit-counted.sql"
    counted.write_text(selection.instrumented_script(SQL))  # as pggit-chaos reach runs it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    env[reach.REACH_ENV] = str(out)
    done = forked_pytest.run([sys.executable, "-m", "pytest", COMMIT_TEST, ERROR_TEST, "-q", "-p", "no:xdist", "-p",
                           "no:cacheprovider", "-p", reach.__name__, f"--rootdir={REPO}", f"--pggit-sql={counted}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:]
    data = json.loads(out.read_text())
    return selection.finish(data, "full", SQL, 0.0)


def test_the_reach_map_knows_a_commit_test_reaches_commit_changes(reach_map):
    reached = reach_map["tests"][COMMIT_TEST]
    assert {"pggit.commit_changes", "pggit._write_commit", "pggit.create_branch"} <= set(reached)
    assert "pggit.detect_drift" not in reached


def test_a_call_that_ends_in_an_error_still_reaches_its_function(reach_map):
    assert reach_map["tests"][ERROR_TEST] == ["pggit.increment_version"]


def test_the_reach_map_names_the_statements_each_test_ran(reach_map):
    ran = reach_map["statements"][ERROR_TEST]
    negative = _line("'invalid version %.%.%: parts must not be negative'")
    assert f"pggit.increment_version:{negative}" in ran  # the RAISE that ended the call
    null = _line("'invalid version %.%.%: parts must not be null'")
    assert f"pggit.increment_version:{null}" not in ran
    assert f"pggit.increment_version:{_line('RETURN NEXT;')}" not in ran  # after the RAISE: never run
    assert all(mark.startswith("pggit.increment_version:") for mark in ran)
    assert any(mark.startswith("pggit._write_commit:") for mark in reach_map["statements"][COMMIT_TEST])


def test_statements_no_test_ran_are_listed_with_their_text(reach_map):
    never = {(n["function"], n["line"]): n["text"] for n in selection.never_run(reach_map, SQL)}
    null = _line("'invalid version %.%.%: parts must not be null'")
    negative = _line("'invalid version %.%.%: parts must not be negative'")
    assert never[("pggit.increment_version", null)].startswith("RAISE EXCEPTION 'invalid version")
    assert ("pggit.increment_version", negative) not in never  # ERROR_TEST ran it


def test_a_statement_mutant_meets_only_the_tests_that_ran_its_statement(reach_map):
    selector = selection.Selector(reach_map, SQL)
    raises = [m for m in mutagen.generate(SQL) if m.function == "pggit.increment_version"
              and m.operator == "errcode-change"]
    negative = next(m for m in raises if m.line > _line("parts must not be negative"))
    null = next(m for m in raises if m.line < _line("parts must not be negative"))
    assert selector.tests_for(negative.function, (negative.start, negative.end)) == [ERROR_TEST]
    assert selector.tests_for(null.function, (null.start, null.end)) == []  # no test ran that RAISE
    assert selector.tests_for(null.function) == [ERROR_TEST]  # without its span: the function's tests


def test_a_mutant_meets_the_tests_of_its_function_and_of_its_callers(reach_map):
    assert "pggit.commit_changes" in selection.callers(SQL)["pggit._write_commit"]
    selector = selection.Selector(reach_map, SQL)
    assert selector.tests_for("pggit._write_commit") == [COMMIT_TEST]
    assert sorted(selector.tests_for(mutagen.SCRIPT)) == sorted([COMMIT_TEST, ERROR_TEST])
    assert selector.tests_for("pggit.detect_drift") == []


def test_the_fast_runner_kills_at_the_first_failure_and_tells_stillborn_and_unreached_apart(reach_map, tmp_path):
    killed = mutants.by_name()["commit_without_branch_lock"]
    body = SQL.index("BEGIN", SQL.index("LANGUAGE plpgsql"))
    stillborn = mutagen.GeneratedMutant("delete-statement:broken:0000000000", "delete-statement",
                                        mutagen.SCRIPT, SQL.count("\n", 0, body) + 1, body, body + 5, "BEGIN",
                                        "BEGIN RETURN (")
    unreached = next(m for m in mutagen.generate(SQL) if m.function == "pggit.detect_drift")
    records, _ = fast_runner.run_mutants([killed, stillborn, unreached], SQL, "full", 1, "coverage", 0, 120, 900,
                                         tmp_path, reach_map, paths=[t.split("::")[0] for t in (COMMIT_TEST, ERROR_TEST)])
    assert [r["status"] for r in records] == ["killed", "stillborn", "unreached"], records
    assert records[0]["killed_by"] == COMMIT_TEST and records[0]["tests_run"] == 1
    assert records[0]["function"] == "pggit._write_commit"
    assert "does not compile" in records[1]["reason"]


def test_a_test_that_fails_against_the_unmutated_script_too_kills_nothing(reach_map, tmp_path):
    # The "unmutated" script here already has a commit bug that COMMIT_TEST catches (the test above is the
    # positive control: against the real script the same test kills). A mutant of the same function then
    # meets a test that fails whatever the mutant does: the runner must see that and not count a kill.
    broken = mutants.by_name()["commit_without_branch_lock"].apply(SQL)
    other = next(m for m in mutagen.generate(broken)
                 if m.function == "pggit._write_commit" and m.category == "comparison-swap")
    records, _ = fast_runner.run_mutants([other], broken, "full", 1, "coverage", 0, 120, 900, tmp_path, reach_map,
                                         paths=[COMMIT_TEST.split("::")[0]])
    assert records[0]["status"] == "survived", records
    assert records[0]["failing_unmutated"] == [COMMIT_TEST]
    assert fast_runner.failing_unmutated(records) == [COMMIT_TEST]


def test_a_mutant_judged_equivalent_is_skipped_and_leaves_the_score(reach_map, tmp_path, monkeypatch):
    # The positive control is the first fast-runner test: there this very mutant meets COMMIT_TEST and is killed.
    from pggit_chaos.measure import mutant_triage
    from pggit_chaos.measure.metrics.generated import _scored

    killed = mutants.by_name()["commit_without_branch_lock"]
    monkeypatch.setitem(mutant_triage.TRIAGE, killed.name, {"verdict": "equivalent", "reason": "for this test"})
    records, wall = fast_runner.run_mutants([killed], SQL, "full", 1, "coverage", 0, 120, 900, tmp_path, reach_map,
                                            paths=[COMMIT_TEST.split("::")[0]])
    assert [(r["status"], r["tests_run"]) for r in records] == [("equivalent", 0)] and wall == 0.0
    assert fast_runner.summarize(records)["scored"] == 0
    page = _scored({"mutants": records}, mutant_triage.TRIAGE)
    assert (page["equivalent"], page["surviving"], page["scored"]) == (1, 0, 0)


def test_a_test_the_triage_names_as_a_killer_meets_its_mutant_though_the_map_does_not_know_it(reach_map, tmp_path,
                                                                                              monkeypatch):
    # Positive control: the fast-runner test above finds this detect_drift mutant unreached (no test of the map
    # reaches detect_drift). Named as its killer by the triage, ERROR_TEST now meets it (and cannot kill it).
    from pggit_chaos.measure import mutant_triage

    unreached = next(m for m in mutagen.generate(SQL) if m.function == "pggit.detect_drift")
    monkeypatch.setitem(mutant_triage.TRIAGE, unreached.name, {"verdict": "gap", "reason": f"killed by {ERROR_TEST}"})
    records, _ = fast_runner.run_mutants([unreached], SQL, "full", 1, "coverage", 0, 120, 900, tmp_path, reach_map,
                                         paths=[ERROR_TEST.split("::")[0]])
    assert [(r["status"], r["tests_selected"], r["tests_run"]) for r in records] == [("survived", 1, 1)], records


@given(ids=st.sets(st.text("abcdef0123", min_size=1, max_size=6), min_size=1, max_size=40),
       n=st.integers(1, 20), seed=st.integers(0, 3), data=st.data())
def test_a_sample_keeps_its_mutants_when_the_script_gains_or_loses_others(ids, n, seed, data):
    """Removing one mutant from the catalog takes it out of the sample and at most brings one in."""
    catalog = [mutants.Mutant(name=i, category="c", description="d", find="s", replace="r") for i in sorted(ids)]
    gone = data.draw(st.sampled_from(catalog))
    before = {m.name for m in fast_runner.draw(catalog, n, seed)}
    after = {m.name for m in fast_runner.draw([m for m in catalog if m is not gone], n, seed)}
    assert len(before) == min(n, len(catalog))
    assert before - {gone.name} <= after
    assert len(after - before) <= 1


def test_running_a_recorded_sample_again_refuses_a_file_that_is_not_one(tmp_path):
    """--again names the file it cannot read; a results file with mutants is read (positive control)."""
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"score": {}}')
    with pytest.raises(SystemExit, match="wrong.json"):
        fast_runner.recorded_run(wrong)
    right = tmp_path / "right.json"
    right.write_text(json.dumps({"started": "t", "sample": 2, "mutants": [{"id": "x"}, {"id": "y"}]}))
    assert [m["id"] for m in fast_runner.recorded_run(right)["mutants"]] == ["x", "y"]


def test_the_first_run_in_a_fresh_checkout_extends_the_published_trend(tmp_path, monkeypatch):
    """No build copy yet: the new row goes after the published rows, which the page's import would replace."""
    published = tmp_path / "repo" / "docs" / "_data" / "metrics"
    published.mkdir(parents=True)
    (published / "mutation-trend.json").write_text(json.dumps([{"started": "earlier"}]))
    monkeypatch.setattr(fast_runner, "COMMITTED_METRICS_DIR", published)
    monkeypatch.setattr(fast_runner, "METRICS_DIR", tmp_path / "build")
    fast_runner.append_trend({"started": "now"})
    fast_runner.append_trend({"started": "later"})
    rows = json.loads((tmp_path / "build" / "mutation-trend.json").read_text())
    assert [r["started"] for r in rows] == ["earlier", "now", "later"]


def test_a_mutants_own_killers_stay_first_whatever_killed_its_neighbours_in_this_run(tmp_path):
    """In-run kills reorder the rest of a mutant's tests, never ahead of the killers its past runs and triage name."""
    from pggit_chaos.measure import fast_loop

    results = tmp_path / "results"
    results.mkdir()
    (results / "0.json").write_text(json.dumps({"function": "f", "killed_by": "t_busy", "durations": {"t_busy": 0.1}}))
    loop = fast_loop.FastLoop({"durations": {}}, tmp_path / "x.sql")
    mutant = {"function": "f", "tests": ["t_named", "t_quick", "t_busy"], "own_killers": 1}
    assert loop._reorder(mutant, results) == ["t_named", "t_busy", "t_quick"]
    # Positive control: without an own killer, the in-run killer of the same function goes first.
    assert loop._reorder({**mutant, "own_killers": 0}, results) == ["t_busy", "t_named", "t_quick"]
