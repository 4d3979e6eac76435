"""Safety: pinned search_path on SECURITY DEFINER functions, read-only tables
for ordinary roles, USAGE + EXECUTE as the way in, no hijacking through the
caller's search_path."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.extension.helpers import (
    INSUFFICIENT_PRIVILEGE,
    INVALID_PARAMETER_VALUE,
    PGGIT_TABLES,
    assert_lends_no_rights,
    assert_nothing_written,
    commit_row,
    expect_error,
    history_of,
    rows,
    scalar,
    snapshot,
    tracked_object,
    version,
)

WRITES = {
    "insert": "INSERT INTO pggit.{} DEFAULT VALUES",
    "update": "UPDATE pggit.{} SET {} = {}",
    "delete": "DELETE FROM pggit.{}",
    "truncate": "TRUNCATE pggit.{}",
}
# A column of each table to name in the UPDATE.
KEY_COLUMN = {"branches": "id", "commits": "id", "objects": "id", "history": "id", "migrations": "version"}

TRUSTED_PATH_ENTRIES = {"pg_catalog", "pggit", "pg_temp"}


def grant_the_way_in(conn: psycopg.Connection, role: str) -> None:
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pggit TO {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pggit TO {}").format(sql.Identifier(role)))


def own_schema(conn: psycopg.Connection, schema: str, role: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(role)))


# --------------------------------------------------------------------------
# SECURITY DEFINER functions
# --------------------------------------------------------------------------


def test_every_security_definer_function_pins_a_trusted_search_path(conn):
    definers = rows(
        conn,
        "SELECT p.oid::regprocedure::text AS function, p.proconfig AS config FROM pg_proc p "
        "WHERE p.pronamespace = 'pggit'::regnamespace AND p.prosecdef ORDER BY 1",
    )
    assert definers, "commit_changes and DDL tracking for ordinary roles need SECURITY DEFINER functions"
    offenders = {}
    for row in definers:
        paths = [c.split("=", 1)[1] for c in row["config"] or [] if c.startswith("search_path=")]
        if not paths:
            offenders[row["function"]] = "no pinned search_path"
            continue
        entries = [entry.strip().strip('"') for entry in paths[0].split(",")]
        untrusted = [entry for entry in entries if entry not in TRUSTED_PATH_ENTRIES]
        if untrusted:
            offenders[row["function"]] = f"untrusted schemas on search_path: {untrusted}"
        elif "pg_temp" in entries and entries[-1] != "pg_temp":
            offenders[row["function"]] = "pg_temp is not last"
    assert not offenders, offenders


# --------------------------------------------------------------------------
# Ordinary roles: read yes, write only through the functions
# --------------------------------------------------------------------------


def test_ordinary_role_can_read_every_pggit_table(conn, connect, make_role):
    role = make_role()
    conn.execute("SELECT pggit.commit_changes('main', 'something to read')")
    conn.execute("CREATE TABLE t (id int)")
    conn.execute("SELECT pggit.apply_migration('001', 'SELECT 1')")
    as_role = connect(user=role)
    for table in PGGIT_TABLES:
        query = sql.SQL("SELECT count(*) FROM pggit.{}").format(sql.Identifier(table))
        assert as_role.execute(query).fetchone()[0] == conn.execute(query).fetchone()[0] > 0, table


@pytest.mark.parametrize("table", PGGIT_TABLES)
def test_ordinary_role_cannot_write_pggit_tables(conn, connect, make_role, table):
    role = make_role()
    conn.execute("SELECT pggit.commit_changes('main', 'something to damage')")
    conn.execute("CREATE TABLE t (id int)")
    conn.execute("SELECT pggit.apply_migration('001', 'SELECT 1')")
    before = snapshot(conn)
    as_role = connect(user=role)
    for statement in WRITES.values():
        expect_error(as_role, statement.format(table, KEY_COLUMN[table], KEY_COLUMN[table]), sqlstate=INSUFFICIENT_PRIVILEGE)
    assert_nothing_written(conn, before)


@pytest.mark.parametrize("granted", [False, True], ids=["without_grants", "with_usage_and_execute"])
def test_ordinary_role_cannot_write_pggit_tables_even_with_the_grants(conn, connect, make_role, granted):
    role = make_role()
    if granted:
        grant_the_way_in(conn, role)
    conn.execute("SELECT pggit.commit_changes('main', 'first')")
    before = snapshot(conn)
    as_role = connect(user=role)
    expect_error(as_role, "UPDATE pggit.branches SET head_commit_hash = NULL", sqlstate=INSUFFICIENT_PRIVILEGE)
    expect_error(as_role, "SELECT setval('pggit.trinity_id_seq', 1)", sqlstate=INSUFFICIENT_PRIVILEGE)
    assert_nothing_written(conn, before)


@pytest.mark.parametrize(
    "call",
    ["SELECT pggit.commit_changes('main', 'sneaky')", "SELECT pggit.create_branch('sneaky')",
     "SELECT pggit.delete_branch_simple('main')", "SELECT pggit.apply_migration('999', 'SELECT 1')"],
    ids=["commit_changes", "create_branch", "delete_branch_simple", "apply_migration"],
)
def test_ordinary_role_without_execute_cannot_write_through_the_functions(conn, connect, make_role, call):
    role = make_role()
    before = snapshot(conn)
    expect_error(connect(user=role), call, sqlstate=INSUFFICIENT_PRIVILEGE)
    assert_nothing_written(conn, before)


def test_role_with_usage_but_no_grant_cannot_call_the_table_change_recorder(conn, connect, make_role):
    role = make_role()
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pggit TO {}").format(sql.Identifier(role)))
    conn.execute("CREATE TABLE gone (id int)")
    gone = scalar(conn, "SELECT 'gone'::regclass::oid")
    conn.execute("DROP TABLE gone")
    conn.execute("CREATE TABLE t (id int)")
    before = snapshot(conn)
    as_role = connect(user=role)
    for call in ["SELECT pggit._track_table_change(%s, 'ALTER TABLE', false)",
                 "SELECT pggit._track_table_change(%s, 'CREATE TABLE', true, 'someone')"]:
        for rel in (gone, scalar(conn, "SELECT 't'::regclass::oid")):
            error = expect_error(as_role, call, (rel,), sqlstate=INSUFFICIENT_PRIVILEGE)
            assert "function" in error.diag.message_primary, error.diag.message_primary
    assert_nothing_written(conn, before)
    # Positive control: the owner's same call records the change.
    conn.execute("SELECT pggit._track_table_change('t'::regclass, 'ALTER TABLE', false)")
    history = history_of(conn, tracked_object(conn, "public", "t")["id"])
    assert [h["change_type"] for h in history] == ["CREATE", "ALTER"]


def test_branch_record_helper_refuses_a_role_not_granted_create_branch(conn, connect, make_role):
    """A grant on create_branch's record helper alone is no way in: the helper writes a branch only for a role
    that may execute create_branch itself, and refuses any other with insufficient_privilege naming the role.
    Positive control: once the role holds the grant on create_branch, the same call writes the branch."""
    role = make_role()
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pggit TO {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pggit._create_branch_record(text, text) TO {}")
                 .format(sql.Identifier(role)))
    before = snapshot(conn)
    as_role = connect(user=role)
    call = "SELECT pggit._create_branch_record('sneaky', 'main')"
    error = expect_error(as_role, call, sqlstate=INSUFFICIENT_PRIVILEGE, names=[role])
    assert "create_branch" in error.diag.message_primary, error.diag.message_primary
    assert_nothing_written(conn, before)
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pggit.create_branch(text, text, boolean) TO {}")
                 .format(sql.Identifier(role)))
    branch_id = scalar(as_role, call)
    assert scalar(conn, "SELECT created_by FROM pggit.branches WHERE id = %s AND name = 'sneaky'", (branch_id,)) == role


def test_role_with_usage_and_execute_commits_through_the_functions(conn, connect, make_role):
    role = make_role()
    grant_the_way_in(conn, role)
    as_role = connect(user=role)
    branch_id = scalar(as_role, "SELECT pggit.create_branch('role-branch')")
    trinity_id = scalar(as_role, "SELECT pggit.commit_changes('role-branch', 'by an ordinary role')")
    row = commit_row(conn, trinity_id)
    assert row["branch_id"] == branch_id
    assert row["author"] == role
    assert scalar(conn, "SELECT created_by FROM pggit.branches WHERE id = %s", (branch_id,)) == role
    assert scalar(conn, "SELECT head_commit_hash FROM pggit.branches WHERE id = %s", (branch_id,)) == trinity_id


@pytest.mark.parametrize("granted", [True, False], ids=["with_usage_and_execute", "without_grants"])
def test_ddl_by_an_ordinary_role_is_tracked(conn, connect, make_role, granted):
    role = make_role()
    if granted:
        grant_the_way_in(conn, role)
    own_schema(conn, "role_space", role)
    as_role = connect(user=role)
    as_role.execute("CREATE TABLE role_space.t (id int)")
    as_role.execute("ALTER TABLE role_space.t ADD COLUMN b int")
    as_role.execute("CREATE INDEX ON role_space.t (b)")
    assert version(conn, "role_space.t") == "1.1.1"
    history = history_of(conn, tracked_object(conn, "role_space", "t")["id"])
    assert [h["change_type"] for h in history] == ["CREATE", "ALTER", "ALTER"]
    assert {h["created_by"] for h in history} == {role}
    as_role.execute("DROP TABLE role_space.t")
    assert tracked_object(conn, "role_space", "t")["is_active"] is False


# --------------------------------------------------------------------------
# A hostile search_path
# --------------------------------------------------------------------------

# Functions pggit might call unqualified, each shadowed by a twin that logs who ran it.
SHADOWED_FUNCTIONS = [
    ("now", "", "timestamptz"),
    ("clock_timestamp", "", "timestamptz"),
    ("gen_random_uuid", "", "uuid"),
    ("random", "", "double precision"),
    ("sha256", "bytea", "bytea"),
    ("md5", "text", "text"),
    ("encode", "bytea, text", "text"),
    ("convert_to", "text, name", "bytea"),
    ("lower", "text", "text"),
    ("upper", "text", "text"),
    ("length", "text", "integer"),
    ("btrim", "text", "text"),
    ("strpos", "text, text", "integer"),
    ("substr", "text, integer, integer", "text"),
    ("replace", "text, text, text", "text"),
    ("lpad", "text, integer, text", "text"),
    ("to_char", "timestamp, text", "text"),
    ("to_char", "timestamptz, text", "text"),
    ("nextval", "regclass", "bigint"),
    ("setval", "regclass, bigint", "bigint"),
    ("to_regclass", "text", "regclass"),
    ("quote_ident", "text", "text"),
    ("quote_literal", "text", "text"),
    ("format_type", "oid, integer", "text"),
    ("pg_get_expr", "pg_node_tree, oid", "text"),
    ("pg_get_constraintdef", "oid", "text"),
    ("pg_get_indexdef", "oid", "text"),
    ("set_config", "text, text, boolean", "text"),
    ("current_setting", "text", "text"),
    ("hashtext", "text", "integer"),
    ("pg_advisory_xact_lock", "bigint", "void"),
    ("pg_advisory_xact_lock", "integer, integer", "void"),
    ("has_function_privilege", "text, text, text", "boolean"),
    ("array_to_string", "anyarray, text", "text"),
]


def build_trap(conn: psycopg.Connection, as_role: psycopg.Connection, role: str) -> None:
    """Schema 'evil', owned by the role, first on its search_path, full of look-alikes."""
    own_schema(conn, "evil", role)
    as_role.execute("CREATE TABLE evil.calls (what text, by_user text)")
    as_role.execute("GRANT INSERT ON evil.calls TO PUBLIC")
    as_role.execute(
        "CREATE FUNCTION evil.log(what text) RETURNS boolean LANGUAGE sql VOLATILE AS "
        "$$ INSERT INTO evil.calls VALUES (what, current_user::text) RETURNING true $$"
    )
    as_role.execute("GRANT EXECUTE ON FUNCTION evil.log(text) TO PUBLIC")
    for name, args, returns in SHADOWED_FUNCTIONS:
        types = [t.strip() for t in args.split(",")] if args else []
        arg_list = ", ".join(f"a{i} {t}" for i, t in enumerate(types))
        call_args = ", ".join(f"a{i}" for i in range(len(types)))
        body = f"SELECT evil.log('{name}'); SELECT pg_catalog.{name}({call_args})"
        as_role.execute(f"CREATE FUNCTION evil.{name}({arg_list}) RETURNS {returns} LANGUAGE sql VOLATILE AS $${body}$$")
    as_role.execute(
        "CREATE FUNCTION evil.cat(a text, b text) RETURNS text LANGUAGE sql VOLATILE AS "
        "$$ SELECT evil.log('||'); SELECT pg_catalog.textcat(a, b) $$"
    )
    as_role.execute("CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.cat)")
    as_role.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
    # Look-alikes of pggit's tables, in the schema and as temporary views.
    for table in PGGIT_TABLES:
        view = f"SELECT * FROM pggit.{table} WHERE evil.log('{table}')"
        as_role.execute(f"CREATE VIEW evil.{table} AS {view}")
        as_role.execute(f"CREATE TEMP VIEW {table} AS {view}")
    as_role.execute("CREATE SEQUENCE evil.trinity_id_seq")
    as_role.execute("CREATE TEMP SEQUENCE trinity_id_seq")
    as_role.execute("SET search_path = evil, pg_catalog, pggit, public")


def test_a_hostile_search_path_does_not_hijack_security_definer_calls(conn, connect, make_role):
    role = make_role()
    grant_the_way_in(conn, role)
    own_schema(conn, "role_space", role)
    as_role = connect(user=role)
    build_trap(conn, as_role, role)

    # The trap works: in the role's own session, unqualified names hit the look-alikes.
    as_role.execute("SELECT lower('X'), now(), 'a'::text || 'b'::text")
    assert {r[0] for r in as_role.execute("SELECT what FROM evil.calls")} >= {"lower", "now", "||"}
    as_role.execute("DELETE FROM evil.calls")

    calls = [
        "CREATE TABLE role_space.t (id int, note text)",
        "ALTER TABLE role_space.t ADD COLUMN extra int",
        "CREATE INDEX t_note_idx ON role_space.t (note)",
        "COMMENT ON TABLE role_space.t IS 'hostile'",
        "DROP INDEX role_space.t_note_idx",
        "SELECT pggit.generate_trinity_id()",
        "SELECT pggit.commit_changes('main', 'under attack')",
        "SELECT pggit.commit_changes('hostile-auto', 'auto-created under attack')",
        "SELECT pggit.create_branch('hostile-branch')",
        "SELECT pggit.delete_branch_simple('hostile-branch')",
        "SELECT * FROM pggit.get_version('role_space.t')",
        "SELECT pggit.calculate_schema_hash('role_space.t')",
        "SELECT * FROM pggit.increment_version(1, 2, 3, 'minor')",
        "SELECT pggit.create_data_branch('role_space.t', 'main', 'hostile-auto')",
        "SELECT * FROM pggit.detect_drift()",
        "SELECT * FROM pggit.verify_integrity()",
        "SELECT pggit.apply_migration('h1', 'CREATE TABLE role_space.m (id int)', 'DROP TABLE role_space.m')",
        "SELECT pggit.rollback_migration('h1')",
        "DROP TABLE role_space.t",
    ]
    for statement in calls:
        as_role.execute(statement)

    escalated = rows(conn, "SELECT what, by_user FROM evil.calls WHERE by_user <> %s", (role,))
    assert not escalated, f"look-alikes ran with another role's rights: {escalated}"
    # And the calls did their real work on pggit's own tables.
    assert scalar(conn, "SELECT count(*) FROM pggit.commits WHERE message LIKE '%%under attack'") == 2
    assert scalar(conn, "SELECT status FROM pggit.branches WHERE name = 'hostile-branch'") == "DELETED"
    assert scalar(conn, "SELECT status FROM pggit.migrations WHERE version = 'h1'") == "ROLLED_BACK"
    assert tracked_object(conn, "role_space", "t")["is_active"] is False


def test_the_caller_check_answers_true_for_the_caller_it_names(conn):
    """pggit._require_caller returns true when the function it names ran the statement it names (and raises
    otherwise), so a writer may rely on its answer. Shown with a pair of functions of a schema off the search path:
    s.caller() runs 'SELECT s.writer()' with EXECUTE, and s.writer() asks whether that is its caller. Positive control:
    s.writer() called by the session is refused with 42501 naming the expected caller."""
    conn.execute("CREATE SCHEMA s")
    conn.execute("CREATE FUNCTION s.writer() RETURNS boolean LANGUAGE plpgsql AS $$ "
                 "BEGIN RETURN pggit._require_caller('s.caller()', 'SELECT s.writer()', 's.writer'); END $$")
    conn.execute("CREATE FUNCTION s.caller() RETURNS boolean LANGUAGE plpgsql AS $$ "
                 "DECLARE v boolean; BEGIN EXECUTE 'SELECT s.writer()' INTO v; RETURN v; END $$")
    assert scalar(conn, "SELECT s.caller()") is True
    expect_error(conn, "SELECT s.writer()", sqlstate=INSUFFICIENT_PRIVILEGE, names=["s.caller()"])


# --------------------------------------------------------------------------
# Internal helpers: pg_catalog's operators and the caller's own rights
# --------------------------------------------------------------------------


def plant_operator(conn: psycopg.Connection, operator: str, argtype: str, answer: bool) -> None:
    """Schema 'planted' with an operator on two argtype values that always gives answer, put before pg_catalog."""
    conn.execute("CREATE SCHEMA planted")
    conn.execute(sql.SQL("CREATE FUNCTION planted.fixed({t}, {t}) RETURNS boolean LANGUAGE sql AS {body}").format(
        t=sql.SQL(argtype), body=sql.Literal(f"SELECT {str(answer).lower()}")))
    conn.execute(sql.SQL("CREATE OPERATOR planted.{op} (LEFTARG = {t}, RIGHTARG = {t}, FUNCTION = planted.fixed)")
                 .format(op=sql.SQL(operator), t=sql.SQL(argtype)))
    conn.execute("SET search_path = planted, pg_catalog, public")


def test_branch_names_are_checked_with_pg_catalogs_operators_whatever_the_callers_search_path(conn):
    """A text "~" planted ahead of pg_catalog that matches nothing does not make pggit accept a branch name its rules
    refuse ('/feature' begins with "/"): create_data_branch, which keeps the caller's search_path, still refuses
    it with 22023 and makes no copy. Positive controls: the planted operator is in force for the caller's own
    queries, and the same call with the name 'feature' makes the copy."""
    conn.execute("CREATE TABLE t (id int)")
    plant_operator(conn, "~", "text", False)
    assert scalar(conn, "SELECT '/feature' ~ '^/'") is False
    expect_error(conn, "SELECT pggit.create_data_branch('t', 'main', '/feature')",
                 sqlstate=INVALID_PARAMETER_VALUE, names=["/feature"])
    assert scalar(conn, "SELECT to_regclass('public.\"t__/feature\"')") is None
    assert scalar(conn, "SELECT pggit.create_data_branch('t', 'main', 'feature')") == "t__feature"


def test_the_trackable_check_uses_pg_catalogs_operators_whatever_the_callers_search_path(conn):
    """A name "<>" planted ahead of pg_catalog that calls any two names different does not make pggit's trackable
    check take pggit's own tables for user tables. Positive controls: the planted operator is in force for the
    caller's own queries, and a user table is still trackable."""
    conn.execute("CREATE TABLE t (id int)")
    plant_operator(conn, "<>", "name", True)
    assert scalar(conn, "SELECT 'pggit'::name <> 'pggit'::name") is True
    assert scalar(conn, "SELECT pggit._is_trackable('pggit.branches'::regclass)") is False
    assert scalar(conn, "SELECT pggit._is_trackable('public.t'::regclass)") is True


def test_a_roles_data_branch_owns_its_sequences_and_the_sequence_helper_lends_no_rights(conn, connect, make_role):
    """A role with USAGE and EXECUTE copies its own table with a serial column: the copy's default calls a new
    sequence that the role owns, in the source's state. The sequence helper runs with the caller's rights: the
    role's direct call on a table of pggit's owner is refused with 42501, and that table keeps its default and
    gets no sequence."""
    role = make_role()
    grant_the_way_in(conn, role)
    own_schema(conn, "role_space", role)
    as_role = connect(user=role)
    as_role.execute("CREATE TABLE role_space.t (id serial PRIMARY KEY, note text)")
    as_role.execute("INSERT INTO role_space.t (note) VALUES ('a'), ('b')")
    assert scalar(as_role, "SELECT pggit.create_data_branch('role_space.t', 'main', 'feature')") == "t__feature"
    sequence = scalar(conn, "SELECT pg_get_serial_sequence('role_space.t__feature', 'id')")
    assert sequence == "role_space.t__feature_id_seq"
    assert scalar(conn, "SELECT relowner::regrole::text FROM pg_class WHERE oid = %s::regclass", (sequence,)) == role
    assert scalar(as_role, "INSERT INTO role_space.t__feature (note) VALUES ('c') RETURNING id") == 3

    conn.execute("CREATE TABLE public.owners (id serial)")
    sequences = "SELECT array_agg(relname::text ORDER BY relname) FROM pg_class WHERE relkind = 'S' " \
                "AND relnamespace = 'public'::regnamespace"
    default = "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.owners'::regclass"
    before = (scalar(conn, sequences), scalar(conn, default))
    expect_error(as_role, "SELECT pggit._own_default_sequences('public.owners'::regclass)",
                 sqlstate=INSUFFICIENT_PRIVILEGE)
    assert (scalar(conn, sequences), scalar(conn, default)) == before == (
        ["owners_id_seq"], "nextval('owners_id_seq'::regclass)")


def test_the_restore_check_runs_with_the_callers_rights(conn, connect, make_role):
    """pggit's restore check lends no rights: a role denied EXECUTE on pg_catalog.current_setting(text, boolean) is
    denied it through pggit._restoring_dump too (as SECURITY DEFINER the check would lend it the owner's right).
    Positive controls: the owner's call answers false, and so does the role's once it holds the right."""
    role = make_role()
    assert_lends_no_rights(conn, connect(user=role), role, builtin="current_setting(text, boolean)",
                           probe="SELECT pg_catalog.current_setting('search_path', true)",
                           call="SELECT pggit._restoring_dump()",
                           answer=False)
