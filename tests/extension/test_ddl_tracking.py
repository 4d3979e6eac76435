"""DDL tracking: every change to an ordinary table bumps its version by the
contract's rule, writes one history row and refreshes content_hash; failed or
rolled-back DDL and system or temporary tables leave no trace."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from pggit_chaos import checkers, nemesis
from tests.extension.helpers import (
    INSUFFICIENT_PRIVILEGE,
    assert_nothing_written,
    expect_error,
    history_count,
    history_of,
    rows,
    scalar,
    schema_hash,
    snapshot,
    tracked_object,
    version,
)

BASE = "CREATE TABLE t (id int PRIMARY KEY, b int, c text)"

# name -> (statements, new version, severity, change_type, command_tag); None: not fixed by the contract
RULES = {
    "add_column": (["ALTER TABLE t ADD COLUMN d int"], "1.1.0", "MINOR", "ALTER", "ALTER TABLE"),
    "add_column_with_default": (["ALTER TABLE t ADD COLUMN d int DEFAULT 7 NOT NULL"], "1.1.0", "MINOR", "ALTER",
                                "ALTER TABLE"),
    "drop_column": (["ALTER TABLE t DROP COLUMN b"], "2.0.0", "MAJOR", "ALTER", "ALTER TABLE"),
    "alter_column_type": (["ALTER TABLE t ALTER COLUMN b TYPE bigint"], "2.0.0", "MAJOR", "ALTER", "ALTER TABLE"),
    "rename_column": (["ALTER TABLE t RENAME COLUMN b TO b2"], "2.0.0", "MAJOR", "ALTER", "ALTER TABLE"),
    "set_default": (["ALTER TABLE t ALTER COLUMN b SET DEFAULT 5"], "1.0.1", "PATCH", "ALTER", "ALTER TABLE"),
    "drop_default": (["ALTER TABLE t ALTER COLUMN b DROP DEFAULT"], "1.0.1", "PATCH", "ALTER", "ALTER TABLE"),
    "comment_on_table": (["COMMENT ON TABLE t IS 'orders'"], "1.0.1", "PATCH", "ALTER", "COMMENT"),
    "comment_on_column": (["COMMENT ON COLUMN t.b IS 'amount'"], "1.0.1", "PATCH", "ALTER", "COMMENT"),
    "create_index": (["CREATE INDEX t_b_idx ON t (b)"], "1.0.1", "PATCH", None, "CREATE INDEX"),
    "add_check_constraint": (["ALTER TABLE t ADD CONSTRAINT t_b_check CHECK (b > 0)"], "1.0.1", "PATCH", "ALTER",
                             "ALTER TABLE"),
    "add_unique_constraint": (["ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE (c)"], "1.0.1", "PATCH", "ALTER",
                              "ALTER TABLE"),
    "drop_primary_key": (["ALTER TABLE t DROP CONSTRAINT t_pkey"], "1.0.1", "PATCH", "ALTER", "ALTER TABLE"),
    "set_not_null": (["ALTER TABLE t ALTER COLUMN b SET NOT NULL"], "1.0.1", "PATCH", "ALTER", "ALTER TABLE"),
    "add_and_drop_column_in_one_statement": (["ALTER TABLE t ADD COLUMN d int, DROP COLUMN c"], "2.0.0", "MAJOR",
                                             "ALTER", "ALTER TABLE"),
    "add_two_columns_in_one_statement": (["ALTER TABLE t ADD COLUMN d int, ADD COLUMN e int"], "1.1.0", "MINOR",
                                         "ALTER", "ALTER TABLE"),
    "add_column_with_unique_index": (["ALTER TABLE t ADD COLUMN d int UNIQUE"], "1.1.0", "MINOR", "ALTER",
                                     "ALTER TABLE"),
    "alter_column_collation": (['ALTER TABLE t ALTER COLUMN c TYPE text COLLATE "C"'], "2.0.0", "MAJOR", "ALTER",
                               "ALTER TABLE"),
    # Also makes a sequence and an ALTER SEQUENCE ... OWNED BY: still one change of t.
    "add_serial_column": (["ALTER TABLE t ADD COLUMN d serial"], "1.1.0", "MINOR", "ALTER", "ALTER TABLE"),
}

# Changes that need something to exist first: (setup, statements, ...) as above.
RULES_WITH_SETUP = {
    "drop_index": (["CREATE INDEX t_b_idx ON t (b)"], ["DROP INDEX t_b_idx"], "1.0.2", "PATCH", None, "DROP INDEX"),
    "drop_check_constraint": (["ALTER TABLE t ADD CONSTRAINT t_b_check CHECK (b > 0)"],
                              ["ALTER TABLE t DROP CONSTRAINT t_b_check"], "1.0.2", "PATCH", "ALTER", "ALTER TABLE"),
    # PostgreSQL reports the constraint, not its table.
    "comment_on_constraint": (["ALTER TABLE t ADD CONSTRAINT t_b_check CHECK (b > 0)"],
                              ["COMMENT ON CONSTRAINT t_b_check ON t IS 'positive'"], "1.0.2", "PATCH", "ALTER",
                              "COMMENT"),
}


def only_new_history_row(conn: psycopg.Connection, object_id: int, before: int) -> dict:
    """The one history row the last statement wrote: ``before`` rows existed in the whole table."""
    added = rows(conn, "SELECT * FROM pggit.history ORDER BY id OFFSET %s", (before,))
    assert len(added) == 1, f"expected one new history row, got {added}"
    assert added[0]["object_id"] == object_id
    return added[0]


def objects_named(conn: psycopg.Connection, schema: str, name: str) -> int:
    return scalar(
        conn, "SELECT count(*) FROM pggit.objects WHERE schema_name = %s AND object_name = %s", (schema, name)
    )


def assert_hash_refreshed(conn: psycopg.Connection, table: str = "t", schema: str = "public") -> None:
    obj = tracked_object(conn, schema, table)
    live = schema_hash(conn, f"{schema}.{table}")
    assert obj["content_hash"] == live


# --------------------------------------------------------------------------
# CREATE
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [BASE, "CREATE TABLE t AS SELECT 1 AS id, 2 AS b", "SELECT 1 AS id INTO t", "CREATE TABLE t (LIKE pggit.migrations)"],
    ids=["create_table", "create_table_as", "select_into", "create_table_like"],
)
def test_create_table_starts_at_1_0_0_with_one_history_row(conn, statement):
    conn.execute(statement)
    obj = tracked_object(conn, "public", "t")
    assert (obj["version_major"], obj["version_minor"], obj["version_patch"]) == (1, 0, 0)
    assert obj["is_active"] is True
    assert version(conn, "t") == "1.0.0"
    history = history_of(conn, obj["id"])
    assert history_count(conn) == 1 and len(history) == 1
    assert objects_named(conn, "public", "t") == 1
    assert history[0]["change_type"] == "CREATE"
    assert history[0]["new_version"] == "1.0.0"
    assert history[0]["command_tag"].startswith("CREATE TABLE") or history[0]["command_tag"] == "SELECT INTO"
    assert history[0]["created_at"] is not None and history[0]["created_by"]
    assert_hash_refreshed(conn)


def test_create_table_records_raw_schema_and_table_names(conn):
    conn.execute('CREATE SCHEMA "Sales Dept"')
    conn.execute('CREATE TABLE "Sales Dept"."Order Lines" (id int)')
    obj = tracked_object(conn, "Sales Dept", "Order Lines")
    assert obj is not None and obj["is_active"]
    assert obj["content_hash"] == schema_hash(conn, '"Sales Dept"."Order Lines"')


# --------------------------------------------------------------------------
# ALTER: the bump rules
# --------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
def test_table_change_bumps_the_version_by_its_rule(conn, rule):
    statements, new_version, severity, change_type, command_tag = RULES[rule]
    conn.execute(BASE)
    obj = tracked_object(conn, "public", "t")
    for statement in statements:
        conn.execute(statement)
    row = only_new_history_row(conn, obj["id"], 1)
    assert objects_named(conn, "public", "t") == 1
    assert version(conn, "t") == new_version
    assert (row["old_version"], row["new_version"], row["severity"]) == ("1.0.0", new_version, severity)
    assert row["command_tag"] == command_tag
    if change_type:
        assert row["change_type"] == change_type
    assert_hash_refreshed(conn)


@pytest.mark.parametrize("rule", RULES_WITH_SETUP)
def test_table_change_after_setup_bumps_the_version_by_its_rule(conn, rule):
    setup, statements, new_version, severity, change_type, command_tag = RULES_WITH_SETUP[rule]
    conn.execute(BASE)
    for statement in setup:
        conn.execute(statement)
    obj = tracked_object(conn, "public", "t")
    for statement in statements:
        conn.execute(statement)
    row = only_new_history_row(conn, obj["id"], 2)
    assert version(conn, "t") == new_version
    assert (row["new_version"], row["severity"], row["command_tag"]) == (new_version, severity, command_tag)
    if change_type:
        assert row["change_type"] == change_type
    assert_hash_refreshed(conn)


def test_rename_table_bumps_major_and_follows_the_new_name(conn):
    conn.execute(BASE)
    object_id = tracked_object(conn, "public", "t")["id"]
    conn.execute("ALTER TABLE t RENAME TO t_renamed")
    row = only_new_history_row(conn, object_id, 1)
    assert (row["old_version"], row["new_version"], row["severity"]) == ("1.0.0", "2.0.0", "MAJOR")
    assert version(conn, "t_renamed") == "2.0.0"
    assert version(conn, "t") is None
    assert_hash_refreshed(conn, "t_renamed")


def test_versions_accumulate_over_a_sequence_of_changes(conn):
    conn.execute(BASE)
    object_id = tracked_object(conn, "public", "t")["id"]
    steps = [
        ("ALTER TABLE t ADD COLUMN d int", "1.1.0"),
        ("ALTER TABLE t ALTER COLUMN d SET DEFAULT 1", "1.1.1"),
        ("CREATE INDEX t_d_idx ON t (d)", "1.1.2"),
        ("ALTER TABLE t ADD COLUMN e int", "1.2.0"),
        ("ALTER TABLE t DROP COLUMN e", "2.0.0"),
        ("COMMENT ON TABLE t IS 'x'", "2.0.1"),
        ("ALTER TABLE t ADD COLUMN f int", "2.1.0"),
    ]
    for statement, expected in steps:
        conn.execute(statement)
        assert version(conn, "t") == expected, statement
        assert_hash_refreshed(conn)
    history = history_of(conn, object_id)
    assert [h["new_version"] for h in history] == ["1.0.0"] + [v for _, v in steps]
    assert [h["old_version"] for h in history[1:]] == [h["new_version"] for h in history[:-1]]


def test_objects_row_agrees_with_get_version(conn):
    conn.execute(BASE)
    conn.execute("ALTER TABLE t ADD COLUMN d int")
    conn.execute("ALTER TABLE t ALTER COLUMN d SET DEFAULT 0")
    obj = tracked_object(conn, "public", "t")
    assert rows(conn, "SELECT major, minor, patch FROM pggit.get_version('t')") == [
        {"major": obj["version_major"], "minor": obj["version_minor"], "patch": obj["version_patch"]}
    ]


# --------------------------------------------------------------------------
# DROP
# --------------------------------------------------------------------------


def test_drop_table_bumps_major_and_marks_the_object_inactive(conn):
    conn.execute(BASE)
    conn.execute("ALTER TABLE t ADD COLUMN d int")
    object_id = tracked_object(conn, "public", "t")["id"]
    conn.execute("DROP TABLE t")
    row = only_new_history_row(conn, object_id, 2)
    assert (row["change_type"], row["severity"], row["command_tag"]) == ("DROP", "MAJOR", "DROP TABLE")
    assert (row["old_version"], row["new_version"]) == ("1.1.0", "2.0.0")
    obj = rows(conn, "SELECT * FROM pggit.objects WHERE id = %s", (object_id,))[0]
    assert obj["is_active"] is False
    assert (obj["version_major"], obj["version_minor"], obj["version_patch"]) == (2, 0, 0)
    assert version(conn, "t") is None


def test_dropping_two_tables_in_one_statement_records_each(conn):
    conn.execute("CREATE TABLE a (id int)")
    conn.execute("CREATE TABLE b (id int)")
    ids = [tracked_object(conn, "public", name)["id"] for name in ("a", "b")]
    conn.execute("DROP TABLE a, b")
    for object_id in ids:
        assert [h["change_type"] for h in history_of(conn, object_id)] == ["CREATE", "DROP"]
        assert rows(conn, "SELECT is_active FROM pggit.objects WHERE id = %s", (object_id,)) == [{"is_active": False}]


def test_drop_schema_cascade_marks_its_tables_inactive(conn):
    conn.execute("CREATE SCHEMA doomed")
    conn.execute("CREATE TABLE doomed.t (id int)")
    object_id = tracked_object(conn, "doomed", "t")["id"]
    conn.execute("DROP SCHEMA doomed CASCADE")
    assert rows(conn, "SELECT is_active FROM pggit.objects WHERE id = %s", (object_id,)) == [{"is_active": False}]
    assert history_of(conn, object_id)[-1]["change_type"] == "DROP"


def test_a_table_made_again_after_drop_starts_at_1_0_0(conn):
    conn.execute(BASE)
    conn.execute("ALTER TABLE t ADD COLUMN d int")
    conn.execute("DROP TABLE t")
    conn.execute(BASE)
    assert version(conn, "t") == "1.0.0"
    assert_hash_refreshed(conn)


def test_dropping_a_table_whose_record_a_new_table_took_over_records_nothing(conn):
    # Renamed while tracking was paused, the table leaves its record under the old
    # name; a new table of that name takes the record's place (the old one goes
    # inactive). Dropping the renamed table must not write to that inactive record.
    conn.execute("CREATE TABLE t (id int)")
    old = tracked_object(conn, "public", "t")
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE t RENAME TO u")
    conn.execute("CREATE TABLE t (id int)")
    new = tracked_object(conn, "public", "t")
    assert new["id"] != old["id"]
    assert rows(conn, "SELECT is_active FROM pggit.objects WHERE id = %s", (old["id"],)) == [{"is_active": False}]
    before = snapshot(conn)
    conn.execute("DROP TABLE u")
    assert_nothing_written(conn, before)
    # Positive control: dropping the table that holds the live record records the drop.
    conn.execute("DROP TABLE t")
    assert [h["change_type"] for h in history_of(conn, new["id"])] == ["CREATE", "DROP"]
    assert [h["change_type"] for h in history_of(conn, old["id"])] == ["CREATE"]


def test_changing_a_table_whose_record_a_new_table_took_over_tracks_it_afresh(conn):
    # As above: u keeps its OID, but its old record went inactive when the new t took
    # the name. A change of u starts a record of its own at 1.0.0; the inactive record
    # (same OID) is history and must not be bumped back into use.
    conn.execute("CREATE TABLE t (id int)")
    old = tracked_object(conn, "public", "t")
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE t RENAME TO u")
    conn.execute("CREATE TABLE t (id int)")
    assert rows(conn, "SELECT is_active, table_oid FROM pggit.objects WHERE id = %s", (old["id"],)) == [
        {"is_active": False, "table_oid": scalar(conn, "SELECT 'u'::regclass::oid")}
    ]
    conn.execute("ALTER TABLE u ADD COLUMN b int")
    assert version(conn, "u") == "1.0.0"
    fresh = tracked_object(conn, "public", "u")
    assert fresh["id"] not in (old["id"], tracked_object(conn, "public", "t")["id"]) and fresh["is_active"]
    assert fresh["content_hash"] == schema_hash(conn, "u")
    assert [h["change_type"] for h in history_of(conn, fresh["id"])] == ["CREATE"]
    old_after = rows(conn, "SELECT * FROM pggit.objects WHERE id = %s", (old["id"],))[0]
    assert (old_after["object_name"], old_after["is_active"]) == ("t", False)
    assert (old_after["version_major"], old_after["version_minor"], old_after["version_patch"]) == (1, 0, 0)
    assert [h["change_type"] for h in history_of(conn, old["id"])] == ["CREATE"]
    checkers.drift_is(conn)
    # Positive control: the next change of u bumps the record it now has.
    conn.execute("ALTER TABLE u ADD COLUMN c int")
    assert version(conn, "u") == "1.1.0"
    assert [h["change_type"] for h in history_of(conn, fresh["id"])] == ["CREATE", "ALTER"]


def test_recording_a_change_of_a_table_that_no_longer_exists_writes_nothing(conn):
    conn.execute("CREATE TABLE gone (id int)")
    conn.execute(BASE)
    gone = scalar(conn, "SELECT 'gone'::regclass::oid")
    conn.execute("DROP TABLE gone")
    before = snapshot(conn)
    conn.execute("SELECT pggit._track_table_change(%s, 'ALTER TABLE', false)", (gone,))
    assert_nothing_written(conn, before)
    # Positive control: the same call for a live tracked table records one change.
    obj = tracked_object(conn, "public", "t")
    conn.execute("SELECT pggit._track_table_change('t'::regclass, 'ALTER TABLE', false)")
    row = only_new_history_row(conn, obj["id"], len(before["history"]))
    assert (row["change_type"], row["severity"], row["new_version"]) == ("ALTER", "PATCH", "1.0.1")


# --------------------------------------------------------------------------
# Changes a table gets from DDL on another object
# --------------------------------------------------------------------------

# setup, statement, {table: (new version, severity)}; a dropped table has no version
SIDE_EFFECTS = {
    "drop_type_cascade_drops_a_column": (
        ["CREATE TYPE mood AS ENUM ('ok')", "CREATE TABLE et (id int, m mood)"],
        "DROP TYPE mood CASCADE", {"et": ("2.0.0", "MAJOR")}),
    "drop_sequence_cascade_drops_a_default": (
        ["CREATE SEQUENCE sq", "CREATE TABLE et (id int DEFAULT nextval('sq'))"],
        "DROP SEQUENCE sq CASCADE", {"et": ("1.0.1", "PATCH")}),
    "drop_function_cascade_drops_a_check": (
        ["CREATE FUNCTION positive(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0'",
         "CREATE TABLE et (id int CHECK (positive(id)))"],
        "DROP FUNCTION positive(int) CASCADE", {"et": ("1.0.1", "PATCH")}),
    "drop_table_cascade_drops_a_foreign_key": (
        ["CREATE TABLE parent (id int PRIMARY KEY)", "CREATE TABLE et (id int, p int REFERENCES parent)"],
        "DROP TABLE parent CASCADE", {"et": ("1.0.1", "PATCH"), "parent": (None, "MAJOR")}),
    "drop_primary_key_cascade_drops_a_foreign_key": (
        ["CREATE TABLE parent (id int PRIMARY KEY)", "CREATE TABLE et (id int, p int REFERENCES parent)"],
        "ALTER TABLE parent DROP CONSTRAINT parent_pkey CASCADE",
        {"et": ("1.0.1", "PATCH"), "parent": ("1.0.1", "PATCH")}),
    "alter_partitioned_parent_drops_partition_columns": (
        ["CREATE TABLE et (id int, k int, gone int) PARTITION BY RANGE (k)",
         "CREATE TABLE et_1 PARTITION OF et FOR VALUES FROM (0) TO (10)"],
        "ALTER TABLE et DROP COLUMN gone", {"et": ("2.0.0", "MAJOR"), "et_1": ("2.0.0", "MAJOR")}),
    "rename_schema_moves_its_tables": (
        ["CREATE SCHEMA old_name", "CREATE TABLE old_name.et (id int)"],
        "ALTER SCHEMA old_name RENAME TO new_name", {"new_name.et": ("2.0.0", "MAJOR")}),
    # A key from outside names the schema, so that table is found first; the
    # schema's own tables are recorded all the same.
    "rename_schema_moves_its_tables_and_changes_the_tables_that_name_them": (
        ["CREATE SCHEMA old_name", "CREATE TABLE old_name.et (id int PRIMARY KEY)",
         "CREATE TABLE old_name.other (id int)", "CREATE TABLE ref (id int REFERENCES old_name.et)"],
        "ALTER SCHEMA old_name RENAME TO new_name",
        {"new_name.et": ("2.0.0", "MAJOR"), "new_name.other": ("2.0.0", "MAJOR"), "ref": ("1.0.1", "PATCH")}),
    # SET SCHEMA moves the table's serial and identity sequences too, and with
    # them the defaults of other tables that draw from one: a detached
    # partition's copy of its parent's default, or any table's own.
    "set_schema_moves_a_serial_sequence_another_tables_default_draws_from": (
        ["CREATE SCHEMA elsewhere", "CREATE TABLE lender (id serial)",
         "CREATE TABLE et (id int DEFAULT nextval('lender_id_seq'))"],
        "ALTER TABLE lender SET SCHEMA elsewhere",
        {"elsewhere.lender": ("2.0.0", "MAJOR"), "et": ("1.0.1", "PATCH")}),
    "set_schema_moves_an_identity_sequence_another_tables_default_draws_from": (
        ["CREATE SCHEMA elsewhere", "CREATE TABLE lender (id int GENERATED ALWAYS AS IDENTITY)",
         "CREATE TABLE et (id int DEFAULT nextval('lender_id_seq'))"],
        "ALTER TABLE lender SET SCHEMA elsewhere",
        {"elsewhere.lender": ("2.0.0", "MAJOR"), "et": ("1.0.1", "PATCH")}),
    "set_schema_moves_the_sequence_a_detached_partitions_default_draws_from": (
        ["CREATE SCHEMA elsewhere", "CREATE TABLE lender (k int, id serial) PARTITION BY RANGE (k)",
         "CREATE TABLE et PARTITION OF lender FOR VALUES FROM (0) TO (10)",
         "ALTER TABLE lender DETACH PARTITION et"],
        "ALTER TABLE lender SET SCHEMA elsewhere",
        {"elsewhere.lender": ("2.0.0", "MAJOR"), "et": ("1.0.2", "PATCH")}),  # the detach made it 1.0.1
    # A tracked table in another schema, which names nothing in it, is not recorded.
    "rename_schema_leaves_the_tables_of_other_schemas_alone": (
        ["CREATE SCHEMA old_name", "CREATE TABLE old_name.et (id int)", "CREATE TABLE bystander (id int)"],
        "ALTER SCHEMA old_name RENAME TO new_name", {"new_name.et": ("2.0.0", "MAJOR")}),
}


@pytest.mark.parametrize("case", SIDE_EFFECTS)
def test_a_table_changed_by_ddl_on_another_object_is_recorded_once(conn, case):
    setup, statement, expected = SIDE_EFFECTS[case]
    for step in setup:
        conn.execute(step)
    before = history_count(conn)
    conn.execute(statement)
    added = rows(conn, "SELECT * FROM pggit.history ORDER BY id OFFSET %s", (before,))
    assert len(added) == len(expected), f"expected one history row per changed table, got {added}"
    for table, (new_version, severity) in expected.items():
        assert version(conn, table) == new_version, table
        schema, _, name = table.rpartition(".")
        obj = tracked_object(conn, schema or "public", name)
        assert [h["severity"] for h in added if h["object_id"] == obj["id"]] == [severity], table
        assert obj["content_hash"] == schema_hash(conn, table)
    assert rows(conn, "SELECT * FROM pggit.detect_drift()") == []


# --------------------------------------------------------------------------
# What leaves no trace
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    ["CREATE TABLE t2 (id int)", "ALTER TABLE t ADD COLUMN d int", "ALTER TABLE t DROP COLUMN b", "DROP TABLE t",
     "CREATE INDEX t_c_idx ON t (c)"],
    ids=["create", "add_column", "drop_column", "drop_table", "create_index"],
)
def test_rolled_back_ddl_leaves_no_history(conn, connect, statement):
    conn.execute(BASE)
    before = snapshot(conn)
    session = connect(autocommit=False)
    session.execute(statement)
    session.rollback()
    assert_nothing_written(conn, before)
    # Positive control: the same statement, committed, is recorded.
    session.execute(statement)
    session.commit()
    assert history_count(conn) > len(before["history"])


def test_ddl_rolled_back_to_a_savepoint_leaves_no_history(conn, connect):
    conn.execute(BASE)
    before = snapshot(conn)
    session = connect(autocommit=False)
    session.execute("SAVEPOINT s")
    session.execute("ALTER TABLE t ADD COLUMN d int")
    session.execute("ROLLBACK TO SAVEPOINT s")
    session.commit()
    assert_nothing_written(conn, before)
    assert version(conn, "t") == "1.0.0"


@pytest.mark.parametrize(
    "statement",
    ["ALTER TABLE t ADD COLUMN b int", "CREATE TABLE t (id int)", "ALTER TABLE t ALTER COLUMN c TYPE int",
     "ALTER TABLE t ADD CONSTRAINT bad CHECK (no_such_column > 0)", "ALTER TABLE t ADD COLUMN ok int, ADD COLUMN b int"],
    ids=["duplicate_column", "duplicate_table", "impossible_type_change", "bad_constraint", "second_subcommand_fails"],
)
def test_a_failing_ddl_statement_leaves_no_history(conn, statement):
    conn.execute(BASE)
    conn.execute("INSERT INTO t VALUES (1, 1, 'not a number')")
    before = snapshot(conn)
    with pytest.raises(psycopg.Error):
        conn.execute(statement)
    assert_nothing_written(conn, before)
    # Positive control: a statement on the same table that succeeds is recorded.
    conn.execute("ALTER TABLE t ADD COLUMN control int")
    assert history_count(conn) == len(before["history"]) + 1 and version(conn, "t") == "1.1.0"


def test_ddl_in_a_transaction_that_fails_later_leaves_no_history(conn, connect):
    conn.execute(BASE)
    before = snapshot(conn)
    session = connect(autocommit=False)
    session.execute("ALTER TABLE t ADD COLUMN d int")
    with pytest.raises(psycopg.errors.DivisionByZero):
        session.execute("SELECT 1 / 0")
    session.rollback()
    assert_nothing_written(conn, before)
    # Positive control: the same ALTER in a transaction that commits is recorded.
    session.execute("ALTER TABLE t ADD COLUMN d int")
    session.commit()
    assert version(conn, "t") == "1.1.0"


UNTRACKED_PLACES = {
    "pggit": ["CREATE TABLE pggit.scratch (id int)", "ALTER TABLE pggit.scratch ADD COLUMN b int",
              "DROP TABLE pggit.scratch"],
    "information_schema": ["CREATE TABLE information_schema.scratch (id int)",
                           "ALTER TABLE information_schema.scratch ADD COLUMN b int",
                           "DROP TABLE information_schema.scratch"],
    "pg_catalog": ["SET allow_system_table_mods = on", "CREATE TABLE pg_catalog.scratch (id int)",
                   "ALTER TABLE pg_catalog.scratch ADD COLUMN b int", "DROP TABLE pg_catalog.scratch",
                   "RESET allow_system_table_mods"],
    "temporary": ["CREATE TEMP TABLE scratch (id int)", "ALTER TABLE scratch ADD COLUMN b int",
                  "CREATE INDEX ON scratch (b)", "DROP TABLE scratch"],
    "temporary_on_commit_drop": ["BEGIN", "CREATE TEMP TABLE scratch (id int) ON COMMIT DROP", "COMMIT"],
}


@pytest.mark.parametrize("place", UNTRACKED_PLACES)
def test_tables_in_system_and_temporary_schemas_are_not_tracked(conn, place):
    before = snapshot(conn)
    for statement in UNTRACKED_PLACES[place]:
        conn.execute(statement)
    assert_nothing_written(conn, before)
    # Positive control: a table in an ordinary schema is tracked.
    conn.execute("CREATE TABLE public.scratch_control (id int)")
    assert tracked_object(conn, "public", "scratch_control") is not None


def test_a_column_renamed_on_a_parent_records_the_tables_whose_keys_name_the_childs_column(conn):
    # The child's column is renamed with the parent's, and a foreign key to it prints the new name.
    conn.execute("CREATE TABLE a (x int)")
    conn.execute("CREATE TABLE b () INHERITS (a)")
    conn.execute("ALTER TABLE b ADD CONSTRAINT b_x_key UNIQUE (x)")
    conn.execute("CREATE TABLE cc (x int REFERENCES b (x))")
    before = version(conn, "cc")
    conn.execute("ALTER TABLE a RENAME COLUMN x TO y")
    assert "b(y)" in scalar(conn, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'cc'::regclass "
                                  "AND contype = 'f'")
    assert version(conn, "cc") != before, "the referencing table was not recorded"
    assert tracked_object(conn, "public", "cc")["content_hash"] == schema_hash(conn, "cc")
    checkers.drift_is(conn)
    # Positive control: the same change made behind pggit's back is drift for cc (and the renamed pair).
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE a RENAME COLUMN y TO z")
    checkers.drift_is(conn, {"public.a", "public.b", "public.cc"})


def test_a_column_added_to_a_foreign_table_parent_records_its_regular_children(conn):
    # The foreign table is not tracked, but its regular child is, and gets the column too.
    conn.execute("CREATE FOREIGN DATA WRAPPER nowhere")
    conn.execute("CREATE SERVER far FOREIGN DATA WRAPPER nowhere")
    conn.execute("CREATE FOREIGN TABLE ft (x int) SERVER far")
    conn.execute("CREATE TABLE ch (own int) INHERITS (ft)")
    assert version(conn, "ch") == "1.0.0"
    conn.execute("ALTER TABLE ft ADD COLUMN y int")
    assert version(conn, "ch") == "1.1.0"
    checkers.drift_is(conn)
    # Positive control: the same change made behind pggit's back is drift for ch.
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE ft ADD COLUMN z int")
    checkers.drift_is(conn, {"public.ch"})


def test_a_column_renamed_on_a_parent_with_a_child_records_the_tables_whose_keys_name_it(conn):
    # The key names the parent's own column; that the parent has a child changes nothing.
    conn.execute("CREATE TABLE a (x int UNIQUE)")
    conn.execute("CREATE TABLE b () INHERITS (a)")
    conn.execute("CREATE TABLE r (x int REFERENCES a (x))")
    before = version(conn, "r")
    conn.execute("ALTER TABLE a RENAME COLUMN x TO y")
    assert "a(y)" in scalar(conn, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'r'::regclass "
                                  "AND contype = 'f'")
    assert version(conn, "r") != before, "the referencing table was not recorded"
    assert tracked_object(conn, "public", "r")["content_hash"] == schema_hash(conn, "r")
    checkers.drift_is(conn)
    # Positive control: the same change made behind pggit's back is drift for r (and the renamed pair).
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE a RENAME COLUMN y TO z")
    checkers.drift_is(conn, {"public.a", "public.b", "public.r"})


def test_a_rename_frees_its_new_name_only_in_its_own_schema(conn):
    # Renamed while tracking was paused, t leaves a stale record under public.t; a table
    # renamed to t takes the name and retires that record, but other.t is another table.
    conn.execute("CREATE TABLE t (id int)")
    stale = tracked_object(conn, "public", "t")
    conn.execute("CREATE SCHEMA other")
    conn.execute("CREATE TABLE other.t (id int)")
    namesake = tracked_object(conn, "other", "t")
    conn.execute("CREATE TABLE u (id int)")
    moved = tracked_object(conn, "public", "u")
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE t RENAME TO v")
    conn.execute("ALTER TABLE u RENAME TO t")
    assert version(conn, "public.t") == "2.0.0"
    assert tracked_object(conn, "public", "t")["id"] == moved["id"]
    # Positive control: the stale record of the same schema went inactive.
    assert rows(conn, "SELECT is_active FROM pggit.objects WHERE id = %s", (stale["id"],)) == [{"is_active": False}]
    assert rows(conn, "SELECT is_active FROM pggit.objects WHERE id = %s", (namesake["id"],)) == [{"is_active": True}]
    assert version(conn, "other.t") == "1.0.0"
    assert [h["change_type"] for h in history_of(conn, namesake["id"])] == ["CREATE"]
    checkers.drift_is(conn)


def test_dropping_an_index_records_only_the_live_table_whose_record_lists_it(conn):
    # The dropped t's inactive record still lists t_idx, and a new t has t's name: only u,
    # whose live record lists the index, changed.
    conn.execute("CREATE TABLE t (id int)")
    conn.execute("CREATE INDEX t_idx ON t (id)")
    conn.execute("DROP TABLE t")
    conn.execute("CREATE TABLE t (id int)")
    conn.execute("CREATE TABLE u (id int)")
    conn.execute("CREATE INDEX t_idx ON u (id)")
    assert (version(conn, "t"), version(conn, "u")) == ("1.0.0", "1.0.1")
    conn.execute("DROP INDEX t_idx")
    # Positive control: u, which had the index, is recorded.
    assert version(conn, "u") == "1.0.2"
    assert version(conn, "t") == "1.0.0"
    assert [h["change_type"] for h in history_of(conn, tracked_object(conn, "public", "t")["id"])] == ["CREATE"]
    checkers.drift_is(conn)


def test_a_cascade_that_drops_a_views_default_records_only_tracked_tables(conn):
    # DROP FUNCTION ... CASCADE takes a column default of a regular table and of a view;
    # the view is not trackable and gets no record.
    conn.execute("CREATE FUNCTION seven() RETURNS int LANGUAGE sql AS 'SELECT 7'")
    conn.execute("CREATE TABLE t (x int DEFAULT seven())")
    conn.execute("CREATE VIEW v AS SELECT x FROM t")
    conn.execute("ALTER VIEW v ALTER COLUMN x SET DEFAULT seven()")
    conn.execute("DROP FUNCTION seven() CASCADE")
    # Positive control: the regular table lost its default and is recorded.
    assert version(conn, "t") == "1.0.1"
    assert rows(conn, "SELECT id FROM pggit.objects WHERE object_name = 'v'") == []
    checkers.drift_is(conn)


def test_a_rename_that_retires_a_stale_record_leaves_a_dropped_tables_record_untouched(conn):
    # Renaming u to t retires the live record still claiming t; the record of an earlier,
    # dropped t is history and keeps its updated_at.
    conn.execute("CREATE TABLE t (id int)")
    dropped = tracked_object(conn, "public", "t")
    conn.execute("DROP TABLE t")
    conn.execute("CREATE TABLE t (id int)")
    stale = tracked_object(conn, "public", "t")
    conn.execute("CREATE TABLE u (id int)")
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE t RENAME TO v")
    before = rows(conn, "SELECT id, updated_at FROM pggit.objects WHERE id IN (%s, %s) ORDER BY id",
                  (dropped["id"], stale["id"]))
    conn.execute("ALTER TABLE u RENAME TO t")
    after = rows(conn, "SELECT id, is_active, updated_at FROM pggit.objects WHERE id IN (%s, %s) ORDER BY id",
                 (dropped["id"], stale["id"]))
    # Positive control: the stale live record went inactive just now.
    assert (after[1]["is_active"], after[1]["updated_at"] > before[1]["updated_at"]) == (False, True)
    assert (after[0]["is_active"], after[0]["updated_at"]) == (False, before[0]["updated_at"])
    assert version(conn, "public.t") == "2.0.0"


def test_the_table_change_recorder_runs_with_its_callers_rights(conn, connect, make_role):
    """A role granted EXECUTE on the change recorder still cannot write pggit's records
    through it: it runs with the caller's rights, not the extension owner's."""
    role = make_role()
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    as_role = connect(user=role)
    as_role.execute("CREATE TABLE mine (id int)")
    obj = tracked_object(conn, "public", "mine")
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pggit._track_table_change(oid, text, boolean, text) TO {}")
                 .format(sql.Identifier(role)))
    call = "SELECT pggit._track_table_change('mine'::regclass, 'COMMENT', false, 'someone_else')"
    before = snapshot(conn)
    expect_error(as_role, call, sqlstate=INSUFFICIENT_PRIVILEGE, names=["objects"])
    assert_nothing_written(conn, before)
    # Positive control: the same call by the owner writes a record.
    conn.execute(call)
    assert [h["created_by"] for h in history_of(conn, obj["id"])][-1] == "someone_else"


def test_a_record_of_another_kind_carrying_a_tables_oid_does_not_record_its_schema_rename_twice(conn):
    """A live record of another kind that carries a table's OID leaves the table's schema rename one MAJOR change."""
    conn.execute("CREATE SCHEMA old_name")
    conn.execute("CREATE TABLE old_name.et (id int)")
    obj = tracked_object(conn, "old_name", "et")
    conn.execute("INSERT INTO pggit.objects (object_type, schema_name, object_name, is_active, table_oid) "
                 "VALUES ('TRIGGER', 'old_name', 'et_audit', true, 'old_name.et'::regclass)")
    conn.execute("ALTER SCHEMA old_name RENAME TO new_name")
    # Positive control: the table itself is recorded under its new schema.
    assert [(h["change_type"], h["severity"], h["new_version"]) for h in history_of(conn, obj["id"])] == [
        ("CREATE", "MAJOR", "1.0.0"), ("ALTER", "MAJOR", "2.0.0")]
    assert version(conn, "new_name.et") == "2.0.0"
    assert rows(conn, "SELECT object_type, schema_name, is_active, table_oid = 'new_name.et'::regclass AS same_oid "
                      "FROM pggit.objects WHERE object_name = 'et_audit'") == [
        {"object_type": "TRIGGER", "schema_name": "old_name", "is_active": True, "same_oid": True}]
    checkers.drift_is(conn)


@pytest.mark.needs_control
@pytest.mark.slow
def test_renaming_a_schema_leaves_drifted_a_table_whose_default_calls_a_function_with_the_schemas_oid(start_own_cluster):
    """OIDs are unique within one catalog only: after the OID counter wraps around (pg_resetwal -o brings it there
    at once) a function outside a schema can get the schema's OID, and renaming the schema does not record a
    drifted table whose default calls that function. Positive control: the table whose column has the schema's
    domain is recorded."""
    cluster = start_own_cluster()
    with cluster.connect() as c:
        c.execute("CREATE EXTENSION pggit")
        c.execute("CREATE SCHEMA lib")
        c.execute("CREATE DOMAIN lib.amount AS int")
        schema_oid = scalar(c, "SELECT 'lib'::regnamespace::oid")
    cluster.set_next_oid(schema_oid)
    with cluster.connect() as c:
        c.execute("CREATE FUNCTION seven() RETURNS int LANGUAGE sql AS 'SELECT 7'")
        assert scalar(c, "SELECT 'seven()'::regprocedure::oid") == schema_oid
        c.execute("CREATE TABLE uses_seven (x int DEFAULT seven())")
        c.execute("CREATE TABLE uses_lib (x lib.amount)")
        with nemesis.tracking_paused(c):
            c.execute("ALTER TABLE uses_seven ADD COLUMN sneaky int")
        checkers.drift_is(c, {"public.uses_seven"})
        c.execute("ALTER SCHEMA lib RENAME TO lib2")
        assert version(c, "uses_lib") == "2.0.0"
        assert version(c, "uses_seven") == "1.0.0"
        checkers.drift_is(c, {"public.uses_seven"})
