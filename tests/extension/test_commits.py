"""commit_changes: one commit on the branch head, atomically, message stored exactly."""

from __future__ import annotations

import concurrent.futures

import psycopg
import pytest

from tests.extension.helpers import (
    INVALID_PARAMETER_VALUE,
    UNIQUE_VIOLATION,
    assert_nothing_written,
    branch,
    commit,
    commit_row,
    create_branch,
    expect_error,
    head,
    rows,
    run_while_blocked,
    scalar,
    snapshot,
)

# The SQLSTATEs the contract leaves to the extension (docs/reference/pggit.md).
DELETED_BRANCH = "55000"  # object_not_in_prerequisite_state
REUSED_ID = UNIQUE_VIOLATION

MESSAGES = {
    "empty": "",
    "plain": "add the users table",
    "unicode": "Ünïcödé ✓ 日本語 🎉 Ελληνικά",
    "single_quotes": "it's 'quoted'",
    "double_quotes": 'say "hello"',
    "backslashes": "C:\\path\\to\\file \\n is not a newline \\\\",
    "newlines": "subject\n\nbody line 1\r\nbody line 2\n",
    "tabs_and_spaces": "\t  indented  \t",
    "sql_looking": "'); DROP TABLE pggit.commits; --",
    "percent_and_format": "%s %I %L %% {0} $1",
    "exactly_10000_chars": "m" * 10_000,
    "10000_multibyte_chars": "é" * 9_999 + "🎉",
}


def test_commit_returns_the_trinity_id_of_a_stored_commit(conn):
    trinity_id = commit(conn, "main", "first")
    row = commit_row(conn, trinity_id)
    assert row["branch_id"] == branch(conn, "main")["id"]
    assert row["message"] == "first"
    assert row["author"]
    assert row["committed_at"] is not None


def test_first_commit_on_a_branch_without_head_has_no_parent(conn):
    assert head(conn, "main") is None
    trinity_id = commit(conn, "main", "first")
    assert commit_row(conn, trinity_id)["parent_commit_hash"] is None
    assert head(conn, "main") == trinity_id


def test_commit_parent_is_the_previous_head_and_the_head_moves(conn):
    first = commit(conn, "main", "first")
    second = commit(conn, "main", "second")
    third = commit(conn, "main", "third")
    assert commit_row(conn, second)["parent_commit_hash"] == first
    assert commit_row(conn, third)["parent_commit_hash"] == second
    assert head(conn, "main") == third


def test_commit_moves_only_its_own_branch_head(conn):
    main_head = commit(conn, "main", "on main")
    create_branch(conn, "feature")
    feature_head = commit(conn, "feature", "on feature")
    assert commit_row(conn, feature_head)["parent_commit_hash"] == main_head
    assert head(conn, "main") == main_head
    assert head(conn, "feature") == feature_head


def test_commit_to_a_missing_branch_creates_it_from_main(conn):
    main_head = commit(conn, "main", "on main")
    trinity_id = commit(conn, "brand-new", "first on the new branch")
    new = branch(conn, "brand-new")
    assert new["status"] == "ACTIVE"
    assert new["parent_branch_id"] == branch(conn, "main")["id"]
    assert new["head_commit_hash"] == trinity_id
    assert commit_row(conn, trinity_id)["parent_commit_hash"] == main_head
    assert commit_row(conn, trinity_id)["branch_id"] == new["id"]
    assert head(conn, "main") == main_head


def test_commit_to_a_missing_branch_with_an_invalid_name_is_refused(conn):
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.commit_changes('bad..name', 'x')", sqlstate=INVALID_PARAMETER_VALUE, names=["bad..name"]
    )
    assert_nothing_written(conn, before)


def test_default_message_is_empty(conn):
    trinity_id = scalar(conn, "SELECT pggit.commit_changes('main')")
    assert commit_row(conn, trinity_id)["message"] == ""


def test_null_message_is_stored_as_empty(conn):
    trinity_id = scalar(conn, "SELECT pggit.commit_changes('main', NULL)")
    assert commit_row(conn, trinity_id)["message"] == ""


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_message_is_stored_exactly_as_given(conn, message):
    trinity_id = commit(conn, "main", message)
    assert scalar(conn, "SELECT message FROM pggit.commits WHERE hash = %s", (trinity_id,)) == message


@pytest.mark.parametrize("custom", ["0123456789", "release-2024.01.01", "X" * 200])
def test_custom_trinity_id_is_used_as_given(conn, custom):
    previous = commit(conn, "main", "before")
    returned = scalar(conn, "SELECT pggit.commit_changes('main', 'custom', %s)", (custom,))
    assert returned == custom
    assert commit_row(conn, custom)["parent_commit_hash"] == previous
    assert head(conn, "main") == custom


def test_commit_after_a_custom_id_chains_onto_it(conn):
    conn.execute("SELECT pggit.commit_changes('main', 'custom', 'custom-id-0001')")
    after = commit(conn, "main", "after")
    assert commit_row(conn, after)["parent_commit_hash"] == "custom-id-0001"


# --------------------------------------------------------------------------
# Errors: clear, and nothing written
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "   ", "\t\n"], ids=["null", "empty", "blank", "whitespace"])
def test_commit_refuses_a_null_or_blank_branch_name(conn, name):
    commit(conn, "main", "existing")
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.commit_changes(%s, 'msg')", (name,), sqlstate=INVALID_PARAMETER_VALUE
    )
    assert_nothing_written(conn, before)


@pytest.mark.parametrize("message", ["m" * 10_001, "é" * 10_001], ids=["ascii", "multibyte"])
def test_commit_refuses_a_message_over_10000_characters(conn, message):
    before = snapshot(conn)
    error = expect_error(
        conn, "SELECT pggit.commit_changes('main', %s)", (message,), sqlstate=INVALID_PARAMETER_VALUE
    )
    text = error.diag.message_primary
    assert "10000" in text or "10,000" in text or "10001" in text, text
    assert_nothing_written(conn, before)


@pytest.mark.parametrize(
    "custom",
    ["", "short", "123456789", "x" * 256, " " * 12, "custom\nid-0001", "TRN-20250101000000-999999999990-abcdef01"],
    ids=["empty", "5_chars", "9_chars", "256_chars", "blank", "control_char", "generated_format_not_yet_issued"],
)
def test_commit_refuses_an_invalid_custom_id(conn, custom):
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.commit_changes('main', 'msg', %s)", (custom,),
        sqlstate=INVALID_PARAMETER_VALUE, names=[custom] if custom.strip() else [],
    )
    assert_nothing_written(conn, before)


@pytest.mark.parametrize("where", ["same_branch", "other_branch"])
def test_commit_refuses_a_custom_id_already_used(conn, where):
    used = commit(conn, "main", "first")
    target = "main"
    if where == "other_branch":
        create_branch(conn, "feature")
        target = "feature"
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.commit_changes(%s, 'again', %s)", (target, used), sqlstate=REUSED_ID, names=[used]
    )
    assert_nothing_written(conn, before)


def test_commit_refuses_a_custom_id_already_used_on_a_missing_branch_and_makes_no_branch(conn):
    used = commit(conn, "main", "first")
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.commit_changes('not-yet', 'again', %s)", (used,), sqlstate=REUSED_ID, names=[used]
    )
    assert_nothing_written(conn, before)


def test_commit_to_a_deleted_branch_is_refused(conn):
    create_branch(conn, "feature")
    commit(conn, "feature", "before delete")
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.commit_changes('feature', 'after delete')", sqlstate=DELETED_BRANCH, names=["feature"]
    )
    assert_nothing_written(conn, before)


# --------------------------------------------------------------------------
# Concurrency: one linear chain
# --------------------------------------------------------------------------


def test_a_second_committer_waits_and_chains_onto_the_first(conn, connect):
    base = commit(conn, "main", "base")
    first_session = connect(autocommit=False)
    second_session = connect()
    first = scalar(first_session, "SELECT pggit.commit_changes('main', 'first')")
    second, error = run_while_blocked(
        first_session, second_session, conn,
        lambda c: c.execute("SELECT pggit.commit_changes('main', 'second')").fetchone()[0],
    )
    assert error is None
    assert commit_row(conn, first)["parent_commit_hash"] == base
    assert commit_row(conn, second)["parent_commit_hash"] == first
    assert head(conn, "main") == second


def test_two_sessions_committing_to_one_missing_branch_share_it_and_chain(conn, connect):
    main_head = commit(conn, "main", "base")
    first_session = connect(autocommit=False)
    second_session = connect()
    first = scalar(first_session, "SELECT pggit.commit_changes('brand-new', 'first')")
    second, error = run_while_blocked(
        first_session, second_session, conn,
        lambda c: c.execute("SELECT pggit.commit_changes('brand-new', 'second')").fetchone()[0],
    )
    assert error is None, error
    assert scalar(conn, "SELECT count(*) FROM pggit.branches WHERE name = 'brand-new'") == 1
    assert commit_row(conn, first)["parent_commit_hash"] == main_head
    assert commit_row(conn, second)["parent_commit_hash"] == first
    assert head(conn, "brand-new") == second


def test_a_commit_waiting_for_a_concurrent_delete_is_refused(conn, connect):
    create_branch(conn, "feature")
    kept = commit(conn, "feature", "before delete")
    deleter = connect(autocommit=False)
    committer = connect()
    deleter.execute("SELECT pggit.delete_branch_simple('feature')")
    before = snapshot(conn)
    result, error = run_while_blocked(
        deleter, committer, conn,
        lambda c: c.execute("SELECT pggit.commit_changes('feature', 'too late')").fetchone()[0],
    )
    assert result is None
    assert error is not None and error.sqlstate == DELETED_BRANCH, error
    assert "feature" in error.diag.message_primary
    assert head(conn, "feature") == kept
    assert snapshot(conn)["commits"] == before["commits"]


def test_a_rolled_back_commit_leaves_head_and_chain_as_they_were(conn, connect):
    base = commit(conn, "main", "base")
    session = connect(autocommit=False)
    session.execute("SELECT pggit.commit_changes('main', 'undone')")
    session.rollback()
    assert head(conn, "main") == base
    after = commit(conn, "main", "after")
    assert commit_row(conn, after)["parent_commit_hash"] == base


def test_concurrent_committers_leave_one_linear_chain(conn, db_connection_string):
    base = commit(conn, "main", "base")
    workers, per_worker = 6, 10

    def work(n: int) -> list[str]:
        with psycopg.connect(db_connection_string, autocommit=True) as c:
            return [c.execute("SELECT pggit.commit_changes('main', %s)", (f"w{n}-{i}",)).fetchone()[0]
                    for i in range(per_worker)]

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        made = [tid for ids in pool.map(work, range(workers)) for tid in ids]

    assert len(set(made)) == workers * per_worker
    chain = rows(conn, "SELECT hash, parent_commit_hash FROM pggit.commits WHERE hash = ANY(%s)", (made,))
    parents = [r["parent_commit_hash"] for r in chain]
    assert len(set(parents)) == len(parents), "two commits share a parent: the chain forked"
    # Walk back from the head: every commit is on the one chain that ends at base.
    parent_of = {r["hash"]: r["parent_commit_hash"] for r in chain}
    walked, cursor = [], head(conn, "main")
    while cursor != base and len(walked) <= len(made):
        walked.append(cursor)
        cursor = parent_of[cursor]
    assert sorted(walked) == sorted(made)
