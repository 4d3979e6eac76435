"""The triage of surviving generated mutants: each one equivalent (with the reason no test can see it) or a gap in the suite.

A generated mutant that survives the full tier is read by a person and
recorded here under its id (``pggit-chaos mutants-generate --list`` shows
ids, lines and edits). ``equivalent``: the edit changes nothing a caller
can observe, and the reason says why; such mutants leave the score and are
counted apart on the Metrics page. ``gap``: the edit is a real bug the suite
misses; the reason names the test that now kills it, or says what test is
still to be written. A mutant whose id no longer exists (the script
changed) is reported by ``check``, so the file never silently describes
another script.
"""

from __future__ import annotations

import re

VERDICTS = ("equivalent", "gap")

TRIAGE: dict[str, dict[str, str]] = {
    'add-security-definer:_dependent_tables:c13539578f': {
        "verdict": 'equivalent',
        "reason": "It exposed a pggit bug, fixed since: a table's description depended on the caller's USAGE on its schema (tests/chaos/test_privileges_readers.py, mutant table_definition_follows_callers_usage). Now _table_definition runs as the owner whoever calls, and the DDL path that calls _dependent_tables already runs as the owner, so owner rights change nothing.",
    },
    'add-security-definer:_integrity_detail:a88a835cf1': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_integrity_detail_runs_with_the_callers_rights (a role denied EXECUTE on array_to_string must stay denied through pggit._integrity_detail; as SECURITY DEFINER the helper lends it the owner's right).",
    },
    'add-security-definer:_is_trackable:fca2b5ac35': {
        "verdict": 'equivalent',
        "reason": "It reads only pg_class.relkind/relpersistence and pg_namespace.nspname, which every role may read, and compares names, so no privilege or search_path (USAGE) effect reaches its answer; it already has SET clauses (never inlined) and every internal caller runs it as the owner anyway. It would differ only if an administrator revoked SELECT on pg_class from PUBLIC, which pggit's readers already assume does not happen.",
    },
    'boolean-swap:create_data_branch:4e82a6faca': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_data_branches.py::test_a_null_or_blank_table_name_is_invalid_input_not_a_missing_table',
    },
    'boolean-swap:verify_integrity:53318c8b3a': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_integrity_invariants.py::test_each_recipe_fails_exactly_its_check_naming_the_damaged_row[orphan chain] (new recipe: an unreachable commit that is the parent of another; the OR adds every parent to the reachable set). Already killed by tests/extension/test_integrity_shortcuts.py::test_an_unreachable_loop_of_commits_is_reported and ::test_a_commit_left_behind_by_a_head_moved_back_is_unreachable",
    },
    'comparison-swap:verify_integrity:c0630e07da': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_integrity_invariants.py::test_a_commit_no_head_reaches_is_reported_though_later_commits_on_two_branches_follow_it (with '<>' the one-pass shortcut passes an unreachable commit that later commits on two branches follow)",
    },
    'delete-statement:_own_default_sequences:7b93a5b8e2': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_data_branch_independence.py::test_a_copy_never_silently_keeps_a_sequence_whose_name_has_a_backslash',
    },
    'delete-statement:_track_table_change:121da680bf': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_recording_a_change_of_a_table_that_no_longer_exists_writes_nothing',
    },
    'delete-statement:verify_integrity:1c91a23fb9': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_is_not_ok_whatever_the_check_before_it_said (no_commit_cycles cannot run while linear_branch_history before it passes; the mutant carries that ok = true over)',
    },
    'drop-conjunct:_copy_branch_data:26ffb67205': {
        "verdict": 'equivalent',
        "reason": "Without the conjunct the NOT EXISTS also meets rows b with b.object_name = o.object_name, but for them starts_with(o.object_name, b.object_name || '__') asks whether a name begins with itself plus two more characters, which is always false (text column with the deterministic default collation; NULL names are excluded by NOT NULL); any b that does match is strictly shorter than o, so b.object_name <> o.object_name was already implied.",
    },
    'drop-conjunct:_dependent_tables:6d93a70088': {
        "verdict": 'equivalent',
        "reason": "It exposed a pggit bug, fixed since: a foreign key to a child's column renamed with the parent's was not recorded (tests/extension/test_ddl_tracking.py::test_a_column_renamed_on_a_parent_records_the_tables_whose_keys_name_the_childs_column, mutant tables_naming_a_child_not_followed). With the fix the real script records the same tables; the mutant only records a child before its parent within one statement, an order of history rows the contract does not fix.",
    },
    'drop-conjunct:_dependent_tables:93e24060d2': {
        "verdict": 'equivalent',
        "reason": 'It exposed a pggit bug, fixed since: the regular children of a foreign-table parent were not recorded (tests/extension/test_ddl_tracking.py::test_a_column_added_to_a_foreign_table_parent_records_its_regular_children, mutant children_of_untrackable_parent_not_followed). With the fix the real script records the same tables; the mutant only records a child before its parent within one statement.',
    },
    'drop-conjunct:_track_table_drop:13a4e20387': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_dropping_a_table_whose_record_a_new_table_took_over_records_nothing',
    },
    'drop-conjunct:verify_integrity:cef4c72c6e': {
        "verdict": 'equivalent',
        "reason": "Without 'c.parent_commit_hash IS NOT NULL' a root adds one NULL to reach (UNION keeps a single NULL); the next step probes c.hash = NULL, which matches nothing, and the final NOT EXISTS (r.hash = c.hash) never matches NULL, so the set of reported commits and the detail are unchanged.",
    },
    'drop-revoke:(script):4e77e62a4b': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_safety.py::test_role_with_usage_but_no_grant_cannot_call_the_table_change_recorder',
    },
    'off-by-one:_write_ddl_commands:3be11adfcd': {
        "verdict": 'equivalent',
        "reason": "pg_index.indexrelid is pg_index's unique key, so the subquery meets at most one live row, and LIMIT 1 and LIMIT 2 give the same value. Two visible versions of one pg_index row would need this REPEATABLE READ command to update that index's pg_index row after a concurrent, committed update of the same row. No command in the trigger's tag list that reports an index does that: only ALTER INDEX ... ATTACH PARTITION's validation writes the parent's row, once in the index's lifetime.",
    },
    'remove-order-by:_table_definition:f205b4ad33': {
        "verdict": 'equivalent',
        "reason": '_table_columns() fills its result with RETURN QUERY ... ORDER BY a.attnum, and the plain function scan in ARRAY(SELECT tc.line FROM pggit._table_columns(p_rel) tc) reads that tuplestore in the order it was filled (no join, sort, aggregate or parallel plan that could reorder it), so the column lines come in attnum order with or without the outer ORDER BY, whatever columns were dropped or re-added.',
    },
    'remove-set-option:_write_migration_rolled_back:616065d14d': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_migrations.py::test_a_type_planted_on_the_callers_search_path_never_runs_in_the_rollback_record_writer',
    },
    'union-swap:verify_integrity:c6622adcc1': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_integrity_invariants.py::test_a_duplicated_branch_id_that_closes_a_loop_is_reported_and_every_check_ends (a duplicated branch id closing a parent loop: UNION ALL never ends, verify_integrity hits the statement timeout)',
    },
}


def verdict(mutant_id: str) -> str | None:
    """``equivalent``, ``gap``, or None for a mutant not triaged yet."""
    entry = TRIAGE.get(mutant_id)
    return entry["verdict"] if entry else None


_NODEID = re.compile(r"((?:tests|docs|examples)/[\w/.\-]+::[\w:.\-]+(?:\[[^\]]*\])?)")


def named_killers(mutant_id: str) -> list[str]:
    """The test ids a gap's reason names (``killed by tests/...::test_x``): the runners try them first."""
    entry = TRIAGE.get(mutant_id)
    return _NODEID.findall(entry["reason"]) if entry and entry["verdict"] == "gap" else []


def check(known_ids: set[str]) -> list[str]:
    """Problems with the triage: unknown verdicts, missing reasons, ids the generator no longer makes."""
    problems = []
    for mutant_id, entry in TRIAGE.items():
        if entry.get("verdict") not in VERDICTS:
            problems.append(f"{mutant_id}: verdict must be one of {VERDICTS}, got {entry.get('verdict')!r}")
        if not entry.get("reason"):
            problems.append(f"{mutant_id}: no reason given")
        if mutant_id not in known_ids:
            problems.append(f"{mutant_id}: the generator no longer makes this mutant; triage it again")
    return problems
