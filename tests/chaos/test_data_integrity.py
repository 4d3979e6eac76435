"""Corruption chaos: pggit's metadata damaged by hand, and the integrity report.

A superuser (or a bad restore, or a buggy script) can write pggit's tables
directly. ``verify_integrity()`` must then report each kind of damage on the
check made for it, ``ok = false`` with a detail naming the offending row,
and must never raise, whatever the damage and however much of it there is.

Every damage is made inside a transaction that is rolled back; the one
non-transactional damage (``setval`` on the Trinity sequence) is undone by
hand. The property test builds its starting point in a database of each
example's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos import checkers
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.corruption, pytest.mark.integrity]

CHECKS = {
    "branch_heads_exist", "branch_parents_exist", "commit_branches_exist", "commit_parents_exist",
    "commit_parents_precede_children", "linear_branch_history", "no_commit_cycles", "no_branch_cycles",
    "unique_commit_ids", "unique_branch_names", "sequence_ahead_of_ids", "versions_match_history",
    "versions_increase", "history_objects_exist", "branch_rows_valid", "branch_heads_on_branch",
    "branch_chains_end_at_heads", "commit_parents_on_branch_line", "commits_reachable",
}


@dataclass
class Repo:
    """The healthy starting point: commits on main and on two feature branches, a tracked table."""

    main: list[str]
    feature: list[str]
    branch_id: dict[str, int]
    sequence: tuple[int, bool]


@dataclass(frozen=True)
class Damage:
    check: str  # the check made for this damage
    also: frozenset[str]  # checks this damage may trip as well (a cycle's parent also comes after its child)
    apply: Callable[[psycopg.Connection, Repo], str]  # damages the repo; returns text the detail must contain


def _head_missing(conn, repo):
    conn.execute("UPDATE pggit.branches SET head_commit_hash = 'TRN-GHOST-HEAD-0001' WHERE name = 'feature/x'")
    return f'branch "feature/x" (id {repo.branch_id["feature/x"]}): head "TRN-GHOST-HEAD-0001" not found'


def _parent_missing(conn, repo):
    conn.execute("UPDATE pggit.commits SET parent_commit_hash = 'TRN-GHOST-PARENT-01' WHERE hash = %s",
                 (repo.feature[1],))
    return f'commit "{repo.feature[1]}"'


def _commit_cycle(conn, repo):
    # The root of main now descends from main's newest commit.
    conn.execute("UPDATE pggit.commits SET parent_commit_hash = %s WHERE hash = %s", (repo.main[-1], repo.main[0]))
    return f'commit "{repo.main[0]}"'


def _duplicate_commit_id(conn, repo):
    conn.execute("ALTER TABLE pggit.commits DROP CONSTRAINT commits_hash_key")
    conn.execute("INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message, author, committed_at) "
                 "SELECT hash, branch_id, parent_commit_hash, 'copy', author, committed_at FROM pggit.commits "
                 "WHERE hash = %s", (repo.main[1],))
    return f'Trinity ID "{repo.main[1]}" is used by 2 commits'


def _sequence_behind(conn, repo):
    conn.execute("SELECT setval('pggit.trinity_id_seq', 1, false)")
    return f'commit "{repo.main[0]}"'


def _version_off_history(conn, repo):
    conn.execute("UPDATE pggit.objects SET version_minor = version_minor + 7 WHERE object_name = 'ledger'")
    return "object public.ledger"


def _branch_cycle(conn, repo):
    conn.execute("UPDATE pggit.branches SET parent_branch_id = %s WHERE name = 'feature/x'",
                 (repo.branch_id["feature/y"],))
    return 'branch "feature/x"'


def _branch_parent_missing(conn, repo):
    conn.execute("UPDATE pggit.branches SET parent_branch_id = 9999 WHERE name = 'feature/z'")
    return 'branch "feature/z"'


def _commit_branch_missing(conn, repo):
    conn.execute("UPDATE pggit.commits SET branch_id = 9999 WHERE hash = %s", (repo.feature[2],))
    return f'commit "{repo.feature[2]}"'


def _fork(conn, repo):
    conn.execute("INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message) "
                 "VALUES ('TRN-FORGED-FORK-001', %s, %s, 'forged')", (repo.branch_id["main"], repo.main[1]))
    return "TRN-FORGED-FORK-001"


def _child_before_parent(conn, repo):
    conn.execute("UPDATE pggit.commits SET committed_at = '2000-01-01' WHERE hash = %s", (repo.main[2],))
    return f'commit "{repo.main[2]}"'


def _duplicate_branch_name(conn, repo):
    conn.execute("ALTER TABLE pggit.branches DROP CONSTRAINT branches_name_key")
    conn.execute("INSERT INTO pggit.branches (name, parent_branch_id) VALUES ('feature/y', %s)",
                 (repo.branch_id["main"],))
    return 'branch name "feature/y" is used by 2 branches'


DAMAGE = {
    "head missing": Damage("branch_heads_exist", frozenset(), _head_missing),
    # The commits below the lost link are reached by no head any more.
    "parent missing": Damage("commit_parents_exist", frozenset({"commits_reachable"}), _parent_missing),
    # main's head gets a child: it no longer ends main's chain.
    "commit cycle": Damage("no_commit_cycles", frozenset({"commit_parents_precede_children",
                                                          "branch_chains_end_at_heads"}), _commit_cycle),
    "duplicate commit id": Damage("unique_commit_ids", frozenset({"linear_branch_history"}), _duplicate_commit_id),
    "sequence behind issued ids": Damage("sequence_ahead_of_ids", frozenset(), _sequence_behind),
    "version off its history": Damage("versions_match_history", frozenset(), _version_off_history),
    # The cycle cuts feature/x off main, where its first commit's parent is.
    "branch parent cycle": Damage("no_branch_cycles", frozenset({"commit_parents_on_branch_line"}), _branch_cycle),
    "branch parent missing": Damage("branch_parents_exist", frozenset(), _branch_parent_missing),
    "commit of a missing branch": Damage("commit_branches_exist", frozenset(), _commit_branch_missing),
    # The forged second child is reached by no head.
    "fork": Damage("linear_branch_history", frozenset({"commits_reachable"}), _fork),
    "child committed before parent": Damage("commit_parents_precede_children", frozenset(), _child_before_parent),
    "duplicate branch name": Damage("unique_branch_names", frozenset(), _duplicate_branch_name),
}


@pytest.fixture
def repo(sync_conn: psycopg.Connection) -> Repo:
    return _build_repo(sync_conn)


def _build_repo(conn: psycopg.Connection) -> Repo:
    """Make the healthy starting point on ``conn``; leaves it with autocommit off."""
    conn.autocommit = True

    def commit(branch: str, message: str) -> str:
        return conn.execute("SELECT pggit.commit_changes(%s, %s)", (branch, message)).fetchone()[0]

    main = [commit("main", f"main {i}") for i in range(4)]
    conn.execute("SELECT pggit.create_branch('feature/x')")
    feature = [commit("feature/x", f"feature {i}") for i in range(3)]
    conn.execute("SELECT pggit.create_branch('feature/y', 'feature/x')")
    conn.execute("SELECT pggit.create_branch('feature/z')")
    conn.execute("CREATE TABLE ledger (id int PRIMARY KEY)")
    conn.execute("ALTER TABLE ledger ADD COLUMN amount numeric")
    branch_id = dict(conn.execute("SELECT name, id FROM pggit.branches").fetchall())
    sequence = conn.execute("SELECT last_value, is_called FROM pggit.trinity_id_seq").fetchone()
    checkers.integrity_ok(conn)
    conn.autocommit = False
    return Repo(main, feature, branch_id, sequence)


def _report(conn: psycopg.Connection) -> dict[str, tuple[bool, str]]:
    rows = conn.execute("SELECT check_name, ok, detail FROM pggit.verify_integrity()").fetchall()
    assert len(rows) == len(CHECKS) and {r[0] for r in rows} == CHECKS, rows
    return {name: (ok, detail) for name, ok, detail in rows}


def _damaged(conn: psycopg.Connection, repo: Repo, kinds: list[str]) -> dict[str, tuple[bool, str]]:
    """Apply the damage in one transaction, read the report, roll everything back."""
    try:
        with conn.transaction(force_rollback=True):
            details = {kind: DAMAGE[kind].apply(conn, repo) for kind in kinds}
            report = _report(conn)
    finally:
        conn.rollback()
        conn.execute("SELECT setval('pggit.trinity_id_seq', %s, %s)", repo.sequence)  # not transactional
        conn.commit()
    for kind in kinds:
        ok, detail = report[DAMAGE[kind].check]
        assert ok is False, f"{kind}: {DAMAGE[kind].check} still reports ok ({detail})"
        assert details[kind] in detail, f"{kind}: detail does not name the row: {detail!r}"
    allowed = {DAMAGE[k].check for k in kinds} | set().union(*(DAMAGE[k].also for k in kinds))
    tripped = {name for name, (ok, _) in report.items() if not ok}
    assert tripped <= allowed, f"{sorted(kinds)} also tripped {sorted(tripped - allowed)}: {report}"
    return report


@pytest.mark.distinct_cases  # each kind of damage is another check's to find: the smoke tier runs them all
@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_each_kind_of_damage_is_reported_on_its_check_naming_the_row(sync_conn, repo, kind):
    """Each kind of hand-made damage makes verify_integrity report ok = false on the check made for it, with a detail naming the damaged row, and trips no unrelated check."""
    _damaged(sync_conn, repo, [kind])
    checkers.integrity_ok(sync_conn)  # all rolled back


@given(kinds=st.sets(st.sampled_from(sorted(DAMAGE)), min_size=1))
def test_verify_integrity_reports_every_damage_in_any_combination_and_never_raises(fresh_connection, kinds):
    """For any combination of damage, verify_integrity returns every check without raising, reports each damage on its check naming its row, and trips only checks some damage explains."""
    with fresh_connection() as conn:
        _damaged(conn, _build_repo(conn), sorted(kinds))


@pytest.mark.parametrize("statement", [
    "ALTER TABLE pggit.commits RENAME COLUMN parent_commit_hash TO parent",
    "ALTER TABLE pggit.branches DROP COLUMN head_commit_hash",
    "ALTER TABLE pggit.commits ALTER COLUMN branch_id TYPE text",
    "ALTER TABLE pggit.history RENAME TO history_gone",
    "ALTER SEQUENCE pggit.trinity_id_seq RENAME TO trinity_id_seq_gone",
])
def test_verify_integrity_reports_damaged_tables_instead_of_raising(sync_conn, repo, statement):
    """When pggit's own tables are structurally damaged (a column renamed, dropped or retyped, a table or the sequence missing), verify_integrity still returns every check, failing those that cannot run with the error as detail."""
    try:
        with sync_conn.transaction(force_rollback=True):
            sync_conn.execute(statement)
            report = _report(sync_conn)
    finally:
        sync_conn.rollback()
    failed = {name: detail for name, (ok, detail) in report.items() if not ok}
    assert failed, report
    assert all(detail.startswith("check failed: ") for detail in failed.values()), failed
    checkers.integrity_ok(sync_conn)


@pytest.mark.parametrize("statement", [
    "UPDATE pggit.branches SET head_commit_hash = 'TRN-forged' WHERE name = 'main'",
    "DELETE FROM pggit.commits",
    "INSERT INTO pggit.branches (name) VALUES ('forged')",
    "UPDATE pggit.objects SET version_major = version_major + 1",
    "DELETE FROM pggit.history",
    "TRUNCATE pggit.migrations",
    "SELECT setval('pggit.trinity_id_seq', 1)",
])
def test_a_role_without_grants_cannot_damage_the_metadata_directly(sync_conn, repo, statement):
    """Only a superuser or pggit's owner can damage the metadata by hand: an ordinary role that writes pggit's tables or sequence directly is refused (42501) and nothing changes."""
    role = f"chaos_intruder_{uuid.uuid4().hex[:12]}"
    before = _report(sync_conn)
    try:
        with sync_conn.transaction(force_rollback=True):
            # Created in the transaction, so the rollback removes the role too.
            sync_conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            sync_conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                sync_conn.execute(statement)
    finally:
        sync_conn.rollback()
    assert _report(sync_conn) == before
    checkers.integrity_ok(sync_conn)
