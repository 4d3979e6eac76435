"""create_data_branch: a copy of a table for a branch, named <table>__<branch>, quoted, idempotent."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.extension.helpers import (
    INVALID_PARAMETER_VALUE,
    assert_nothing_written,
    create_branch,
    expect_error,
    scalar,
    snapshot,
)


def columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple]:
    return conn.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
        (schema, table),
    ).fetchall()


def table_rows(conn: psycopg.Connection, schema: str, table: str) -> list[tuple]:
    return conn.execute(
        sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(sql.Identifier(schema), sql.Identifier(table))
    ).fetchall()


def exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return scalar(
        conn,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    ) == 1


def data_branch(conn: psycopg.Connection, table: str, to_branch: str, from_branch: str = "main") -> str:
    return scalar(conn, "SELECT pggit.create_data_branch(%s, %s, %s)", (table, from_branch, to_branch))


@pytest.fixture
def orders(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(10, 2), note varchar(20))"
    )
    conn.execute("INSERT INTO orders SELECT g, 'c' || g, g * 1.5, NULL FROM generate_series(1, 50) g")
    create_branch(conn, "feature")
    return conn


def test_data_branch_is_named_table__branch(orders):
    assert data_branch(orders, "orders", "feature") == "orders__feature"
    assert exists(orders, "public", "orders__feature")


def test_data_branch_has_the_same_columns(orders):
    data_branch(orders, "orders", "feature")
    assert columns(orders, "public", "orders__feature") == columns(orders, "public", "orders")


def test_data_branch_copies_the_rows(orders):
    data_branch(orders, "orders", "feature")
    assert table_rows(orders, "public", "orders__feature") == table_rows(orders, "public", "orders")


def test_data_branch_is_a_copy_the_original_does_not_see_changes(orders):
    data_branch(orders, "orders", "feature")
    original = table_rows(orders, "public", "orders")
    orders.execute("UPDATE orders__feature SET customer = 'changed'")
    orders.execute("DELETE FROM orders__feature WHERE id > 10")
    assert table_rows(orders, "public", "orders") == original


def test_data_branch_is_idempotent(orders):
    first = data_branch(orders, "orders", "feature")
    second = data_branch(orders, "orders", "feature")
    assert first == second
    assert scalar(orders, "SELECT count(*) FROM orders__feature") == 50
    assert scalar(orders, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND starts_with(relname, 'orders__feature')") == 1


def test_data_branch_goes_into_the_tables_schema(conn):
    conn.execute("CREATE SCHEMA sales")
    conn.execute("CREATE TABLE sales.items (id int, name text)")
    conn.execute("INSERT INTO sales.items VALUES (1, 'one'), (2, 'two')")
    create_branch(conn, "feature")
    data_branch(conn, "sales.items", "feature")
    assert exists(conn, "sales", "items__feature")
    assert not exists(conn, "public", "items__feature")
    assert table_rows(conn, "sales", "items__feature") == [(1, "one"), (2, "two")]


def test_data_branch_quotes_names_that_need_quoting(conn):
    conn.execute('CREATE SCHEMA "Odd Schema"')
    conn.execute('CREATE TABLE "Odd Schema"."Weird ""Name""" (id int, "Mixed Col" text)')
    conn.execute('INSERT INTO "Odd Schema"."Weird ""Name""" VALUES (1, \'a\'), (2, \'b\')')
    create_branch(conn, "feature/x-1")
    name = data_branch(conn, '"Odd Schema"."Weird ""Name"""', "feature/x-1")
    assert name == 'Weird "Name"__feature/x-1'
    assert exists(conn, "Odd Schema", 'Weird "Name"__feature/x-1')
    assert columns(conn, "Odd Schema", name) == columns(conn, "Odd Schema", 'Weird "Name"')
    assert table_rows(conn, "Odd Schema", name) == [(1, "a"), (2, "b")]


def test_a_table_named_like_sql_is_copied_not_executed(conn):
    conn.execute("CREATE TABLE victim (id int)")
    name = "x(id int); DROP TABLE victim; CREATE TABLE y"
    conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(name)))
    conn.execute(sql.SQL("INSERT INTO {} VALUES (7)").format(sql.Identifier(name)))
    create_branch(conn, "feature")
    quoted = sql.Identifier(name).as_string(conn)
    assert data_branch(conn, quoted, "feature") == f"{name}__feature"
    assert scalar(conn, "SELECT to_regclass('public.victim') IS NOT NULL")
    assert table_rows(conn, "public", f"{name}__feature") == [(7,)]
    assert not exists(conn, "public", "x")


def test_data_branch_of_a_branch_copies_that_branchs_copy(orders):
    data_branch(orders, "orders", "feature")
    orders.execute("DELETE FROM orders__feature WHERE id > 5")
    create_branch(orders, "feature-child", "feature")
    assert data_branch(orders, "orders", "feature-child", from_branch="feature") == "orders__feature-child"
    assert scalar(orders, 'SELECT count(*) FROM "orders__feature-child"') == 5


def test_data_branch_of_a_missing_table_is_a_clear_error(conn):
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.create_data_branch('no_such_table', 'main', 'feature')",
        sqlstate="42P01", names=["no_such_table"],
    )
    assert_nothing_written(conn, before)


@pytest.mark.parametrize(
    ("kind", "body"),
    [("VIEW", "AS SELECT 1 AS id"), ("MATERIALIZED VIEW", "AS SELECT 1 AS id"), ("SEQUENCE", "")],
    ids=["view", "materialized_view", "sequence"],
)
def test_a_relation_of_the_copys_name_that_is_not_a_table_is_refused(orders, kind, body):
    """A relation named like the copy that is no table (made by the caller itself, so ownership is not what
    refuses it) is not returned as the copy: 42P07, the message names it, it is left as it was and nothing
    is written. Positive control: once it is gone, the same call makes the copy."""
    orders.execute(f"CREATE {kind} orders__feature {body}")
    relkind = scalar(orders, "SELECT relkind FROM pg_class WHERE oid = 'orders__feature'::regclass")
    before = snapshot(orders)
    expect_error(orders, "SELECT pggit.create_data_branch('orders', 'main', 'feature')",
                 sqlstate="42P07", names=["orders__feature"])
    assert_nothing_written(orders, before)
    assert scalar(orders, "SELECT relkind FROM pg_class WHERE oid = 'orders__feature'::regclass") == relkind
    orders.execute(f"DROP {kind} orders__feature")
    assert data_branch(orders, "orders", "feature") == "orders__feature"
    assert scalar(orders, "SELECT relkind FROM pg_class WHERE oid = 'orders__feature'::regclass") == "r"
    assert table_rows(orders, "public", "orders__feature") == table_rows(orders, "public", "orders")


@pytest.mark.parametrize("table", [None, "", "   ", "\t\n"], ids=["null", "empty", "spaces", "tab_newline"])
def test_a_null_or_blank_table_name_is_invalid_input_not_a_missing_table(conn, table):
    """The reference's 22023 for a NULL or blank table name in create_data_branch, not 42P01: the name is bad
    input, not a table that could exist. Positive controls: a well-formed name of no table is 42P01, and a
    real table is copied."""
    conn.execute("CREATE TABLE orders (id int)")
    before = snapshot(conn)
    expect_error(conn, "SELECT pggit.create_data_branch(%s, 'main', 'feature')", (table,),
                 sqlstate=INVALID_PARAMETER_VALUE)
    assert_nothing_written(conn, before)
    assert scalar(conn, "SELECT to_regclass('orders__feature') IS NULL")
    expect_error(conn, "SELECT pggit.create_data_branch('no_such_table', 'main', 'feature')", sqlstate="42P01")
    assert data_branch(conn, "orders", "feature") == "orders__feature"


def test_data_branch_name_over_63_bytes_is_refused_not_truncated(conn):
    conn.execute("CREATE TABLE orders_with_a_rather_long_name (id int)")
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.create_data_branch('orders_with_a_rather_long_name', 'main', %s)",
        ("feature-" + "x" * 40,), sqlstate=INVALID_PARAMETER_VALUE,
    )
    assert_nothing_written(conn, before)
    assert scalar(
        conn, "SELECT count(*) FROM pg_class WHERE starts_with(relname, 'orders_with_a_rather_long_name__')"
    ) == 0


@pytest.mark.parametrize(
    ("table", "to_branch"),
    [
        ("orders", 'x"; DROP TABLE victim; --'),
        ("orders", "x; DROP TABLE victim; --"),
        ("orders; DROP TABLE victim; --", "feature"),
        ('orders"; DROP TABLE victim; --', "feature"),
        ("orders", "x') ; DROP TABLE victim; --"),
    ],
    ids=["branch_double_quote", "branch_semicolon", "table_semicolon", "table_double_quote", "branch_quote_paren"],
)
def test_an_injection_attempt_in_a_name_does_not_execute(orders, table, to_branch):
    orders.execute("CREATE TABLE victim (id int)")
    orders.execute("INSERT INTO victim VALUES (42)")
    try:
        data_branch(orders, table, to_branch)
    except psycopg.Error as exc:
        # A refusal is fine, as long as it is a clean one and not a syntax error of spliced SQL.
        assert exc.sqlstate != "42601", f"the name reached the SQL text unquoted: {exc}"
    assert scalar(orders, "SELECT to_regclass('public.victim') IS NOT NULL")
    assert scalar(orders, "SELECT count(*) FROM victim") == 1
    # Positive control: the same call with plain names makes the copy, rows and all.
    assert data_branch(orders, "orders", "feature") == "orders__feature"
    assert len(table_rows(orders, "public", "orders__feature")) == 50


@pytest.mark.parametrize(
    ("from_branch", "to_branch"),
    [
        ("main", "bad name"),
        ("main", "a..b"),
        ("main", "x~y"),
        ("main", "ends.lock"),
        ("main", ""),
        ("main", None),
        ("bad name", "feature"),
        (None, "feature"),
    ],
    ids=["to_space", "to_dot_dot", "to_tilde", "to_dot_lock", "to_empty", "to_null", "from_space", "from_null"],
)
def test_a_branch_name_that_breaks_the_rules_is_refused(orders, from_branch, to_branch):
    """Both branch names of create_data_branch must pass the branch-name rules: 22023, the message names a bad
    name, and no copy is made. Positive control: the same table copies for a valid name."""
    before = snapshot(orders)
    bad = to_branch if from_branch == "main" else from_branch
    expect_error(orders, "SELECT pggit.create_data_branch('orders', %s, %s)", (from_branch, to_branch),
                 sqlstate=INVALID_PARAMETER_VALUE, names=[bad] if bad else [])
    assert_nothing_written(orders, before)
    assert scalar(orders, "SELECT count(*) FROM pg_class WHERE starts_with(relname, 'orders__')") == 0
    assert data_branch(orders, "orders", "feature") == "orders__feature"


def test_a_copys_sequence_takes_the_next_free_numbered_name(conn):
    """A copy's own sequence is named like a serial column's, <copy>_<column>_seq; when that name is taken it is
    numbered, <copy>_<column>1_seq, and whatever held the name is left alone. Positive control: with the name
    free, the copy of another table gets the plain name."""
    conn.execute("CREATE TABLE tickets (id serial PRIMARY KEY, note text)")
    conn.execute("INSERT INTO tickets (note) VALUES ('a'), ('b'), ('c')")
    conn.execute("CREATE SEQUENCE tickets__feature_id_seq START WITH 100")
    conn.execute("CREATE TABLE notes (id serial PRIMARY KEY)")
    data_branch(conn, "tickets", "feature")
    data_branch(conn, "notes", "feature")
    assert scalar(conn, "SELECT pg_get_serial_sequence('tickets__feature', 'id')") == "public.tickets__feature_id1_seq"
    assert scalar(conn, "SELECT pg_get_serial_sequence('notes__feature', 'id')") == "public.notes__feature_id_seq"
    assert scalar(conn, "INSERT INTO tickets__feature (note) VALUES ('d') RETURNING id") == 4
    assert scalar(conn, "SELECT nextval('tickets__feature_id_seq')") == 100


def test_a_copys_sequence_has_its_sources_options(conn):
    """The sequence a copy gets for its serial column is made with the options of the source's sequence (type,
    increment, bounds, start, cache, cycle), not those of some other sequence of the database, and goes on from
    the source's last value by the source's step. Positive control: the source's options are none of a new sequence's
    defaults, so the copy cannot have them by chance."""
    options = "seqtypid::regtype::text, seqincrement, seqmin, seqmax, seqstart, seqcache, seqcycle"
    conn.execute("CREATE TABLE tickets (id serial PRIMARY KEY, note text)")
    conn.execute("ALTER SEQUENCE tickets_id_seq AS smallint INCREMENT BY 7 MINVALUE 5 MAXVALUE 30000 "
                 "START WITH 12 RESTART CACHE 4 CYCLE")
    conn.execute("INSERT INTO tickets (note) VALUES ('a'), ('b')")
    conn.execute("CREATE SEQUENCE fresh_defaults")
    source = conn.execute(f"SELECT {options} FROM pg_sequence WHERE seqrelid = 'tickets_id_seq'::regclass").fetchone()
    assert source == ("smallint", 7, 5, 30000, 12, 4, True)
    defaults = conn.execute(f"SELECT {options} FROM pg_sequence WHERE seqrelid = 'fresh_defaults'::regclass").fetchone()
    assert all(mine != default for mine, default in zip(source, defaults)), (source, defaults)
    data_branch(conn, "tickets", "feature")
    own = scalar(conn, "SELECT pg_get_serial_sequence('tickets__feature', 'id')")
    assert own == "public.tickets__feature_id_seq"
    assert conn.execute(f"SELECT {options} FROM pg_sequence WHERE seqrelid = %s::regclass", (own,)).fetchone() == source
    # The source's last value is the end of the values this session cached (12, 19, 26, 33).
    assert scalar(conn, "SELECT last_value FROM tickets_id_seq") == 33
    assert scalar(conn, "INSERT INTO tickets__feature (note) VALUES ('c') RETURNING id") == 40


def test_a_copy_made_with_only_usage_on_the_sequence_continues_after_the_copied_rows(conn, connect, make_role):
    """A caller with USAGE but not SELECT on a default's sequence (enough to insert) still gives the copy a
    sequence in the source's state: the copy's next value follows the copied rows. Positive controls: the role
    really cannot read the source sequence, and the source's own next value is unaffected."""
    role = make_role()
    ident = sql.Identifier(role)
    conn.execute("CREATE SCHEMA shared")
    conn.execute("CREATE TABLE shared.tickets (id serial PRIMARY KEY, note text)")
    conn.execute("INSERT INTO shared.tickets (note) VALUES ('a'), ('b'), ('c')")
    for grant in ["GRANT USAGE ON SCHEMA pggit TO {}",
                  "GRANT EXECUTE ON FUNCTION pggit.create_data_branch(text, text, text) TO {}",
                  "GRANT USAGE, CREATE ON SCHEMA shared TO {}",
                  "GRANT SELECT ON shared.tickets TO {}",
                  "GRANT USAGE ON SEQUENCE shared.tickets_id_seq TO {}"]:
        conn.execute(sql.SQL(grant).format(ident))
    as_role = connect(user=role)
    expect_error(as_role, "SELECT last_value FROM shared.tickets_id_seq", sqlstate="42501")
    assert data_branch(as_role, "shared.tickets", "feature") == "tickets__feature"
    assert scalar(as_role, "INSERT INTO shared.tickets__feature (note) VALUES ('d') RETURNING id") == 4
    assert scalar(conn, "INSERT INTO shared.tickets (note) VALUES ('e') RETURNING id") == 4


def test_create_branch_with_data_leaves_out_a_table_the_caller_may_not_read(conn, connect, make_role):
    """create_branch(..., p_copy_data => true) by a role that may read one tracked table of a schema but not its
    neighbour copies the first and leaves the second out (the branch shares main's data for it) instead of
    failing on it. Positive controls: the role really cannot read the neighbour, and the table it may read is
    copied with its rows."""
    role = make_role()
    ident = sql.Identifier(role)
    conn.execute("CREATE SCHEMA shared")
    conn.execute("CREATE TABLE shared.open (id int PRIMARY KEY, v text)")
    conn.execute("CREATE TABLE shared.secret (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO shared.open VALUES (1, 'a'), (2, 'b')")
    conn.execute("INSERT INTO shared.secret VALUES (1, 'hidden')")
    for grant in ["GRANT USAGE ON SCHEMA pggit TO {}",
                  "GRANT EXECUTE ON FUNCTION pggit.create_branch(text, text, boolean) TO {}",
                  "GRANT EXECUTE ON FUNCTION pggit._create_branch_record(text, text) TO {}",
                  "GRANT EXECUTE ON FUNCTION pggit.create_data_branch(text, text, text) TO {}",
                  "GRANT USAGE, CREATE ON SCHEMA shared TO {}",
                  "GRANT SELECT ON shared.open TO {}"]:
        conn.execute(sql.SQL(grant).format(ident))
    as_role = connect(user=role)
    expect_error(as_role, "SELECT * FROM shared.secret", sqlstate="42501")
    branch_id = scalar(as_role, "SELECT pggit.create_branch('feature', 'main', true)")
    assert scalar(conn, "SELECT name FROM pggit.branches WHERE id = %s", (branch_id,)) == "feature"
    assert table_rows(conn, "shared", "open__feature") == [(1, "a"), (2, "b")]
    assert not exists(conn, "shared", "secret__feature")
