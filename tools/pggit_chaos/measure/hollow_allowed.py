"""The tests allowed to pass against hollow pggit: their subject is pggit's schema alone, each with its reason."""

from __future__ import annotations

from functools import cache

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

# Tests that call no pggit function (no pggit.* call, no toolkit call that makes one): they show PostgreSQL's
# own behaviour, so the hollow build cannot change their outcome. Keyed by (file path, test function name),
# not by node id, because a guide's node id holds the line of its code block, which moves as the page changes.
# A table they create fires pggit's event triggers, but none asserts what those record.
# (path, test function) -> one-line reason.
NOT_CALLING_PGGIT: dict[tuple[str, str], str] = {
    ("docs/testing/TROUBLESHOOTING.md", "test_a_forgotten_transaction_hangs_a_test"):
        "shows an idle transaction's lock hanging another session's ALTER TABLE; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_lock_timeout_turns_a_hang_into_an_error"):
        "shows PostgreSQL's lock_timeout ending a lock wait; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_a_slow_first_example_makes_hypothesis_report_flakiness"):
        "shows Hypothesis reporting a lock wait as flakiness; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_a_big_sort_outgrows_work_mem_and_temp_space"):
        "shows PostgreSQL's own sort spilling to disk past temp_file_limit; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_set_local_gives_one_transaction_more_memory"):
        "shows SET LOCAL work_mem lasting one transaction; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_a_setting_only_some_versions_have"):
        "shows a setting missing from some PostgreSQL versions; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_ask_the_server_what_it_has"):
        "reads pg_settings to tell PostgreSQL versions apart; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_workers_that_do_not_overlap_never_deadlock"):
        "shows two LOCK TABLE workers that never overlap; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_a_deadlock_on_every_run"):
        "shows PostgreSQL detecting a deadlock of two LOCK TABLEs; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_lock_table_needs_a_transaction"):
        "shows PostgreSQL refusing LOCK TABLE outside a transaction; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_the_server_log_shows_the_failing_statement"):
        "reads the server log for a failed division; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_find_the_session_that_blocks"):
        "shows TransactionMonitor finding a blocking session in pg_stat_activity and pg_locks; pggit is not called",
    ("docs/testing/TROUBLESHOOTING.md", "test_bounded_wait_for_a_lock"):
        "shows lock_timeout bounding a wait on LOCK TABLE; pggit is not called",
    ("docs/testing/PATTERNS.md", "test_streaming_keeps_the_client_peak_low"):
        "measures the client's memory for a generate_series query; pggit is not called",
    ("tests/chaos/test_session_settings.py", "test_every_user_setting_is_drawn_or_excluded_with_a_reason"):
        "compares pg_settings with the module's lists of drawn and excluded settings; pggit is not called",
    ("docs/reference/toolkit.md", "test_db_connection_string_and_sync_conn_reach_one_fresh_database"):
        "shows two fixtures reaching one database, whose history starts empty; pggit is not called",
    ("docs/reference/toolkit.md", "test_pg_server_and_pg_cluster_are_the_runs_server"):
        "shows the server fixtures and the template's installed extension; pggit is not called",
    ("docs/reference/toolkit.md", "test_isolated_schema_comes_first_on_the_search_path"):
        "shows the isolated_schema fixture's search_path; pggit is not called",
    ("docs/reference/toolkit.md", "test_make_role_makes_a_login_role"):
        "shows the make_role fixture's role in pg_roles; pggit is not called",
    ("docs/reference/toolkit.md", "test_chaos_pool_lends_connections"):
        "shows the chaos_pool fixture lending a connection; pggit is not called",
    ("docs/reference/toolkit.md", "test_async_conn_is_an_asyncio_connection"):
        "shows the async_conn fixture reading the install script's seed branch; pggit is not called",
}


# Guide SQL blocks allowed to pass: every SQL block's test has the same name, and its node id holds the line of
# the block, which moves as the page changes; so a block is named by its page and a snippet of its code that no
# other SQL block of the page contains (tests/toolkit/test_measure_hollow.py checks that). The snippet has no "["
# (the Metrics page groups parametrized node ids by what comes before one). (page, snippet) -> one-line reason.
SQL_BLOCKS_ALLOWED: dict[tuple[str, str], str] = {
    ("docs/reference/pggit.md", "SELECT name, status, head_commit_hash FROM pggit.branches"):
        "the seed branch main, the extension's relocatable flag and its schema's membership: the install script's",
    ("docs/reference/pggit.md", "ASSERT to_regnamespace('pggit') IS NULL"):
        "after DROP EXTENSION no pggit object is left to call",
    ("docs/reference/pggit.md", "FROM pg_sequences WHERE schemaname = 'pggit'"):
        "the sequence's cache, cycle and bounds are created by the install script",
    ("docs/reference/pggit.md", "ASSERT has_schema_privilege('public', 'pggit', 'USAGE')"):
        "grants: what PUBLIC may use, read and execute is set by the install script",
    ("docs/reference/pggit.md", "CREATE ROLE reference_reader"):
        "grants: PostgreSQL refuses a role without EXECUTE before any pggit code runs",
    ("docs/reference/pggit.md", "ASSERT (SELECT bool_and(prosecdef AND proconfig"):
        "SECURITY DEFINER and SET search_path are function attributes, kept by the hollow build",
    ("docs/reference/pggit.md", "unnest(e.extconfig)"):
        "which tables pg_dump dumps is registered by the install script (pg_extension_config_dump)",
    ("docs/contributing/writing-pages.md", "SELECT name, status FROM pggit.branches;"):
        "shows a SQL block and its output on the seed branch main: the install script's row",
}

# Guide SQL blocks that call no pggit function, keyed as SQL_BLOCKS_ALLOWED. (page, snippet) -> one-line reason.
SQL_BLOCKS_NOT_CALLING_PGGIT: dict[tuple[str, str], str] = {
    ("docs/testing/TROUBLESHOOTING.md", "SELECT pid, pg_blocking_pids(pid) AS blocked_by"):
        "reads pg_stat_activity, pg_locks and pg_stat_database for a psql session; pggit is not called",
}

SQL_BLOCK_TEST = "test_sql_block_runs_as_shown"

# A SQL block marked setup on its page shows no output: it only prepares a database, as a fixture does, and
# the page's own checks require a continuation block after it that shows the effect; that block's test is
# the one that must fail against the hollow build.
SETUP_REASON = "a setup block only prepares the database; the continuation block that shows its effect is checked"
SETUP_KEY = "any page::sql block marked setup"


@cache
def _sql_block(page: str, line: int):
    """The SQL block at ``line`` of ``page`` (a repository path), or None if there is none."""
    from pggit_chaos.pages.parse import PageError, read_blocks
    from pggit_chaos.paths import REPO

    try:
        blocks = read_blocks(REPO / page)
    except (OSError, PageError):
        return None
    return next((b for b in blocks if b.line == line and b.kind == "sql"), None)


def sql_block_reason(nodeid: str) -> str | None:
    """Why a guide's SQL block may pass against the hollow build, found by its page and code; None if it may not."""
    parts = nodeid.split("::")
    if len(parts) != 3 or parts[2] != SQL_BLOCK_TEST or not parts[1].startswith("line-"):
        return None
    block = _sql_block(parts[0], int(parts[1].removeprefix("line-")))
    if block is None:
        return None
    if block.has("setup"):
        return SETUP_REASON
    for table in (SQL_BLOCKS_ALLOWED, SQL_BLOCKS_NOT_CALLING_PGGIT):
        for (page, snippet), reason in table.items():
            if page == parts[0] and snippet in block.code:
                return reason
    return None


def not_calling_pggit(nodeid: str) -> str | None:
    """The reason a test is listed in ``NOT_CALLING_PGGIT``, found by its file and function; None if not."""
    parts = nodeid.split("::")
    function = parts[-1].split("[")[0]
    return NOT_CALLING_PGGIT.get((parts[0], function))


def allowed_reason(nodeid: str) -> str | None:
    """Why a test may pass against the hollow build (``ALLOWED``, ``NOT_CALLING_PGGIT`` or a guide SQL block's list); None if it may not."""
    return ALLOWED.get(nodeid) or not_calling_pggit(nodeid) or sql_block_reason(nodeid)


# The figure when the hollow run was first measured, before the suite was strengthened against it
# (the tests that reach a server; page checks that start none were never counted).
FIRST_MEASURED: dict = {
    "date": "2026-11-30",
    "passing": 130,
    "by_folder": {"tests/extension": 99, "docs": 29, "tests/chaos": 2},
}
