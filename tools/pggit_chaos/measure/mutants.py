"""The mutant catalog: realistic pggit bugs, each a small edit of the extension's SQL.

A mutant is one exact textual edit of ``extension/pggit--1.0.0.sql``: its
``find`` must occur exactly once in the script, and is replaced by
``replace``. The chaos suite should fail on every mutant ("kill" it); a
mutant no test kills is either a gap in the suite or an edit that changes
nothing observable (an equivalent mutant, which does not belong here).

``pggit-chaos mutate`` (``runner.py``) runs the suite against each mutant; the
catalog's own test (``tests/toolkit/test_mutants.py``) checks that every edit
still applies to the current SQL and that the mutated extension installs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pggit_chaos.measure.mutants_scale import HISTORY_MUTANTS
from pggit_chaos.paths import EXTENSION_SQL

# Mutant categories: the kinds of bug the issue asks the catalog to cover.
CATEGORIES = {
    "locking": "a missing or wrong lock: concurrent sessions interleave where they must queue",
    "ids": "Trinity IDs that repeat, go backwards or survive a crash badly",
    "schema-hash": "a schema hash that is non-deterministic, insensitive, or resolves the wrong table",
    "ddl-tracking": "versions and history that do not follow the DDL",
    "atomicity": "a write that survives the failure it belongs to",
    "migrations": "migrations recorded, compared or serialized wrongly",
    "safety": "privilege and injection bugs: unpinned search_path, spliced names, open grants",
    "branches": "branch rules: deleted branches, protected names, validation",
    "integrity": "verify_integrity() that misses damage or raises instead of reporting",
    "drift": "detect_drift() that misses or invents drift",
    "durability": "metadata that does not survive a crash",
    "performance": "work that grows too fast with the size of a table or of pggit's history",
    "backup": "history that pg_dump leaves out, or that a restore duplicates, collides with or records anew",
}


@dataclass(frozen=True)
class Mutant:
    """One bug: a named, exact edit of the extension's SQL."""

    name: str
    category: str
    description: str
    find: str
    replace: str

    def apply(self, sql: str) -> str:
        """The mutated script; raises MutantError unless ``find`` occurs exactly once."""
        count = sql.count(self.find)
        if count != 1:
            raise MutantError(
                f"mutant {self.name!r}: its find string occurs {count} times in the SQL, not exactly once; "
                f"update tools/pggit_chaos/measure/mutants.py to the current extension/pggit--1.0.0.sql"
            )
        return sql.replace(self.find, self.replace, 1)


class MutantError(ValueError):
    """A mutant that no longer applies to the SQL."""


def _m(name: str, category: str, description: str, find: str, replace: str) -> Mutant:
    return Mutant(name, category, description, find, replace)


MUTANTS: list[Mutant] = [
    # ---- locking ---------------------------------------------------------------
    _m(
        "commit_without_branch_lock", "locking",
        "commit_changes reads the branch head without a row lock, so concurrent committers fork the chain",
        "     WHERE b.name = p_branch_name\n       FOR UPDATE;\n\n    IF NOT FOUND THEN",
        "     WHERE b.name = p_branch_name;\n\n    IF NOT FOUND THEN",
    ),
    _m(
        "auto_create_branch_without_upsert", "locking",
        "two sessions auto-creating one branch by committing to it race, and the loser fails with a raw unique violation",
        "        ON CONFLICT (name) DO NOTHING;\n",
        ";\n",
    ),
    _m(
        "version_bump_without_row_lock", "locking",
        "two concurrent changes of one table read the same version and both bump from it",
        "     WHERE o.is_active AND o.object_type = 'TABLE' AND o.table_oid = p_rel\n"
        "         ORDER BY o.id DESC LIMIT 1\n           FOR UPDATE;\n        IF NOT FOUND THEN\n"
        "            -- OIDs change on dump and restore; names do not.",
        "     WHERE o.is_active AND o.object_type = 'TABLE' AND o.table_oid = p_rel\n"
        "         ORDER BY o.id DESC LIMIT 1;\n        IF NOT FOUND THEN\n"
        "            -- OIDs change on dump and restore; names do not.",
    ),
    _m(
        "migration_without_version_lock", "locking",
        "concurrent applies of one migration version both run its SQL instead of queueing",
        "    -- the record and return false.\n    PERFORM pggit._lock_migration(p_version);\n",
        "    -- the record and return false.\n",
    ),
    _m(
        "create_branch_race_raw_error", "locking",
        "two sessions creating one branch name at once: the loser gets a raw constraint error that does not name the branch",
        "        RETURNING id INTO v_id;\n    EXCEPTION WHEN unique_violation THEN",
        "        RETURNING id INTO v_id;\n    EXCEPTION WHEN division_by_zero THEN",
    ),
    # ---- ids -------------------------------------------------------------------
    _m(
        "trinity_id_from_clock_only", "ids",
        "the Trinity ID's number comes from the clock (milliseconds), not the sequence: IDs made in the same millisecond collide",
        "|| lpad(nextval('pggit.trinity_id_seq')::text, 12, '0')",
        "|| lpad((floor(extract(epoch from clock_timestamp()) * 1000)::bigint % 1000000000000)::text, 12, '0')",
    ),
    _m(
        "trinity_id_from_max_plus_one", "ids",
        "the Trinity ID's number is max(existing)+1, a non-atomic counter that concurrent sessions read alike",
        "|| lpad(nextval('pggit.trinity_id_seq')::text, 12, '0')",
        "|| lpad((SELECT coalesce(max(substr(c.hash, 20, 12)::bigint), 0) + 1 FROM pggit.commits c"
        " WHERE c.hash ~ '^TRN-[0-9]{14}-[0-9]{12}-[0-9a-f]{8}$')::text, 12, '0')",
    ),
    _m(
        "trinity_sequence_cached", "ids",
        "the ID sequence caches 50 numbers per session, so IDs stop being issued in order across sessions",
        "    CACHE 1;",
        "    CACHE 50;",
    ),
    _m(
        "trinity_sequence_cycles", "ids",
        "the ID sequence wraps around at its maximum and hands out numbers already in use",
        "    NO CYCLE\n",
        "    CYCLE\n",
    ),
    _m(
        "custom_id_from_the_future_allowed", "ids",
        "a custom Trinity ID in the generated format with a number not issued yet is accepted, and collides later",
        "        IF substr(p_id, 20, 12)::bigint >= v_next THEN",
        "        IF false THEN",
    ),
    _m(
        "custom_id_blank_by_locale", "ids",
        "a custom Trinity ID of C1 control characters or non-ASCII spaces (ten U+0085) is taken: the checks "
        "know only C0 controls and, in the C locale, ASCII spaces",
        "    IF p_id ~ E'[\\\\x01-\\\\x1f\\\\x7f-\\\\x9f]'\n"
        "       OR p_id ~ E'^[\\\\x09-\\\\x0d\\\\x20\\\\x85\\\\xa0\\\\u1680\\\\u2000-\\\\u200a"
        "\\\\u2028\\\\u2029\\\\u202f\\\\u205f\\\\u3000]*$' THEN\n",
        "    IF p_id ~ E'[\\\\x01-\\\\x1f\\\\x7f]' OR p_id ~ '^[[:space:]]*$' THEN\n",
    ),
    # ---- schema-hash -----------------------------------------------------------
    _m(
        "hash_includes_table_oid", "schema-hash",
        "the schema hash includes the table's OID: the same structure hashes differently in another database or after a restore",
        "    v_lines := ARRAY['pggit table definition v1'];",
        "    v_lines := ARRAY['pggit table definition v1 ' || p_rel::text];",
    ),
    _m(
        "hash_ignores_defaults", "schema-hash",
        "the schema hash leaves column defaults out, so changing a default goes unnoticed",
        "                      ' default ' || pg_catalog.pg_get_expr(d.adbin, 0)",
        "                      ''",
    ),
    _m(
        "hash_ignores_nullability", "schema-hash",
        "the schema hash leaves NOT NULL out, so SET/DROP NOT NULL goes unnoticed",
        "           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END\n",
        "",
    ),
    _m(
        "hash_ignores_column_order", "schema-hash",
        "the schema hash sorts columns by name, so two tables with the same columns in another order hash alike",
        "        SELECT tc.line FROM pggit._table_columns(p_rel) tc ORDER BY tc.column_position));",
        "        SELECT tc.line FROM pggit._table_columns(p_rel) tc ORDER BY tc.column_name));",
    ),
    _m(
        "hash_ignores_search_path", "schema-hash",
        "calculate_schema_hash resolves an unqualified name in public, ignoring the caller's search_path",
        "    SELECT pggit._schema_hash(pggit._resolve_table(p_table_name));",
        "    SELECT pggit._schema_hash(pggit._resolve_table(CASE WHEN strpos(p_table_name, '.') > 0"
        " THEN p_table_name ELSE 'public.' || p_table_name END));",
    ),
    _m(
        "hash_session_time_zone", "schema-hash",
        "the schema hash prints timestamptz defaults in the session's time zone, so it differs between sessions",
        "SET TimeZone = 'UTC'\n",
        "",
    ),
    _m(
        "hash_of_truncated_definition", "schema-hash",
        "the schema hash covers only the first 300 characters of the description: changes to later columns of a wide table go unnoticed",
        "        SELECT encode(sha256(convert_to(pggit._table_definition(p_rel), 'UTF8')), 'hex')",
        "        SELECT encode(sha256(convert_to(left(pggit._table_definition(p_rel), 300), 'UTF8')), 'hex')",
    ),
    # ---- ddl-tracking ----------------------------------------------------------
    _m(
        "add_column_bumps_patch", "ddl-tracking",
        "ADD COLUMN is classified as a patch instead of a minor change",
        "            v_severity := 'MINOR';",
        "            v_severity := 'PATCH';",
    ),
    _m(
        "rename_is_not_major", "ddl-tracking",
        "renaming a table or moving it to another schema bumps patch instead of major",
        "    IF v_obj.schema_name <> v_schema OR v_obj.object_name <> v_table THEN\n        v_severity := 'MAJOR';",
        "    IF v_obj.schema_name <> v_schema OR v_obj.object_name <> v_table THEN\n        v_severity := 'PATCH';",
    ),
    _m(
        "index_ddl_untracked", "ddl-tracking",
        "the event trigger ignores CREATE INDEX, so index changes leave no history and the recorded hash goes stale",
        "                 'CREATE INDEX', 'ALTER INDEX', 'COMMENT', 'ALTER SCHEMA',\n",
        "                 'ALTER INDEX', 'COMMENT', 'ALTER SCHEMA',\n",
    ),
    _m(
        "dropped_table_stays_active", "ddl-tracking",
        "DROP TABLE bumps the version but leaves the object active, as if the table were still there",
        "           content_hash = NULL,\n           is_active = false,\n",
        "           content_hash = NULL,\n",
    ),
    _m(
        "partitioned_tables_untracked", "ddl-tracking",
        "partitioned tables are not tracked (only ordinary tables are)",
        "            SELECT c.relkind IN ('r', 'p')\n               AND c.relpersistence <> 't'",
        "            SELECT c.relkind = 'r'\n               AND c.relpersistence <> 't'",
    ),
    _m(
        "index_on_partitioned_table_skips_partitions", "ddl-tracking",
        "only ALTER TABLE on a parent records its partitions: CREATE INDEX on a partitioned table leaves every partition's recorded hash stale",
        "    v_parents := v_parents || v_tables;\n    IF cardinality(v_parents) > 0 THEN\n",
        "    v_parents := v_parents || v_tables;\n    IF p_tag = 'ALTER TABLE' AND cardinality(v_parents) > 0 THEN\n",
    ),
    _m(
        "detached_partition_not_recorded", "ddl-tracking",
        "DETACH PARTITION records only the parent: the detached table (bound gone, a CHECK added by CONCURRENTLY) keeps a stale version",
        "           AND l.mode = 'AccessExclusiveLock'\n",
        "           AND false\n",
    ),
    _m(
        "hash_includes_foreign_key_clones", "schema-hash",
        "the schema hash includes the hidden per-partition clones of a foreign key: a new partition of a referenced table drifts the referencing table",
        "           AND NOT (con.contype = 'f' AND con.conparentid <> 0::pg_catalog.oid\n",
        "           AND NOT (false\n",
    ),
    _m(
        "hash_ignores_partition_bound", "schema-hash",
        "the schema hash leaves out a partition's parent and bound (and an inheritance child's parents): ATTACH and DETACH leave the partition's version as it was",
        "         WHERE inh.inhrelid = p_rel\n         ORDER BY inh.inhseqno));",
        "         WHERE false\n         ORDER BY inh.inhseqno));",
    ),
    # ---- atomicity -------------------------------------------------------------
    _m(
        "migration_recorded_before_run", "atomicity",
        "the migration is recorded before its SQL runs, and a failure of the SQL is only logged, so a failed migration stays recorded as applied",
        "    PERFORM pggit._record_migration_applied(p_version, p_description, v_checksum, p_up_sql, p_down_sql);\n"
        "    PERFORM pggit._run_migration_sql(p_version, 'up', p_up_sql);\n",
        "    PERFORM pggit._record_migration_applied(p_version, p_description, v_checksum, p_up_sql, p_down_sql);\n"
        "    BEGIN\n        PERFORM pggit._run_migration_sql(p_version, 'up', p_up_sql);\n"
        "    EXCEPTION WHEN OTHERS THEN\n        RAISE WARNING '%', SQLERRM;\n    END;\n",
    ),
    _m(
        "failed_rollback_marked_rolled_back", "atomicity",
        "history written for rolled-back DDL: a failing down migration is caught, its DDL rolls back, yet the migration is marked rolled back",
        "    PERFORM pggit._run_migration_sql(p_version, 'down', v_row.down_sql);\n",
        "    BEGIN\n        PERFORM pggit._run_migration_sql(p_version, 'down', v_row.down_sql);\n"
        "    EXCEPTION WHEN OTHERS THEN\n        RAISE WARNING '%', SQLERRM;\n    END;\n",
    ),
    _m(
        "commit_head_moved_before_insert_checked", "atomicity",
        "a duplicate custom ID is swallowed after the head already points at it: the head names another branch's commit",
        "    EXCEPTION WHEN unique_violation THEN\n        -- A concurrent commit took the same custom ID first.\n"
        "        RAISE EXCEPTION 'Trinity ID % is already used', pggit._quote_for_message(v_id)\n"
        "            USING ERRCODE = 'unique_violation';\n    END;",
        "    EXCEPTION WHEN unique_violation THEN\n        -- A concurrent commit took the same custom ID first.\n"
        "        NULL;\n    END;",
    ),
    # ---- migrations ------------------------------------------------------------
    _m(
        "migration_checksum_not_compared", "migrations",
        "re-applying a version with different SQL is silently a no-op instead of a checksum mismatch",
        "        IF v_row.checksum <> v_checksum THEN",
        "        IF false THEN",
    ),
    _m(
        "rollback_skips_down_sql", "migrations",
        "rollback_migration marks the migration rolled back without running its down SQL",
        "    PERFORM pggit._run_migration_sql(p_version, 'down', v_row.down_sql);\n",
        "",
    ),
    # ---- safety ----------------------------------------------------------------
    _m(
        "definer_unpinned_search_path", "safety",
        "the SECURITY DEFINER commit_changes runs with the caller's search_path, so a caller's object can shadow what it calls",
        "RETURNS text\nLANGUAGE plpgsql VOLATILE\nSECURITY DEFINER\nSET search_path = pg_catalog, pggit, pg_temp\nAS $$\n"
        "DECLARE\n    v_message text := coalesce(p_message, '');",
        "RETURNS text\nLANGUAGE plpgsql VOLATILE\nSECURITY DEFINER\nAS $$\n"
        "DECLARE\n    v_message text := coalesce(p_message, '');",
    ),
    _m(
        "data_branch_name_spliced", "safety",
        "create_data_branch splices the schema and table names into SQL without quoting",
        "    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING ALL)', v_schema, v_target, v_source);",
        "    EXECUTE 'CREATE TABLE ' || v_schema || '.' || v_target || ' (LIKE ' || v_source::text || ' INCLUDING ALL)';",
    ),
    _m(
        "drift_name_spliced", "safety",
        "detect_drift looks tables up by spliced, unquoted names, so a mixed-case or odd name looks dropped",
        "WHERE n.nspname = o.schema_name AND c.relname = o.object_name)) AS hash",
        "WHERE c.oid = to_regclass(o.schema_name || '.' || o.object_name))) AS hash",
    ),
    _m(
        "metadata_writable_by_public", "safety",
        "pggit's tables are left writable by every role, so anyone can rewrite history behind the functions",
        "REVOKE ALL ON pggit.branches, pggit.commits, pggit.objects, pggit.history, pggit.migrations FROM PUBLIC;",
        "GRANT ALL ON pggit.branches, pggit.commits, pggit.objects, pggit.history, pggit.migrations TO PUBLIC;",
    ),
    _m(
        "describe_table_unqualified_call", "safety",
        "the table description calls quote_ident unqualified with the table's schema on the search_path, so a "
        "quote_ident(name) planted there runs as pggit's owner inside the event triggers (any schema owner becomes superuser)",
        "           'column ' || pg_catalog.quote_ident(a.attname) || ' ' || t.column_type",
        "           'column ' || quote_ident(a.attname) || ' ' || t.column_type",
    ),
    _m(
        "describe_table_array_operator", "safety",
        "the table description appends lines with the array || operator under the table's schema on the search_path, "
        "so an operator ||(text[], text[]) planted there runs as pggit's owner",
        "    v_lines := pg_catalog.array_cat(v_lines, ARRAY(\n        SELECT tc.line FROM pggit._table_columns(p_rel) tc ORDER BY tc.column_position));",
        "    v_lines := v_lines || ARRAY(\n        SELECT tc.line FROM pggit._table_columns(p_rel) tc ORDER BY tc.column_position);",
    ),
    _m(
        "branch_copy_with_owner_rights", "safety",
        "create_branch is SECURITY DEFINER around the data copy, so copying a table runs its CHECK constraints, index "
        "expressions and generated columns as pggit's owner",
        "RETURNS integer\nLANGUAGE plpgsql VOLATILE\nSET search_path = pg_catalog, pggit, pg_temp\nAS $$\nDECLARE\n    v_id integer;\n",
        "RETURNS integer\nLANGUAGE plpgsql VOLATILE\nSECURITY DEFINER\nSET search_path = pg_catalog, pggit, pg_temp\nAS $$\n"
        "DECLARE\n    v_id integer;\n",
    ),
    _m(
        "data_branch_reuses_planted_table", "safety",
        "create_data_branch returns any existing table of the copy's name, also one another role created there first",
        "                          AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')) THEN",
        "                          AND true) THEN",
    ),
    _m(
        "records_name_the_session_role", "safety",
        "commit_changes passes the session's role instead of its own current_user, so a role with the commit grant "
        "commits from its SECURITY DEFINER trigger in the name of whoever fired it",
        "       INTO v_id USING p_branch_name, p_message, p_custom_trinity_id, current_user::text;",
        "       INTO v_id USING p_branch_name, p_message, p_custom_trinity_id, pggit._invoking_user();",
    ),
    _m(
        "ddl_history_names_the_session_role", "safety",
        "the DDL event trigger records the session's role, so DDL run by another role's SECURITY DEFINER code "
        "is recorded as the session role's",
        "    EXECUTE 'SELECT pggit._write_ddl_commands($1, $2) -- the acting role'\n       USING current_user::text, TG_TAG;",
        "    EXECUTE 'SELECT pggit._write_ddl_commands($1, $2) -- the acting role'\n       USING pggit._invoking_user(), TG_TAG;",
    ),
    _m(
        "record_writers_accept_any_caller", "safety",
        "the SECURITY DEFINER record writers accept any caller, so anyone may write a commit, branch, migration or "
        "history record in any role's name",
        "    IF pg_catalog.starts_with(v_rest, 'SQL statement \"' || p_call",
        "    IF true OR pg_catalog.starts_with(v_rest, 'SQL statement \"' || p_call",
    ),
    _m(
        "drift_needs_schema_usage", "drift",
        "detect_drift looks tables up with to_regclass, which raises for a schema the caller has no USAGE on",
        "WHERE n.nspname = o.schema_name AND c.relname = o.object_name)) AS hash",
        "WHERE c.oid = to_regclass(format('%I.%I', o.schema_name, o.object_name)))) AS hash",
    ),
    # ---- branches --------------------------------------------------------------
    _m(
        "deleted_branch_accepts_commits", "branches",
        "a deleted branch still accepts commits",
        "    IF v_branch.status = 'DELETED' THEN",
        "    IF false THEN",
    ),
    _m(
        "main_branch_deletable", "branches",
        "the main branch can be deleted",
        "    IF p_branch_name IN ('main', 'master') THEN",
        "    IF false THEN",
    ),
    _m(
        "branch_from_deleted_parent", "branches",
        "a new branch can be created from a deleted parent",
        "    IF v_parent.status = 'DELETED' THEN",
        "    IF false THEN",
    ),
    _m(
        "branch_name_allows_control_characters", "branches",
        "branch names may contain control characters (newlines forge log lines)",
        "        WHEN p_name ~ E'[\\\\x01-\\\\x1f\\\\x7f]'      THEN 'must not contain control characters'\n",
        "",
    ),
    # ---- integrity -------------------------------------------------------------
    _m(
        "integrity_check_raises", "integrity",
        "verify_integrity's branch-head check raises on damaged metadata instead of reporting it",
        "        detail := pggit._integrity_detail(v_bad, format('all %s branch heads exist', v_count));\n"
        "    EXCEPTION WHEN OTHERS THEN\n        ok := false; detail := 'check failed: ' || SQLERRM;\n    END;",
        "        detail := pggit._integrity_detail(v_bad, format('all %s branch heads exist', v_count));\n    END;",
    ),
    _m(
        "integrity_misses_two_way_fork", "integrity",
        "the linear-history check counts a fork only when three commits share a parent",
        "                 GROUP BY c.branch_id, c.parent_commit_hash\n                HAVING count(*) > 1) f;",
        "                 GROUP BY c.branch_id, c.parent_commit_hash\n                HAVING count(*) > 2) f;",
    ),
    _m(
        "integrity_sequence_check_off_by_one", "integrity",
        "the sequence check misses an ID that equals the sequence's next value (off by one)",
        "           AND substr(c.hash, 20, 12)::bigint >= v_next;",
        "           AND substr(c.hash, 20, 12)::bigint > v_next;",
    ),
    _m(
        "integrity_misses_missing_parent", "integrity",
        "verify_integrity does not notice a commit whose parent is gone",
        "           AND NOT EXISTS (SELECT 1 FROM pggit.commits p WHERE p.hash = c.parent_commit_hash);\n"
        "        ok := v_bad IS NULL;",
        "           AND false;\n        ok := v_bad IS NULL;",
    ),
    _m(
        "integrity_misses_history_going_down", "integrity",
        "a history row whose version goes down, or does not follow the one before, passes versions_increase",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every object''s versions increase with its history');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every object''s versions increase with its history');",
    ),
    _m(
        "integrity_misses_orphan_history", "integrity",
        "a history row of a missing object passes history_objects_exist",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every history row belongs to an existing object');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every history row belongs to an existing object');",
    ),
    _m(
        "integrity_misses_invalid_branch_rows", "integrity",
        "a branch row with a name git refuses, an unknown status, or no main branch passes branch_rows_valid",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every branch row is valid');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every branch row is valid');",
    ),
    _m(
        "integrity_misses_head_off_branch", "integrity",
        "a branch head on an unrelated branch passes branch_heads_on_branch",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every branch head is on its branch');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every branch head is on its branch');",
    ),
    _m(
        "integrity_misses_head_behind_tip", "integrity",
        "a branch head that is not the newest commit of its branch passes branch_chains_end_at_heads",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every branch''s chain ends at its head');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every branch''s chain ends at its head');",
    ),
    _m(
        "integrity_misses_parent_off_line", "integrity",
        "a commit whose parent is on an unrelated branch passes commit_parents_on_branch_line",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every parent commit is on its child''s branch line');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every parent commit is on its child''s branch line');",
    ),
    _m(
        "integrity_misses_unreachable_commit", "integrity",
        "a commit no branch head reaches passes commits_reachable",
        "        ok := v_bad IS NULL;\n        detail := pggit._integrity_detail(v_bad, 'every commit is reachable from a branch head');",
        "        ok := true;\n        detail := pggit._integrity_detail(v_bad, 'every commit is reachable from a branch head');",
    ),
    # ---- drift -----------------------------------------------------------------
    _m(
        "drift_misses_dropped_tables", "drift",
        "detect_drift compares hashes with <>, so a tracked table dropped behind pggit's back (NULL live hash) is not reported",
        "       AND live.hash IS DISTINCT FROM o.content_hash",
        "       AND live.hash <> o.content_hash",
    ),
    # ---- durability ------------------------------------------------------------
    _m(
        "trinity_sequence_unlogged", "durability",
        "the ID sequence is UNLOGGED: crash recovery resets it and IDs are handed out again",
        "CREATE SEQUENCE pggit.trinity_id_seq\n",
        "CREATE UNLOGGED SEQUENCE pggit.trinity_id_seq\n",
    ),
    _m(
        "commits_table_unlogged", "durability",
        "the commits table is UNLOGGED: a crash empties it and acknowledged commits are lost",
        "CREATE TABLE pggit.commits (\n",
        "CREATE UNLOGGED TABLE pggit.commits (\n",
    ),
    # ---- performance -----------------------------------------------------------
    _m(
        "hash_defaults_with_table_context", "performance",
        "defaults are printed with the table as deparse context, so describing a table grows far faster than its width",
        "                      ' default ' || pg_catalog.pg_get_expr(d.adbin, 0)",
        "                      ' default ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid)",
    ),
    # ---- backup ----------------------------------------------------------------
    _m(
        "pggit_rows_not_dumped", "backup",
        "pggit's tables are not extension configuration tables, so pg_dump leaves out every commit and migration record",
        "SELECT pg_catalog.pg_extension_config_dump('pggit.branches', '');\n"
        "SELECT pg_catalog.pg_extension_config_dump('pggit.commits', '');\n"
        "SELECT pg_catalog.pg_extension_config_dump('pggit.objects', '');\n"
        "SELECT pg_catalog.pg_extension_config_dump('pggit.history', '');\n"
        "SELECT pg_catalog.pg_extension_config_dump('pggit.migrations', '');\n",
        "",
    ),
    _m(
        "pggit_sequences_not_dumped", "backup",
        "the Trinity ID sequence and the identity sequences are not dumped, so IDs issued after a restore collide",
        "SELECT pg_catalog.pg_extension_config_dump('pggit.trinity_id_seq', '');\n"
        "-- One call per statement: each one updates the pg_extension row.\n"
        "SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('pggit.branches', 'id')::regclass, '');\n"
        "SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('pggit.commits', 'id')::regclass, '');\n",
        "",
    ),
    _m(
        "restored_main_collides_with_seed", "backup",
        "the dump's 'main' row does not replace the one CREATE EXTENSION inserts, so the restore of pggit.branches fails",
        "    FOR EACH ROW WHEN (NEW.name = 'main')\n",
        "    FOR EACH ROW WHEN (NEW.name = 'main' AND false)\n",
    ),
    _m(
        "restore_recorded_as_new_ddl", "backup",
        "the event trigger records the restore's CREATE TABLE statements as new tables, whose rows then collide with the restored ones",
        "    IF pggit._restoring_dump() THEN\n        RETURN;\n    END IF;\n"
        "    FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP",
        "    FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP",
    ),
    _m(
        "restored_objects_keep_stale_oids", "backup",
        "restored objects rows keep the source's table OIDs, so a rename after the restore starts a new object at 1.0.0",
        "    NEW.table_oid := pg_catalog.to_regclass(pg_catalog.format('%I.%I', NEW.schema_name, NEW.object_name));\n",
        "",
    ),
    _m(
        "restore_recognised_for_any_role", "backup",
        "any role that sets the settings of a dump script passes for a restore, and its DDL goes untracked",
        "\n           AND coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r\n"
        "                          WHERE r.rolname = pggit._invoking_user()), false)",
        "",
    ),
    _m(
        "restore_recognised_by_settings_alone", "backup",
        "a superuser session that merely sets what a dump script sets passes for a restore, and its DDL goes untracked",
        "        SELECT coalesce(pg_catalog.current_setting('pggit.installed_in_this_session', true) = 'on', false)\n"
        "           AND pg_catalog.current_setting('check_function_bodies') = 'off'",
        "        SELECT pg_catalog.current_setting('check_function_bodies') = 'off'",
    ),
    _m(
        "data_branch_shares_source_sequences", "branches",
        "a data branch's defaults still call the source's sequences, so the source cannot be dropped and each uses up the other's numbers",
        "    PERFORM pggit._own_default_sequences(format('%I.%I', v_schema, v_target)::regclass);\n",
        "",
    ),
    # ---- isolation levels and session settings ------------------------------------
    _m(
        "apply_migration_runs_before_recording", "migrations",
        "apply_migration runs the up SQL before writing the record: under REPEATABLE READ a session whose snapshot "
        "predates a concurrent apply runs the SQL again and fails with its error (23505) instead of 40001",
        "    PERFORM pggit._record_migration_applied(p_version, p_description, v_checksum, p_up_sql, p_down_sql);\n"
        "    PERFORM pggit._run_migration_sql(p_version, 'up', p_up_sql);\n",
        "    PERFORM pggit._run_migration_sql(p_version, 'up', p_up_sql);\n"
        "    PERFORM pggit._record_migration_applied(p_version, p_description, v_checksum, p_up_sql, p_down_sql);\n",
    ),
    _m(
        "rollback_migration_runs_before_marking", "migrations",
        "rollback_migration runs the down SQL before marking the record: a stale snapshot runs it a second time",
        "    PERFORM pggit._record_migration_rolled_back(p_version);\n"
        "    PERFORM pggit._run_migration_sql(p_version, 'down', v_row.down_sql);\n",
        "    PERFORM pggit._run_migration_sql(p_version, 'down', v_row.down_sql);\n"
        "    PERFORM pggit._record_migration_rolled_back(p_version);\n",
    ),
    _m(
        "tracking_insert_raises_unique_violation", "ddl-tracking",
        "DDL on a table whose pggit row is newer than the transaction's snapshot inserts a second live row and "
        "fails with unique_violation, which no retry heals, instead of 40001",
        "        ON CONFLICT (object_type, schema_name, object_name) WHERE is_active DO NOTHING\n"
        "        RETURNING id INTO v_object_id;\n",
        "        RETURNING id INTO v_object_id;\n",
    ),
    _m(
        "drop_tracking_trusts_stale_snapshot", "ddl-tracking",
        "DROP TABLE of a table created after the transaction's snapshot finds no pggit row and records nothing: "
        "the dropped table stays live in pggit.objects",
        "        IF current_setting('transaction_isolation') <> 'read committed' THEN\n"
        "            INSERT INTO pggit.objects (object_type, schema_name, object_name, is_active, table_oid)\n",
        "        IF false THEN\n"
        "            INSERT INTO pggit.objects (object_type, schema_name, object_name, is_active, table_oid)\n",
    ),
    _m(
        "data_branch_copy_seen_through_stale_snapshot", "branches",
        "create_data_branch that waited for a concurrent copy looks it up in pg_class with its old snapshot and "
        "reports 'exists and is not a table' (42P07) instead of 40001",
        "        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = v_target_rel) THEN\n",
        "        IF false THEN\n",
    ),
    _m(
        "branch_name_rules_in_plain_literals", "branches",
        "a branch-name regex with a backslash in a plain literal: a session with standard_conforming_strings off "
        "compiles it as '(^|/).', and every name is refused",
        "        WHEN p_name ~ E'(^|/)\\\\.'             THEN",
        "        WHEN p_name ~ '(^|/)\\.'               THEN",
    ),
    _m(
        "schema_hash_follows_quote_all_identifiers", "schema-hash",
        "the table description is printed with the session's quote_all_identifiers: every hash differs per session "
        "and detect_drift reports drift that is not there",
        "SET standard_conforming_strings = on\n"
        "-- quote_ident(), format_type() and pg_get_*def() quote every name when it is on.\n"
        "SET quote_all_identifiers = off\n",
        "SET standard_conforming_strings = on\n",
    ),
    _m(
        "trackable_check_sees_two_catalog_rows", "ddl-tracking",
        "_is_trackable reads pg_class with a scalar subquery: DDL under REPEATABLE READ that waited for another "
        "session's DDL of the table sees two versions of its row and fails with 21000 instead of 40001",
        "             LIMIT 1), false)\n",
        "             ), false)\n",
    ),
    _m(
        "schema_hash_names_the_schema_of_shadowed_objects", "schema-hash",
        "an object of the table's own schema named like a pg_catalog one (an enum \"text\", a function \"abs\") "
        "is described qualified with the schema's name: the same structure hashes differently in another schema",
        "    RETURN pg_catalog.regexp_replace(pg_catalog.regexp_replace(pg_catalog.array_to_string(v_lines, E'\\n'),\n"
        "        '(^|[\\s(,:\\[])' || pggit._regexp_quote(pg_catalog.quote_ident(v_schema)) || '\\.', '\\1<schema>.', "
        "'g'),\n"
        "        '''' || pggit._regexp_quote(pg_catalog.replace(pg_catalog.quote_ident(v_schema), '''', '''''')) "
        "|| '\\.',\n"
        "        '''<schema>.', 'g');\n",
        "    RETURN pg_catalog.array_to_string(v_lines, E'\\n');\n",
    ),
    _m(
        "dependent_tables_left_unrecorded", "drift",
        "renaming or moving a type, sequence, function, collation or schema that tracked tables depend on changes "
        "their description unrecorded: detect_drift reports them",
        "        v_tables := v_tables || ARRAY(SELECT dep.relid FROM pg_catalog.unnest("
        "pggit._dependent_tables(r.classid, r.objid)) dep(relid)\n",
        "        v_tables := v_tables || ARRAY(SELECT dep.relid FROM pg_catalog.unnest("
        "pggit._dependent_tables(r.classid, 0)) dep(relid)\n",
    ),
    _m(
        "schema_hash_names_the_schema_in_regclass_literals", "schema-hash",
        "a default's sequence hidden by a catalog name is printed qualified inside its regclass literal, and that "
        "schema name stays in the description: the same structure hashes differently in another schema",
        "        '''<schema>.', 'g');\n",
        "        '\\&', 'g');\n",  # the whole match put back: literals keep the schema's name
    ),
    _m(
        "schema_hash_misses_a_quote_doubled_in_a_literal", "schema-hash",
        "inside a regclass literal a quote in the schema's name is written twice (nextval('\"a''a\".pg_class'"
        "::regclass)): left as it is, the same structure hashes differently in a schema named so",
        "        '''' || pggit._regexp_quote(pg_catalog.replace(pg_catalog.quote_ident(v_schema), '''', '''''')) ",
        "        '''' || pggit._regexp_quote(pg_catalog.quote_ident(v_schema)) ",
    ),
    _m(
        "renamed_schema_members_not_followed", "drift",
        "renaming a schema changes how the defaults, checks and keys of tracked tables in other schemas name its "
        "sequences, functions and tables, unrecorded: detect_drift reports those tables",
        "             WHERE (EXISTS (SELECT 1 FROM changed c WHERE c.classid = w.classid AND c.objid = w.objid)\n",
        "             WHERE (w.classid = p_classid AND w.objid = p_objid\n",
    ),
    _m(
        "tables_naming_a_child_not_followed", "drift",
        "a column renamed on an inheritance parent is renamed on its children too, which changes how a foreign key "
        "to a child's column prints; the referencing table is not recorded: detect_drift reports it",
        "             CROSS JOIN LATERAL pg_catalog.unnest(pggit._dependent_tables('pg_catalog.pg_class'::regclass, c.relid)) dep(relid)\n",
        "             CROSS JOIN LATERAL pg_catalog.unnest(ARRAY[]::oid[]) dep(relid)\n",
    ),
    _m(
        "table_definition_follows_callers_usage", "drift",
        "the description is computed with the caller's rights: a reader without USAGE on a table's schema gets "
        "the table's own objects printed qualified, another hash, and false drift from detect_drift",
        "LANGUAGE plpgsql STABLE\nSECURITY DEFINER\nSET search_path = pg_catalog, pg_temp\nSET TimeZone = 'UTC'\n",
        "LANGUAGE plpgsql STABLE\nSET search_path = pg_catalog, pg_temp\nSET TimeZone = 'UTC'\n",
    ),
    _m(
        "children_of_untrackable_parent_not_followed", "drift",
        "a column added to a foreign table that regular tracked tables inherit from reaches those children "
        "unrecorded, since the foreign table itself is not tracked: detect_drift reports the children",
        "        IF v_rel IS NOT NULL AND NOT v_rel = ANY (v_parents) THEN\n",
        "        IF false THEN\n",
    ),
]

# The history-size performance mutants: whole blocks of the script, kept in a module of their own.
MUTANTS += [_m(*mutant) for mutant in HISTORY_MUTANTS]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def by_name() -> dict[str, Mutant]:
    return {m.name: m for m in MUTANTS}


def check_catalog(sql: str | None = None) -> list[str]:
    """Problems with the catalog (bad names, unknown categories, duplicates, stale edits); empty if none."""
    sql = EXTENSION_SQL.read_text() if sql is None else sql
    problems = []
    seen = set()
    for mutant in MUTANTS:
        if not _NAME.match(mutant.name):
            problems.append(f"mutant {mutant.name!r}: name is not snake_case")
        if mutant.name in seen:
            problems.append(f"mutant {mutant.name!r}: name used twice")
        seen.add(mutant.name)
        if mutant.category not in CATEGORIES:
            problems.append(f"mutant {mutant.name!r}: unknown category {mutant.category!r}")
        if not mutant.description or "\n" in mutant.description:
            problems.append(f"mutant {mutant.name!r}: description must be one line")
        if mutant.find == mutant.replace:
            problems.append(f"mutant {mutant.name!r}: find and replace are the same")
        try:
            mutant.apply(sql)
        except MutantError as exc:
            problems.append(str(exc))
    return problems


if __name__ == "__main__":
    import sys

    found = check_catalog()
    for problem in found:
        print(problem, file=sys.stderr)
    print(f"{len(MUTANTS)} mutants in {len({m.category for m in MUTANTS})} categories; "
          f"{len(found)} problem(s)")
    sys.exit(1 if found else 0)
