"""verify_integrity's one-pass shortcuts (parents below their children, children leading to heads) decide exactly as the full walks do."""

from __future__ import annotations

import psycopg
import pytest

from tests.extension.helpers import commit, create_branch, scalar
from tests.extension.test_integrity import as_superuser_behind_pggits_back, assert_all_ok, report

CYCLES, REACHABLE, LINEAR, SEQUENCE = "no_commit_cycles", "commits_reachable", "linear_branch_history", "sequence_ahead_of_ids"


@pytest.fixture
def line(conn: psycopg.Connection) -> list[str]:
    """Six commits on main, oldest first."""
    ids = [commit(conn, "main", f"step {i}") for i in range(6)]
    assert_all_ok(conn)
    return ids


def _move_to_the_end(conn: psycopg.Connection, trinity_id: str) -> None:
    """Give a commit the highest id (as a dump restored row by row might): the same history, ids out of order."""
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET id = (SELECT max(id) + 1000 FROM pggit.commits) WHERE hash = '{trinity_id}'")


def test_a_cycle_in_the_middle_of_a_chain_names_its_commits_and_those_leading_into_it(conn, line):
    # step 2's parent becomes step 4: steps 2, 3, 4 loop, step 5 leads into the loop; steps 0, 1 stay grounded.
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = '{line[4]}' WHERE hash = '{line[2]}'")
    result = report(conn)[CYCLES]
    assert result["ok"] is False
    for looping in line[2:]:
        assert looping in result["detail"]
    for grounded in line[:2]:
        assert grounded not in result["detail"]


def test_a_commit_that_is_its_own_parent_is_a_cycle(conn, line):
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = hash WHERE hash = '{line[0]}'")
    result = report(conn)[CYCLES]
    assert result["ok"] is False and line[0] in result["detail"]


def test_a_parent_with_a_higher_id_is_no_cycle_and_leaves_every_commit_reachable(conn, line):
    _move_to_the_end(conn, line[1])
    checks = report(conn)
    assert checks[CYCLES]["ok"] is True, checks[CYCLES]["detail"]
    assert checks[REACHABLE]["ok"] is True, checks[REACHABLE]["detail"]


def test_a_parent_id_shared_by_two_rows_with_one_of_them_later_is_no_cycle(conn, line):
    as_superuser_behind_pggits_back(
        conn,
        "ALTER TABLE pggit.commits DROP CONSTRAINT commits_hash_key",
        "INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message, author, committed_at) "
        f"SELECT hash, branch_id, parent_commit_hash, 'copy', author, committed_at FROM pggit.commits WHERE hash = '{line[2]}'",
    )
    assert report(conn)[CYCLES]["ok"] is True


def test_a_commit_left_behind_by_a_head_moved_back_is_unreachable(conn, line):
    as_superuser_behind_pggits_back(conn, f"UPDATE pggit.branches SET head_commit_hash = '{line[3]}' WHERE name = 'main'")
    result = report(conn)[REACHABLE]
    assert result["ok"] is False
    assert line[4] in result["detail"] and line[5] in result["detail"]
    assert line[3] not in result["detail"]


def test_an_unreachable_loop_of_commits_is_reported(conn, line):
    create_branch(conn, "side")
    side = [commit(conn, "side", f"side {i}") for i in range(3)]
    # The side branch's oldest commit descends from its newest, and no head leads into the loop any more.
    as_superuser_behind_pggits_back(
        conn,
        f"UPDATE pggit.commits SET parent_commit_hash = '{side[2]}' WHERE hash = '{side[0]}'",
        f"UPDATE pggit.branches SET head_commit_hash = '{line[5]}' WHERE name = 'side'",
    )
    result = report(conn)[REACHABLE]
    assert result["ok"] is False and all(s in result["detail"] for s in side)


def test_a_fork_names_both_children_quoted_in_commit_order(conn, line):
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = '{line[1]}' WHERE hash = '{line[3]}'")
    result = report(conn)[LINEAR]
    assert result["ok"] is False
    assert f'2 commits ("{line[2]}", "{line[3]}") share parent "{line[1]}"' in result["detail"]


# Strings around the generated format: the check's shortcut must take exactly those the format's regex takes.
FORMAT_CASES = [
    "TRN-20250101120000-000000000042-9f3a61c0",  # generated
    "TRN-2025010112000-0000000000042-9f3a61c0",  # 13 + 13 digits: same length, wrong split
    "TRN-20250101120000-00000000042-9f3a61c0a",  # 11 digits, 9 hex
    "TRN-20250101120000-000000000042-9F3A61C0",  # upper-case hex
    "TRN-20250101120000-000000000042-9f3a61c",  # one hex short
    "TRN-20250101120000-000000000042-9f3a61c0\n",  # a trailing newline
    "TRN-2025010112000a-000000000042-9f3a61c0",
    "TRN-20250101120000-00000000004--9f3a61c0",
    "TRN--20250101120000000000000042-9f3a61c0",
    "custom-trinity-id-0001",
]


def test_the_sequence_checks_shortcut_takes_exactly_the_generated_format(conn):
    for value in FORMAT_CASES:
        regex, shortcut = conn.execute(
            "SELECT %(v)s ~ '^TRN-[0-9]{14}-[0-9]{12}-[0-9a-f]{8}$',"
            " length(%(v)s) = 40 AND substr(%(v)s, 19, 1) = '-' AND substr(%(v)s, 32, 1) = '-'"
            " AND %(v)s ~ '^TRN-[0-9]+-[0-9]+-[0-9a-f]+$'", {"v": value}).fetchone()
        assert regex == shortcut, value
    # And the check itself still finds an issued-looking ID the sequence has not reached.
    as_superuser_behind_pggits_back(conn, "SELECT setval('pggit.trinity_id_seq', 5)")
    trinity_id = "TRN-20250101120000-000000000042-9f3a61c0"
    as_superuser_behind_pggits_back(
        conn, "INSERT INTO pggit.commits (hash, branch_id, message) "
              f"VALUES ('{trinity_id}', (SELECT id FROM pggit.branches WHERE name = 'main'), 'planted')")
    result = report(conn)[SEQUENCE]
    assert result["ok"] is False and trinity_id in result["detail"], result["detail"]
    assert scalar(conn, "SELECT count(*) FROM pggit.commits") == 1



def test_a_healthy_history_is_reachable_though_the_head_column_was_retyped(conn, line):
    """branches.head_commit_hash retyped to varchar(64) behind pggit's back (as a hand-edited schema might have it):
    on a healthy history, where every commit without a later child is a head, commits_reachable answers ok from
    that one pass and every other check passes too. Positive control: with main's head moved back, commits_reachable
    is no longer ok."""
    as_superuser_behind_pggits_back(conn, "ALTER TABLE pggit.branches ALTER COLUMN head_commit_hash TYPE varchar(64)")
    checks = report(conn)
    assert checks[REACHABLE]["ok"] is True, checks[REACHABLE]
    assert checks[REACHABLE]["detail"] == "every commit is reachable from a branch head", checks[REACHABLE]
    assert all(r["ok"] for r in checks.values()), {k: r["detail"] for k, r in checks.items() if not r["ok"]}
    as_superuser_behind_pggits_back(conn, f"UPDATE pggit.branches SET head_commit_hash = '{line[3]}' WHERE name = 'main'")
    assert report(conn)[REACHABLE]["ok"] is False

