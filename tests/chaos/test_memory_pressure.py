"""Resource chaos: wide tables, big messages and the smallest work_mem.

pggit describes a table as text (one line per column, constraint and index),
hashes it and compares column lists on every ALTER; it sorts and joins its
own tables in ``verify_integrity`` and ``detect_drift``. Wide tables make
those descriptions large, and a tiny ``work_mem`` makes every sort and hash
spill to disk. Neither may change a result.
"""

from __future__ import annotations

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import schema_hash, version
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.resource]

# PostgreSQL's hard limit on the columns of a table (dropped columns count too).
MAX_COLUMNS = 1600
# The smallest work_mem PostgreSQL accepts.
SMALLEST_WORK_MEM = "64kB"

# Column types with their format_type() spelling, cycled through to make wide tables.
WIDE_TYPES = [
    ("int", "integer"),
    ("bigint NOT NULL DEFAULT 0", "bigint"),
    ("text", "text"),
    ("varchar(40)", "character varying(40)"),
    ("numeric(12,2) DEFAULT 1.50", "numeric(12,2)"),
    ("boolean", "boolean"),
    ("timestamptz DEFAULT now()", "timestamp with time zone"),
    ("jsonb", "jsonb"),
    ("uuid", "uuid"),
    ("bytea", "bytea"),
    ("date", "date"),
    ("double precision", "double precision"),
]


def _wide_table_sql(table: str, columns: int, schema: str | None = None) -> sql.Composed:
    parts = [
        sql.SQL("{} {}").format(sql.Identifier(f"c{i:04d}"), sql.SQL(WIDE_TYPES[i % len(WIDE_TYPES)][0]))
        for i in range(columns)
    ]
    name = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    return sql.SQL("CREATE TABLE {} ({})").format(name, sql.SQL(", ").join(parts))


def _recorded(conn: psycopg.Connection, table: str) -> tuple[str, int]:
    """The recorded hash and the number of columns pggit recorded for a live tracked table."""
    return conn.execute(
        "SELECT content_hash, jsonb_array_length(column_list) FROM pggit.objects "
        "WHERE is_active AND format('%%I.%%I', schema_name, object_name)::regclass = %s::regclass",
        (table,),
    ).fetchone()


def test_table_of_150_columns_is_tracked_hashed_and_versioned(sync_conn):
    """A table of 150 columns of a dozen types is tracked at 1.0.0 with the right hash, the same structure elsewhere hashes the same, and each change bumps the right part."""
    sync_conn.autocommit = True
    sync_conn.execute(_wide_table_sql("wide", 150))
    sync_conn.execute("CREATE SCHEMA elsewhere")
    sync_conn.execute(_wide_table_sql("wide_copy", 150, schema="elsewhere"))

    recorded_hash, recorded_columns = _recorded(sync_conn, "wide")
    assert (version(sync_conn, "wide"), recorded_columns) == ("1.0.0", 150)
    assert recorded_hash == schema_hash(sync_conn, "wide") == schema_hash(sync_conn, "elsewhere.wide_copy")
    types = [r[0] for r in sync_conn.execute(
        "SELECT elem->>'type' FROM pggit.objects o, jsonb_array_elements(o.column_list) WITH ORDINALITY AS e(elem, n) "
        "WHERE o.is_active AND o.object_name = 'wide' ORDER BY n")]
    assert types == [WIDE_TYPES[i % len(WIDE_TYPES)][1] for i in range(150)]

    steps = [
        ("ALTER TABLE wide ADD COLUMN c0150 text", "1.1.0"),
        ("ALTER TABLE wide ALTER COLUMN c0003 SET DEFAULT 'x'", "1.1.1"),
        ("CREATE INDEX wide_c0100_idx ON wide (c0100, c0101)", "1.1.2"),
        ("ALTER TABLE wide ALTER COLUMN c0000 TYPE bigint", "2.0.0"),
        ("ALTER TABLE wide DROP COLUMN c0149", "3.0.0"),
    ]
    seen = {recorded_hash}
    for ddl, expected_version in steps:
        sync_conn.execute(ddl)
        live = schema_hash(sync_conn, "wide")
        assert live not in seen, f"{ddl} left the hash unchanged"
        seen.add(live)
        assert (version(sync_conn, "wide"), _recorded(sync_conn, "wide")[0]) == (expected_version, live), ddl
    assert checkers.versions_strictly_increasing(sync_conn, "wide") == ["1.0.0"] + [v for _, v in steps]
    checkers.drift_is(sync_conn)
    checkers.integrity_ok(sync_conn)


def test_table_at_the_1600_column_limit_is_versioned_and_an_overflow_leaves_no_trace(sync_conn):
    """A table grown to PostgreSQL's 1,600-column limit is versioned at every step, and the ALTER that would pass the limit fails with 54011 and leaves pggit unchanged."""
    sync_conn.autocommit = True
    sync_conn.execute(_wide_table_sql("widest", MAX_COLUMNS - 10))
    assert version(sync_conn, "widest") == "1.0.0"
    created_hash = schema_hash(sync_conn, "widest")
    adds = sql.SQL(", ").join(sql.SQL("ADD COLUMN {} int").format(sql.Identifier(f"extra{i}")) for i in range(10))
    sync_conn.execute(sql.SQL("ALTER TABLE widest {}").format(adds))
    assert version(sync_conn, "widest") == "1.1.0"
    full_hash = schema_hash(sync_conn, "widest")
    assert full_hash != created_hash, "columns added past the 1,590th left the hash unchanged"
    assert _recorded(sync_conn, "widest") == (full_hash, MAX_COLUMNS)

    history_before = sync_conn.execute("SELECT count(*) FROM pggit.history").fetchone()[0]
    with pytest.raises(psycopg.errors.TooManyColumns, match="at most 1600 columns"):
        sync_conn.execute("ALTER TABLE widest ADD COLUMN one_too_many int")
    # A dropped column keeps its slot: adding after a drop still passes the limit.
    sync_conn.execute("ALTER TABLE widest DROP COLUMN extra9")
    assert version(sync_conn, "widest") == "2.0.0"
    with pytest.raises(psycopg.errors.TooManyColumns):
        sync_conn.execute("ALTER TABLE widest ADD COLUMN still_too_many int")
    assert sync_conn.execute("SELECT count(*) FROM pggit.history").fetchone()[0] == history_before + 1
    assert schema_hash(sync_conn, "widest") not in (created_hash, full_hash)
    assert _recorded(sync_conn, "widest") == (schema_hash(sync_conn, "widest"), MAX_COLUMNS - 1)
    assert checkers.versions_strictly_increasing(sync_conn, "widest") == ["1.0.0", "1.1.0", "2.0.0"]
    checkers.drift_is(sync_conn)
    checkers.integrity_ok(sync_conn)


def test_a_1600_column_table_with_a_default_on_every_column_is_versioned_and_hashed_exactly(sync_conn):
    """A table at the column limit whose every column has a default is created at 1.0.0, and changing
    the last column's default bumps the patch version and changes the recorded hash.
    (What describing such a table costs, by width, is measured by ``pggit-chaos bench-describe``.)"""
    sync_conn.autocommit = True
    columns = sql.SQL(", ").join(
        sql.SQL("{} int DEFAULT {}").format(sql.Identifier(f"c{i:04d}"), sql.Literal(i)) for i in range(MAX_COLUMNS))
    sync_conn.execute(sql.SQL("CREATE TABLE defaults_everywhere ({})").format(columns))
    assert version(sync_conn, "defaults_everywhere") == "1.0.0"
    created = schema_hash(sync_conn, "defaults_everywhere")
    sync_conn.execute("ALTER TABLE defaults_everywhere ALTER COLUMN c1599 SET DEFAULT -1")
    assert version(sync_conn, "defaults_everywhere") == "1.0.1"
    assert _recorded(sync_conn, "defaults_everywhere") == (schema_hash(sync_conn, "defaults_everywhere"), MAX_COLUMNS)
    assert schema_hash(sync_conn, "defaults_everywhere") != created
    checkers.drift_is(sync_conn)


@pytest.mark.destructive
@pytest.mark.needs_control
@pytest.mark.slow
def test_smallest_work_mem_leaves_integrity_and_drift_reports_exact(pg_cluster, db_connection_string):
    """With work_mem at its 64kB minimum, 1,500 commits on three branches verify as whole and detect_drift over 120 tables reports exactly the five changed behind pggit's back."""
    with nemesis.memory_capped(pg_cluster, SMALLEST_WORK_MEM), \
            psycopg.connect(db_connection_string, autocommit=True) as conn:
        nemesis.await_setting(conn, "work_mem", SMALLEST_WORK_MEM)
        # Workload, under the cap: commits in bulk (one statement each batch) and many tracked tables.
        for branch in ("main", "feature/a", "feature/b"):
            conn.execute("SELECT count(pggit.commit_changes(%s, 'bulk ' || g || ' ' || repeat('m', g %% 200))) "
                         "FROM generate_series(1, 500) g", (branch,))
        conn.execute("DO $$ BEGIN FOR i IN 1..120 LOOP "
                     "EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v text, n numeric)', 'mem_t' || i); "
                     "END LOOP; END $$")
        # The cap is real: a sort of pggit's commits no bigger than verify_integrity's spills to disk.
        plan = conn.execute("EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) "
                            "SELECT * FROM pggit.commits ORDER BY message").fetchone()[0]
        assert "external" in plan[0]["Plan"]["Sort Method"], plan

        assert checkers.integrity_ok(conn) >= 10
        for branch in ("main", "feature/a", "feature/b"):
            assert len(checkers.linear_chain_invariant(conn, branch)) == 500
        checkers.unique_trinity_ids(conn)
        checkers.drift_is(conn)

        # Fault: five tables changed while tracking is off.
        with nemesis.tracking_paused(conn):
            for i in (3, 30, 60, 90, 120):
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN sneaky int").format(sql.Identifier(f"mem_t{i}")))
        drifted = conn.execute("SELECT object_name, live_hash, pggit.calculate_schema_hash(object_name) "
                               "FROM pggit.detect_drift()").fetchall()
        assert sorted(name for name, _, _ in drifted) == sorted(f"mem_t{i}" for i in (3, 30, 60, 90, 120))
        assert all(live == computed for _, live, computed in drifted), drifted
        checkers.integrity_ok(conn)


@pytest.mark.destructive
@pytest.mark.needs_control
def test_commit_messages_at_the_limit_are_stored_exactly_under_the_smallest_work_mem(pg_cluster, db_connection_string):
    """With work_mem at its minimum, commit messages of exactly 10,000 characters (up to 40,000 bytes) are stored byte for byte, and one character more is refused with 22023 and writes nothing."""
    messages = [
        "a" * 10_000,
        "\U0001F600" * 10_000,  # four bytes each in UTF-8
        ("line 'one'\n\\two\t%s $$ ; DROP TABLE x; -- \u00e9\u4e2d" * 400)[:10_000],
    ]
    with nemesis.memory_capped(pg_cluster, SMALLEST_WORK_MEM), \
            psycopg.connect(db_connection_string, autocommit=True) as conn:
        nemesis.await_setting(conn, "work_mem", SMALLEST_WORK_MEM)
        ids = [conn.execute("SELECT pggit.commit_changes('main', %s)", (m,)).fetchone()[0] for m in messages]
        stored = dict(conn.execute("SELECT hash, message FROM pggit.commits").fetchall())
        assert [stored[i] for i in ids] == messages
        assert conn.execute("SELECT max(octet_length(message)) FROM pggit.commits").fetchone() == (40_000,)

        before = conn.execute("SELECT count(*), (SELECT head_commit_hash FROM pggit.branches WHERE name = 'main') "
                              "FROM pggit.commits").fetchone()
        for too_long in ("b" * 10_001, "\U0001F600" * 10_001):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="10001 characters long"):
                conn.execute("SELECT pggit.commit_changes('main', %s)", (too_long,))
        assert conn.execute("SELECT count(*), (SELECT head_commit_hash FROM pggit.branches WHERE name = 'main') "
                            "FROM pggit.commits").fetchone() == before
        assert checkers.linear_chain_invariant(conn, "main") == ids
        checkers.integrity_ok(conn)
