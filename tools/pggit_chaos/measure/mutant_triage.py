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
    'add-security-definer:_check_custom_trinity_id:228e67f601': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_trinity_ids.py::test_the_custom_id_check_runs_with_the_callers_rights (the check is executable by PUBLIC; a role denied EXECUTE on pg_catalog.length(text) gets 42501 through it in the real script, while as SECURITY DEFINER it lends the role the owner's right and accepts the ID)",
    },
    'add-security-definer:_dependent_tables:c13539578f': {
        "verdict": 'equivalent',
        "reason": "It exposed a pggit bug, fixed since: a table's description depended on the caller's USAGE on its schema (tests/chaos/test_privileges_readers.py, mutant table_definition_follows_callers_usage). Now _table_definition runs as the owner whoever calls, and the DDL path that calls _dependent_tables already runs as the owner, so owner rights change nothing.",
    },
    'add-security-definer:_integrity_detail:a88a835cf1': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_integrity_detail_runs_with_the_callers_rights (a role denied EXECUTE on array_to_string must stay denied through pggit._integrity_detail; as SECURITY DEFINER the helper lends it the owner's right). Note: tests/extension is outside the mutation runner's chaos tier",
    },
    'add-security-definer:_is_trackable:fca2b5ac35': {
        "verdict": 'equivalent',
        "reason": "It reads only pg_class.relkind/relpersistence and pg_namespace.nspname, which every role may read, and compares names, so no privilege or search_path (USAGE) effect reaches its answer; it already has SET clauses (never inlined) and every internal caller runs it as the owner anyway. It would differ only if an administrator revoked SELECT on pg_class from PUBLIC, which pggit's readers already assume does not happen.",
    },
    'add-security-definer:_normalize_indexdef:18d793c7d4': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_schema_hash.py::test_the_index_definition_normalizer_runs_with_the_callers_rights (a role denied EXECUTE on pg_catalog.strpos is denied it through the helper; as SECURITY DEFINER it would lend the owner's right)",
    },
    'add-security-definer:_own_default_sequences:f678058d90': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_safety.py::test_a_roles_data_branch_owns_its_sequences_and_the_sequence_helper_lends_no_rights (as SECURITY DEFINER the copy's sequence is created by pggit's owner, so a role's create_data_branch of its own serial table fails with 55000 'sequence must have same owner as table it is linked to'; a direct call would also create sequences and rewrite defaults in tables the caller may not touch)",
    },
    'add-security-definer:_restoring_dump:b1af243dda': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_safety.py::test_the_restore_check_runs_with_the_callers_rights (the check is executable by PUBLIC; a role denied EXECUTE on pg_catalog.current_setting(text, boolean) gets 42501 through it in the real script, while as SECURITY DEFINER it lends the owner's right and answers false)",
    },
    'add-security-definer:_track_table_change:fb6b883563': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_the_table_change_recorder_runs_with_its_callers_rights. Through the event triggers it is unobservable (its only callers, _write_ddl_commands and _write_dropped_objects, are SECURITY DEFINER with the same owner), and so is a direct call by a superuser (v_user comes from _invoking_user, which reads the role setting/session_user, and history.created_by is set explicitly). But a role an administrator granted EXECUTE on it gets 42501 on pggit.objects in the real script, while the mutant writes records in any role's name with the owner's rights.",
    },
    'add-security-definer:increment_version:bcb0226ab6': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_versions.py::test_increment_version_runs_with_the_callers_rights (a role denied EXECUTE on pg_catalog.lower is denied it through increment_version too; as SECURITY DEFINER the function would lend it the owner's right and answer 1.3.0)",
    },
    'boolean-swap:(script):355a857012': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_install.py::test_only_a_live_table_record_takes_the_oid_of_the_table_of_its_name (a live record of another kind, and a dropped table's record, get the OID of the table now holding the name instead of the OID they were written with)",
    },
    'boolean-swap:_copy_branch_data:5bd991dade': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_data_branches.py::test_create_branch_with_data_leaves_out_a_table_the_caller_may_not_read (with OR the join pairs each tracked table with every relation of its schema, so the SELECT-privilege check runs against a readable neighbour instead of the table itself; create_branch(..., true) by a role that may read shared.open but not shared.secret fails with 42501 on CREATE TABLE shared.secret__feature (LIKE shared.secret) instead of copying open and leaving secret out)",
    },
    'boolean-swap:_dependent_tables:9382d7ba92': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_drift.py::test_a_drifted_table_stays_drifted_through_changes_to_objects_it_does_not_depend_on (with OR, any composite type or sequence anywhere makes every table reached through a renamed domain expand, so a drifted table whose key names it is recorded)',
    },
    'boolean-swap:_dependent_tables:e697cc24ef': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_a_column_renamed_on_a_parent_with_a_child_records_the_tables_whose_keys_name_it (with OR the walk stops at every table that has any child, so a column renamed on an inheritance parent no longer records the table whose foreign key names it). Already in the file; tests/extension is outside the mutation runner's chaos tier",
    },
    'boolean-swap:_require_caller:afc7bf97da': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_safety.py::test_the_caller_check_answers_true_for_the_caller_it_names (pggit's writers discard the answer, but _require_caller is executable by PUBLIC and a direct call from the caller it names gets false instead of true)",
    },
    'boolean-swap:_table_definition:1ed4a272d0': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_schema_hash.py::test_hash_of_a_partition_changes_with_the_foreign_key_it_inherits',
    },
    'boolean-swap:_write_ddl_commands:34353b7418': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_partitions.py::test_only_an_alter_table_of_a_partitioned_table_records_the_tables_its_transaction_holds_locked (with OR, CREATE INDEX on a partitioned table looks at the tables the transaction holds in ACCESS EXCLUSIVE mode and records a drifted one it merely locked: 1.1.0 instead of staying 1.0.0 and drifted)",
    },
    'boolean-swap:_write_ddl_commands:f9c454ef82': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_a_table_changed_by_ddl_on_another_object_is_recorded_once[rename_schema_leaves_the_tables_of_other_schemas_alone] (with OR every tracked table not yet collected, in any schema, is recorded by ALTER SCHEMA ... RENAME: the bystander table in public gets a PATCH 1.0.1)",
    },
    'boolean-swap:_write_dropped_objects:71e55591ea': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_a_cascade_that_drops_a_views_default_records_only_tracked_tables (a view's column default dropped by DROP FUNCTION ... CASCADE is a 'default value' naming the view; the mutant does not skip a non-trackable relation and records the view as a TABLE)",
    },
    'boolean-swap:create_data_branch:4e82a6faca': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_data_branches.py::test_a_null_or_blank_table_name_is_invalid_input_not_a_missing_table',
    },
    'boolean-swap:verify_integrity:2dc7e59044': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_head_moved_to_an_older_commit_of_the_parent_branch_is_reported',
    },
    'boolean-swap:verify_integrity:53318c8b3a': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_integrity_invariants.py::test_each_recipe_fails_exactly_its_check_naming_the_damaged_row[orphan chain] (new recipe: an unreachable commit that is the parent of another; the OR adds every parent to the reachable set). Already killed by tests/extension/test_integrity_shortcuts.py::test_an_unreachable_loop_of_commits_is_reported and ::test_a_commit_left_behind_by_a_head_moved_back_is_unreachable, which the runner's chaos tier does not run",
    },
    'boolean-swap:verify_integrity:824bfd09ad': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_custom_ids_outside_the_generated_format_are_ignored_by_the_sequence_check (a custom ID with dashes at 25 and 32 slips past the OR into the bigint cast and sequence_ahead_of_ids reports 'check failed')",
    },
    'boolean-swap:verify_integrity:d7f09d0994': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_versions_check_that_cannot_run_is_reported_failed',
    },
    'boolean-swap:verify_integrity:fc7a2cb0b6': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_check_that_cannot_run_is_reported_failed (also by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_after_a_passing_check_is_not_ok[linear_branch_history])',
    },
    'comparison-swap:_dependent_tables:2b809da1b1': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_a_column_renamed_on_a_parent_with_a_child_records_the_tables_whose_keys_name_it',
    },
    'comparison-swap:_own_default_sequences:3d3ff9f473': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_data_branches.py::test_a_copys_sequence_has_its_sources_options (the copy's sequence must take the source sequence's type, increment, bounds, start, cache and cycle; the mutant copies another sequence's pg_sequence row, bigint/1/... instead of smallint/7/...)",
    },
    'comparison-swap:_own_default_sequences:cc4531b128': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_data_branches.py::test_a_copys_sequence_takes_the_next_free_numbered_name (already in the suite since 0eed9c6: the mutant looks for the name in every other schema, takes the name already taken in the copy's schema, and CREATE SEQUENCE fails with 42P07)",
    },
    'comparison-swap:_run_migration_sql:31081e58be': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_migrations.py::test_a_failing_migration_keeps_its_errors_detail_and_hint',
    },
    'comparison-swap:_run_migration_sql:32023830c9': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_migrations.py::test_a_failing_migration_keeps_its_errors_detail_and_hint[detail_only] tests/extension/test_migrations.py::test_a_failing_migration_keeps_its_errors_detail_and_hint[hint_only] tests/extension/test_migrations.py::test_a_failing_migration_keeps_its_errors_detail_and_hint[neither] (already in the suite since f988c60: with = a detail without a hint is dropped, and an error without a detail is re-raised with an empty detail and loses its hint)",
    },
    'comparison-swap:_track_table_change:e2e020fc24': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_a_rename_frees_its_new_name_only_in_its_own_schema (added in the last hour; with <> the stale public.t record is not retired and the rename fails with a unique violation)',
    },
    'comparison-swap:_write_ddl_commands:317d93586e': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_table_change_after_setup_bumps_the_version_by_its_rule[comment_on_constraint] (COMMENT ON CONSTRAINT is reported as the constraint; with <> the table is taken from some other constraint, here a system catalog's, so the commented table gets no history row and stays 1.0.1)",
    },
    'comparison-swap:_write_ddl_commands:62e2616948': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_a_table_changed_by_ddl_on_another_object_is_recorded_once[rename_schema_moves_its_tables_and_changes_the_tables_that_name_them]',
    },
    'comparison-swap:_write_ddl_commands:b1890b3bd1': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_table_change_bumps_the_version_by_its_rule[add_serial_column]',
    },
    'comparison-swap:verify_integrity:601b875557': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_history_row_that_repeats_the_version_before_it_is_reported',
    },
    'comparison-swap:verify_integrity:c0630e07da': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_integrity_invariants.py::test_a_commit_no_head_reaches_is_reported_though_later_commits_on_two_branches_follow_it (with '<>' the one-pass shortcut passes an unreachable commit that later commits on two branches follow)",
    },
    'delete-statement:_check_migration_version:36af11250e': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_migrations.py::test_apply_refuses_a_version_over_255_characters',
    },
    'delete-statement:_normalize_indexdef:76646d4036': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_schema_hash.py::test_hash_of_indexes_does_not_depend_on_the_tables_name_or_schema',
    },
    'delete-statement:_normalize_indexdef:de8a5ffc74': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_schema_hash.py::test_hash_of_indexes_does_not_depend_on_the_tables_name_or_schema and tests/extension/test_schema_hash.py::test_the_index_definition_normalizer_runs_with_the_callers_rights (without the RETURN the index line keeps its schema-qualified table name, so two tables of different names with the same indexes hash apart, and the helper returns 'ON s.t' instead of 'ON <table>'); both tests already existed",
    },
    'delete-statement:_own_default_sequences:7b93a5b8e2': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_data_branch_independence.py::test_a_copy_never_silently_keeps_a_sequence_whose_name_has_a_backslash',
    },
    'delete-statement:_own_default_sequences:b36c4a64a9': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_data_branches.py::test_a_copy_made_with_only_usage_on_the_sequence_continues_after_the_copied_rows',
    },
    'delete-statement:_resolve_table:ea46592571': {
        "verdict": 'equivalent',
        "reason": 'For a NULL name the mutant falls through: pg_catalog.to_regclass is strict (NULL), the NOT EXISTS over c.oid = NULL is true, and it returns NULL, the same value, with no write. The only way to tell them apart is for the caller to put its own oid = operator ahead of pg_catalog on its own search_path; the original runs that operator too for every non-NULL name, so no contract-level behaviour differs.',
    },
    'delete-statement:_table_definition:cf56ab671e': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_schema_hash.py::test_hash_of_a_partitioned_table_depends_on_its_partition_key (without the 'partition by' line, partitioned tables of the same columns partitioned by RANGE (at), LIST (at), RANGE (id) and HASH (id) all hash alike)",
    },
    'delete-statement:_track_table_change:121da680bf': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_recording_a_change_of_a_table_that_no_longer_exists_writes_nothing',
    },
    'delete-statement:create_data_branch:535029cab6': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_data_branches.py::test_a_branch_name_that_breaks_the_rules_is_refused (the to_* cases)',
    },
    'delete-statement:verify_integrity:1c91a23fb9': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_is_not_ok_whatever_the_check_before_it_said (no_commit_cycles cannot run while linear_branch_history before it passes; the mutant carries that ok = true over)',
    },
    'delete-statement:verify_integrity:1e6de426d9': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_after_a_passing_check_is_not_ok[commit_parents_precede_children] (new case: pggit.commits.committed_at renamed; commit_parents_exist before it passes and the mutant carries its ok = true over to the check that could not run). Also killed by tests/extension/test_integrity.py::test_checks_that_pass_but_cannot_describe_it_are_reported_failed, which the runner's chaos tier does not run",
    },
    'delete-statement:verify_integrity:25d91b3d12': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_check_that_cannot_run_is_reported_failed',
    },
    'delete-statement:verify_integrity:34d1f58a1b': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_checks_that_pass_but_cannot_describe_it_are_reported_failed',
    },
    'delete-statement:verify_integrity:a4d8a04bff': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_checks_that_pass_but_cannot_describe_it_are_reported_failed (a role without EXECUTE on pggit._integrity_detail: history_objects_exist sets ok := true, then fails on the detail helper, and without 'ok := false' in its handler reports ok = true with a 'check failed' detail)",
    },
    'delete-statement:verify_integrity:b7bac82838': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_after_a_passing_check_is_not_ok[linear_branch_history]',
    },
    'delete-statement:verify_integrity:dba301760f': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_after_a_passing_check_is_not_ok[commits_reachable] (with pggit.branches.head_commit_hash renamed, branch_heads_exist, the first check, cannot run; without 'ok := false' its ok stays at its initial NULL instead of false; the test now asserts ok is False, not merely falsy). Also killed by tests/extension/test_integrity.py::test_a_check_that_cannot_run_is_reported_failed and ::test_checks_that_pass_but_cannot_describe_it_are_reported_failed (ok = true with a 'check failed' detail), which the runner's chaos tier does not run",
    },
    'delete-statement:verify_integrity:f1c3b6a0e7': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_integrity_invariants.py::test_a_check_that_cannot_run_after_a_passing_check_is_not_ok[commits_reachable]',
    },
    'drop-conjunct:(script):274ea79ea5': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_install.py::test_only_a_live_table_record_takes_the_oid_of_the_table_of_its_name (already in the suite: without NEW.is_active the trigger also fires for a dropped table's record, which takes the OID of the live table now holding its name instead of the OID it was written with)",
    },
    'drop-conjunct:(script):cdc3e83138': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_install.py::test_only_a_live_table_record_takes_the_oid_of_the_table_of_its_name (a live FUNCTION record named like a table gets that table's OID instead of the OID it was written with)",
    },
    'drop-conjunct:_copy_branch_data:26ffb67205': {
        "verdict": 'equivalent',
        "reason": "Without the conjunct the NOT EXISTS also meets rows b with b.object_name = o.object_name, but for them starts_with(o.object_name, b.object_name || '__') asks whether a name begins with itself plus two more characters, which is always false (text column with the deterministic default collation; NULL names are excluded by NOT NULL); any b that does match is strictly shorter than o, so b.object_name <> o.object_name was already implied.",
    },
    'drop-conjunct:_dependent_tables:6d93a70088': {
        "verdict": 'equivalent',
        "reason": "It exposed a pggit bug, fixed since: a foreign key to a child's column renamed with the parent's was not recorded (tests/extension/test_ddl_tracking.py::test_a_column_renamed_on_a_parent_records_the_tables_whose_keys_name_the_childs_column, mutant tables_naming_a_child_not_followed). With the fix the real script records the same tables; the mutant only records a child before its parent within one statement, an order of history rows the contract does not fix.",
    },
    'drop-conjunct:_dependent_tables:6fc20d10ff': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_schema_corruption.py::test_a_table_sharing_an_oid_with_an_object_of_a_renamed_schema_does_not_record_what_names_it (OIDs are unique per catalog only: after pg_resetwal -o a table outside a renamed schema shares a function's OID in it, and without the classid match the walk expands that table and records a drifted table whose foreign key names it)",
    },
    'drop-conjunct:_dependent_tables:93e24060d2': {
        "verdict": 'equivalent',
        "reason": 'It exposed a pggit bug, fixed since: the regular children of a foreign-table parent were not recorded (tests/extension/test_ddl_tracking.py::test_a_column_added_to_a_foreign_table_parent_records_its_regular_children, mutant children_of_untrackable_parent_not_followed). With the fix the real script records the same tables; the mutant only records a child before its parent within one statement.',
    },
    'drop-conjunct:_dependent_tables:d580c2b6c8': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_renaming_a_schema_leaves_drifted_a_table_whose_default_calls_a_function_with_the_schemas_oid (OIDs are unique per catalog only: after pg_resetwal -o a function outside the schema gets the schema's OID; without the refclassid match a schema rename takes everything depending on that function as changed and records a drifted table whose default calls it, 1.1.0 instead of staying 1.0.0 and drifted)",
    },
    'drop-conjunct:_dependent_tables:d79ee1a184': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_drift.py::test_a_drifted_table_stays_drifted_through_changes_to_objects_it_does_not_depend_on (without refobjid a schema rename treats the objects of every schema as changed, so a drifted table in another schema gets recorded)',
    },
    'drop-conjunct:_own_default_sequences:0f7963b72f': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_data_branch_independence.py::test_a_sequence_sharing_an_oid_with_a_function_a_default_calls_is_not_taken_for_its_sequence (after OID wraparound a sequence can share the OID of a function a default calls; without refclassid = pg_class the mutant takes it for the default's sequence and create_data_branch raises 0A000)",
    },
    'drop-conjunct:_track_table_change:051e4c820b': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_a_rename_that_retires_a_stale_record_leaves_a_dropped_tables_record_untouched (without is_active the rename that frees its new name also rewrites updated_at of a dropped table's inactive record of that name)",
    },
    'drop-conjunct:_track_table_change:0f006ccd93': {
        "verdict": 'equivalent',
        "reason": "The UPDATE runs only when v_obj's recorded schema or name differs from (v_schema, v_table), and v_obj is the newest version of its row, locked FOR UPDATE and not written in between, so v_obj's own row never matches schema_name = v_schema AND object_name = v_table (NOT NULL text, deterministic collation); o.id <> v_obj.id excludes no row.",
    },
    'drop-conjunct:_track_table_change:1ae397fc08': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_changing_a_table_whose_record_a_new_table_took_over_tracks_it_afresh',
    },
    'drop-conjunct:_track_table_change:a511d46cef': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_a_rename_frees_its_new_name_only_in_its_own_schema',
    },
    'drop-conjunct:_track_table_drop:13a4e20387': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_ddl_tracking.py::test_dropping_a_table_whose_record_a_new_table_took_over_records_nothing',
    },
    'drop-conjunct:_write_ddl_commands:2932e2f72d': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_a_record_of_another_kind_carrying_a_tables_oid_does_not_record_its_schema_rename_twice (a live non-TABLE record carrying a table's OID joins a second time in the schema-rename lookup, so the table is recorded twice: ALTER MAJOR 2.0.0 then ALTER PATCH 2.0.1)",
    },
    'drop-conjunct:_write_ddl_commands:a6efcc0035': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_partitions.py::test_only_an_alter_table_of_a_partitioned_table_records_the_tables_its_transaction_holds_locked (without the partitioned-table condition, ALTER TABLE on a plain table records a drifted table the transaction merely holds in ACCESS EXCLUSIVE mode: 1.1.0 instead of staying 1.0.0 and drifted)",
    },
    'drop-conjunct:_write_ddl_commands:f4f3967edf': {
        "verdict": 'equivalent',
        "reason": "Without the check v_parents only gains duplicate OIDs (it never holds NULL in the loop, and it is non-empty either way once v_rel was set); it is read only by 'inhparent = ANY (v_parents)' in a recursive CTE whose UNION deduplicates, and by cardinality(...) > 0, so no set of children or recorded tables can differ.",
    },
    'drop-conjunct:_write_dropped_objects:f3f3724ac3': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_ddl_tracking.py::test_dropping_an_index_records_only_the_live_table_whose_record_lists_it (a dropped table's inactive record keeps its definition's index line, so the mutant also gives a PATCH to the new live table of that name)",
    },
    'drop-conjunct:create_data_branch:60e294bd75': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_data_branches.py::test_a_relation_of_the_copys_name_that_is_not_a_table_is_refused',
    },
    'drop-conjunct:delete_branch_simple:2196d7bfa4': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_branches.py::test_deleting_an_already_deleted_branch_writes_and_locks_nothing',
    },
    'drop-conjunct:detect_drift:c62896f584': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_drift.py::test_a_record_of_another_kind_with_a_tables_name_is_not_drift (a live FUNCTION record with a tracked table's schema and name would be compared with the table's live hash and reported)",
    },
    'drop-conjunct:get_version:5ec5c7a9d6': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_versions.py::test_get_version_reads_the_tables_record_not_another_kinds_of_the_same_name (a live pggit.objects record of another kind, 'FUNCTION', with the table's schema and name and a higher id, which the unique key allows: the mutant returns its 5.0.0 instead of the table's 1.1.0; pggit itself only writes TABLE records, so the row is written directly by a superuser)",
    },
    'drop-conjunct:verify_integrity:2ba8f7809e': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_integrity_invariants.py::test_ids_and_parents_in_different_collations_stop_no_parent_check_while_no_commit_has_a_parent',
    },
    'drop-conjunct:verify_integrity:3c71d468f6': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_a_parent_off_its_childs_line_is_reported_though_another_branch_lost_its_parent (without l.branch_id = c.branch_id any branch with a missing ancestor anywhere hides every offender: once the unrelated branch 'loose' loses its parent, commit_parents_on_branch_line reports ok with feature's commit whose parent is on 'side')",
    },
    'drop-conjunct:verify_integrity:529a6e8920': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_parent_committed_after_its_child_is_reported_though_an_older_commit_precedes_the_child',
    },
    'drop-conjunct:verify_integrity:7970c8aee6': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_parent_with_a_higher_id_than_its_child_is_reported_as_not_preceding_it',
    },
    'drop-conjunct:verify_integrity:ab5c1ae3c8': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity_shortcuts.py::test_a_healthy_history_is_reachable_though_the_head_column_was_retyped',
    },
    'drop-conjunct:verify_integrity:cef4c72c6e': {
        "verdict": 'equivalent',
        "reason": "Without 'c.parent_commit_hash IS NOT NULL' a root adds one NULL to reach (UNION keeps a single NULL); the next step probes c.hash = NULL, which matches nothing, and the final NOT EXISTS (r.hash = c.hash) never matches NULL, so the set of reported commits and the detail are unchanged.",
    },
    'drop-conjunct:verify_integrity:db0181f87c': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_a_head_moved_to_an_older_commit_of_the_parent_branch_is_reported',
    },
    'drop-revoke:(script):482a44d2df': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_install.py::test_only_the_owner_may_create_in_pggit_whatever_the_installers_default_privileges (a new schema gets the installer's default privileges: after ALTER DEFAULT PRIVILEGES GRANT CREATE ON SCHEMAS TO PUBLIC, only the REVOKE takes CREATE on pggit away from PUBLIC; without it any role creates pggit.planted)",
    },
    'drop-revoke:(script):4e77e62a4b': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_safety.py::test_role_with_usage_but_no_grant_cannot_call_the_table_change_recorder',
    },
    'drop-revoke:(script):51a148dda6': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_safety.py::test_branch_record_helper_refuses_a_role_not_granted_create_branch (already in the suite since 0eed9c6: with PUBLIC holding EXECUTE on create_branch, a role granted only _create_branch_record passes _write_branch_record's has_function_privilege check and creates a branch)",
    },
    'errcode-change:_check_migration_version:58c9413e80': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_migrations.py::test_apply_refuses_a_version_over_255_characters',
    },
    'errcode-change:_track_table_change:580465d657': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_serialization_failures.py::test_second_of_two_first_changes_to_an_untracked_table_gets_40001_and_its_retry_is_recorded',
    },
    'errcode-change:_write_branch_record:8b1a81aacb': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_safety.py::test_branch_record_helper_refuses_a_role_not_granted_create_branch',
    },
    'off-by-one:(script):5b60674ccc': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_install.py::test_a_record_written_without_a_version_starts_at_1_0_0 (a record written into pggit.objects with no version, as a superuser's record of another kind may be, starts at 0.0.0 instead of 1.0.0)",
    },
    'off-by-one:_check_migration_version:48ddf4dfc9': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_migrations.py::test_apply_refuses_a_version_over_255_characters (its positive control, a version of exactly 255 characters, is refused by the mutant with 22023)',
    },
    'off-by-one:_normalize_indexdef:e01d9f0a9e': {
        "verdict": 'equivalent',
        "reason": "The only caller (_table_definition) passes pg_get_indexdef() output, which always starts with 'CREATE INDEX' or 'CREATE UNIQUE INDEX' (or is NULL). A pattern starting with ' ON ' therefore matches at position 0 (no match) or at position 13 or later, never at 1, so 'v_pos > 0' and 'v_pos > 1' always agree. Only a direct call of the internal helper with a made-up string starting with ' ON <schema>.<table> ' would differ, and nothing pggit stores or returns goes through such a call.",
    },
    'off-by-one:_own_default_sequences:09a1ac0a8b': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_data_branches.py::test_a_copys_sequence_takes_the_next_free_numbered_name',
    },
    'off-by-one:_table_definition:a071ca6fce': {
        "verdict": 'equivalent',
        "reason": "The clone filter excludes a foreign key when conparentid <> X AND EXISTS a pg_constraint row pc with pc.oid = con.conparentid (and the same conrelid). For conparentid = 0 the EXISTS is false in both versions (no catalog row has InvalidOid 0), so '<> 0' vs '<> 1' only matters if conparentid = 1 and a pg_constraint row with OID 1 exists. Neither can happen: conparentid is only ever 0 or the OID of a real parent constraint, and pg_constraint has no bootstrap (.dat) rows; OIDs given out by initdb are >= 10000 and at run time >= 16384 (the counter wraps to FirstNormalObjectId), so no constraint ever has OID 1. Every input gives the same lines.",
    },
    'off-by-one:_write_ddl_commands:3be11adfcd': {
        "verdict": 'equivalent',
        "reason": "pg_index.indexrelid is pg_index's unique key, so the subquery meets at most one live row, and LIMIT 1 and LIMIT 2 give the same value. Two visible versions of one pg_index row would need this REPEATABLE READ command to update that index's pg_index row after a concurrent, committed update of the same row. No command in the trigger's tag list that reports an index does that: only ALTER INDEX ... ATTACH PARTITION's validation writes the parent's row, once in the index's lifetime.",
    },
    'off-by-one:_write_ddl_commands:a5c4741f29': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_isolation_levels.py::test_dangerous_pairs_end_like_a_serial_order_or_with_a_retryable_error[validate_check-rename_check-repeatable_read-a_commits_first] and ::test_dangerous_pairs_end_like_a_serial_order_or_with_a_retryable_error[validate_check-rename_check-serializable-a_commits_first] (also the two -interleaved cases): RENAME CONSTRAINT that waited for a concurrent VALIDATE CONSTRAINT sees two versions of the pg_constraint row under REPEATABLE READ/SERIALIZABLE, and LIMIT 2 makes the scalar subquery fail with 21000 'more than one row returned by a subquery', neither a serial outcome nor retryable",
    },
    'off-by-one:_write_dropped_objects:ffb93eb954': {
        "verdict": 'equivalent',
        "reason": "objects.definition is only ever written from _table_definition(), which starts with the fixed line 'pggit table definition v1' (its final regexp_replace keeps the first character or puts '<schema>.' there), so E'\\nindex ...' can never be found at position 1: strpos is 0 or >= 2, and '> 0' and '> 1' agree.",
    },
    'off-by-one:generate_trinity_id:34c6eed6ce': {
        "verdict": 'equivalent',
        "reason": 'The random part becomes hex digits 2-9 instead of 1-8 of a fresh gen_random_uuid() with its dashes removed; in a version-4 UUID digits 1-12 are all random (the fixed version and variant digits are the 13th and 17th), so the ID still ends in 8 uniformly random lowercase hex digits, and the UUID is never shown to anyone to compare with.',
    },
    'off-by-one:verify_integrity:db6c36c146': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_a_branch_four_branches_down_from_main_is_on_mains_line (after b4's first commit, whose parent is main's commit: with depth + 2 the line walk of commit_parents_on_branch_line stops before main and reports the healthy commit)",
    },
    'off-by-one:verify_integrity:f38f4904db': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_a_branch_four_branches_down_from_main_is_on_mains_line (main <- b1 <- b2 <- b3 <- b4 with no commits of their own: with depth + 2 the line walk stops before main, 2 * 3 >= 5 branches, and branch_heads_on_branch reports b4's healthy head, main's commit)",
    },
    'remove-collate:_table_definition:d3c187b27b': {
        "verdict": 'equivalent',
        "reason": 'ic.relname is pg_class.relname, of type name, whose column collation is already "C" (attcollation C since PostgreSQL 12; checked on the test server, 16), and ORDER BY on a bare column uses its collation, not the database default; the explicit COLLATE "C" names the same collation, so the index lines sort the same in every database.',
    },
    'remove-lock:_track_table_drop:95fa5d5164': {
        "verdict": 'gap',
        "reason": 'killed by tests/chaos/test_concurrent_versioning.py::test_drop_of_an_untracked_namesake_waits_for_the_change_that_moves_the_record_away',
    },
    'remove-order-by:_table_definition:05689d69dd': {
        "verdict": 'equivalent',
        "reason": "_table_columns() fills its result with RETURN QUERY ... ORDER BY 5 (the column's position, see _column_position), and the plain function scan in ARRAY(SELECT tc.line FROM pggit._table_columns(p_rel) tc) reads that tuplestore in the order it was filled (no join, sort, aggregate or parallel plan that could reorder it), so the column lines come in that order with or without the outer ORDER BY.",
    },
    'remove-order-by:_track_table_change:06d9c89035': {
        "verdict": 'equivalent',
        "reason": "Same as remove-order-by:_table_definition:05689d69dd: _table_columns() fills its result with RETURN QUERY ... ORDER BY 5, and the plain aggregate jsonb_agg(...) FROM pggit._table_columns(p_rel) tc reads that tuplestore in the order it was filled (a single function scan, no join or sort, and a plpgsql function is PARALLEL UNSAFE so no parallel plan), so column_list comes out in that order with or without the aggregate's ORDER BY.",
    },
    'remove-order-by:_track_table_change:1fd47b1412': {
        "verdict": 'equivalent',
        "reason": "It is the name fallback lookup (WHERE is_active AND object_type = 'TABLE' AND schema_name = v_schema AND object_name = v_table ... LIMIT 1 FOR UPDATE), whose WHERE clause is exactly the key and predicate of the unique partial index objects_active_name_key (object_type, schema_name, object_name) WHERE is_active: every MVCC snapshot sees at most one matching row, and FOR UPDATE's recheck of a concurrently updated row only keeps or drops that one row (rows inserted by others are not in the snapshot). With at most one candidate, ORDER BY id DESC picks nothing different and locks nothing different.",
    },
    'remove-order-by:verify_integrity:012518904c': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_branches_whose_parent_branch_is_missing_are_named_in_id_order (two branches lose their parent, the higher id updated first so its row is stored first: without ORDER BY b.id branch_parents_exist names them in storage order, 'late' before 'early')",
    },
    'remove-order-by:verify_integrity:0380d5e5b0': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_integrity.py::test_trinity_ids_used_twice_are_named_in_id_order_the_first_ten_of_them (twelve duplicated Trinity IDs: without ORDER BY d.hash unique_commit_ids names them in hash-aggregate order, so the order and the set of the ten named IDs change)",
    },
    'remove-order-by:verify_integrity:8da4bb2c50': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_versions_disagreeing_with_history_are_named_in_object_order',
    },
    'remove-set-option:_check_branch_name:060b7fbab4': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_safety.py::test_branch_names_are_checked_with_pg_catalogs_operators_whatever_the_callers_search_path (create_data_branch keeps the caller's search_path; without the pinned path the check's ~ resolves to a text ~ planted ahead of pg_catalog that matches nothing, and '/feature' is accepted and copied instead of refused with 22023)",
    },
    'remove-set-option:_integrity_detail:53c6350506': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_integrity.py::test_integrity_detail_uses_pg_catalogs_operators_whatever_the_callers_search_path',
    },
    'remove-set-option:_is_trackable:12698a48e9': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_safety.py::test_the_trackable_check_uses_pg_catalogs_operators_whatever_the_callers_search_path (the check is executable by PUBLIC and, a SQL function, parses its body on the caller's search_path without the pinned path: a name <> planted ahead of pg_catalog makes NOT IN ('pggit', ...) pass and pggit.branches is called trackable)",
    },
    'remove-set-option:_quote_for_message:91d55e888d': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_security.py::test_a_text_domain_on_the_search_path_where_the_message_quoter_first_runs_never_runs_as_the_owner (PL/pgSQL resolves the quoter's 'text' variables once per session; without the pinned path a hostile role gets it first run on its own path (create_data_branch with a blank name, an invoker function with no SET), and then SECURITY DEFINER delete_branch_simple's refusal runs the role's domain CHECK as pggit's owner and leaks the owner's secret through a notice)",
    },
    'remove-set-option:_restoring_dump:0b275dcd95': {
        "verdict": 'gap',
        "reason": "killed by tests/chaos/test_backup_restore.py::test_an_operator_on_the_callers_search_path_does_not_make_a_session_look_like_a_restore (the body's unqualified = resolves on the caller's search_path: a planted text = text ahead of pg_catalog makes a session with the dump settings but no install mark answer true)",
    },
    'remove-set-option:_table_definition:47359cc953': {
        "verdict": 'gap',
        "reason": "killed by tests/extension/test_schema_hash.py::test_hash_of_a_money_default_does_not_depend_on_the_sessions_monetary_locale (a money literal default prints through cash_out by the session's lc_monetary: a session with lc_monetary = de_DE.UTF-8 describes DEFAULT '12.50' as '12,50 EUR' instead of '$12.50' and gets another hash; the test compiles de_DE.UTF-8 with localedef and starts its own server with LOCPATH, since the machine has only C locales)",
    },
    'remove-set-option:_write_migration_rolled_back:616065d14d': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_migrations.py::test_a_type_planted_on_the_callers_search_path_never_runs_in_the_rollback_record_writer',
    },
    'remove-set-option:create_branch:0bbf6d7d19': {
        "verdict": 'equivalent',
        "reason": "create_branch is SECURITY INVOKER, and nothing in its body is looked up on the search_path: the two calls name pggit._create_branch_record(text, text) and pggit._copy_branch_data(text, text) with their schema and exact argument types, in a schema where only the owner can create objects; 'integer' is a keyword for pg_catalog.int4; it uses no operator or cast. Everything it calls pins its own search_path, so anything a role plants on its own search_path is never reached, and the role runs with its own rights anyway.",
    },
    'result-null:_normalize_indexdef:c510c400f9': {
        "verdict": 'gap',
        "reason": 'killed by tests/extension/test_schema_hash.py::test_hash_of_a_temporary_table_changes_with_its_indexes',
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
