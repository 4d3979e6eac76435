"""Install and uninstall: CREATE EXTENSION makes schema pggit and branch main,
DROP EXTENSION takes every object back, and the shape the contract fixes is there."""

from __future__ import annotations

import psycopg
import pytest

from pggit_chaos.nemesis import event_triggers
from tests.extension.helpers import INSUFFICIENT_PRIVILEGE, PGGIT_TABLES, expect_error, rows, scalar

CONTRACT_COLUMNS = {
    "branches": ["id", "name", "parent_branch_id", "head_commit_hash", "status", "created_at", "created_by"],
    "commits": ["id", "hash", "branch_id", "parent_commit_hash", "message", "author", "committed_at"],
    "objects": ["id", "object_type", "schema_name", "object_name", "version_major", "version_minor",
                "version_patch", "content_hash", "is_active"],
    "history": ["id", "object_id", "change_type", "severity", "command_tag", "old_version", "new_version",
                "created_at", "created_by"],
    "migrations": ["version", "description", "checksum", "up_sql", "down_sql", "status", "applied_at"],
}

# signature -> result type as pg_get_function_result shows it
CONTRACT_FUNCTIONS = {
    "generate_trinity_id()": "text",
    "commit_changes(text,text,text)": "text",
    "create_branch(text,text,boolean)": "integer",
    "delete_branch_simple(text)": "void",
    "get_version(text)": "TABLE(major integer, minor integer, patch integer, full_version text)",
    "increment_version(integer,integer,integer,text)": "TABLE(major integer, minor integer, patch integer, full_version text)",
    "calculate_schema_hash(text)": "text",
    "create_data_branch(text,text,text)": "text",
    "detect_drift()": "TABLE(schema_name text, object_name text, recorded_hash text, live_hash text)",
    "verify_integrity()": "TABLE(check_name text, ok boolean, detail text)",
    "apply_migration(text,text,text,text)": "boolean",
    "rollback_migration(text)": "boolean",
}


@pytest.fixture
def bare(make_database) -> psycopg.Connection:
    """A connection to a database without pggit."""
    with psycopg.connect(make_database(pggit=False), autocommit=True) as connection:
        yield connection


def extension_members(conn: psycopg.Connection) -> list[str]:
    """Every object that belongs to the pggit extension, described by pg_describe_object."""
    return [
        row[0]
        for row in conn.execute(
            """
            SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
              FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
             WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND x.extname = 'pggit'
             ORDER BY 1
            """
        )
    ]


def leftovers(conn: psycopg.Connection) -> dict[str, list]:
    """What a dropped pggit could leave behind, wherever it was put."""
    functions = "('" + "','".join(sig.split("(")[0] for sig in CONTRACT_FUNCTIONS) + "')"
    return {
        "schema": [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'pggit'")],
        "extension": [r[0] for r in conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pggit'")],
        "functions": [
            r[0] for r in conn.execute(
                f"SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname IN {functions}"
            )
        ],
        "event_triggers": [r[0] for r in conn.execute("SELECT evtname FROM pg_event_trigger")],
        "relations": [
            r[0] for r in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                "AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'"
            )
        ],
        "types": [
            r[0] for r in conn.execute(
                "SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            )
        ],
    }


# --------------------------------------------------------------------------
# CREATE EXTENSION
# --------------------------------------------------------------------------


def test_create_extension_creates_schema_pggit_and_branch_main(bare):
    bare.execute("CREATE EXTENSION pggit")
    assert scalar(bare, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pggit'") == 1
    assert rows(bare, "SELECT name, status, head_commit_hash FROM pggit.branches") == [
        {"name": "main", "status": "ACTIVE", "head_commit_hash": None}
    ]
    assert scalar(bare, "SELECT count(*) FROM pggit.commits") == 0


def test_create_extension_works_in_a_database_without_a_public_schema(bare):
    bare.execute("DROP SCHEMA public")
    bare.execute("CREATE EXTENSION pggit")
    assert scalar(bare, "SELECT name FROM pggit.branches") == "main"


def test_dropping_schema_public_does_not_take_pggit_with_it(bare):
    bare.execute("CREATE EXTENSION pggit")
    bare.execute("SELECT pggit.commit_changes('main', 'kept')")
    bare.execute("DROP SCHEMA public CASCADE")
    assert scalar(bare, "SELECT count(*) FROM pggit.commits") == 1


def test_extension_is_not_relocatable(bare):
    bare.execute("CREATE EXTENSION pggit")
    assert scalar(bare, "SELECT extrelocatable FROM pg_extension WHERE extname = 'pggit'") is False
    # Its objects live in schema pggit whatever the schema of the creating session.
    bare.execute("CREATE SCHEMA elsewhere")
    bare.execute("DROP EXTENSION pggit")
    bare.execute("SET search_path = elsewhere")
    bare.execute("CREATE EXTENSION pggit")
    assert scalar(bare, "SELECT to_regprocedure('pggit.commit_changes(text,text,text)') IS NOT NULL")
    assert scalar(bare, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'elsewhere'::regnamespace") == 0


def test_extension_needs_nothing_but_core_postgresql(bare):
    requires = scalar(
        bare,
        "SELECT requires FROM pg_available_extension_versions WHERE name = 'pggit' AND version = "
        "(SELECT default_version FROM pg_available_extensions WHERE name = 'pggit')",
    )
    assert set(requires or []) <= {"plpgsql"}
    bare.execute("CREATE EXTENSION pggit")
    installed = {r[0] for r in bare.execute("SELECT extname FROM pg_extension")}
    assert installed == {"plpgsql", "pggit"}


def test_extension_owns_its_schema_so_drop_can_remove_it(bare):
    bare.execute("CREATE EXTENSION pggit")
    assert "schema pggit" in extension_members(bare)


def test_only_the_owner_may_create_in_pggit_whatever_the_installers_default_privileges(make_database, make_role):
    """An installer whose default privileges give PUBLIC CREATE on every new schema still gets a pggit schema in
    which no other role may create an object. Positive controls: a schema the installer makes next to it does give
    the role CREATE, and the role keeps USAGE on pggit and reads its tables."""
    dsn = make_database(pggit=False)
    role = make_role()
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("ALTER DEFAULT PRIVILEGES GRANT CREATE ON SCHEMAS TO PUBLIC")
        owner.execute("CREATE EXTENSION pggit")
        owner.execute("CREATE SCHEMA neighbour")
        with psycopg.connect(dsn, autocommit=True, user=role) as as_role:
            as_role.execute("CREATE TABLE neighbour.allowed (id int)")
            assert scalar(as_role, "SELECT name FROM pggit.branches") == "main"
            expect_error(as_role, "CREATE TABLE pggit.planted (id int)",
                         sqlstate=INSUFFICIENT_PRIVILEGE, names=["pggit"])
        assert scalar(owner, "SELECT has_schema_privilege(%s, 'pggit', 'CREATE')", (role,)) is False
        assert scalar(owner, "SELECT to_regclass('pggit.planted')") is None


def test_install_creates_event_triggers_on_ddl_command_end_and_sql_drop(bare):
    bare.execute("CREATE EXTENSION pggit")
    names = event_triggers(bare)
    events = {
        r[0] for r in bare.execute("SELECT evtevent FROM pg_event_trigger WHERE evtname = ANY(%s)", (names,))
    }
    assert {"ddl_command_end", "sql_drop"} <= events


@pytest.mark.parametrize("table", PGGIT_TABLES)
def test_table_has_the_columns_the_contract_fixes(conn, table):
    present = {
        r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'pggit' AND table_name = %s",
            (table,),
        )
    }
    missing = [c for c in CONTRACT_COLUMNS[table] if c not in present]
    assert not missing, f"pggit.{table} lacks {missing}"


def test_trinity_id_sequence_exists(conn):
    assert scalar(conn, "SELECT relkind FROM pg_class WHERE oid = to_regclass('pggit.trinity_id_seq')") == "S"


@pytest.mark.parametrize("signature", CONTRACT_FUNCTIONS)
def test_function_has_the_contract_signature(conn, signature):
    oid = scalar(conn, "SELECT to_regprocedure(%s)::oid", (f"pggit.{signature}",))
    assert oid is not None, f"pggit.{signature} does not exist"
    assert scalar(conn, "SELECT pg_get_function_result(%s)", (oid,)) == CONTRACT_FUNCTIONS[signature]


@pytest.mark.parametrize(
    ("call", "defaults"),
    [
        ("pggit.commit_changes('main')", 2),
        ("pggit.create_branch('b')", 2),
        ("pggit.apply_migration('v', 'SELECT 1')", 2),
    ],
)
def test_optional_parameters_have_defaults(conn, call, defaults):
    name = call.split("(")[0].removeprefix("pggit.")
    assert scalar(
        conn,
        "SELECT pronargdefaults FROM pg_proc WHERE proname = %s AND pronamespace = 'pggit'::regnamespace",
        (name,),
    ) == defaults
    conn.execute(f"SELECT {call}")


# --------------------------------------------------------------------------
# DROP EXTENSION
# --------------------------------------------------------------------------


def test_drop_extension_leaves_nothing_behind(bare):
    empty = leftovers(bare)
    bare.execute("CREATE EXTENSION pggit")
    # Work that creates rows and sequences values must not keep anything alive either.
    bare.execute("CREATE TABLE tracked (id int)")
    bare.execute("SELECT pggit.commit_changes('main', 'before drop')")
    bare.execute("DROP TABLE tracked")
    bare.execute("DROP EXTENSION pggit")
    assert leftovers(bare) == empty


def test_ddl_works_untracked_after_drop_extension(bare):
    bare.execute("CREATE EXTENSION pggit")
    bare.execute("DROP EXTENSION pggit")
    bare.execute("CREATE TABLE after_drop (id int)")
    bare.execute("ALTER TABLE after_drop ADD COLUMN b int")
    bare.execute("DROP TABLE after_drop")


def test_install_again_after_drop_works(bare):
    bare.execute("CREATE EXTENSION pggit")
    bare.execute("SELECT pggit.commit_changes('main', 'first life')")
    bare.execute("DROP EXTENSION pggit")
    bare.execute("CREATE EXTENSION pggit")
    assert rows(bare, "SELECT name, head_commit_hash FROM pggit.branches") == [
        {"name": "main", "head_commit_hash": None}
    ]
    bare.execute("CREATE TABLE second_life (id int)")
    assert scalar(bare, "SELECT full_version FROM pggit.get_version('second_life')") == "1.0.0"


def test_a_record_written_without_a_version_starts_at_1_0_0(conn):
    """pggit.objects gives a record the version of a new table, 1.0.0, when its writer names none (as a superuser's
    record of another kind may). Positive control: a version the writer gives is kept."""
    conn.execute("INSERT INTO pggit.objects (object_type, schema_name, object_name) VALUES ('FUNCTION', 'public', 'f')")
    conn.execute("INSERT INTO pggit.objects (object_type, schema_name, object_name, version_major) "
                 "VALUES ('FUNCTION', 'public', 'g', 7)")
    assert rows(conn, "SELECT object_name, version_major, version_minor, version_patch FROM pggit.objects "
                      "WHERE object_type = 'FUNCTION' ORDER BY object_name") == [
        {"object_name": "f", "version_major": 1, "version_minor": 0, "version_patch": 0},
        {"object_name": "g", "version_major": 7, "version_minor": 0, "version_patch": 0},
    ]


def test_only_a_live_table_record_takes_the_oid_of_the_table_of_its_name(conn):
    """A live TABLE record written into pggit.objects takes the OID of the table that now has its name (none: NULL),
    so a stale OID never makes another table look like it. A record of another kind, or a dropped table's record,
    keeps the OID it was written with, though a table of its name exists. Positive control: the live TABLE record's
    stale OID is replaced."""
    conn.execute("CREATE TABLE orders (id int)")
    last = scalar(conn, "SELECT max(id) FROM pggit.objects")
    conn.execute("INSERT INTO pggit.objects (object_type, schema_name, object_name, is_active, table_oid) VALUES "
                 "('FUNCTION', 'public', 'orders', true, 1), ('TABLE', 'public', 'orders', false, 2), "
                 "('TABLE', 'public', 'ghost', true, 3)")
    assert rows(conn, "SELECT object_type, object_name, is_active, table_oid FROM pggit.objects WHERE id > %s "
                      "ORDER BY id", (last,)) == [
        {"object_type": "FUNCTION", "object_name": "orders", "is_active": True, "table_oid": 1},
        {"object_type": "TABLE", "object_name": "orders", "is_active": False, "table_oid": 2},
        {"object_type": "TABLE", "object_name": "ghost", "is_active": True, "table_oid": None},
    ]
