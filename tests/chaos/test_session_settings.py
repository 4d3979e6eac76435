"""Session settings: pggit hashes, tracks, commits and validates the same whatever an ordinary session sets.

The contract ("Any session"): results do not depend on session settings an
ordinary role may change. The same structure hashes the same, the same change
gets the same severity, and every function works, whatever the session sets.

Workload: one scenario (a table with defaults that print per session, mixed
case names, an enum of its own schema, a generated column, constraints and
indexes; then a change of every severity, a migration and its rollback,
branches, a commit, a data branch, and branch names pggit must accept or
refuse), run in a fresh session. Fault: a set of settings with valid values,
drawn by Hypothesis from every setting of context ``user`` in pg_settings
that could change how SQL is printed or parsed (the rest are listed with the
reason they cannot matter, and a test checks the two lists cover
pg_settings). Oracle: the same scenario under default settings in another
fresh database. Invariants: equal hashes after every step, equal versions,
severities and command tags, equal name verdicts, no drift, integrity.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pggit_chaos.profiles import share_of_examples
from pggit_chaos.snapshot import DatabaseStateSnapshot
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.settings]

BOOL = st.sampled_from(["on", "off"])
LOCALES = st.sampled_from(["C", "POSIX", "C.utf8"])
# The settings drawn, each with values a session may set.
DRAWN: dict[str, st.SearchStrategy[str]] = {
    "DateStyle": st.sampled_from(["ISO, MDY", "ISO, DMY", "German", "SQL, DMY", "Postgres, MDY", "SQL, YMD"]),
    "IntervalStyle": st.sampled_from(["postgres", "postgres_verbose", "sql_standard", "iso_8601"]),
    "TimeZone": st.sampled_from(["UTC", "Asia/Kolkata", "America/Los_Angeles", "Pacific/Chatham", "Europe/Berlin"]),
    "timezone_abbreviations": st.sampled_from(["Default", "India", "Australia"]),
    "extra_float_digits": st.integers(-15, 3).map(str),
    "bytea_output": st.sampled_from(["hex", "escape"]),
    "standard_conforming_strings": BOOL,
    "backslash_quote": st.sampled_from(["on", "off", "safe_encoding"]),
    "escape_string_warning": BOOL,
    "quote_all_identifiers": BOOL,
    "lc_monetary": LOCALES,
    "lc_numeric": LOCALES,
    "lc_time": LOCALES,
    "default_text_search_config": st.sampled_from(["pg_catalog.simple", "pg_catalog.english", "pg_catalog.german"]),
    "xmloption": st.sampled_from(["content", "document"]),
    "xmlbinary": st.sampled_from(["base64", "hex"]),
    "client_encoding": st.sampled_from(["UTF8", "LATIN1", "WIN1252", "EUC_JP"]),
    "array_nulls": BOOL,
    "transform_null_equals": BOOL,
    "default_transaction_isolation": st.sampled_from(["read committed", "repeatable read", "serializable"]),
    "default_transaction_deferrable": BOOL,
    "plan_cache_mode": st.sampled_from(["auto", "force_generic_plan", "force_custom_plan"]),
    "search_path": st.sampled_from(['"$user", public', "", "pg_catalog", "pg_temp, public", "public, pg_catalog"]),
    "row_security": BOOL,
    "check_function_bodies": BOOL,
    "client_min_messages": st.sampled_from(["debug5", "notice", "warning", "error"]),
    "default_toast_compression": st.sampled_from(["pglz"]),
    "default_table_access_method": st.sampled_from(["heap"]),
    "debug_parallel_query": st.sampled_from(["off", "on", "regress"]),
    "synchronize_seqscans": BOOL,
    "constraint_exclusion": st.sampled_from(["on", "off", "partition"]),
    "restrict_nonsystem_relation_kind": st.sampled_from(["", "view", "foreign-table", "view, foreign-table"]),
    "application_name": st.sampled_from(["", "pggit's \"app\""]),
    "plpgsql.extra_errors": st.sampled_from(["none", "all", "shadowed_variables", "too_many_rows",
                                             "strict_multi_assignment"]),
    "plpgsql.extra_warnings": st.sampled_from(["none", "all"]),
    "plpgsql.check_asserts": BOOL,
    "plpgsql.print_strict_params": BOOL,
    # Planner method switches change plans: results that depend on a row order nobody asked for would show.
    **{name: BOOL for name in (
        "enable_async_append", "enable_bitmapscan", "enable_gathermerge", "enable_hashagg", "enable_hashjoin",
        "enable_incremental_sort", "enable_indexonlyscan", "enable_indexscan", "enable_material",
        "enable_memoize", "enable_mergejoin", "enable_nestloop", "enable_parallel_append", "enable_parallel_hash",
        "enable_partition_pruning", "enable_partitionwise_aggregate", "enable_partitionwise_join",
        "enable_presorted_aggregate", "enable_seqscan", "enable_sort", "enable_tidscan",
        "enable_group_by_reordering", "enable_self_join_elimination", "enable_distinct_reordering")},
}

# Settings of context "user" left out, each with the reason it cannot change what pggit prints or parses.
EXCLUDED: dict[str, str] = {
    "default_transaction_read_only": "drawn on its own below: every writer must fail cleanly",
    "transaction_isolation": "one transaction's level; default_transaction_isolation is drawn",
    "transaction_read_only": "one transaction's; default_transaction_read_only is tested",
    "transaction_deferrable": "one transaction's; default_transaction_deferrable is drawn",
    "default_tablespace": "an ordinary role can create no tablespace; pg_default is the only one",
    "temp_tablespaces": "an ordinary role can create no tablespace; pg_default is the only one",
    "local_preload_libraries": "read at connection start only, from $libdir/plugins",
    "exit_on_error": "turns an error into the session's end; changes no value printed or parsed",
    "synchronous_commit": "when a commit is durable: the crash category's",
    "commit_siblings": "commit timing only",
    "password_encryption": "role passwords only",
    "scram_iterations": "role passwords only",
    "createrole_self_grant": "CREATE ROLE only",
    "icu_validation_level": "CREATE COLLATION only",
    "gin_fuzzy_search_limit": "GIN index searches only; pggit makes none",
    "gin_pending_list_limit": "GIN index maintenance only",
    "stats_fetch_consistency": "statistics views only",
    "default_statistics_target": "ANALYZE sample size: plans, never results",
    "cursor_tuple_fraction": "planner estimate: plans, never results",
    "recursive_worktable_factor": "planner estimate: plans, never results",
    "effective_cache_size": "planner estimate: plans, never results",
    "random_page_cost": "planner estimate: plans, never results",
    "seq_page_cost": "planner estimate: plans, never results",
    "from_collapse_limit": "planner search limit: plans, never results",
    "join_collapse_limit": "planner search limit: plans, never results",
    "parallel_leader_participation": "parallel plans only, never results",
    "debug_pretty_print": "server log output only",
    "debug_logical_replication_streaming": "logical decoding only",
    "log_parameter_max_length_on_error": "server log output only",
    "trace_notify": "server log output only",
    "trace_sort": "server log output only",
    "file_copy_method": "CREATE DATABASE only",
    "md5_password_warnings": "role passwords only",
}
# Whole families, by prefix, with the reason.
EXCLUDED_PREFIXES: dict[str, str] = {
    "cpu_": "planner cost: plans, never results",
    "parallel_": "planner cost: plans, never results",
    "max_parallel_": "how many parallel workers: plans, never results",
    "min_parallel_": "planner threshold: plans, never results",
    "geqo": "genetic planner: plans, never results",
    "jit": "compiles expressions; same results",
    "vacuum_": "VACUUM only",
    "debug_print_": "server log output only",
    "tcp_": "network keepalives: the network category's",
    "work_mem": "a memory budget: the resource category's",
    "maintenance_work_mem": "a memory budget: the resource category's",
    "hash_mem_multiplier": "a memory budget: the resource category's",
    "logical_decoding_work_mem": "a memory budget: the resource category's",
    "temp_buffers": "a memory budget: the resource category's",
    "effective_io_concurrency": "I/O prefetch depth only",
    "maintenance_io_concurrency": "I/O prefetch depth only",
    "io_": "I/O sizes only",
    "backend_flush_after": "write-back timing only",
    "wal_": "WAL writing and replication only",
    "statement_timeout": "cancels, changes no value: the fault categories'",
    "lock_timeout": "cancels, changes no value: the fault categories'",
    "idle_": "ends idle sessions, changes no value: the fault categories'",
    "transaction_timeout": "cancels, changes no value: the fault categories'",
    "client_connection_check_interval": "detects lost clients only",
}

# Branch names whose verdict (accepted or the SQLSTATE) must not depend on the session.
NAMES = ["feature/ok", "a.b", "deadlock", "x.lockx", "release-1_2", "feature/.hidden", "bad..name", "end.",
         "has space", "tab\there", "brack[et", "back\\slash", "a@{b", "@", "/lead", "trail/", "x.lock",
         "colon:", "quote'name", 'dq"name']

TABLE = '"Weird Table"'


def _scenario_sql(schema: str) -> list[tuple[str, str]]:
    """(label, statement) pairs; every literal reads the same under any setting."""
    s = sql.Identifier(schema).as_string(None)
    t = f"{s}.{TABLE}"
    return [
        ("create type", f"CREATE TYPE {s}.\"Mood\" AS ENUM ('ok', 'sad')"),
        ("create table", f"""CREATE TABLE {t} (
            id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            "Name" text NOT NULL DEFAULT E'a\\\\b''c',
            at timestamptz DEFAULT '2024-02-29 23:30:00+00',
            day date DEFAULT '2024-02-29',
            span interval DEFAULT '1 day 02:03:04.5',
            raw bytea DEFAULT E'\\\\xdeadbeef',
            ratio double precision DEFAULT 0.1 CHECK (ratio > 0),
            price money DEFAULT 12.5,
            "Mixed Case" numeric(10, 2) DEFAULT 1.50,
            tags text[] DEFAULT ARRAY['a', NULL]::text[],
            mood {s}."Mood" DEFAULT 'ok',
            doc tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, "Name")) STORED,
            CONSTRAINT "Unique Name" UNIQUE ("Name"))"""),
        ("create index", f"CREATE INDEX \"Idx Name\" ON {t} (lower(\"Name\")) WHERE ratio > 0.5"),
        ("add column", f"ALTER TABLE {t} ADD COLUMN extra int DEFAULT 42"),
        ("set default", f"ALTER TABLE {t} ALTER COLUMN extra SET DEFAULT 43"),
        ("comment", f"COMMENT ON TABLE {t} IS E'it''s \\\\ weird'"),
        ("change type", f"ALTER TABLE {t} ALTER COLUMN extra TYPE bigint"),
        ("second index", f"CREATE INDEX \"Second Idx\" ON {t} (extra)"),
        ("drop index", f"DROP INDEX {s}.\"Second Idx\""),
        ("rename column", f"ALTER TABLE {t} RENAME COLUMN extra TO \"Extra Renamed\""),
        ("drop column", f"ALTER TABLE {t} DROP COLUMN \"Extra Renamed\""),
    ]


def _scenario(conn: psycopg.Connection, schema: str, prefix: str) -> dict:
    """Run the scenario on an autocommit session; everything observable, with the names taken out."""
    qualified = f"{sql.Identifier(schema).as_string(conn)}.{TABLE}"
    seen: dict = {"hashes": [], "names": {}}
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for label, statement in _scenario_sql(schema):
        conn.execute(statement)
        seen["hashes"].append((label, conn.execute("SELECT pggit.calculate_schema_hash(%s)",
                                                   (qualified,)).fetchone()[0]))
    seen["migration"] = [
        conn.execute("SELECT pggit.apply_migration(%s, %s, %s)",
                     (f"{prefix}m1", f"ALTER TABLE {qualified} ADD COLUMN mig int",
                      f"ALTER TABLE {qualified} DROP COLUMN mig")).fetchone()[0],
        conn.execute("SELECT pggit.rollback_migration(%s)", (f"{prefix}m1",)).fetchone()[0],
    ]
    seen["version"] = conn.execute("SELECT full_version FROM pggit.get_version(%s)", (qualified,)).fetchone()
    seen["history"] = conn.execute(
        "SELECT h.change_type, h.severity, h.command_tag, h.old_version, h.new_version FROM pggit.history h "
        "JOIN pggit.objects o ON o.id = h.object_id WHERE o.schema_name = %s AND o.object_name = 'Weird Table' "
        "ORDER BY h.id", (schema,)).fetchall()
    seen["recorded hash"] = conn.execute(
        "SELECT content_hash FROM pggit.objects WHERE is_active AND schema_name = %s AND object_name = 'Weird Table'",
        (schema,)).fetchone()
    seen["drift"] = conn.execute("SELECT * FROM pggit.detect_drift() WHERE schema_name = %s", (schema,)).fetchall()
    seen["integrity"] = conn.execute("SELECT check_name FROM pggit.verify_integrity() WHERE NOT ok").fetchall()

    message = "a message with 'quotes', a \\ backslash and\na newline"
    branch = f"{prefix}feature"
    seen["branch"] = conn.execute("SELECT pggit.create_branch(%s) > 0", (branch,)).fetchone()[0]
    trinity_id = conn.execute("SELECT pggit.commit_changes(%s, %s)", (branch, message)).fetchone()[0]
    seen["commit"] = conn.execute("SELECT message = %s, author = current_user FROM pggit.commits WHERE hash = %s",
                                  (message, trinity_id)).fetchone()
    seen["data branch"] = conn.execute("SELECT pggit.create_data_branch(%s, 'main', %s)",
                                       (qualified, branch)).fetchone()[0].replace(prefix, "<prefix>")
    conn.execute("SELECT pggit.delete_branch_simple(%s)", (branch,))
    seen["deleted"] = conn.execute("SELECT status FROM pggit.branches WHERE name = %s", (branch,)).fetchone()
    for name in NAMES:
        try:
            with conn.transaction():
                conn.execute("SELECT pggit.create_branch(%s)", (name,))
                raise psycopg.Rollback()
        except psycopg.Error as error:
            seen["names"][name] = error.sqlstate
        else:
            seen["names"][name] = "accepted"
    return seen


_counter = itertools.count(1)


@pytest.fixture
def reference(make_database) -> dict:
    """The scenario under default settings, in a fresh database of its own."""
    with psycopg.connect(make_database(), autocommit=True) as conn:
        return _scenario(conn, "reference", "ref/")


def _apply(conn: psycopg.Connection, settings: dict[str, str]) -> dict[str, str]:
    """Set what this server knows (a setting of a later release is skipped); returns what was set."""
    applied = {}
    for name, value in settings.items():
        if conn.execute("SELECT count(*) FROM pg_settings WHERE name = %s", (name,)).fetchone()[0] == 0:
            continue
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        applied[name] = value
    return applied


def _check_scenario_under(dsn: str, reference: dict, settings: dict[str, str]) -> None:
    n = next(_counter)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN END $$")  # loads plpgsql, so its settings exist
        applied = _apply(conn, settings)
        seen = _scenario(conn, f"session {n}", f"s{n}/")
    differences = {key: (seen[key], reference[key]) for key in reference if seen[key] != reference[key]}
    assert not differences, f"under {applied}, these differ from default settings (seen, default): {differences}"


# Settings that once broke pggit: branch-name rules and quoting that depended on the session.
FOUND = [
    pytest.param({"standard_conforming_strings": "off"}, id="standard_conforming_strings_off"),
    pytest.param({"quote_all_identifiers": "on"}, id="quote_all_identifiers_on"),
    pytest.param({"standard_conforming_strings": "off", "quote_all_identifiers": "on",
                  "default_transaction_isolation": "serializable", "search_path": "",
                  "DateStyle": "German", "TimeZone": "Pacific/Chatham"}, id="all_at_once"),
]


@pytest.mark.distinct_cases  # each of these broke pggit once, in its own way: the smoke tier runs them all
@pytest.mark.parametrize("settings", FOUND)
def test_settings_that_broke_pggit_change_nothing(db_connection_string, reference, settings):
    """standard_conforming_strings = off made every branch name invalid (a compile error in the name
    check); quote_all_identifiers = on changed every hash and lost DROP INDEX; now the scenario reads
    as under default settings."""
    _check_scenario_under(db_connection_string, reference, settings)


@pytest.mark.slow
@pytest.mark.property
@example(settings={"standard_conforming_strings": "off", "quote_all_identifiers": "on"})
# Half the profile's examples (10 in dev and gate, 250 in thorough): each one replays the whole scenario in
# a session of its own, about 0.3 s an example.
@share_of_examples(2, 10)
@given(settings=st.fixed_dictionaries({}, optional=DRAWN))
def test_any_session_settings_leave_hashes_versions_and_verdicts_as_under_defaults(db_connection_string,
                                                                                  reference, settings):
    """Whatever settings Hypothesis draws, the scenario's hashes, versions, severities, commits and
    branch-name verdicts are those of the default session in another database."""
    _check_scenario_under(db_connection_string, reference, settings)


def test_every_user_setting_is_drawn_or_excluded_with_a_reason(sync_conn):
    """Every setting of context 'user' on this server is drawn by the property test above, or left out
    with a reason: a new setting in a new release cannot slip by."""
    sync_conn.execute("DO $$ BEGIN END $$")
    names = [name for (name,) in sync_conn.execute(
        "SELECT name FROM pg_settings WHERE context = 'user' ORDER BY name").fetchall()]
    assert "search_path" in names and "plpgsql.extra_errors" in names
    covered = [name for name in names if name in DRAWN or name in EXCLUDED
               or any(name.startswith(prefix) for prefix in EXCLUDED_PREFIXES)]
    assert covered == names, f"neither drawn nor excluded: {sorted(set(names) - set(covered))}"


WRITERS = [
    ("commit_changes", "SELECT pggit.commit_changes('ro/branch', 'read only')"),
    ("create_branch", "SELECT pggit.create_branch('ro/new')"),
    ("delete_branch_simple", "SELECT pggit.delete_branch_simple('ro/existing')"),
    ("create_data_branch", "SELECT pggit.create_data_branch('ro_table', 'main', 'ro/existing')"),
    ("apply_migration", "SELECT pggit.apply_migration('ro-1', 'ALTER TABLE ro_table ADD COLUMN b int')"),
    ("rollback_migration", "SELECT pggit.rollback_migration('ro-0')"),
    ("generate_trinity_id", "SELECT pggit.generate_trinity_id()"),
    ("tracked DDL", "ALTER TABLE ro_table ADD COLUMN c int"),
]
READERS = [
    "SELECT pggit.calculate_schema_hash('ro_table')",
    "SELECT * FROM pggit.get_version('ro_table')",
    "SELECT * FROM pggit.increment_version(1, 2, 3, 'minor')",
    "SELECT * FROM pggit.detect_drift()",
    "SELECT * FROM pggit.verify_integrity()",
]


@pytest.fixture
def read_only_setup(sync_conn) -> Iterator[psycopg.Connection]:
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE ro_table (a int)")
    sync_conn.execute("SELECT pggit.create_branch('ro/existing')")
    sync_conn.execute("SELECT pggit.apply_migration('ro-0', 'SELECT 1', 'SELECT 2')")
    yield sync_conn


@pytest.mark.parametrize(("writer", "statement"), WRITERS, ids=[w for w, _ in WRITERS])
def test_default_transaction_read_only_makes_writers_fail_cleanly_and_readers_work(
        db_connection_string, read_only_setup, writer, statement):
    """With default_transaction_read_only = on, each writer fails with 25006 and writes nothing (no
    sequence number used either), every reader answers; the positive control: the same writer
    succeeds once the session is read-write again."""
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        before = DatabaseStateSnapshot.capture(read_only_setup)
        sequence = read_only_setup.execute("SELECT last_value, is_called FROM pggit.trinity_id_seq").fetchone()
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(statement)
        assert refused.value.sqlstate == "25006", refused.value  # read_only_sql_transaction
        DatabaseStateSnapshot.capture(read_only_setup).assert_unchanged(before)
        assert read_only_setup.execute("SELECT last_value, is_called FROM pggit.trinity_id_seq").fetchone() == sequence
        for reader in READERS:
            conn.execute(reader).fetchall()
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(statement)
    wrote = before.diff(DatabaseStateSnapshot.capture(read_only_setup))
    numbered = read_only_setup.execute("SELECT last_value, is_called FROM pggit.trinity_id_seq").fetchone() != sequence
    assert wrote or numbered, f"{writer} wrote nothing, even read-write"
