"""The hollow pggit of ``pggit-chaos hollow``: it installs, its every function does nothing, its signatures are pggit's."""

from __future__ import annotations

import sys

import psycopg
import pytest
from pggit_chaos import server
from pggit_chaos.measure import hollow, hollow_allowed
from pggit_chaos.measure.hollow_allowed import (
    ALLOWED,
    FIRST_MEASURED,
    NOT_CALLING_PGGIT,
    SQL_BLOCKS_ALLOWED,
    SQL_BLOCKS_NOT_CALLING_PGGIT,
    allowed_reason,
)
from pggit_chaos.measure.suite_run import RunResult
from pggit_chaos.pages.parse import read_blocks
from pggit_chaos.paths import EXTENSION_SQL, REPO

from tests import forked_pytest

# One worker installs the real and the hollow build once for all (the module fixture).
pytestmark = pytest.mark.xdist_group("hollow-installs")

DO_NOTHING = {"BEGIN RETURN NULL; END", "BEGIN RETURN; END", "BEGIN END", "SELECT NULL"}

# What pg_proc says of each function, besides its body: everything a caller or a grant can see.
SIGNATURES = """
    SELECT p.oid::regprocedure::text AS function, pg_get_function_arguments(p.oid) AS arguments,
           pg_get_function_result(p.oid) AS result, l.lanname, p.prosecdef, p.proconfig, p.provolatile,
           p.proretset, p.proisstrict, p.proparallel, p.proacl::text, obj_description(p.oid, 'pg_proc') AS comment
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'pggit'::regnamespace ORDER BY 1
"""
# Everything else the install script makes: relations with their columns, grants and comments; event triggers.
LAYOUT = """
    SELECT c.relname, c.relkind, c.relacl::text, obj_description(c.oid, 'pg_class'),
           (SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
                             ORDER BY a.attnum)
            FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
    FROM pg_class c WHERE c.relnamespace = 'pggit'::regnamespace
    UNION ALL
    SELECT evtname, 'E', evtevent, evtfoid::regproc::text, evttags FROM pg_event_trigger
    ORDER BY 1
"""


def _rows(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM pggit.{t}").fetchone()[0]
            for t in ("branches", "commits", "objects", "history", "migrations")}


@pytest.fixture(scope="module")
def installs(pg_server, tmp_path_factory):
    """A database with the real pggit and one with the hollow build, each in a throwaway cluster of its own."""
    if not getattr(pg_server, "can_control", False):
        pytest.skip("needs a server this run started (not --dsn)")
    script = tmp_path_factory.mktemp("hollow") / "pggit-hollow.sql"
    script.write_text(hollow.build(EXTENSION_SQL.read_text())[0])
    clusters = {"real": server.start_cluster(pg_server.install),
                "hollow": server.start_cluster(pg_server.install, pggit_sql=script)}
    conns = {}
    try:
        for name, cluster in clusters.items():
            cluster.create_database("hollow_check")
            conns[name] = psycopg.connect(cluster.dsn("hollow_check"), autocommit=True)
            conns[name].execute("CREATE EXTENSION pggit")
        yield conns
    finally:
        for conn in conns.values():
            conn.close()
        for cluster in clusters.values():
            cluster.destroy()


@pytest.mark.needs_control
def test_the_hollow_build_has_the_real_signatures_tables_grants_and_event_triggers(installs):
    real, empty = installs["real"], installs["hollow"]
    signatures = real.execute(SIGNATURES).fetchall()
    assert len(signatures) == len(hollow.build(EXTENSION_SQL.read_text())[1]) >= 30
    assert empty.execute(SIGNATURES).fetchall() == signatures
    layout = real.execute(LAYOUT).fetchall()
    assert {r[0] for r in layout} >= {"branches", "commits", "migrations", "pggit_ddl_command_end", "pggit_sql_drop"}
    assert empty.execute(LAYOUT).fetchall() == layout
    # The seed row too: one branch, main.
    assert empty.execute("SELECT name, status FROM pggit.branches").fetchall() == [("main", "ACTIVE")]


@pytest.mark.needs_control
def test_every_function_body_of_the_hollow_build_does_nothing(installs):
    bodies = installs["hollow"].execute(
        "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'pggit'::regnamespace").fetchall()
    assert len(bodies) >= 30
    hollow_kinds = {name: src.strip() for name, src in bodies}
    assert {n: b for n, b in hollow_kinds.items() if b not in DO_NOTHING and not b.endswith(" WHERE false")
            and not b.startswith("SELECT NULL::")} == {}
    # Positive control: the real bodies are anything but.
    real = dict(installs["real"].execute(
        "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'pggit'::regnamespace").fetchall())
    assert all(len(src.strip()) > 40 for src in real.values())


@pytest.mark.needs_control
@pytest.mark.parametrize("call, real_result", [
    ("SELECT pggit.commit_changes('main', 'first')", lambda v: v is not None and len(v) > 10),
    ("SELECT pggit.create_branch('feature')", lambda v: isinstance(v, int)),
    ("SELECT pggit.apply_migration('001', 'CREATE TABLE hollow_m (id int)')", lambda v: v is True),
])
def test_entry_points_return_null_and_write_nothing_where_the_real_ones_write(installs, call, real_result):
    before = {name: _rows(conn) for name, conn in installs.items()}
    results = {name: conn.execute(call).fetchone()[0] for name, conn in installs.items()}
    after = {name: _rows(conn) for name, conn in installs.items()}
    assert results["hollow"] is None and after["hollow"] == before["hollow"]
    assert real_result(results["real"]), results["real"]
    assert after["real"] != before["real"]


@pytest.mark.needs_control
def test_the_event_triggers_record_nothing_where_the_real_ones_record_the_table(installs):
    for conn in installs.values():
        conn.execute("CREATE TABLE hollow_tracked (id int)")
        conn.execute("ALTER TABLE hollow_tracked ADD COLUMN note text")
    recorded = "SELECT count(*) FROM pggit.objects o JOIN pggit.history h ON h.object_id = o.id " \
               "WHERE o.object_name = 'hollow_tracked'"
    assert installs["hollow"].execute(recorded).fetchone()[0] == 0
    assert installs["real"].execute(recorded).fetchone()[0] == 2
    for name in ("get_version", "calculate_schema_hash"):
        query = f"SELECT * FROM pggit.{name}('hollow_tracked')"
        assert installs["hollow"].execute(query).fetchall() in ([], [(None,)])
        assert installs["real"].execute(query).fetchall() not in ([], [(None,)])
    assert installs["hollow"].execute("SELECT * FROM pggit.verify_integrity()").fetchall() == []
    assert len(installs["real"].execute("SELECT * FROM pggit.verify_integrity()").fetchall()) >= 5


def test_a_function_without_a_string_body_is_refused_naming_it():
    atomic = ("CREATE FUNCTION pggit.atomic_one() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n")
    with pytest.raises(hollow.HollowError, match="pggit.atomic_one: a BEGIN ATOMIC body"):
        hollow.build(atomic)
    c_function = "CREATE FUNCTION pggit.in_c(int) RETURNS int LANGUAGE c AS 'pggit', 'in_c';\n"
    with pytest.raises(hollow.HollowError, match="pggit.in_c: no hollow body for LANGUAGE c"):
        hollow.build(c_function)
    # Positive control: the same kinds of function with a string body are hollowed.
    built, functions = hollow.build("CREATE FUNCTION pggit.one() RETURNS SETOF int LANGUAGE sql AS 'SELECT 1';\n"
                                    "CREATE FUNCTION pggit.t() RETURNS trigger LANGUAGE plpgsql AS $x$ BEGIN x; END $x$;\n")
    assert [(f.name, f.returns, f.body) for f in functions] == [
        ("pggit.one", "SETOF integer", "SELECT NULL::integer WHERE false"),
        ("pggit.t", "trigger", "BEGIN RETURN NULL; END"),
    ]
    assert "SELECT 1" not in built and "BEGIN x;" not in built


def test_only_the_function_bodies_change():
    sql = EXTENSION_SQL.read_text()
    built, functions = hollow.build(sql)
    assert sql.count("$$") == 2 * len(functions), "the check below expects every body quoted with $$"
    # Between the bodies, the text is the real script's, character for character (after one header line).
    header, rest = built.split("\n", 1)
    assert header.startswith("-- ") and rest.split("$hollow$")[0::2] == sql.split("$$")[0::2]
    assert [body.strip() for body in rest.split("$hollow$")[1::2]] == [f.body for f in functions]


def test_the_summary_counts_passing_tests_by_folder_outside_the_allow_list():
    allowed = next(iter(ALLOWED), None)
    tests = {"tests/chaos/test_a.py::test_x": {"outcome": "passed"},
             "tests/extension/test_b.py::test_y": {"outcome": "failed"},
             "docs/testing/PATTERNS.md::line-3": {"outcome": "passed"},
             "examples/test_c.py::test_z": {"outcome": "skipped"}}
    if allowed:
        tests[allowed] = {"outcome": "passed"}
    data = hollow.summarize(RunResult(1, 1.0, tests), [], hollow.SUITE_PATHS)
    assert data["unexplained"] == ["docs/testing/PATTERNS.md::line-3", "tests/chaos/test_a.py::test_x"]
    assert data["unexplained_by_folder"] == {"docs": 1, "tests/chaos": 1}
    assert data["allowed_passing"] == ([allowed] if allowed else [])
    assert data["outcomes"] == {"passed": 2 + bool(allowed), "failed": 1, "error": 0, "skipped": 1, "xfailed": 0}


def test_a_test_that_calls_no_pggit_is_allowed_by_its_page_and_name_whatever_its_line():
    (path, name), reason = next(iter(NOT_CALLING_PGGIT.items()))
    assert allowed_reason(f"{path}::line-1::{name}") == allowed_reason(f"{path}::line-9999::{name}") == reason
    assert allowed_reason(f"{path}::line-1::{name}_not_listed") is None
    tests = {f"{path}::line-7::{name}": {"outcome": "passed"}}
    data = hollow.summarize(RunResult(1, 1.0, tests), [], hollow.SUITE_PATHS)
    assert data["unexplained"] == [] and data["allowed_passing"] == list(tests)


def test_the_allow_list_names_only_existing_tests_each_with_a_one_line_reason():
    collected = forked_pytest.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", hollow.MARKEXPR,
         *hollow.SUITE_PATHS], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    nodeids = {line for line in collected.stdout.splitlines() if "::" in line}
    assert len(nodeids) > 500, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert sorted(set(ALLOWED) - nodeids) == []
    for nodeid, reason in ALLOWED.items():
        assert reason.strip() and "\n" not in reason and len(reason) <= 160, nodeid
    by_function = {(n.split("::")[0], n.split("::")[-1].split("[")[0]) for n in nodeids}
    assert sorted(set(NOT_CALLING_PGGIT) - by_function) == []
    for key, reason in NOT_CALLING_PGGIT.items():
        assert reason.strip() and "\n" not in reason and len(reason) <= 160, key
    assert not FIRST_MEASURED or FIRST_MEASURED["passing"] == sum(FIRST_MEASURED["by_folder"].values())


def test_each_allowed_sql_block_is_named_by_a_snippet_of_exactly_one_sql_block_of_its_page():
    for (page, snippet), reason in {**SQL_BLOCKS_ALLOWED, **SQL_BLOCKS_NOT_CALLING_PGGIT}.items():
        matching = [b for b in read_blocks(REPO / page) if b.kind == "sql" and snippet in b.code]
        assert len(matching) == 1, (page, snippet, [b.line for b in matching])
        assert "[" not in snippet and reason.strip() and "\n" not in reason and len(reason) <= 160, snippet
        nodeid = f"{page}::line-{matching[0].line}::test_sql_block_runs_as_shown"
        assert allowed_reason(nodeid) == reason
        # Another SQL block of the same page is not allowed by it.
        others = [b for b in read_blocks(REPO / page) if b.kind == "sql" and b.line != matching[0].line]
        assert all(allowed_reason(f"{page}::line-{b.line}::test_sql_block_runs_as_shown") != reason for b in others)
    data = hollow.summarize(RunResult(1, 1.0, {}), [], hollow.SUITE_PATHS)
    page, snippet = next(iter(SQL_BLOCKS_ALLOWED))
    assert data["allowed"][f"{page}::sql block with \"{snippet}\""] == SQL_BLOCKS_ALLOWED[(page, snippet)]


def test_a_setup_sql_block_is_allowed_and_the_continuation_that_shows_its_effect_is_not():
    page = "docs/testing/TROUBLESHOOTING.md"
    blocks = [b for b in read_blocks(REPO / page) if b.kind == "sql"]
    setup = next(b for b in blocks if b.has("setup"))
    continuation = blocks[blocks.index(setup) + 1]
    assert continuation.has("continuation")
    assert allowed_reason(f"{page}::line-{setup.line}::test_sql_block_runs_as_shown") == hollow_allowed.SETUP_REASON
    assert allowed_reason(f"{page}::line-{continuation.line}::test_sql_block_runs_as_shown") is None
