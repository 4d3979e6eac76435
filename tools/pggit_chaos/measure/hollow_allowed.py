"""The tests allowed to pass against hollow pggit: their subject is pggit's schema alone, each with its reason."""

from __future__ import annotations

# A test listed here asserts only what the install script's schema decides (tables, columns, constraints,
# grants, the objects the extension owns), which the hollow build keeps unchanged. Node id -> one-line reason.
ALLOWED: dict[str, str] = {
    "tests/extension/test_install.py::test_create_extension_creates_schema_pggit_and_branch_main":
        "the schema and the seed branch main are rows and objects the install script creates",
    "tests/extension/test_install.py::test_create_extension_works_in_a_database_without_a_public_schema":
        "whether CREATE EXTENSION succeeds is the install script's alone",
    "tests/extension/test_install.py::test_ddl_works_untracked_after_drop_extension":
        "after DROP EXTENSION no pggit object is left to call",
    "tests/extension/test_install.py::test_drop_extension_leaves_nothing_behind":
        "which objects the extension owns is decided by the install script",
    "tests/extension/test_install.py::test_extension_is_not_relocatable":
        "relocatable is a setting of pggit.control",
    "tests/extension/test_install.py::test_extension_needs_nothing_but_core_postgresql":
        "requires is a setting of pggit.control",
    "tests/extension/test_install.py::test_extension_owns_its_schema_so_drop_can_remove_it":
        "the schema's membership in the extension is decided by the install script",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[apply_migration(text,text,text,text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[calculate_schema_hash(text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[commit_changes(text,text,text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[create_branch(text,text,boolean)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[create_data_branch(text,text,text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[delete_branch_simple(text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[detect_drift()]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[generate_trinity_id()]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[get_version(text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[increment_version(integer,integer,integer,text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[rollback_migration(text)]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_function_has_the_contract_signature[verify_integrity()]":
        "a function's signature is the same in the hollow build",
    "tests/extension/test_install.py::test_install_creates_event_triggers_on_ddl_command_end_and_sql_drop":
        "the event triggers and their tags are catalog rows the install script creates",
    "tests/extension/test_install.py::test_optional_parameters_have_defaults[pggit.apply_migration('v', 'SELECT 1')-2]":
        "parameter defaults are part of the signature, the same in the hollow build",
    "tests/extension/test_install.py::test_optional_parameters_have_defaults[pggit.commit_changes('main')-2]":
        "parameter defaults are part of the signature, the same in the hollow build",
    "tests/extension/test_install.py::test_optional_parameters_have_defaults[pggit.create_branch('b')-2]":
        "parameter defaults are part of the signature, the same in the hollow build",
    "tests/extension/test_install.py::test_table_has_the_columns_the_contract_fixes[branches]":
        "table layout: the columns the install script creates",
    "tests/extension/test_install.py::test_table_has_the_columns_the_contract_fixes[commits]":
        "table layout: the columns the install script creates",
    "tests/extension/test_install.py::test_table_has_the_columns_the_contract_fixes[history]":
        "table layout: the columns the install script creates",
    "tests/extension/test_install.py::test_table_has_the_columns_the_contract_fixes[migrations]":
        "table layout: the columns the install script creates",
    "tests/extension/test_install.py::test_table_has_the_columns_the_contract_fixes[objects]":
        "table layout: the columns the install script creates",
    "tests/extension/test_install.py::test_trinity_id_sequence_exists":
        "the sequence and its bounds are created by the install script",
    "tests/extension/test_safety.py::test_every_security_definer_function_pins_a_trusted_search_path":
        "SECURITY DEFINER and SET search_path are function attributes, kept by the hollow build",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables[branches]":
        "grants: only SELECT on pggit's tables is granted to PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables[commits]":
        "grants: only SELECT on pggit's tables is granted to PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables[history]":
        "grants: only SELECT on pggit's tables is granted to PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables[migrations]":
        "grants: only SELECT on pggit's tables is granted to PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables[objects]":
        "grants: only SELECT on pggit's tables is granted to PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables_even_with_the_grants[with_usage_and_execute]":
        "grants: USAGE and EXECUTE give no INSERT, UPDATE or DELETE on the tables",
    "tests/extension/test_safety.py::test_ordinary_role_cannot_write_pggit_tables_even_with_the_grants[without_grants]":
        "grants: USAGE and EXECUTE give no INSERT, UPDATE or DELETE on the tables",
    "tests/extension/test_safety.py::test_ordinary_role_without_execute_cannot_write_through_the_functions[apply_migration]":
        "grants: EXECUTE on the writing entry points is revoked from PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_without_execute_cannot_write_through_the_functions[commit_changes]":
        "grants: EXECUTE on the writing entry points is revoked from PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_without_execute_cannot_write_through_the_functions[create_branch]":
        "grants: EXECUTE on the writing entry points is revoked from PUBLIC",
    "tests/extension/test_safety.py::test_ordinary_role_without_execute_cannot_write_through_the_functions[delete_branch_simple]":
        "grants: EXECUTE on the writing entry points is revoked from PUBLIC",
    "tests/extension/test_versions.py::test_increment_version_is_declared_immutable":
        "volatility is a function attribute, kept by the hollow build",
}

# The figure when the hollow run was first measured, before the suite was strengthened against it
# (the tests that reach a server; page checks that start none were never counted).
FIRST_MEASURED: dict = {
    "date": "2026-11-30",
    "passing": 130,
    "by_folder": {"tests/extension": 99, "docs": 29, "tests/chaos": 2},
}
