"""Corruption chaos: the schema changes behind pggit's back.

pggit sees DDL through two event triggers. Anything that silences them
(``ALTER EVENT TRIGGER ... DISABLE``, ``session_replication_role = replica``,
a restore that recreates tables) lets the schema drift from what pggit
recorded. ``detect_drift()`` must then name exactly the drifted tables, with
the live hash equal to ``calculate_schema_hash``, and the drift must clear
once the change is recorded through pggit.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import scalar
from pggit_chaos.generators import shadowed_by_pg_catalog
from pggit_chaos.nemesis import tracking_paused
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.corruption]

TRIGGERS = ("pggit_ddl_command_end", "pggit_sql_drop")


def _drift(conn: psycopg.Connection) -> list[tuple]:
    """detect_drift() rows, each with calculate_schema_hash of the live table alongside."""
    return conn.execute(
        "SELECT schema_name, object_name, recorded_hash, live_hash, "
        "pggit.calculate_schema_hash(format('%I.%I', schema_name, object_name)) FROM pggit.detect_drift()"
    ).fetchall()


def _recorded(conn: psycopg.Connection, name: str) -> tuple[str, str]:
    """(content_hash, version) of the live tracked table of that name."""
    return conn.execute(
        "SELECT content_hash, version_major || '.' || version_minor || '.' || version_patch "
        "FROM pggit.objects WHERE is_active AND schema_name = 'public' AND object_name = %s", (name,)
    ).fetchone()


def _history_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pggit.history").fetchone()[0]


# change made behind pggit's back -> (severity when later recorded, how pggit then records it)
BEHIND_THE_BACK = {
    "add column": ("ALTER TABLE victim ADD COLUMN sneaky text", "MINOR"),
    "drop column": ("ALTER TABLE victim DROP COLUMN qty", "MAJOR"),
    "alter column type": ("ALTER TABLE victim ALTER COLUMN qty TYPE bigint", "MAJOR"),
    "rename column": ("ALTER TABLE victim RENAME COLUMN name TO label", "MAJOR"),
    "set default": ("ALTER TABLE victim ALTER COLUMN qty SET DEFAULT 7", "PATCH"),
    "set not null": ("ALTER TABLE victim ALTER COLUMN name SET NOT NULL", "PATCH"),
    "add index": ("CREATE INDEX victim_name_idx ON victim (name)", "PATCH"),
    "drop index": ("DROP INDEX victim_qty_idx", "PATCH"),
    "add check constraint": ("ALTER TABLE victim ADD CONSTRAINT qty_positive CHECK (qty > 0)", "PATCH"),
    "add unique constraint": ("ALTER TABLE victim ADD CONSTRAINT victim_name_key UNIQUE (name)", "PATCH"),
}


@pytest.fixture
def conn(sync_conn: psycopg.Connection) -> psycopg.Connection:
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE victim (id int PRIMARY KEY, name text, qty int)")
    sync_conn.execute("CREATE INDEX victim_qty_idx ON victim (qty)")
    sync_conn.execute("CREATE TABLE bystander (id int PRIMARY KEY)")
    checkers.drift_is(sync_conn)
    return sync_conn


@pytest.mark.parametrize("kind", sorted(BEHIND_THE_BACK))
def test_change_with_triggers_disabled_is_found_by_detect_drift_and_clears_once_recorded(conn, kind):
    """A structural change made while pggit's event triggers are disabled is reported by detect_drift for exactly that table, with the old recorded hash and the live calculate_schema_hash; a tracked no-op DDL then records it as one change of the right severity and the drift is gone."""
    ddl, severity = BEHIND_THE_BACK[kind]
    recorded_hash, version = _recorded(conn, "victim")
    history = _history_count(conn)
    with tracking_paused(conn):
        conn.execute(ddl)

    drift = _drift(conn)
    assert [(s, t, r) for s, t, r, _, _ in drift] == [("public", "victim", recorded_hash)]
    _, _, _, live, calculated = drift[0]
    assert live == calculated and live is not None and live != recorded_hash
    assert _recorded(conn, "victim") == (recorded_hash, version) and _history_count(conn) == history

    conn.execute("COMMENT ON TABLE victim IS 'drift recorded'")  # tracked, changes no structure
    checkers.drift_is(conn)
    assert checkers.recorded_hash_is_live(conn, "victim") == live
    assert conn.execute("SELECT severity FROM pggit.history ORDER BY id DESC LIMIT 1").fetchone() == (severity,)
    assert _history_count(conn) == history + 1
    checkers.versions_strictly_increasing(conn, "victim")
    checkers.integrity_ok(conn)


def test_table_dropped_behind_pggits_back_is_reported_with_no_live_hash(conn):
    """A tracked table dropped while tracking is off is reported by detect_drift with live_hash NULL; recreating it through pggit clears the drift."""
    recorded_hash, _ = _recorded(conn, "victim")
    with tracking_paused(conn):
        conn.execute("DROP TABLE victim")
    assert _drift(conn) == [("public", "victim", recorded_hash, None, None)]
    conn.execute("CREATE TABLE victim (id int)")
    checkers.drift_is(conn)
    checkers.recorded_hash_is_live(conn, "victim")
    checkers.integrity_ok(conn)


def test_table_renamed_behind_pggits_back_is_found_and_recorded_as_a_rename(conn):
    """A table renamed while tracking is off shows up under its old name with no live hash; a tracked DDL on the new name records the rename as a major change and clears the drift."""
    recorded_hash, _ = _recorded(conn, "victim")
    with tracking_paused(conn):
        conn.execute("ALTER TABLE victim RENAME TO victim_renamed")
    assert _drift(conn) == [("public", "victim", recorded_hash, None, None)]
    conn.execute("COMMENT ON TABLE victim_renamed IS 'found again'")
    checkers.drift_is(conn)
    assert checkers.versions_strictly_increasing(conn, "victim_renamed") == ["1.0.0", "1.0.1", "2.0.0"]
    checkers.integrity_ok(conn)


def test_session_replication_role_replica_silences_pggits_event_triggers(conn):
    """session_replication_role = replica silences pggit's event triggers (they are enabled in ORIGIN mode, PostgreSQL's default): a change made so is recorded nowhere and detect_drift finds it; a table created so is not tracked at all, so detect_drift cannot see it."""
    assert conn.execute("SELECT array_agg(evtenabled::text ORDER BY evtname) FROM pg_event_trigger "
                        "WHERE evtname = ANY(%s)", (list(TRIGGERS),)).fetchone() == (["O", "O"],)
    recorded_hash, version = _recorded(conn, "victim")
    history = _history_count(conn)
    with tracking_paused(conn, how="replica"):
        conn.execute("ALTER TABLE victim ADD COLUMN replicated text")
        conn.execute("CREATE TABLE unseen (id int)")
    assert _history_count(conn) == history
    assert _recorded(conn, "victim") == (recorded_hash, version)
    drift = _drift(conn)
    assert [(t, r) for _, t, r, _, _ in drift] == [("victim", recorded_hash)]
    assert drift[0][3] == drift[0][4]
    # Never tracked, so invisible to detect_drift: only the next tracked DDL adopts it.
    assert conn.execute("SELECT count(*) FROM pggit.objects WHERE object_name = 'unseen'").fetchone() == (0,)
    conn.execute("COMMENT ON TABLE unseen IS 'adopted'")
    assert checkers.versions_strictly_increasing(conn, "unseen") == ["1.0.0"]
    conn.execute("COMMENT ON TABLE victim IS 'recorded'")
    checkers.drift_is(conn)
    checkers.integrity_ok(conn)


@pytest.mark.parametrize("same_structure", [False, True], ids=["other-structure", "same-structure"])
def test_restore_like_recreation_is_reported_only_when_the_structure_differs(conn, same_structure):
    """A table dropped and recreated while tracking is off (as a restore does) is reported by detect_drift when its structure differs, with the live calculate_schema_hash, and not at all when it is the same; a tracked DDL then clears the drift."""
    recorded_hash, version = _recorded(conn, "victim")
    recreate = ("CREATE TABLE victim (id int PRIMARY KEY, name text, qty int); "
                "CREATE INDEX victim_qty_idx ON victim (qty)") if same_structure else \
               "CREATE TABLE victim (id bigint PRIMARY KEY, name varchar(80) NOT NULL, restored_at timestamptz)"
    with tracking_paused(conn):
        conn.execute("DROP TABLE victim")
        conn.execute(recreate)
    if same_structure:
        checkers.drift_is(conn)  # the hash does not depend on OIDs
    else:
        drift = _drift(conn)
        assert [(t, r) for _, t, r, _, _ in drift] == [("victim", recorded_hash)]
        assert drift[0][3] == drift[0][4] is not None
    assert _recorded(conn, "victim") == (recorded_hash, version)
    conn.execute("COMMENT ON TABLE victim IS 'restored'")
    checkers.drift_is(conn)
    checkers.recorded_hash_is_live(conn, "victim")
    checkers.integrity_ok(conn)


def test_restore_that_reorders_the_columns_is_reported_as_drift(conn):
    """A table recreated behind pggit's back with the same columns, types and index but in another column order (a restore from a hand-edited dump) has another structure: detect_drift reports it, and a tracked DDL records it."""
    recorded_hash, _ = _recorded(conn, "victim")
    with tracking_paused(conn):
        conn.execute("DROP TABLE victim")
        conn.execute("CREATE TABLE victim (qty int, name text, id int PRIMARY KEY)")
        conn.execute("CREATE INDEX victim_qty_idx ON victim (qty)")
    drift = _drift(conn)
    assert [(t, r) for _, t, r, _, _ in drift] == [("victim", recorded_hash)], drift
    assert drift[0][3] == drift[0][4] != recorded_hash
    conn.execute("COMMENT ON TABLE victim IS 'restored'")
    checkers.drift_is(conn)
    checkers.recorded_hash_is_live(conn, "victim")


def test_a_partitioned_table_changed_behind_pggits_back_is_drift_for_it_and_its_partitions(conn):
    """A partitioned table and its partition are both tracked; a column added to the parent while tracking is off changes both, detect_drift names both, and recording each clears the drift."""
    conn.execute("CREATE TABLE readings (id int, taken date) PARTITION BY RANGE (taken)")
    conn.execute("CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    versions = {t: (_recorded(conn, t) or (None, "untracked"))[1] for t in ("readings", "readings_2024")}
    assert versions == {"readings": "1.0.0", "readings_2024": "1.0.0"}
    with tracking_paused(conn):
        conn.execute("ALTER TABLE readings ADD COLUMN sneaky text")
    checkers.drift_is(conn, {"public.readings", "public.readings_2024"})
    for table in ("readings", "readings_2024"):
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS 'recorded'").format(sql.Identifier(table)))
    checkers.drift_is(conn)
    checkers.integrity_ok(conn)


def test_a_function_that_shadows_a_builtin_in_the_callers_path_changes_nothing_pggit_does(conn):
    """A caller who puts a schema of their own before pg_catalog in search_path, with a fake length(), cannot get a 10,001-character message past commit_changes: every SECURITY DEFINER function of pggit pins its own search_path."""
    unpinned = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'pggit' AND p.prosecdef "
        "AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%') ORDER BY 1"
    ).fetchall()
    assert unpinned == [], f"SECURITY DEFINER functions that run with the caller's search_path: {unpinned}"
    conn.execute("CREATE SCHEMA shadow")
    conn.execute("CREATE FUNCTION shadow.length(text) RETURNS integer LANGUAGE sql AS 'SELECT 0'")
    conn.execute("SET search_path = shadow, pg_catalog, public")
    try:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="10000"):
            conn.execute("SELECT pggit.commit_changes('main', repeat('x', 10001))")
    finally:
        conn.execute("RESET search_path")
    assert conn.execute("SELECT count(*) FROM pggit.commits").fetchone() == (0,)
    checkers.integrity_ok(conn)


# Names that must be quoted: capitals, spaces, dots, quotes, any printable character (at most 63 bytes).
QUOTED_NAME = st.text(st.characters(min_codepoint=32, exclude_characters="\x7f", exclude_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda name: len(name.encode()) <= 63 and not shadowed_by_pg_catalog(name))


@example(name="MixedCase")
@example(name='with space. and "dot"')
@given(name=QUOTED_NAME)
def test_a_table_whose_name_needs_quoting_never_shows_up_as_drift(fresh_connection, name):
    """detect_drift finds every tracked table by its quoted name: a table named with capitals, spaces, dots or quotes, changed only through pggit, is never reported as drifted."""
    table = sql.Identifier(name)
    with fresh_connection() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(table))
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN v text").format(table))
        assert _drift(conn) == [], name
        # Positive controls: pggit tracked the table by that name, and a change behind its back is reported.
        assert _recorded(conn, name)[1] == "1.1.0"
        with tracking_paused(conn, how="replica"):
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN sneaky int").format(table))
        assert [row[:2] for row in _drift(conn)] == [("public", name)]


# Changes for the property test: structural ones always change the description
# (fresh names and values each time, nothing undone); the others never do.
STRUCTURAL = ("add column", "add index", "set default", "add check")
NOT_STRUCTURAL = ("comment on table", "comment on column", "storage option")


def _change_sql(kind: str, table: sql.Identifier, n: int) -> sql.Composed:
    """The change, made unique by ``n`` (the example's own count, so a replay makes the same statements)."""
    statements = {
        "add column": "ALTER TABLE {t} ADD COLUMN {c} int",
        "add index": "CREATE INDEX {i} ON {t} (v)",
        "set default": "ALTER TABLE {t} ALTER COLUMN v SET DEFAULT {n}",
        "add check": "ALTER TABLE {t} ADD CONSTRAINT {i} CHECK (v <> {n})",
        "comment on table": "COMMENT ON TABLE {t} IS 'c{n}'",
        "comment on column": "COMMENT ON COLUMN {t}.v IS 'c{n}'",
        "storage option": "ALTER TABLE {t} SET (fillfactor = {ff})",
    }
    return sql.SQL(statements[kind]).format(t=table, c=sql.Identifier(f"col{n}"), i=sql.Identifier(f"obj{n}"),
                                            n=sql.Literal(n), ff=sql.Literal(50 + n % 50))


@pytest.mark.slow
@given(
    how=st.sampled_from(["disable", "replica"]),
    changes=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(STRUCTURAL + NOT_STRUCTURAL)), max_size=8),
)
def test_detect_drift_names_exactly_the_tables_whose_structure_changed(fresh_connection, how, changes):
    """For any mix of changes made while tracking is off, detect_drift names exactly the tables that got a structural change (comments and storage options are not structure), and recording each one through pggit clears it."""
    with fresh_connection(autocommit=True) as conn:
        schema = "drift"
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        tables = [sql.Identifier(schema, f"t{i}") for i in range(4)]
        for table in tables:
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v int)").format(table))

        with tracking_paused(conn, how):
            for n, (index, kind) in enumerate(changes):
                conn.execute(_change_sql(kind, tables[index], n))

        expected = {f"{schema}.t{i}" for i, kind in changes if kind in STRUCTURAL}
        assert checkers.drift_is(conn, expected) == expected
        for _, _, _, live, calculated in _drift(conn):
            assert live == calculated
        for name in sorted(expected):
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS 'recorded'").format(sql.Identifier(*name.split("."))))
        checkers.drift_is(conn)


@pytest.mark.needs_control
@pytest.mark.slow
def test_a_table_sharing_an_oid_with_an_object_of_a_renamed_schema_does_not_record_what_names_it(start_own_cluster):
    """Object IDs are unique within one catalog only: after the OID counter wraps around (pg_resetwal -o brings
    it there at once), a table outside a schema can get the OID of a function inside it. Renaming the schema
    records the table whose column has the schema's domain (its description names the domain), but not the
    table whose foreign key names that table: the key's text did not change, so a change made to it behind
    pggit's back stays drift. Positive control: renaming the table the key names records it, drift gone."""
    cluster = start_own_cluster()
    with cluster.connect() as conn:
        conn.execute("CREATE EXTENSION pggit")
        conn.execute("CREATE SCHEMA lib")
        conn.execute("CREATE DOMAIN lib.amount AS int")
        conn.execute("CREATE FUNCTION lib.seven() RETURNS int LANGUAGE sql AS 'SELECT 7'")
        function_oid = scalar(conn, "SELECT 'lib.seven()'::regprocedure::oid")
    cluster.set_next_oid(function_oid)
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE parent (id int PRIMARY KEY, total lib.amount)")
        assert scalar(conn, "SELECT 'parent'::regclass::oid") == function_oid
        conn.execute("CREATE TABLE child (id int REFERENCES parent)")
        with tracking_paused(conn):
            conn.execute("ALTER TABLE child ADD COLUMN sneaky int")
        assert [row[:2] for row in _drift(conn)] == [("public", "child")]
        conn.execute("ALTER SCHEMA lib RENAME TO lib2")
        assert [row[:2] for row in _drift(conn)] == [("public", "child")]
        conn.execute("ALTER TABLE parent RENAME TO renamed_parent")
        assert _drift(conn) == []
