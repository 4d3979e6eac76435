"""Security chaos: roles against pggit's functions, with hostile code planted wherever pggit's owner rights could run it.

The roles: the superuser that installed pggit (and owns it), an application
role with the documented grants (``USAGE`` on ``pggit`` and ``EXECUTE`` on
the writing functions), a role with no grants, and a hostile role that owns
a schema, its tables and functions, and has the documented grants too.

The hostile role plants code that PostgreSQL may run on someone else's
behalf: CHECK constraints, defaults, generated columns, index expressions,
triggers, and overloads of built-in functions and operators that win over
``pg_catalog``'s when its schema is on the search_path. Every piece calls a
canary that tries what a hostile function with the owner's rights would do:
make the hostile role superuser, read a table it has no grant on, and log
who it ran as. After any pggit call by any role, the canary must never have
run as anyone but the caller. Each test first shows the canary succeeding
when the superuser runs it directly, so a silent canary means "not run with
those rights", not "broken canary".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.security]

HOSTILE_SCHEMA = "hs"

# The writing functions, as the reference's Privileges section grants them: create_branch,
# apply_migration and rollback_migration together with their record writers.
DOCUMENTED_GRANTS = (
    "pggit.commit_changes(text, text, text)",
    "pggit.create_branch(text, text, boolean)",
    "pggit._create_branch_record(text, text)",
    "pggit._record_migration_applied(text, text, text, text, text)",
    "pggit._record_migration_rolled_back(text)",
    "pggit.delete_branch_simple(text)",
    "pggit.create_data_branch(text, text, text)",
    "pggit.apply_migration(text, text, text, text)",
    "pggit.rollback_migration(text)",
)


@dataclass
class World:
    """The superuser connection and the roles of one test."""

    su: psycopg.Connection
    owner: str
    app: str
    hostile: str
    nogrant: str
    connect: object

    def as_role(self, role: str) -> psycopg.Connection:
        return self.connect(role)

    def caller(self, who: str) -> tuple[str, psycopg.Connection]:
        """(role name, connection) for 'su', 'app', 'hostile' or 'nogrant'."""
        if who == "su":
            return self.owner, self.su
        role = getattr(self, who)
        return role, self.as_role(role)


def grant_documented(su: psycopg.Connection, role: str) -> None:
    su.execute(sql.SQL("GRANT USAGE ON SCHEMA pggit TO {}").format(sql.Identifier(role)))
    for function in DOCUMENTED_GRANTS:
        su.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), sql.Identifier(role)))


def install_canary(w: World) -> None:
    """Schema hs owned by the hostile role, a canary function in it, and a secret table nobody else may read."""
    su, hostile = w.su, w.hostile
    su.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(HOSTILE_SCHEMA), sql.Identifier(hostile)))
    su.execute("CREATE SCHEMA IF NOT EXISTS vault")
    su.execute("CREATE TABLE IF NOT EXISTS vault.secret (s text)")
    su.execute("TRUNCATE vault.secret")
    su.execute("INSERT INTO vault.secret VALUES ('the owner''s secret')")
    h = w.as_role(hostile)
    h.execute("CREATE TABLE hs.seen (by_user text, note text, became_super boolean, secret text)")
    h.execute("GRANT USAGE ON SCHEMA hs TO PUBLIC")
    h.execute("GRANT INSERT, SELECT ON hs.seen TO PUBLIC")
    # Tries everything a function with the owner's rights could do, never fails.
    h.execute(
        sql.SQL("""
        CREATE FUNCTION hs.canary(note text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
        DECLARE
            v_super boolean := false;
            v_secret text;
        BEGIN
            BEGIN
                EXECUTE 'ALTER ROLE ' || pg_catalog.quote_ident({hostile}) || ' SUPERUSER';
                v_super := true;
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            BEGIN
                EXECUTE 'SELECT s FROM vault.secret' INTO v_secret;
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            INSERT INTO hs.seen VALUES (current_user::text, note, v_super, v_secret);
            RETURN true;
        END $f$""").format(hostile=sql.Literal(hostile)))
    # The same, declared IMMUTABLE so that generated columns and index expressions accept it.
    h.execute("CREATE FUNCTION hs.canary_imm(note text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS "
              "$f$ BEGIN RETURN hs.canary(note); END $f$")
    h.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA hs TO PUBLIC")


def reset_hostile_schema(w: World) -> None:
    w.su.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(w.hostile)))
    w.su.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(HOSTILE_SCHEMA)))
    install_canary(w)


def canary_runs(su: psycopg.Connection) -> list[tuple]:
    return su.execute("SELECT by_user, note, became_super, secret FROM hs.seen ORDER BY 1, 2").fetchall()


def is_superuser(su: psycopg.Connection, role: str) -> bool:
    return su.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


def assert_canary_works(w: World) -> None:
    """Positive control: run by the superuser directly, the canary becomes superuser and reads the secret."""
    w.su.execute("SELECT hs.canary('control')")
    assert is_superuser(w.su, w.hostile), "the canary could not make the hostile role superuser even as superuser"
    assert canary_runs(w.su) == [(w.owner, "control", True, "the owner's secret")]
    w.su.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(w.hostile)))
    w.su.execute("TRUNCATE hs.seen")


def assert_never_ran_as_another_role(w: World, caller: str, what: str) -> None:
    """The canary ran, if at all, only as the role that called pggit: no escalation, no secret read."""
    foreign = [run for run in canary_runs(w.su) if run[0] != caller]
    assert not foreign, f"{what}: planted code ran as another role than the caller {caller!r}: {foreign}"
    assert not is_superuser(w.su, w.hostile), f"{what}: the hostile role became superuser"


@pytest.fixture
def world(sync_conn, make_role, db_connection_string) -> World:
    sync_conn.autocommit = True
    opened: dict[str, psycopg.Connection] = {}

    def connect(role: str) -> psycopg.Connection:
        if role not in opened or opened[role].closed:
            opened[role] = psycopg.connect(db_connection_string, user=role, autocommit=True)
        return opened[role]

    owner = sync_conn.execute("SELECT current_user").fetchone()[0]
    w = World(sync_conn, owner, make_role("app"), make_role("hostile"), make_role("nogrant"), connect)
    grant_documented(sync_conn, w.app)
    grant_documented(sync_conn, w.hostile)
    install_canary(w)
    assert_canary_works(w)
    yield w
    for connection in opened.values():
        connection.close()
    sync_conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(w.hostile)))


# --------------------------------------------------------------------------
# The planted code and the pggit calls that might run it
# --------------------------------------------------------------------------

# Overloads that beat pg_catalog's function or operator whenever hs is on the search_path: an
# exact match of the argument types wins over pg_catalog's, which needs an implicit cast.
OVERLOADS = {
    "quote_ident(name)": ("CREATE FUNCTION hs.quote_ident(p name) RETURNS text LANGUAGE plpgsql AS "
                          "$f$ BEGIN PERFORM hs.canary('quote_ident'); RETURN pg_catalog.quote_ident(p::text); END $f$",),
    "pg_get_expr(pg_node_tree, integer)": (
        "CREATE FUNCTION hs.pg_get_expr(e pg_node_tree, r integer) RETURNS text LANGUAGE plpgsql AS "
        "$f$ BEGIN PERFORM hs.canary('pg_get_expr'); RETURN pg_catalog.pg_get_expr(e, r::oid); END $f$",),
    "array_to_string(text[], text)": (
        "CREATE FUNCTION hs.array_to_string(a text[], d text) RETURNS text LANGUAGE plpgsql AS "
        "$f$ BEGIN PERFORM hs.canary('array_to_string'); RETURN pg_catalog.array_to_string(a, d); END $f$",),
    "operator ||(text[], text[])": (
        "CREATE FUNCTION hs.cat(a text[], b text[]) RETURNS text[] LANGUAGE plpgsql AS "
        "$f$ BEGIN PERFORM hs.canary('||'); RETURN pg_catalog.array_cat(a, b); END $f$",
        "CREATE OPERATOR hs.|| (LEFTARG = text[], RIGHTARG = text[], FUNCTION = hs.cat)",
    ),
}

# Code in the definition of the hostile role's table hs.t, run whenever a row is written to it
# (or to a copy made with LIKE ... INCLUDING ALL).
TABLE_CODE = {
    "check constraint": ("ALTER TABLE hs.t ADD CONSTRAINT t_canary CHECK (hs.canary('check'))",),
    "default": ("ALTER TABLE hs.t ADD COLUMN d boolean DEFAULT hs.canary('default')",),
    "generated column": ("ALTER TABLE hs.t ADD COLUMN g boolean GENERATED ALWAYS AS (hs.canary_imm('generated') AND id > 0) STORED",),
    "index expression": ("CREATE INDEX t_canary_idx ON hs.t ((hs.canary_imm('index') AND id > 0))",),
    "trigger": ("CREATE FUNCTION hs.trg() RETURNS trigger LANGUAGE plpgsql AS "
               "$f$ BEGIN PERFORM hs.canary('trigger'); RETURN NEW; END $f$",
               "CREATE TRIGGER t_canary BEFORE INSERT ON hs.t FOR EACH ROW EXECUTE FUNCTION hs.trg()"),
}


def plant_table(h: psycopg.Connection, code: str) -> None:
    """hs.t with one row and the planted code (tracked by pggit: the hostile role's own DDL)."""
    h.execute("CREATE TABLE hs.t (id int PRIMARY KEY, note text DEFAULT 'x' COLLATE \"C\")")
    h.execute("INSERT INTO hs.t (id) VALUES (1)")
    for statement in TABLE_CODE[code]:
        h.execute(statement)


# DDL of the hostile role on its own tables: pggit's event triggers record each one as pggit's owner.
HOSTILE_DDL = (
    "CREATE TABLE hs.victim (id int PRIMARY KEY, n int DEFAULT 1, label text COLLATE \"C\" CHECK (label <> ''))",
    "ALTER TABLE hs.victim ADD COLUMN extra int DEFAULT 2",
    "CREATE INDEX victim_n_idx ON hs.victim (n)",
    "COMMENT ON TABLE hs.victim IS 'planted'",
    "ALTER TABLE hs.victim ALTER COLUMN n SET DEFAULT 3",
    "CREATE TABLE hs.parted (id int, region text) PARTITION BY LIST (region)",
    "DROP INDEX hs.victim_n_idx",
)

# Readers anyone may call on the hostile role's table.
READERS = (
    "SELECT * FROM pggit.get_version('hs.victim')",
    "SELECT pggit.calculate_schema_hash('hs.victim')",
    "SELECT * FROM pggit.detect_drift()",
    "SELECT * FROM pggit.verify_integrity()",
)


# --------------------------------------------------------------------------
# Overloads on the search_path of pggit's own code
# --------------------------------------------------------------------------


@settings(max_examples=12)
@given(ddl=st.sampled_from(HOSTILE_DDL), reader=st.sampled_from(READERS),
       reader_role=st.sampled_from(["su", "app", "nogrant"]))
def test_overloads_in_a_hostile_schema_never_run_with_the_owners_rights(world, ddl, reader, reader_role):
    """A hostile role puts overloads of built-ins (quote_ident(name), pg_get_expr(pg_node_tree, integer), array_to_string(text[], text), the operator ||(text[], text[])) into its own schema, then runs DDL there and lets other roles read its tables through pggit. pggit describes a table with the table's schema on the search_path; no overload may run as pggit's owner (event triggers) nor as the reader (get_version, calculate_schema_hash, detect_drift, verify_integrity). Positive control: in the hostile role's own session, with its schema first on the path, every overload is picked."""
    w = world
    reset_hostile_schema(w)
    h = w.as_role(w.hostile)
    for statements in OVERLOADS.values():
        for statement in statements:
            h.execute(statement)
    h.execute("SET search_path = hs, pg_catalog")
    h.execute("SELECT quote_ident('x'::name), pg_get_expr(adbin, 0), array_to_string(ARRAY['a'], ','), "
              "ARRAY['a'] || ARRAY['b'] FROM pg_attrdef LIMIT 1")
    h.execute("RESET search_path")
    picked = {run[1] for run in canary_runs(w.su) if run[0] == w.hostile}
    assert picked == {"quote_ident", "pg_get_expr", "array_to_string", "||"}, f"overloads never picked: {picked}"
    w.su.execute("TRUNCATE hs.seen")

    for statement in HOSTILE_DDL[: HOSTILE_DDL.index(ddl) + 1]:
        h.execute(statement)
    assert_never_ran_as_another_role(w, w.hostile, f"DDL {ddl!r} recorded by the event triggers")
    # pggit did record it (so the event trigger really described the table).
    assert w.su.execute("SELECT count(*) FROM pggit.objects WHERE schema_name = 'hs'").fetchone()[0] >= 1

    name, conn = w.caller(reader_role)
    conn.execute(reader)
    assert_never_ran_as_another_role(w, "nobody", f"{reader} called by {reader_role}")


# --------------------------------------------------------------------------
# Data copies: INSERT ... SELECT into a LIKE ... INCLUDING ALL copy runs the table's own code
# --------------------------------------------------------------------------


def own_schema_with_table(w: World, role: str, schema: str) -> None:
    """A schema owned by the role, with a tracked table of one row made by the role itself."""
    w.su.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(role)))
    conn = w.as_role(role)
    conn.execute(sql.SQL("CREATE TABLE {}.own (id int PRIMARY KEY)").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("INSERT INTO {}.own VALUES (1)").format(sql.Identifier(schema)))


def table_exists(su: psycopg.Connection, name: str) -> bool:
    return su.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


@settings(max_examples=10)
@given(code=st.sampled_from(sorted(TABLE_CODE)), caller=st.sampled_from(["app", "hostile"]))
def test_branch_data_copies_run_planted_code_only_with_the_callers_rights(world, code, caller):
    """create_branch(..., p_copy_data => true) copies every tracked table; the hostile role's table carries code (CHECK, default, generated column, index expression, trigger) that runs when rows are written to it or its copy. That code may run with the rights of the role that asked for the copy, never with pggit's owner's: the hostile role never becomes superuser, never reads the owner's secret. Positive controls: a row written by the hostile role itself runs the code, and the caller's own table does get its copy."""
    w = world
    reset_hostile_schema(w)
    h = w.as_role(w.hostile)
    plant_table(h, code)
    h.execute("INSERT INTO hs.t (id) VALUES (2)")
    assert {run[:2] for run in canary_runs(w.su)} == {(w.hostile, code.split()[0])}, f"the planted {code} never runs"
    w.su.execute("TRUNCATE hs.seen")
    schema = f"own_{uuid.uuid4().hex[:8]}"
    role, conn = w.caller(caller)
    own_schema_with_table(w, role, schema)

    branch = f"copy-{uuid.uuid4().hex[:8]}"
    conn.execute("SELECT pggit.create_branch(%s, 'main', true)", (branch,))

    assert table_exists(w.su, f'{schema}."own__{branch}"'), "the caller's own table was not copied"
    assert_never_ran_as_another_role(w, role, f"create_branch(p_copy_data) by {caller} with a planted {code}")
    secret_reads = [run for run in canary_runs(w.su) if run[3] is not None]
    assert not secret_reads, f"planted code read the owner's secret: {secret_reads}"


def test_a_copy_planted_under_the_branch_tables_name_is_never_reused(world):
    """In a schema where two roles may create tables, the hostile role creates "orders__feature" before the application branches its table orders: create_data_branch must refuse to hand that table out as the branch's copy (the application would write its branch data into a table the hostile role owns, through its triggers). Positive control: a copy the application made itself is returned again (idempotent)."""
    w = world
    w.su.execute("CREATE SCHEMA shared")
    w.su.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA shared TO {}, {}").format(
        sql.Identifier(w.app), sql.Identifier(w.hostile)))
    app = w.as_role(w.app)
    app.execute("CREATE TABLE shared.orders (id int PRIMARY KEY)")
    app.execute("INSERT INTO shared.orders VALUES (1)")
    w.as_role(w.hostile).execute('CREATE TABLE shared."orders__feature" (id int PRIMARY KEY)')

    with pytest.raises(psycopg.errors.DuplicateTable, match="orders__feature"):
        app.execute("SELECT pggit.create_data_branch('shared.orders', 'main', 'feature')")

    assert app.execute("SELECT pggit.create_data_branch('shared.orders', 'main', 'mine')").fetchone()[0] == "orders__mine"
    assert app.execute("SELECT pggit.create_data_branch('shared.orders', 'main', 'mine')").fetchone()[0] == "orders__mine"
    assert app.execute('SELECT count(*) FROM shared."orders__mine"').fetchone()[0] == 1


# --------------------------------------------------------------------------
# On whose behalf: pggit called from another role's SECURITY DEFINER trigger
# --------------------------------------------------------------------------

FORGERIES = {
    "migration recorded": "SELECT pggit._record_migration_applied('forged', NULL, repeat('0', 64), 'SELECT 1', NULL)",
    "migration rolled back": "SELECT pggit._record_migration_rolled_back('legit')",
    "branch created": "SELECT pggit._create_branch_record('forged-branch', 'main')",
}


def test_a_role_without_grants_cannot_write_pggit_records_from_a_trigger_another_role_fires(world):
    """A role with no pggit grants owns a table with a SECURITY DEFINER trigger that calls pggit's record-writing helpers (migration applied, migration rolled back, branch created). The application role, which holds the documented grants, inserts into that table: the trigger runs in the application's session, but as its owner, and pggit must not write a record on the application's behalf. Positive controls: the trigger did run, and the application's own calls write the same kinds of record."""
    w = world
    su, planter, app = w.su, w.nogrant, w.as_role(w.app)
    app.execute("SELECT pggit.apply_migration('legit', 'SELECT 1', 'SELECT 1')")
    su.execute(sql.SQL("CREATE SCHEMA ng AUTHORIZATION {}").format(sql.Identifier(planter)))
    p = w.as_role(planter)
    p.execute("CREATE TABLE ng.attempts (by_user text, what text, succeeded boolean)")
    p.execute("CREATE TABLE ng.inbox (id int)")
    body = "".join(
        f"BEGIN {statement.replace('SELECT', 'PERFORM', 1)}; "
        f"INSERT INTO ng.attempts VALUES (current_user, '{what}', true); "
        f"EXCEPTION WHEN insufficient_privilege THEN INSERT INTO ng.attempts VALUES (current_user, '{what}', false); END; "
        for what, statement in FORGERIES.items())
    p.execute(f"CREATE FUNCTION ng.forge() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $f$ BEGIN {body} RETURN NEW; END $f$")
    p.execute("CREATE TRIGGER forge AFTER INSERT ON ng.inbox FOR EACH ROW EXECUTE FUNCTION ng.forge()")
    p.execute("GRANT USAGE ON SCHEMA ng TO PUBLIC")
    p.execute("GRANT INSERT ON ng.inbox TO PUBLIC")

    app.execute("INSERT INTO ng.inbox VALUES (1)")

    attempts = su.execute("SELECT by_user, what, succeeded FROM ng.attempts ORDER BY what").fetchall()
    assert [(a[0], a[1]) for a in attempts] == [(planter, what) for what in sorted(FORGERIES)], "the trigger never ran"
    assert not [a for a in attempts if a[2]], f"records written on the application's behalf: {attempts}"
    assert su.execute("SELECT count(*) FROM pggit.migrations WHERE version = 'forged'").fetchone()[0] == 0
    assert su.execute("SELECT status FROM pggit.migrations WHERE version = 'legit'").fetchone()[0] == "APPLIED"
    assert su.execute("SELECT count(*) FROM pggit.branches WHERE name = 'forged-branch'").fetchone()[0] == 0
    # The application's own calls do write these records.
    app.execute("SELECT pggit.create_branch('app-branch')")
    app.execute("SELECT pggit.rollback_migration('legit')")
    assert su.execute("SELECT created_by FROM pggit.branches WHERE name = 'app-branch'").fetchone()[0] == w.app
    assert su.execute("SELECT status, applied_by FROM pggit.migrations WHERE version = 'legit'").fetchone() == ("ROLLED_BACK", w.app)


# Every kind of record pggit writes with a role's name in it, made from a trigger: (what, statement, the
# query that reads the name the record carries).
NAMED_RECORDS = {
    "commit": ("PERFORM pggit.commit_changes('named', 'from the trigger')",
               "SELECT author FROM pggit.commits WHERE message = 'from the trigger'"),
    "branch": ("PERFORM pggit.create_branch('named-branch')",
               "SELECT created_by FROM pggit.branches WHERE name = 'named-branch'"),
    "migration applied": ("PERFORM pggit.apply_migration('named', 'SELECT 1', 'SELECT 1')",
                          "SELECT applied_by FROM pggit.migrations WHERE version = 'named'"),
    "table created": ("CREATE TABLE hs.made_by_trigger (id int)",
                      "SELECT h.created_by FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id "
                      "WHERE o.object_name = 'made_by_trigger' AND h.change_type = 'CREATE'"),
    "table dropped": ("DROP TABLE hs.dropped_by_trigger",
                      "SELECT h.created_by FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id "
                      "WHERE o.object_name = 'dropped_by_trigger' AND h.change_type = 'DROP'"),
}

WRITERS = {
    "pggit._write_commit": "SELECT pggit._write_commit('forged', 'forged', NULL, {victim})",
    "pggit._write_branch_record": "SELECT pggit._write_branch_record('forged', 'main', {victim})",
    "pggit._write_migration_applied": "SELECT pggit._write_migration_applied('forged', NULL, repeat('0', 64), 'SELECT 1', NULL, {victim})",
    "pggit._write_migration_rolled_back": "SELECT pggit._write_migration_rolled_back('named', {victim})",
    "pggit._write_ddl_commands": "SELECT pggit._write_ddl_commands({victim}, 'CREATE TABLE')",
    "pggit._write_dropped_objects": "SELECT pggit._write_dropped_objects({victim}, 'DROP TABLE')",
}


def test_records_made_from_a_granted_roles_definer_trigger_name_that_role_not_the_session(world):
    """The hostile role holds the documented grants and owns a table whose SECURITY DEFINER trigger commits, creates a branch, applies a migration, and creates and drops a table. The application role fires it. Every record must name the role whose rights made it, the hostile role, never the application's session role it ran in: otherwise a role with a grant can make history say another role did what it did. Positive control: the same calls made directly by the application name the application."""
    w = world
    hostile, app = w.as_role(w.hostile), w.as_role(w.app)
    hostile.execute("CREATE TABLE hs.dropped_by_trigger (id int)")
    hostile.execute("CREATE TABLE hs.inbox (id int)")
    body = " ".join(statement + ";" for statement, _ in NAMED_RECORDS.values())
    hostile.execute(f"CREATE FUNCTION hs.act() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                    f"SET search_path = pg_catalog AS $f$ BEGIN {body} RETURN NEW; END $f$")
    hostile.execute("CREATE TRIGGER act AFTER INSERT ON hs.inbox FOR EACH ROW EXECUTE FUNCTION hs.act()")
    hostile.execute("GRANT INSERT ON hs.inbox TO PUBLIC")

    app.execute("INSERT INTO hs.inbox VALUES (1)")

    named = {what: w.su.execute(query).fetchall() for what, (_, query) in NAMED_RECORDS.items()}
    assert named == {what: [(w.hostile,)] for what in NAMED_RECORDS}, \
        f"records made with {w.hostile!r}'s rights in {w.app!r}'s session name: {named}"

    # Positive control: made directly, the same records name the application.
    w.su.execute(sql.SQL("CREATE SCHEMA app_own AUTHORIZATION {}").format(sql.Identifier(w.app)))
    app.execute("SELECT pggit.commit_changes('named', 'by the application')")
    app.execute("SELECT pggit.create_branch('app-named-branch')")
    app.execute("SELECT pggit.apply_migration('app-named', 'CREATE TABLE app_own.t (id int)', 'DROP TABLE app_own.t')")
    app.execute("SELECT pggit.rollback_migration('app-named')")
    assert w.su.execute(
        "SELECT (SELECT author FROM pggit.commits WHERE message = 'by the application'),"
        "       (SELECT created_by FROM pggit.branches WHERE name = 'app-named-branch'),"
        "       (SELECT applied_by FROM pggit.migrations WHERE version = 'app-named'),"
        "       (SELECT string_agg(DISTINCT h.created_by, ',') FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id"
        "         WHERE o.schema_name = 'app_own')").fetchone() == (w.app,) * 4


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("who", ["hostile", "su"])
def test_the_definer_record_writers_refuse_any_caller_but_their_own_pggit_function(world, writer, who):
    """The SECURITY DEFINER writers behind commit_changes, create_branch, the migration functions and the event triggers take the acting role as an argument, so they must refuse every caller but the one pggit function that passes its own current_user: even a superuser, even a role with every grant. Positive control: the public entry point writes the same kind of record for that role."""
    w = world
    role, conn = w.caller(who)
    victim = sql.Literal(w.app).as_string(conn)
    before = w.su.execute("SELECT (SELECT count(*) FROM pggit.commits), (SELECT count(*) FROM pggit.branches),"
                          " (SELECT count(*) FROM pggit.migrations), (SELECT count(*) FROM pggit.history)").fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=rf"{writer} may only be called by pggit\."):
        conn.execute(WRITERS[writer].format(victim=victim))
    after = w.su.execute("SELECT (SELECT count(*) FROM pggit.commits), (SELECT count(*) FROM pggit.branches),"
                         " (SELECT count(*) FROM pggit.migrations), (SELECT count(*) FROM pggit.history)").fetchone()
    assert after == before, f"{writer} called by {who} wrote something: {before} -> {after}"
    # Positive control: through the entry point, the role's own name is written.
    conn.execute("SELECT pggit.commit_changes('own', 'own commit')")
    assert w.su.execute("SELECT author FROM pggit.commits WHERE message = 'own commit'").fetchone()[0] == role


def test_a_statement_that_spells_out_pggits_own_call_cannot_pass_for_pggit(world):
    """The writers recognise their caller by the call stack PostgreSQL prints, which shows the text of the statement that called them. The hostile role, which holds the commit grant, runs statements that begin with commit_changes' own statement and then spell out commit_changes' frame (in a quoted alias, after the line comment, or the statement alone), so that the printed stack could look as if commit_changes called the writer. Each is refused or is not valid SQL, and nothing is written. Positive control: after errors raised inside the writer in the same transaction (which make PL/pgSQL leave its fast path), commit_changes itself still commits, in the caller's name."""
    w = world
    hostile = w.as_role(w.hostile)
    frame = "PL/pgSQL function pggit.commit_changes(text,text,text) line 5 at EXECUTE"
    own_call = "SELECT pggit._write_commit($1, $2, $3, $4) -- the acting role"
    forgeries = {
        "quoted alias": own_call.split(" --")[0] + '"\n' + frame + '\n"',
        "after the comment": own_call + '"\n' + frame,
        "the statement alone": own_call,
    }
    outcomes = {}
    for name, statement in forgeries.items():
        try:
            hostile.execute("SELECT set_config('forge.sql', %s, false)", (statement,))
            hostile.execute(
                "DO $f$ DECLARE v text; BEGIN EXECUTE current_setting('forge.sql') INTO v "
                "USING 'forged'::text, 'forged'::text, NULL::text, %s::text; END $f$" % sql.Literal(w.app).as_string(hostile))
            outcomes[name] = "accepted"
        except psycopg.Error as error:
            outcomes[name] = type(error).__name__
    assert outcomes == {"quoted alias": "InsufficientPrivilege", "after the comment": "SyntaxError",
                        "the statement alone": "InsufficientPrivilege"}, outcomes
    assert w.su.execute("SELECT count(*) FROM pggit.commits WHERE message = 'forged'").fetchone()[0] == 0
    # Positive control: errors raised inside the writer, then a commit, in one transaction.
    hostile.execute(
        "DO $f$ BEGIN FOR i IN 1..3 LOOP BEGIN PERFORM pggit.commit_changes('bad name', 'refused'); "
        "EXCEPTION WHEN invalid_parameter_value THEN NULL; END; END LOOP; "
        "PERFORM pggit.commit_changes('looped', 'looped'); END $f$")
    assert w.su.execute("SELECT count(*), min(author) FROM pggit.commits WHERE message = 'looped'").fetchone() == (1, w.hostile)


def test_a_text_domain_on_the_search_path_where_the_message_quoter_first_runs_never_runs_as_the_owner(world):
    """PL/pgSQL resolves a function's variable types once per session, when the function first runs, and keeps them for every later call, whoever makes it. The hostile role puts a domain named ``text`` into its schema, whose CHECK reads the owner's secret if it can and reports who it ran as in a notice (which reaches the client even when the statement fails, so a refusal cannot undo the leak). It puts that schema before pg_catalog on its search_path and gets pggit's message quoter (whose variables are declared ``text``) to run first there: through create_data_branch (SECURITY INVOKER, the caller's search_path) with a blank table name, which it quotes before anything else. It then asks delete_branch_simple (SECURITY DEFINER) to delete main, whose refusal quotes the name as pggit's owner. The quoter pins its own search_path, so its variables stay pg_catalog's text: the check never runs as the owner and the secret never leaks. Positive controls: run by the superuser, the check reads the secret; in the hostile session ``text`` names the domain, whose check runs (as the hostile role, without the secret)."""
    w = world
    h = w.as_role(w.hostile)
    h.execute("""
        CREATE FUNCTION hs.text_spy() RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS $f$
        DECLARE
            v_secret pg_catalog.text;
        BEGIN
            BEGIN
                EXECUTE 'SELECT s FROM vault.secret' INTO v_secret;
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            RAISE NOTICE 'text checked as %, secret %', current_user, coalesce(v_secret, 'unread');
            RETURN true;
        END $f$""")
    h.execute("GRANT EXECUTE ON FUNCTION hs.text_spy() TO PUBLIC")
    h.execute("CREATE DOMAIN hs.text AS pg_catalog.text CHECK (hs.text_spy())")
    notices: list[str] = []
    for connection in (w.su, h):
        connection.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary))
    w.su.execute("SELECT hs.text_spy()")
    assert notices == [f"text checked as {w.owner}, secret the owner's secret"], notices
    notices.clear()
    h.execute("SET search_path = hs, pg_catalog")
    h.execute("SELECT 'x'::text")
    assert notices == [f"text checked as {w.hostile}, secret unread"], "the domain named text is not what text names"
    notices.clear()

    with pytest.raises(psycopg.errors.InvalidParameterValue, match="must not be null or blank"):
        h.execute("SELECT pggit.create_data_branch(' ', 'main', 'feature')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='branch "main" is protected'):
        h.execute("SELECT pggit.delete_branch_simple('main')")

    foreign = [notice for notice in notices if notice != f"text checked as {w.hostile}, secret unread"]
    assert not foreign, f"the domain's check ran with another role's rights: {foreign}"
    assert w.su.execute("SELECT status FROM pggit.branches WHERE name = 'main'").fetchone()[0] == "ACTIVE"
