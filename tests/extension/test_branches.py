"""create_branch and delete_branch_simple."""

from __future__ import annotations

import pytest

from tests.extension.helpers import (
    INVALID_PARAMETER_VALUE,
    UNIQUE_VIOLATION,
    assert_nothing_written,
    branch,
    commit,
    create_branch,
    expect_error,
    head,
    run_while_blocked,
    scalar,
    snapshot,
)

# The SQLSTATEs the contract leaves to the extension (docs/reference/pggit.md).
UNKNOWN_PARENT = "42704"  # undefined_object
PROTECTED_BRANCH = INVALID_PARAMETER_VALUE
PARENT_DELETED = "55000"  # object_not_in_prerequisite_state

INVALID_NAMES = {
    "null": None,
    "empty": "",
    "blank": "   ",
    "over_255_chars": "b" * 256,
    "space": "has space",
    "tab": "tab\there",
    "newline": "line\nbreak",
    "control_char": "bell\x07ring",
    "delete_char": "del\x7fchar",
    "double_dot": "a..b",
    "leading_double_dot": "..hidden",
    "tilde": "a~b",
    "caret": "a^b",
    "colon": "a:b",
    "question_mark": "a?b",
    "asterisk": "a*b",
    "open_bracket": "a[b",
    "backslash": "a\\b",
}


# --------------------------------------------------------------------------
# create_branch
# --------------------------------------------------------------------------


def test_create_branch_returns_the_new_branch_id(conn):
    branch_id = create_branch(conn, "feature")
    row = branch(conn, "feature")
    assert isinstance(branch_id, int)
    assert row["id"] == branch_id
    assert row["status"] == "ACTIVE"
    assert row["parent_branch_id"] == branch(conn, "main")["id"]
    assert row["created_at"] is not None
    assert row["created_by"]


def test_new_branch_head_is_the_parent_head(conn):
    commit(conn, "main", "one")
    main_head = commit(conn, "main", "two")
    create_branch(conn, "feature")
    assert main_head is not None and head(conn, "feature") == main_head


def test_new_branch_of_a_branch_without_commits_has_no_head(conn):
    create_branch(conn, "feature")
    assert branch(conn, "feature")["status"] == "ACTIVE" and head(conn, "feature") is None
    # Positive control: its first commit becomes its head.
    first = commit(conn, "feature", "first")
    assert first is not None and head(conn, "feature") == first


def test_new_branch_of_another_parent_takes_that_parents_head(conn):
    commit(conn, "main", "on main")
    create_branch(conn, "feature")
    feature_head = commit(conn, "feature", "on feature")
    child_id = create_branch(conn, "feature-child", "feature")
    row = branch(conn, "feature-child")
    assert row["id"] == child_id
    assert row["head_commit_hash"] == feature_head
    assert row["parent_branch_id"] == branch(conn, "feature")["id"]


def test_creating_a_branch_writes_no_commit(conn):
    commit(conn, "main", "one")
    before = scalar(conn, "SELECT count(*) FROM pggit.commits")
    create_branch(conn, "feature")
    assert scalar(conn, "SELECT count(*) FROM pggit.commits") == before
    # Positive controls: the commit did write its row, and the branch was made.
    assert before == 1 and branch(conn, "feature")["status"] == "ACTIVE"


@pytest.mark.parametrize(
    "name",
    ["feature/x-1", "release-1.2", "b" * 255, "é" * 255, "ünïcödé", "UPPER_lower", "x@y", "#hash"],
    ids=["slash", "single_dot", "255_chars", "255_multibyte_chars", "unicode", "mixed_case", "at", "hash"],
)
def test_create_branch_accepts_names_git_accepts(conn, name):
    create_branch(conn, name)
    assert branch(conn, name)["name"] == name


@pytest.mark.parametrize("name", INVALID_NAMES.values(), ids=INVALID_NAMES.keys())
def test_create_branch_refuses_an_invalid_name(conn, name):
    before = snapshot(conn)
    named = [] if name is None or not name.strip() else [name]
    expect_error(
        conn, "SELECT pggit.create_branch(%s)", (name,), sqlstate=INVALID_PARAMETER_VALUE, names=named
    )
    assert_nothing_written(conn, before)


def test_create_branch_refuses_an_existing_name(conn):
    create_branch(conn, "feature")
    before = snapshot(conn)
    expect_error(conn, "SELECT pggit.create_branch('feature')", sqlstate=UNIQUE_VIOLATION, names=["feature"])
    assert_nothing_written(conn, before)


def test_create_branch_refuses_main_again(conn):
    before = snapshot(conn)
    expect_error(conn, "SELECT pggit.create_branch('main')", sqlstate=UNIQUE_VIOLATION, names=["main"])
    assert_nothing_written(conn, before)


def test_create_branch_refuses_an_unknown_parent(conn):
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.create_branch('feature', 'no-such-parent')",
        sqlstate=UNKNOWN_PARENT, names=["no-such-parent"],
    )
    assert_nothing_written(conn, before)


def test_create_branch_refuses_a_null_parent(conn):
    before = snapshot(conn)
    expect_error(conn, "SELECT pggit.create_branch('feature', NULL)", sqlstate=INVALID_PARAMETER_VALUE)
    assert_nothing_written(conn, before)


def test_create_branch_refuses_a_deleted_parent(conn):
    create_branch(conn, "gone")
    conn.execute("SELECT pggit.delete_branch_simple('gone')")
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.create_branch('child', 'gone')", sqlstate=PARENT_DELETED, names=["gone"]
    )
    assert_nothing_written(conn, before)


def test_create_branch_never_reuses_the_name_of_a_deleted_branch(conn):
    create_branch(conn, "feature")
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    before = snapshot(conn)
    expect_error(conn, "SELECT pggit.create_branch('feature')", sqlstate=UNIQUE_VIOLATION, names=["feature"])
    assert_nothing_written(conn, before)


def test_two_sessions_creating_one_name_one_wins_the_other_gets_the_clear_error(conn, connect):
    session_a = connect(autocommit=False)
    session_b = connect()
    session_a.execute("SELECT pggit.create_branch('contested')")
    # B must wait for A's open transaction, then see the branch A made.
    result, error = run_while_blocked(
        session_a, session_b, conn, lambda c: c.execute("SELECT pggit.create_branch('contested')").fetchone()[0]
    )
    assert result is None
    assert error is not None and error.sqlstate == UNIQUE_VIOLATION, error
    assert "contested" in error.diag.message_primary
    assert scalar(conn, "SELECT count(*) FROM pggit.branches WHERE name = 'contested'") == 1


def test_two_sessions_creating_one_name_the_second_wins_when_the_first_rolls_back(conn, connect):
    session_a = connect(autocommit=False)
    session_b = connect()
    session_a.execute("SELECT pggit.create_branch('contested')")
    result, error = run_while_blocked(
        session_a, session_b, conn,
        lambda c: c.execute("SELECT pggit.create_branch('contested')").fetchone()[0],
        end="rollback",
    )
    assert error is None
    assert branch(conn, "contested")["id"] == result


# --------------------------------------------------------------------------
# delete_branch_simple
# --------------------------------------------------------------------------


def test_delete_branch_marks_it_deleted_and_keeps_its_commits(conn):
    create_branch(conn, "feature")
    first = commit(conn, "feature", "one")
    second = commit(conn, "feature", "two")
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    row = branch(conn, "feature")
    assert row["status"] == "DELETED"
    kept = {r[0] for r in conn.execute("SELECT hash FROM pggit.commits WHERE branch_id = %s", (row["id"],))}
    assert kept == {first, second}


def test_delete_branch_leaves_other_branches_alone(conn):
    create_branch(conn, "feature")
    create_branch(conn, "other")
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    assert branch(conn, "other")["status"] == "ACTIVE"
    assert branch(conn, "main")["status"] == "ACTIVE"


def test_delete_branch_returns_void(conn):
    create_branch(conn, "feature")
    assert scalar(conn, "SELECT pggit.delete_branch_simple('feature')::text") == ""
    assert branch(conn, "feature")["status"] == "DELETED"


def test_delete_unknown_branch_is_a_no_op(conn):
    before = snapshot(conn)
    conn.execute("SELECT pggit.delete_branch_simple('no-such-branch')")
    assert_nothing_written(conn, before)
    # Positive control: the same call on a branch that exists deletes it.
    create_branch(conn, "no-such-branch")
    conn.execute("SELECT pggit.delete_branch_simple('no-such-branch')")
    assert branch(conn, "no-such-branch")["status"] == "DELETED"


def test_delete_null_branch_is_a_no_op(conn):
    before = snapshot(conn)
    conn.execute("SELECT pggit.delete_branch_simple(NULL)")
    assert_nothing_written(conn, before)
    # Positive control: the same call with a branch's name deletes it.
    create_branch(conn, "feature")
    conn.execute("SELECT pggit.delete_branch_simple(%s)", ("feature",))
    assert branch(conn, "feature")["status"] == "DELETED"


def test_delete_already_deleted_branch_is_a_no_op(conn):
    create_branch(conn, "feature")
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    # Positive control: the first call deleted it.
    assert branch(conn, "feature")["status"] == "DELETED"
    before = snapshot(conn)
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    assert_nothing_written(conn, before)


def test_deleting_an_already_deleted_branch_writes_and_locks_nothing(conn, connect):
    """Deleting an already deleted branch is a no-op: it does not even write the row again, so a session that
    repeats it in an open transaction holds no lock another deleter of that branch must wait for. Positive
    control: a session that deletes an active branch in an open transaction does make the other one wait
    (here until its lock_timeout)."""
    create_branch(conn, "feature")
    create_branch(conn, "other")
    conn.execute("SELECT pggit.delete_branch_simple('feature')")
    assert branch(conn, "feature")["status"] == "DELETED"
    holder = connect(autocommit=False)
    waiter = connect()
    waiter.execute("SET lock_timeout = '500ms'")
    holder.execute("SELECT pggit.delete_branch_simple('feature')")
    waiter.execute("SELECT pggit.delete_branch_simple('feature')")
    holder.execute("SELECT pggit.delete_branch_simple('other')")
    expect_error(waiter, "SELECT pggit.delete_branch_simple('other')", sqlstate="55P03")
    holder.commit()
    assert branch(conn, "feature")["status"] == "DELETED"
    assert branch(conn, "other")["status"] == "DELETED"


@pytest.mark.parametrize("name", ["main", "master"])
def test_delete_branch_refuses_main_and_master(conn, name):
    if name == "master":
        create_branch(conn, "master")
    commit(conn, name, "keep me")
    before = snapshot(conn)
    expect_error(
        conn, "SELECT pggit.delete_branch_simple(%s)", (name,), sqlstate=PROTECTED_BRANCH, names=[name]
    )
    assert_nothing_written(conn, before)
    assert branch(conn, name)["status"] == "ACTIVE"
