"""calculate_schema_hash: hex sha256 of the table's normalized structure,
deterministic across databases and sessions, changed by every structural change."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.extension.helpers import (
    assert_lends_no_rights,
    assert_nothing_written,
    scalar,
    schema_hash,
    snapshot,
)

BASE_DDL = [
    "CREATE SCHEMA s",
    "CREATE TYPE s.mood AS ENUM ('ok', 'sad')",
    "CREATE TABLE s.ref (id int PRIMARY KEY)",
    """CREATE TABLE s.t (
           id serial PRIMARY KEY,
           a int NOT NULL DEFAULT 0,
           b text,
           c varchar(10),
           m s.mood DEFAULT 'ok',
           r int REFERENCES s.ref (id),
           CONSTRAINT t_a_check CHECK (a >= 0)
       )""",
    "CREATE INDEX t_b_idx ON s.t (b)",
]

STRUCTURAL_CHANGES = {
    "add_column": ["ALTER TABLE s.t ADD COLUMN d int"],
    "drop_column": ["ALTER TABLE s.t DROP COLUMN b"],
    "column_type": ["ALTER TABLE s.t ALTER COLUMN a TYPE bigint"],
    "type_modifier": ["ALTER TABLE s.t ALTER COLUMN c TYPE varchar(20)"],
    "rename_column": ["ALTER TABLE s.t RENAME COLUMN b TO b2"],
    "column_order": ["ALTER TABLE s.t DROP COLUMN b, ADD COLUMN b text"],
    "set_not_null": ["ALTER TABLE s.t ALTER COLUMN b SET NOT NULL"],
    "drop_not_null": ["ALTER TABLE s.t ALTER COLUMN a DROP NOT NULL"],
    "set_default": ["ALTER TABLE s.t ALTER COLUMN b SET DEFAULT 'x'"],
    "change_default": ["ALTER TABLE s.t ALTER COLUMN a SET DEFAULT 1"],
    "drop_default": ["ALTER TABLE s.t ALTER COLUMN a DROP DEFAULT"],
    "add_check": ["ALTER TABLE s.t ADD CONSTRAINT t_b_check CHECK (b <> '')"],
    "drop_check": ["ALTER TABLE s.t DROP CONSTRAINT t_a_check"],
    "change_check": ["ALTER TABLE s.t DROP CONSTRAINT t_a_check, ADD CONSTRAINT t_a_check CHECK (a > 0)"],
    "add_unique": ["ALTER TABLE s.t ADD CONSTRAINT t_c_key UNIQUE (c)"],
    "add_foreign_key": ["ALTER TABLE s.t ADD CONSTRAINT t_a_fkey FOREIGN KEY (a) REFERENCES s.ref (id)"],
    "drop_foreign_key": ["ALTER TABLE s.t DROP CONSTRAINT t_r_fkey"],
    "drop_primary_key": ["ALTER TABLE s.t DROP CONSTRAINT t_pkey"],
    "add_index": ["CREATE INDEX t_c_idx ON s.t (c)"],
    "drop_index": ["DROP INDEX s.t_b_idx"],
    "change_index_columns": ["DROP INDEX s.t_b_idx", "CREATE INDEX t_b_idx ON s.t (b, c)"],
    "make_index_unique": ["DROP INDEX s.t_b_idx", "CREATE UNIQUE INDEX t_b_idx ON s.t (b)"],
    "make_index_partial": ["DROP INDEX s.t_b_idx", "CREATE INDEX t_b_idx ON s.t (b) WHERE b IS NOT NULL"],
}


def build(conn: psycopg.Connection) -> None:
    for statement in BASE_DDL:
        conn.execute(statement)


def test_hash_is_hex_sha256(conn):
    build(conn)
    assert re.fullmatch(r"[0-9a-f]{64}", schema_hash(conn, "s.t"))


@pytest.mark.parametrize("change", STRUCTURAL_CHANGES)
def test_hash_changes_with_every_structural_change(conn, change):
    build(conn)
    before = schema_hash(conn, "s.t")
    for statement in STRUCTURAL_CHANGES[change]:
        conn.execute(statement)
    assert schema_hash(conn, "s.t") != before


@pytest.mark.parametrize(
    "change",
    [["CREATE INDEX scratch_b_idx ON scratch (b)"], ["DROP INDEX scratch_a_idx"],
     ["DROP INDEX scratch_a_idx", "CREATE UNIQUE INDEX scratch_a_idx ON scratch (a)"]],
    ids=["add_index", "drop_index", "make_index_unique"],
)
def test_hash_of_a_temporary_table_changes_with_its_indexes(conn, change):
    """A temporary table's indexes are part of its structure too, although PostgreSQL prints their table as
    pg_temp.<table> and not under the session's own temporary schema. Positive control: a column change of the
    same table changes its hash."""
    conn.execute("CREATE TEMP TABLE scratch (a int, b text)")
    conn.execute("CREATE INDEX scratch_a_idx ON scratch (a)")
    before = schema_hash(conn, "scratch")
    assert before is not None
    for statement in change:
        conn.execute(statement)
    after = schema_hash(conn, "scratch")
    assert after is not None and after != before
    conn.execute("ALTER TABLE scratch ADD COLUMN c int")
    assert schema_hash(conn, "scratch") not in (None, after)


def test_hash_of_a_partition_changes_with_the_foreign_key_it_inherits(conn):
    """A foreign key added to a partitioned table is a constraint of each of its partitions too (PostgreSQL
    enforces it there): the partition's hash changes. The clones PostgreSQL hides in the referencing table, one
    per partition of a partitioned referenced table, are not structure of their own: a new partition of the
    referenced table leaves the referencing table's hash as it was."""
    for statement in ["CREATE SCHEMA s", "CREATE TABLE s.ref (id int PRIMARY KEY)",
                      "CREATE TABLE s.p (id int, r int) PARTITION BY RANGE (id)",
                      "CREATE TABLE s.p1 PARTITION OF s.p FOR VALUES FROM (0) TO (100)"]:
        conn.execute(statement)
    before = schema_hash(conn, "s.p1")
    assert before is not None
    conn.execute("ALTER TABLE s.p ADD CONSTRAINT p_r_fkey FOREIGN KEY (r) REFERENCES s.ref (id)")
    assert schema_hash(conn, "s.p1") not in (None, before)

    conn.execute("CREATE TABLE s.pref (id int PRIMARY KEY) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE s.pref1 PARTITION OF s.pref FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE s.child (id int, pref int REFERENCES s.pref (id))")
    child = schema_hash(conn, "s.child")
    conn.execute("CREATE TABLE s.pref2 PARTITION OF s.pref FOR VALUES FROM (100) TO (200)")
    assert schema_hash(conn, "s.child") == child


def test_hash_is_the_same_for_the_same_ddl_in_two_databases(conn, make_database):
    other = psycopg.connect(make_database(), autocommit=True)
    try:
        # Different OIDs in the second database: the hash must not depend on them.
        for _ in range(3):
            other.execute("CREATE TABLE filler (id serial PRIMARY KEY, x text)")
            other.execute("DROP TABLE filler")
        build(conn)
        build(other)
        for table in ("s.t", "s.ref"):
            assert schema_hash(conn, table) == schema_hash(other, table) is not None, table
    finally:
        other.close()


def test_hash_of_indexes_does_not_depend_on_the_tables_name_or_schema(conn):
    """An index's definition names its table, schema-qualified, but the hash depends on neither: two tables of
    different names in two schemas, with the same columns and indexes named alike, hash alike; so do two such
    partitioned tables, whose indexes PostgreSQL defines ON ONLY the table, and the same table in two schemas.
    Positive control: the indexes are part of the hash, one more index on one table tells the two apart."""
    conn.execute("CREATE SCHEMA a")
    conn.execute("CREATE SCHEMA b")
    for table in ("a.plain", "b.other_name"):
        conn.execute(f"CREATE TABLE {table} (id int, email text)")
        conn.execute(f"CREATE UNIQUE INDEX email_key ON {table} (lower(email)) WHERE id > 0")
    for table in ("a.events", "b.log"):
        conn.execute(f"CREATE TABLE {table} (id int, at date) PARTITION BY RANGE (at)")
        conn.execute(f"CREATE INDEX at_idx ON {table} (at)")
    for schema in ("a", "b"):
        conn.execute(f"CREATE TABLE {schema}.accounts (id int PRIMARY KEY, email text)")
        conn.execute(f"CREATE INDEX accounts_email_idx ON {schema}.accounts (email)")
    for first, second in [("a.plain", "b.other_name"), ("a.events", "b.log"), ("a.accounts", "b.accounts")]:
        assert schema_hash(conn, first) == schema_hash(conn, second) is not None, (first, second)
    conn.execute("CREATE INDEX id_idx ON b.other_name (id)")
    assert schema_hash(conn, "b.other_name") not in (None, schema_hash(conn, "a.plain"))


@pytest.mark.parametrize(
    ("search_path", "name"),
    [("public", "s.t"), ("s, public", "t"), ("s, public", "s.t"), ("pg_catalog", "s.t"), ('"$user"', "s.t")],
)
def test_hash_does_not_depend_on_search_path(conn, search_path, name):
    build(conn)
    reference = schema_hash(conn, "s.t")
    assert reference is not None
    conn.execute(f"SET search_path = {search_path}")
    assert schema_hash(conn, name) == reference


def test_hash_is_the_same_in_another_session(conn, connect):
    build(conn)
    assert schema_hash(connect(), "s.t") == schema_hash(conn, "s.t") is not None


def test_hash_ignores_rows(conn):
    build(conn)
    before = schema_hash(conn, "s.t")
    assert before is not None
    conn.execute("INSERT INTO s.ref VALUES (1)")
    conn.execute("INSERT INTO s.t (a, b, c, r) VALUES (1, 'x', 'y', 1)")
    assert schema_hash(conn, "s.t") == before


@pytest.mark.parametrize("name", ["missing_table", "no_such_schema.t", "public.missing_table", '"S"."T"'])
def test_hash_is_null_for_a_missing_table(conn, name):
    assert schema_hash(conn, name) is None
    # Positive control: once the table exists, the same call hashes it.
    schema = name.rpartition(".")[0]
    if schema:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"CREATE TABLE {name} (id int)")
    assert schema_hash(conn, name) is not None


def test_hash_resolves_quoted_mixed_case_names(conn):
    conn.execute('CREATE SCHEMA "My Schema"')
    conn.execute('CREATE TABLE "My Schema"."Odd Table" (id int)')
    conn.execute('SET search_path = "My Schema"')
    quoted = schema_hash(conn, '"My Schema"."Odd Table"')
    assert quoted is not None
    assert schema_hash(conn, '"Odd Table"') == quoted


def test_hash_writes_nothing(conn):
    build(conn)
    before = snapshot(conn)
    # Positive control: the call hashes the table (describing it is what could have written).
    assert schema_hash(conn, "s.t") is not None
    schema_hash(conn, "missing_table")
    assert_nothing_written(conn, before)


def test_the_index_definition_normalizer_runs_with_the_callers_rights(conn, connect, make_role):
    """pggit's index-line helper lends no rights: a role denied a function the helper calls (strpos) is denied
    it through the helper too (it would run with the extension owner's rights if it were SECURITY DEFINER)."""
    role = make_role()
    assert_lends_no_rights(conn, connect(user=role), role, builtin="strpos(text, text)",
                           probe="SELECT pg_catalog.strpos('ab', 'b')",
                           call="SELECT pggit._normalize_indexdef('CREATE INDEX i ON s.t USING btree (a)', 's', 't')",
                           answer="CREATE INDEX i ON <table> USING btree (a)")


def test_hash_of_a_partitioned_table_depends_on_its_partition_key(conn):
    """The partition key is structure: partitioned tables of the same columns and no partitions, partitioned by
    another method or another column, hash apart. Positive control: the same key on a table of another name
    hashes alike."""
    conn.execute("CREATE SCHEMA s")
    keys = {"by_range_at": "RANGE (at)", "by_list_at": "LIST (at)", "by_range_id": "RANGE (id)",
            "by_hash_id": "HASH (id)", "same_as_by_range_at": "RANGE (at)"}
    for name, key in keys.items():
        conn.execute(f"CREATE TABLE s.{name} (id int, at date) PARTITION BY {key}")
    hashes = {name: schema_hash(conn, f"s.{name}") for name in keys}
    assert hashes["same_as_by_range_at"] == hashes["by_range_at"] is not None
    distinct = {hashes[name] for name in ("by_range_at", "by_list_at", "by_range_id", "by_hash_id")}
    assert len(distinct) == 4, hashes


@pytest.mark.needs_control
@pytest.mark.slow
def test_hash_of_a_money_default_does_not_depend_on_the_sessions_monetary_locale(start_own_cluster, monkeypatch):
    """A money default prints by lc_monetary, which any session may set: a session in a German locale hashes a
    table with a money default as a session of the server's default locale does, and finds no drift. The machine
    may have no such locale installed: the test compiles de_DE.UTF-8 with localedef and starts a server that
    finds it through LOCPATH. Positive control: in that session money really prints another way."""
    localedef = shutil.which("localedef")
    if localedef is None or not Path("/usr/share/i18n/locales/de_DE").is_file():
        pytest.skip("needs localedef and the de_DE locale source to make a locale other than C")
    with tempfile.TemporaryDirectory(prefix="pggit-locales-") as directory:
        # Not pytest's temporary directory, whose parents only this user may enter: the server may run as
        # another account, and must read the compiled locale.
        locales = Path(directory)
        locales.chmod(0o755)
        compiled = subprocess.run([localedef, "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
                                  capture_output=True, text=True, timeout=120)
        if not (locales / "de_DE.UTF-8" / "LC_MONETARY").is_file():
            pytest.skip(f"localedef could not compile de_DE.UTF-8: {compiled.stderr.strip()}")
        monkeypatch.setenv("LOCPATH", str(locales))
        cluster = start_own_cluster()
        with cluster.connect() as c:
            c.execute("CREATE EXTENSION pggit")
            c.execute("CREATE TABLE prices (id int PRIMARY KEY, price money DEFAULT '12.50')")
            reference = schema_hash(c, "prices")
            assert reference is not None
            assert scalar(c, "SELECT 12.5::money::text") == "$12.50"
        with cluster.connect() as german:
            german.execute("SET lc_monetary = 'de_DE.UTF-8'")
            assert scalar(german, "SELECT 12.5::money::text") == "12,50 \u20ac"
            assert schema_hash(german, "prices") == reference
            assert scalar(german, "SELECT count(*) FROM pggit.detect_drift()") == 0
