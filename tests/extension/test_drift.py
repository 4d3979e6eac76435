"""detect_drift: tracked tables whose live structure no longer matches what pggit recorded."""

from __future__ import annotations

import psycopg
import pytest

from pggit_chaos import nemesis
from tests.extension.helpers import (
    assert_nothing_written,
    rows,
    schema_hash,
    snapshot,
    tracked_object,
)

CHANGES_BEHIND_PGGITS_BACK = {
    "add_column": "ALTER TABLE {t} ADD COLUMN sneaky int",
    "drop_column": "ALTER TABLE {t} DROP COLUMN note",
    "column_type": "ALTER TABLE {t} ALTER COLUMN note TYPE varchar(5)",
    "add_index": "CREATE INDEX ON {t} (note)",
    "set_default": "ALTER TABLE {t} ALTER COLUMN note SET DEFAULT 'x'",
}


def drift(conn: psycopg.Connection) -> list[dict]:
    return rows(conn, "SELECT * FROM pggit.detect_drift() ORDER BY schema_name, object_name")


def behind_pggits_back(conn: psycopg.Connection, statement: str) -> None:
    with nemesis.tracking_paused(conn):
        conn.execute(statement)


@pytest.fixture
def tracked(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("CREATE TABLE watched (id int PRIMARY KEY, note text)")
    conn.execute("CREATE TABLE bystander (id int PRIMARY KEY)")
    return conn


def test_no_drift_in_a_fresh_database(conn):
    assert drift(conn) == []
    # Positive control: once a tracked table changes behind pggit's back, the same call reports it.
    conn.execute("CREATE TABLE watched (id int)")
    behind_pggits_back(conn, "ALTER TABLE watched ADD COLUMN sneaky int")
    assert [(d["schema_name"], d["object_name"]) for d in drift(conn)] == [("public", "watched")]


def test_no_drift_after_tracked_creates_and_alters(tracked):
    tracked.execute("ALTER TABLE watched ADD COLUMN extra int")
    tracked.execute("CREATE INDEX ON watched (extra)")
    tracked.execute("ALTER TABLE bystander RENAME TO bystander2")
    tracked.execute("ALTER TABLE watched DROP COLUMN extra")
    tracked.execute("CREATE TABLE dropped_later (id int)")
    tracked.execute("DROP TABLE dropped_later")
    assert drift(tracked) == []
    # Positive control: the same call reports a change made behind pggit's back.
    behind_pggits_back(tracked, "ALTER TABLE watched ADD COLUMN sneaky int")
    assert [(d["schema_name"], d["object_name"]) for d in drift(tracked)] == [("public", "watched")]


@pytest.mark.parametrize("change", CHANGES_BEHIND_PGGITS_BACK)
def test_change_with_event_triggers_disabled_is_reported_with_both_hashes(tracked, change):
    recorded = tracked_object(tracked, "public", "watched")["content_hash"]
    behind_pggits_back(tracked, CHANGES_BEHIND_PGGITS_BACK[change].format(t="watched"))
    live = schema_hash(tracked, "public.watched")
    assert live != recorded
    assert drift(tracked) == [
        {"schema_name": "public", "object_name": "watched", "recorded_hash": recorded, "live_hash": live}
    ]


@pytest.mark.parametrize(
    "statement", ["DROP TABLE watched", "ALTER TABLE watched RENAME TO watched_elsewhere"], ids=["dropped", "renamed"]
)
def test_table_gone_while_tracking_was_paused_is_reported_without_live_hash(tracked, statement):
    recorded = tracked_object(tracked, "public", "watched")["content_hash"]
    behind_pggits_back(tracked, statement)
    assert drift(tracked) == [
        {"schema_name": "public", "object_name": "watched", "recorded_hash": recorded, "live_hash": None}
    ]


def test_drift_is_gone_after_a_tracked_change_to_the_table(tracked):
    behind_pggits_back(tracked, "ALTER TABLE watched ADD COLUMN sneaky int")
    assert len(drift(tracked)) == 1
    tracked.execute("ALTER TABLE watched ADD COLUMN tracked_again int")
    assert drift(tracked) == []


def test_drift_reports_names_that_need_quoting(conn):
    conn.execute('CREATE SCHEMA "Odd Schema"')
    conn.execute('CREATE TABLE "Odd Schema"."Mixed Case" (id int)')
    recorded = tracked_object(conn, "Odd Schema", "Mixed Case")["content_hash"]
    behind_pggits_back(conn, 'ALTER TABLE "Odd Schema"."Mixed Case" ADD COLUMN sneaky int')
    assert drift(conn) == [
        {"schema_name": "Odd Schema", "object_name": "Mixed Case", "recorded_hash": recorded,
         "live_hash": schema_hash(conn, '"Odd Schema"."Mixed Case"')}
    ]


def test_detect_drift_writes_nothing(tracked):
    behind_pggits_back(tracked, "ALTER TABLE watched ADD COLUMN sneaky int")
    before = snapshot(tracked)
    # Positive control: there is drift to report, so the call did the work that could have written.
    assert [(d["schema_name"], d["object_name"]) for d in drift(tracked)] == [("public", "watched")]
    assert_nothing_written(tracked, before)


def test_drift_is_unaffected_by_search_path(tracked):
    behind_pggits_back(tracked, "ALTER TABLE watched ADD COLUMN sneaky int")
    expected = drift(tracked)
    assert [(d["schema_name"], d["object_name"]) for d in expected] == [("public", "watched")]
    tracked.execute("CREATE SCHEMA elsewhere")
    tracked.execute("CREATE TABLE elsewhere.watched (other int)")
    tracked.execute("SET search_path = elsewhere")
    assert drift(tracked) == expected


def test_a_record_of_another_kind_with_a_tables_name_is_not_drift(conn):
    """Only TABLE records are compared: a live record of another kind (a function orders() that a superuser
    recorded) sharing the schema and name of a tracked table is not reported, though the table's live hash is
    not that record's hash. Positive control: the table itself, changed behind pggit's back, is reported once."""
    conn.execute("CREATE TABLE orders (id int)")
    schema_hash_recorded = tracked_object(conn, "public", "orders")["content_hash"]
    conn.execute("CREATE FUNCTION orders() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    conn.execute("INSERT INTO pggit.objects (object_type, schema_name, object_name, version_major, version_minor, "
                 "version_patch, is_active) VALUES ('FUNCTION', 'public', 'orders', 1, 0, 0, true)")
    assert drift(conn) == []
    behind_pggits_back(conn, "ALTER TABLE orders ADD COLUMN sneaky int")
    assert [(d["schema_name"], d["object_name"], d["recorded_hash"]) for d in drift(conn)] == [
        ("public", "orders", schema_hash_recorded)]


def test_a_drifted_table_stays_drifted_through_changes_to_objects_it_does_not_depend_on(conn):
    """A command records the tables whose description it changed, found through what depends on the objects
    it changed: a domain renamed reaches the table with a column of it, not the table whose foreign key names
    that table (a composite type elsewhere does not widen the walk), and a schema renamed reaches what is in
    it, not what is in other schemas. So a table changed behind pggit's back stays drifted. Positive control:
    renaming the table its key names does record it, and its drift is gone."""
    conn.execute("CREATE DOMAIN amount AS int")
    conn.execute("CREATE TYPE pair AS (a int, b int)")
    conn.execute("CREATE TABLE parent (id int PRIMARY KEY, total amount)")
    conn.execute("CREATE TABLE child (id int REFERENCES parent)")
    conn.execute("CREATE SCHEMA aside")
    conn.execute("CREATE TABLE aside.other (id int)")
    behind_pggits_back(conn, "ALTER TABLE child ADD COLUMN sneaky int")
    assert [(d["schema_name"], d["object_name"]) for d in drift(conn)] == [("public", "child")]
    conn.execute("ALTER DOMAIN amount RENAME TO money_amount")
    conn.execute("ALTER SCHEMA aside RENAME TO moved")
    assert [(d["schema_name"], d["object_name"]) for d in drift(conn)] == [("public", "child")]
    conn.execute("ALTER TABLE parent RENAME TO renamed_parent")
    assert drift(conn) == []
