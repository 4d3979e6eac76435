"""Readers with partial privileges: get_version, calculate_schema_hash, detect_drift and verify_integrity called by roles that cannot see every tracked table.

The contract ("Partial privileges"): the readers answer for what the calling
role may see and never raise because of what it may not. The catalogs
describe every table to every role, so a table's structure (and hence its
hash and drift) is visible to a role that has no USAGE on its schema and no
SELECT on the table; name lookup through a schema without USAGE is not.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pggit_chaos.nemesis import tracking_paused
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.security]

# Tracked tables and what the reader role may do with them.
TABLES = {
    "open_space.readable": "USAGE on the schema, SELECT on the table",
    "open_space.unreadable": "USAGE on the schema, no SELECT",
    "closed_space.hidden": "no USAGE on the schema",
}


@pytest.fixture
def setup(sync_conn, make_role, db_connection_string):
    su = sync_conn
    su.autocommit = True
    reader = make_role("reader")
    for schema in ("open_space", "closed_space"):
        su.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        # An object of the table's own schema in its description: printed unqualified only where the schema
        # is on the path, which a role without USAGE on it does not have.
        su.execute(sql.SQL("CREATE TYPE {}.mood AS ENUM ('ok')").format(sql.Identifier(schema)))
    for table in TABLES:
        schema = table.split(".")[0]
        su.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text DEFAULT 'n', feeling {schema}.mood)")
        su.execute(f"CREATE INDEX ON {table} (note)")
    su.execute(sql.SQL("GRANT USAGE ON SCHEMA open_space TO {}").format(sql.Identifier(reader)))
    su.execute(sql.SQL("GRANT SELECT ON open_space.readable TO {}").format(sql.Identifier(reader)))
    su.execute("SELECT pggit.commit_changes('main', 'tables made')")
    conn = psycopg.connect(db_connection_string, user=reader, autocommit=True)
    # The reader looks for tables in the schemas on its path, the hidden one included.
    conn.execute("SET search_path = closed_space, open_space, public")
    yield su, conn
    conn.close()


def answers(conn: psycopg.Connection, table: str) -> dict[str, object]:
    """What each reader says about one table (by qualified and by bare name), plus the global answers."""
    bare = table.split(".")[1]
    return {
        "get_version": conn.execute("SELECT full_version FROM pggit.get_version(%s)", (table,)).fetchall(),
        "get_version bare": conn.execute("SELECT full_version FROM pggit.get_version(%s)", (bare,)).fetchall(),
        "calculate_schema_hash": conn.execute("SELECT pggit.calculate_schema_hash(%s)", (table,)).fetchone()[0],
        "calculate_schema_hash bare": conn.execute("SELECT pggit.calculate_schema_hash(%s)", (bare,)).fetchone()[0],
    }


def drift(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT * FROM pggit.detect_drift()").fetchall()


def integrity(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT check_name, ok, detail FROM pggit.verify_integrity()").fetchall()


@settings(max_examples=8)
@given(drifted=st.sets(st.sampled_from(sorted(TABLES))))
def test_readers_answer_for_what_the_role_may_see_and_never_raise(setup, drifted):
    """With any subset of the tracked tables changed behind pggit's back, a role without USAGE on one schema and without SELECT on one table calls every reader: none raises; for a table it may look up (USAGE on the schema) each answer equals the superuser's; detect_drift and verify_integrity answer as for the superuser (the catalogs describe every table to every role). Positive control: the superuser sees exactly the drifted tables."""
    su, reader = setup
    with tracking_paused(su):
        for table in drifted:
            su.execute(f"ALTER TABLE {table} ADD COLUMN behind_the_back int")
    try:
        expected_drift = drift(su)
        assert {f"{row[0]}.{row[1]}" for row in expected_drift} == drifted
        assert drift(reader) == expected_drift
        assert integrity(reader) == integrity(su)
        for table in TABLES:
            seen = answers(reader, table)
            if table.startswith("open_space."):
                full = answers(su, table)
                assert seen["get_version"] == full["get_version"] != []
                assert seen["calculate_schema_hash"] == full["calculate_schema_hash"] is not None
            else:
                # Not visible by name: no answer, and no error.
                assert seen["get_version"] == [] and seen["calculate_schema_hash"] is None
                assert seen["get_version bare"] == [] and seen["calculate_schema_hash bare"] is None
    finally:
        for table in drifted:
            su.execute(f"ALTER TABLE {table} DROP COLUMN behind_the_back")
        assert drift(su) == []
