"""Data branches are independent: a copy made by create_data_branch shares no sequence, default or dependency with its source.

The contract: either table can be altered or dropped without the other.
The sources here carry everything that could tie a copy to them: a serial
column (a sequence the source owns), an identity column, a default calling
a sequence of its own (``nextval`` on a sequence nobody owns), a CHECK
constraint and a default calling functions, a foreign key to a parent
table, and a view and a foreign key of another table that depend on the
source. After branching, the source's own dependents are removed and the
source dropped with plain ``DROP TABLE`` (no CASCADE): the copy lives on
with its rows, and its sequences go on from where the copy left them,
whatever happens to the source's sequences. And the other way round.
"""

from __future__ import annotations

import psycopg
import pytest
from pggit_chaos.client import scalar
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.integrity]

COPY = "orders__feature/split"
ROWS = 5

SCHEMA = """
CREATE FUNCTION positive(numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0';
CREATE FUNCTION default_region() RETURNS text LANGUAGE sql STABLE AS $$SELECT 'eu'$$;
CREATE SEQUENCE invoice_numbers START 1000;
CREATE TABLE customers (id int PRIMARY KEY);
INSERT INTO customers SELECT generate_series(1, 3);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    line bigint GENERATED ALWAYS AS IDENTITY,
    invoice text NOT NULL DEFAULT 'INV-' || nextval('invoice_numbers'),
    customer int REFERENCES customers (id),
    total numeric CHECK (positive(total)),
    region text DEFAULT default_region(),
    doubled numeric GENERATED ALWAYS AS (total * 2) STORED
);
INSERT INTO orders (customer, total) SELECT 1 + g % 3, g FROM generate_series(1, 5) g;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 2;
CREATE TABLE shipments (order_id int REFERENCES orders (id));
"""


def next_row(conn: psycopg.Connection, table: str) -> tuple:
    """Insert a row with every default, and return (id, line, invoice) as the table's sequences made them."""
    return conn.execute(sql.SQL("INSERT INTO {} (customer, total) VALUES (1, 9) RETURNING id, line, invoice")
                        .format(sql.Identifier(table))).fetchone()


def rows(conn: psycopg.Connection, table: str) -> list[tuple]:
    return conn.execute(sql.SQL("SELECT id, line, invoice, customer, total, region, doubled FROM {} ORDER BY id")
                        .format(sql.Identifier(table))).fetchall()


def shared_dependencies(conn: psycopg.Connection, copy: str, source: str) -> list[tuple]:
    """pg_depend rows from the copy (or anything of it: defaults, constraints, indexes, sequences it owns)
    to the source or to a sequence the source uses."""
    return conn.execute("""
        WITH copy_objects AS (
            SELECT 'pg_class'::regclass AS classid, %(copy)s::regclass::oid AS objid
            UNION ALL SELECT 'pg_attrdef'::regclass, ad.oid FROM pg_attrdef ad WHERE ad.adrelid = %(copy)s::regclass
            UNION ALL SELECT 'pg_constraint'::regclass, c.oid FROM pg_constraint c WHERE c.conrelid = %(copy)s::regclass
            UNION ALL SELECT 'pg_class'::regclass, i.indexrelid FROM pg_index i WHERE i.indrelid = %(copy)s::regclass
            UNION ALL SELECT 'pg_class'::regclass, d.objid FROM pg_depend d
                       WHERE d.refobjid = %(copy)s::regclass AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        ), source_objects AS (
            SELECT %(source)s::regclass::oid AS oid
            UNION ALL SELECT d.refobjid FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
                       JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
                       WHERE d.classid = 'pg_attrdef'::regclass AND ad.adrelid = %(source)s::regclass
        )
        SELECT d.classid::regclass::text, d.objid, d.refobjid::regclass::text, d.deptype
          FROM pg_depend d JOIN copy_objects c ON c.classid = d.classid AND c.objid = d.objid
         WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM source_objects)
    """, {"copy": sql.Identifier(copy).as_string(conn), "source": sql.Identifier(source).as_string(conn)}).fetchall()


@pytest.fixture
def branched(sync_conn: psycopg.Connection) -> psycopg.Connection:
    conn = sync_conn
    conn.autocommit = True
    conn.execute(SCHEMA)
    assert scalar(conn, "SELECT pggit.create_data_branch('orders', 'main', 'feature/split')") == COPY
    return conn


def test_the_copy_holds_the_rows_and_shares_nothing_with_its_source(branched):
    """Positive control first: the copy has every row, generated values included; then no dependency of
    the copy points at the source or at a sequence the source's defaults use."""
    conn = branched
    assert len(rows(conn, COPY)) == ROWS and rows(conn, COPY) == rows(conn, "orders")
    assert shared_dependencies(conn, COPY, "orders") == []


def test_the_source_can_be_dropped_without_cascade_and_the_copy_lives_on(branched):
    """DROP TABLE orders (its own view and referencing table removed first, no CASCADE) succeeds; the copy
    keeps its rows and its defaults, and its next values continue after the copied rows."""
    conn = branched
    copied = rows(conn, COPY)
    conn.execute("DROP VIEW big_orders")
    conn.execute("DROP TABLE shipments")
    conn.execute("DROP TABLE orders")
    conn.execute("DROP SEQUENCE invoice_numbers")
    assert scalar(conn, "SELECT to_regclass('orders')") is None
    assert rows(conn, COPY) == copied
    new_id, new_line, invoice = next_row(conn, COPY)
    assert new_id == ROWS + 1 and new_line == ROWS + 1 and invoice == f"INV-{1000 + ROWS}"
    assert scalar(conn, "SELECT count(*) FROM pggit.detect_drift()") == 0


def test_the_sources_sequences_do_not_move_the_copys_next_values(branched):
    """Restarting and advancing every sequence of the source changes the source's next values (positive
    control) and not the copy's."""
    conn = branched
    conn.execute("ALTER SEQUENCE orders_id_seq RESTART WITH 500")
    conn.execute("ALTER TABLE orders ALTER COLUMN line RESTART WITH 700")
    conn.execute("ALTER SEQUENCE invoice_numbers RESTART WITH 9000")
    assert next_row(conn, "orders") == (500, 700, "INV-9000")
    assert next_row(conn, COPY) == (ROWS + 1, ROWS + 1, f"INV-{1000 + ROWS}")
    # And the other way: the copy's inserts did not use up the source's numbers.
    assert next_row(conn, "orders") == (501, 701, "INV-9001")


def test_the_copy_can_be_dropped_and_the_source_is_untouched(branched):
    """DROP TABLE of the copy leaves the source, its rows, its dependents and its sequences as they were."""
    conn = branched
    before = rows(conn, "orders")
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(COPY)))
    assert rows(conn, "orders") == before
    assert scalar(conn, "SELECT count(*) FROM big_orders") == 3
    assert next_row(conn, "orders") == (ROWS + 1, ROWS + 1, f"INV-{1000 + ROWS}")


def test_the_copy_can_be_altered_without_the_source(branched):
    """Dropping the copy's serial column and defaults leaves the source's columns, defaults and sequences."""
    conn = branched
    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN id, DROP COLUMN invoice").format(sql.Identifier(COPY)))
    assert next_row(conn, "orders") == (ROWS + 1, ROWS + 1, f"INV-{1000 + ROWS}")


def test_a_copy_never_silently_keeps_a_sequence_whose_name_has_a_backslash(sync_conn):
    """A default calling a sequence whose name holds a backslash prints it in a plain string literal
    (``'public."back\\slash"'::regclass``), where quote_literal would write an E'' literal. create_data_branch
    either gives the copy a sequence of its own, or refuses (0A000) and leaves no copy: it never makes a copy
    whose default still calls the source's sequence. Positive controls: the same table with a plainly named
    sequence gets a copy that shares nothing, and a copy made by hand with LIKE ... INCLUDING ALL is found
    sharing the sequence."""
    conn = sync_conn
    conn.autocommit = True
    for name, sequence in (("plain", "plain_numbers"), ("tricky", "back\\slash")):
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(sequence)))
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY DEFAULT nextval({}), v int)")
                     .format(sql.Identifier(name), sql.Literal(sql.Identifier(sequence).as_string(conn))))
        conn.execute(sql.SQL("INSERT INTO {} (v) SELECT generate_series(1, 3)").format(sql.Identifier(name)))

    assert scalar(conn, "SELECT pggit.create_data_branch('plain', 'main', 'feature')") == "plain__feature"
    assert shared_dependencies(conn, "plain__feature", "plain") == []
    conn.execute("CREATE TABLE by_hand (LIKE tricky INCLUDING ALL)")
    assert shared_dependencies(conn, "by_hand", "tricky") != []

    try:
        copy = scalar(conn, "SELECT pggit.create_data_branch('tricky', 'main', 'feature')")
    except psycopg.Error as refused:
        assert refused.sqlstate == "0A000", refused
        assert scalar(conn, "SELECT to_regclass('tricky__feature')") is None
    else:
        assert copy == "tricky__feature"
        assert shared_dependencies(conn, copy, "tricky") == []
        conn.execute(sql.SQL("ALTER SEQUENCE {} RESTART WITH 500").format(sql.Identifier("back\\slash")))
        assert scalar(conn, "INSERT INTO tricky__feature (v) VALUES (9) RETURNING id") == 4


@pytest.mark.needs_control
@pytest.mark.slow
def test_a_sequence_sharing_an_oid_with_a_function_a_default_calls_is_not_taken_for_its_sequence(start_own_cluster):
    """Object IDs are unique within one catalog only: once the cluster's OID counter wraps around, a new sequence
    can get the OID of a function that a column default calls (pg_resetwal -o brings the counter there at once).
    create_data_branch gives the copy sequences of its own only for the sequences its defaults call: the column
    whose default calls that function keeps its default and gets no sequence, and the unrelated sequence stays
    as it was. Positive control: the serial column of the same table gets a sequence of its own."""
    cluster = start_own_cluster()
    with cluster.connect() as conn:
        conn.execute("CREATE EXTENSION pggit")
        conn.execute("CREATE FUNCTION next_code() RETURNS int LANGUAGE sql AS 'SELECT 7'")
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, code int DEFAULT next_code(), v int)")
        conn.execute("INSERT INTO items (v) SELECT generate_series(1, 3)")
        function_oid = scalar(conn, "SELECT 'next_code()'::regprocedure::oid")
    cluster.set_next_oid(function_oid)
    with cluster.connect() as conn:
        conn.execute("CREATE SEQUENCE unrelated START 40")
        assert scalar(conn, "SELECT 'unrelated'::regclass::oid") == function_oid
        copy = scalar(conn, "SELECT pggit.create_data_branch('items', 'main', 'feature')")
        assert copy == "items__feature"
        assert scalar(conn, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
                            "WHERE adrelid = 'items__feature'::regclass AND adnum = 2") == "next_code()"
        assert scalar(conn, "SELECT pg_get_serial_sequence('items__feature', 'code')") is None
        own = scalar(conn, "SELECT pg_get_serial_sequence('items__feature', 'id')")
        assert own == "public.items__feature_id_seq"
        assert conn.execute("INSERT INTO items__feature (v) VALUES (9) RETURNING id, code").fetchone() == (4, 7)
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relkind = 'S' AND relname LIKE 'items__feature%'"
                            ).fetchone()[0] == 1
        assert scalar(conn, "SELECT nextval('unrelated')") == 40
