"""verify_integrity: one row per check, all ok on healthy metadata, the
matching check fails with a detail naming the offending row on damaged
metadata, and the function never raises."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from pggit_chaos import nemesis
from tests.extension.helpers import (
    assert_lends_no_rights,
    assert_nothing_written,
    commit,
    commit_row,
    create_branch,
    head,
    rows,
    scalar,
    snapshot,
)

# Check names documented in docs/reference/pggit.md, by the contract clause they cover.
HEADS_EXIST = "branch_heads_exist"
BRANCH_PARENTS_EXIST = "branch_parents_exist"
COMMIT_PARENTS_EXIST = "commit_parents_exist"
PARENTS_PRECEDE = "commit_parents_precede_children"
NO_CYCLES = "no_commit_cycles"
UNIQUE_IDS = "unique_commit_ids"
SEQUENCE_AHEAD = "sequence_ahead_of_ids"
VERSIONS_MATCH = "versions_match_history"
CONTRACT_CHECKS = {HEADS_EXIST, BRANCH_PARENTS_EXIST, COMMIT_PARENTS_EXIST, PARENTS_PRECEDE, NO_CYCLES,
                   UNIQUE_IDS, SEQUENCE_AHEAD, VERSIONS_MATCH}


def report(conn: psycopg.Connection) -> dict[str, dict]:
    found = rows(conn, "SELECT check_name, ok, detail FROM pggit.verify_integrity()")
    names = [r["check_name"] for r in found]
    assert len(names) == len(set(names)), f"a check is reported twice: {names}"
    return {r["check_name"]: r for r in found}


def assert_all_ok(conn: psycopg.Connection) -> None:
    checks = report(conn)
    assert CONTRACT_CHECKS <= set(checks), f"missing checks: {CONTRACT_CHECKS - set(checks)}"
    failing = {name: r["detail"] for name, r in checks.items() if r["ok"] is not True}
    assert not failing, failing


def as_superuser_behind_pggits_back(conn: psycopg.Connection, *statements: str) -> None:
    """Damage metadata directly: replica mode skips any trigger or foreign key that would stop it."""
    with nemesis.tracking_paused(conn, how="replica"):
        for statement in statements:
            conn.execute(statement)


def make_busy(conn: psycopg.Connection) -> None:
    """A database that has seen most of what pggit does."""
    conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers)")
    conn.execute("ALTER TABLE orders ADD COLUMN total numeric")
    conn.execute("ALTER TABLE orders ALTER COLUMN total SET DEFAULT 0")
    conn.execute("CREATE INDEX ON orders (customer)")
    conn.execute("ALTER TABLE customers RENAME COLUMN name TO full_name")
    conn.execute("CREATE TABLE scratch (id int)")
    conn.execute("DROP TABLE scratch")
    conn.execute("CREATE TABLE scratch (id int, again boolean)")
    conn.execute("ALTER TABLE scratch RENAME TO scratch2")
    conn.execute("INSERT INTO customers VALUES (1, 'ada')")
    for i in range(5):
        commit(conn, "main", f"main {i}")
    create_branch(conn, "feature")
    commit(conn, "feature", "feature 1")
    conn.execute("SELECT pggit.commit_changes('feature', 'custom', 'release-2024-01-01')")
    commit(conn, "feature", "after custom")
    commit(conn, "auto-created", "made on the fly")
    create_branch(conn, "doomed", "feature")
    commit(conn, "doomed", "soon deleted")
    conn.execute("SELECT pggit.delete_branch_simple('doomed')")
    conn.execute("SELECT pggit.create_data_branch('customers', 'main', 'feature')")
    conn.execute("SELECT pggit.apply_migration('001', 'CREATE TABLE m1 (id int)', 'DROP TABLE m1', 'one')")
    conn.execute("SELECT pggit.apply_migration('002', 'ALTER TABLE m1 ADD COLUMN b int', 'ALTER TABLE m1 DROP COLUMN b')")
    conn.execute("SELECT pggit.rollback_migration('002')")
    conn.execute("SELECT pggit.generate_trinity_id() FROM generate_series(1, 20)")


@pytest.fixture
def chain(conn: psycopg.Connection) -> dict[str, str]:
    """Three commits on main (c1 <- c2 <- c3) and a branch 'feature' with one commit of its own."""
    ids = {f"c{i}": commit(conn, "main", f"commit {i}") for i in (1, 2, 3)}
    create_branch(conn, "feature")
    ids["f1"] = commit(conn, "feature", "feature commit")
    conn.execute("CREATE TABLE t (id int)")
    assert_all_ok(conn)
    return ids


def test_every_contract_check_is_reported_once_and_ok_on_a_fresh_database(conn):
    assert_all_ok(conn)


def test_every_check_is_ok_on_a_busy_database(conn):
    make_busy(conn)
    assert_all_ok(conn)


def test_verify_integrity_writes_nothing(conn):
    make_busy(conn)
    before = snapshot(conn)
    checks = report(conn)
    assert_nothing_written(conn, before)
    # Positive control: the call ran every check of the contract over a busy database.
    assert CONTRACT_CHECKS <= set(checks) and before["history"] and before["commits"]


# --------------------------------------------------------------------------
# Damage: the matching check fails and names the offending row
# --------------------------------------------------------------------------


def assert_fails(conn: psycopg.Connection, check: str, *any_of: str) -> None:
    result = report(conn)[check]
    assert result["ok"] is False, f"{check} did not notice the damage: {result['detail']}"
    assert any(token in (result["detail"] or "") for token in any_of), (
        f"{check} detail names none of {any_of}: {result['detail']!r}"
    )


def test_head_pointing_to_a_missing_commit_is_reported(conn, chain):
    as_superuser_behind_pggits_back(
        conn, "UPDATE pggit.branches SET head_commit_hash = 'TRN-no-such-commit' WHERE name = 'feature'"
    )
    assert_fails(conn, HEADS_EXIST, "feature", "TRN-no-such-commit")


def test_missing_parent_commit_is_reported(conn, chain):
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = 'ghost-parent-0001' WHERE hash = '{chain['c2']}'"
    )
    assert_fails(conn, COMMIT_PARENTS_EXIST, chain["c2"])


def test_missing_parent_branch_is_reported(conn, chain):
    as_superuser_behind_pggits_back(conn, "UPDATE pggit.branches SET parent_branch_id = 999999 WHERE name = 'feature'")
    assert_fails(conn, BRANCH_PARENTS_EXIST, "feature")


def test_parent_committed_after_its_child_is_reported(conn):
    # 'early' gets its commit before main gets one; no chain connects them.
    create_branch(conn, "early")
    early = commit(conn, "early", "first of all")
    later = commit(conn, "main", "afterwards")
    assert_all_ok(conn)
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = '{later}' WHERE hash = '{early}'"
    )
    assert_fails(conn, PARENTS_PRECEDE, early)


def test_parent_cycle_is_reported(conn, chain):
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = '{chain['c3']}' WHERE hash = '{chain['c1']}'"
    )
    conn.execute("SET statement_timeout = '20s'")
    assert_fails(conn, NO_CYCLES, chain["c1"], chain["c2"], chain["c3"])


def test_duplicate_trinity_id_is_reported(conn, chain):
    constraints = [
        r[0] for r in conn.execute(
            """
            SELECT con.conname FROM pg_constraint con
             WHERE con.conrelid = 'pggit.commits'::regclass AND con.contype IN ('u', 'p')
               AND con.conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                        WHERE attrelid = 'pggit.commits'::regclass AND attname = 'hash')]
            """
        )
    ]
    assert constraints, "pggit.commits.hash has no unique constraint to drop"
    create_branch(conn, "dup")
    extra = commit(conn, "dup", "will take an existing ID")
    as_superuser_behind_pggits_back(
        conn,
        *[f'ALTER TABLE pggit.commits DROP CONSTRAINT "{name}" CASCADE' for name in constraints],
        f"UPDATE pggit.commits SET hash = '{chain['c2']}' WHERE hash = '{extra}'",
        f"UPDATE pggit.branches SET head_commit_hash = '{chain['c2']}' WHERE name = 'dup'",
    )
    assert_fails(conn, UNIQUE_IDS, chain["c2"])


def test_sequence_set_behind_issued_ids_is_reported(conn, chain):
    as_superuser_behind_pggits_back(conn, "SELECT setval('pggit.trinity_id_seq', 1)")
    assert_fails(conn, SEQUENCE_AHEAD, chain["f1"])


def test_custom_ids_outside_the_generated_format_are_ignored_by_the_sequence_check(conn, chain):
    """A custom Trinity ID that looks like a generated one but is not in its format (35 characters, its dashes at
    25 and 32, not at 19 and 32) was not issued by the sequence: sequence_ahead_of_ids ignores it and reports the
    highest number of the generated IDs. Positive control: with the sequence set behind, the check fails naming
    the generated IDs the sequence would issue again, not the custom one."""
    custom = "TRN-" + "2" * 20 + "-" + "3" * 6 + "-abc"
    assert len(custom) == 35 and custom[24] == "-" and custom[31] == "-" and custom[18] != "-"
    assert scalar(conn, "SELECT pggit.commit_changes('feature', 'custom id', %s)", (custom,)) == custom
    highest = max(int(trinity_id[19:31]) for trinity_id in chain.values())
    sequence = report(conn)[SEQUENCE_AHEAD]
    assert sequence["ok"] is True, sequence
    assert sequence["detail"].endswith(f"above the highest issued number {highest}"), sequence
    as_superuser_behind_pggits_back(conn, "SELECT setval('pggit.trinity_id_seq', 1)")
    sequence = report(conn)[SEQUENCE_AHEAD]
    assert sequence["ok"] is False and chain["f1"] in sequence["detail"], sequence
    assert custom not in sequence["detail"], sequence


def test_version_disagreeing_with_history_is_reported(conn, chain):
    as_superuser_behind_pggits_back(
        conn, "UPDATE pggit.objects SET version_major = 7 WHERE object_name = 't' AND schema_name = 'public'"
    )
    assert_fails(conn, VERSIONS_MATCH, "t")


def test_version_without_any_history_is_reported(conn, chain):
    object_id = scalar(conn, "SELECT id FROM pggit.objects WHERE object_name = 't'")
    as_superuser_behind_pggits_back(conn, f"DELETE FROM pggit.history WHERE object_id = {object_id}")
    assert_fails(conn, VERSIONS_MATCH, "t")


# --------------------------------------------------------------------------
# Never raises
# --------------------------------------------------------------------------

WRECKAGE = {
    "all_commits_gone": ["DELETE FROM pggit.commits"],
    "all_branches_gone": ["DELETE FROM pggit.branches"],
    "garbage_ids": ["UPDATE pggit.commits SET hash = 'TRN-' || id || '-garbage', parent_commit_hash = 'TRN-xx'"],
    "id_with_huge_sequence_number": ["UPDATE pggit.commits SET hash = 'TRN-20250101000000-999999999999-ffffffff' "
                                     "WHERE id = (SELECT min(id) FROM pggit.commits)"],
    "self_parent": ["UPDATE pggit.commits SET parent_commit_hash = hash"],
    "branch_is_its_own_parent": ["UPDATE pggit.branches SET parent_branch_id = id"],
    "history_of_missing_object": ["UPDATE pggit.history SET object_id = object_id + 100000"],
    "version_text_garbage": ["UPDATE pggit.history SET new_version = 'not.a.version'"],
}


@pytest.mark.parametrize("damage", WRECKAGE)
def test_verify_integrity_never_raises_on_wrecked_metadata(conn, chain, damage):
    as_superuser_behind_pggits_back(conn, *WRECKAGE[damage])
    conn.execute("SET statement_timeout = '20s'")
    checks = report(conn)
    assert CONTRACT_CHECKS <= set(checks)
    assert not all(r["ok"] for r in checks.values()), f"{damage} went unnoticed"


def test_a_check_that_cannot_run_is_reported_failed(conn, chain):
    """With pggit.commits' hash column gone, every check that reads it cannot run: each reports ok = false with
    the error as its detail, unique_commit_ids among them, whatever the check before it reported. Positive
    control: the checks of branches alone still run and are ok."""
    as_superuser_behind_pggits_back(conn, "ALTER TABLE pggit.commits DROP COLUMN hash CASCADE")
    conn.execute("SET statement_timeout = '20s'")
    checks = report(conn)
    unique_ids = checks[UNIQUE_IDS]
    assert unique_ids["ok"] is False, unique_ids
    assert unique_ids["detail"].startswith("check failed: ") and "hash" in unique_ids["detail"], unique_ids
    not_run = {name: r["ok"] for name, r in checks.items() if (r["detail"] or "").startswith("check failed: ")}
    assert not_run and all(ok is False for ok in not_run.values()), not_run
    for name in (BRANCH_PARENTS_EXIST, "no_branch_cycles"):
        assert checks[name]["ok"] is True, checks[name]


def test_versions_check_that_cannot_run_is_reported_failed(conn, chain):
    """With pggit.history's new_version column renamed, versions_match_history cannot run: it reports ok = false
    with the error as its detail, although sequence_ahead_of_ids just before it passed. Positive control: the
    checks of commits and branches, which do not read history, still run and are ok."""
    as_superuser_behind_pggits_back(conn, "ALTER TABLE pggit.history RENAME COLUMN new_version TO renamed_version")
    conn.execute("SET statement_timeout = '20s'")
    checks = report(conn)
    versions = checks[VERSIONS_MATCH]
    assert versions["ok"] is False, versions
    assert versions["detail"].startswith("check failed: ") and "new_version" in versions["detail"], versions
    for name in (SEQUENCE_AHEAD, HEADS_EXIST, COMMIT_PARENTS_EXIST, UNIQUE_IDS):
        assert checks[name]["ok"] is True, checks[name]
    not_run = {name: r["ok"] for name, r in checks.items() if (r["detail"] or "").startswith("check failed: ")}
    assert all(ok is False for ok in not_run.values()), not_run


def test_checks_that_pass_but_cannot_describe_it_are_reported_failed(conn, connect, make_role, chain):
    """Each check writes its detail with pggit's detail helper after it has found nothing wrong. For a role that
    may not execute the helper, every check finds nothing wrong and then cannot run to its end: each reports
    ok = false with the refusal as its detail (history_objects_exist too, though versions_increase before it found
    nothing wrong either). Positive controls: the owner's report on the same metadata is all ok, and so is the
    role's once it may execute the helper."""
    role = make_role()
    conn.execute("REVOKE EXECUTE ON FUNCTION pggit._integrity_detail(text[], text) FROM PUBLIC")
    as_role = connect(user=role)
    as_role.execute("SET statement_timeout = '20s'")
    checks = report(as_role)
    assert {"versions_increase", "history_objects_exist"} | CONTRACT_CHECKS <= set(checks), set(checks)
    not_run = {name: (r["ok"], r["detail"]) for name, r in checks.items()
               if not (r["ok"] is False and r["detail"].startswith("check failed: ") and "_integrity_detail" in r["detail"])}
    assert not not_run, not_run
    assert_all_ok(conn)
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pggit._integrity_detail(text[], text) TO {}").format(sql.Identifier(role)))
    assert_all_ok(as_role)


# --------------------------------------------------------------------------
# Rights
# --------------------------------------------------------------------------


def test_integrity_detail_runs_with_the_callers_rights(conn, connect, make_role):
    """pggit's detail helper lends no rights: a role denied a function the helper calls is denied it through the
    helper too (it would run with the extension owner's rights if it were SECURITY DEFINER)."""
    role = make_role()
    assert_lends_no_rights(conn, connect(user=role), role, builtin="array_to_string(anyarray, text)",
                           probe="SELECT pg_catalog.array_to_string(ARRAY['a', 'b'], '; ')",
                           call="SELECT pggit._integrity_detail(ARRAY['first offender', 'second offender'], 'all fine')",
                           answer="first offender; second offender")


# --------------------------------------------------------------------------
# Damage a neighbouring row hides from a careless check
# --------------------------------------------------------------------------

CHAINS_END_AT_HEADS = "branch_chains_end_at_heads"
PARENTS_ON_LINE = "commit_parents_on_branch_line"
VERSIONS_INCREASE = "versions_increase"


def test_a_head_moved_to_an_older_commit_of_the_parent_branch_is_reported(conn, chain):
    """feature has a commit of its own, but its head is moved to main's first commit (an ancestor of feature's
    commit that is not its parent, so no commit of feature follows the head): branch_chains_end_at_heads names
    feature, and main, whose head is its own newest commit, is not named."""
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.branches SET head_commit_hash = '{chain['c1']}' WHERE name = 'feature'")
    result = report(conn)[CHAINS_END_AT_HEADS]
    assert result["ok"] is False, result
    assert '"feature"' in result["detail"] and chain["c1"] in result["detail"], result
    assert '"main"' not in result["detail"], result


def test_a_parent_committed_after_its_child_is_reported_though_an_older_commit_precedes_the_child(conn, chain):
    """c3's commit time is set between c1's and c2's: its parent c2 no longer precedes it in time, although c1
    precedes it in both id and time; commit_parents_precede_children names c3, and not c2, whose parent c1 still
    precedes it."""
    as_superuser_behind_pggits_back(
        conn,
        f"UPDATE pggit.commits SET committed_at = '2020-01-01' WHERE hash = '{chain['c1']}'",
        f"UPDATE pggit.commits SET committed_at = '2020-01-03' WHERE hash = '{chain['c2']}'",
        f"UPDATE pggit.commits SET committed_at = '2020-01-02' WHERE hash = '{chain['c3']}'",
        f"UPDATE pggit.commits SET committed_at = '2020-01-04' WHERE hash = '{chain['f1']}'",
    )
    result = report(conn)[PARENTS_PRECEDE]
    assert result["ok"] is False, result
    assert f'commit "{chain["c3"]}"' in result["detail"], result
    assert f'commit "{chain["c2"]}"' not in result["detail"], result


def test_a_parent_with_a_higher_id_than_its_child_is_reported_as_not_preceding_it(conn, chain):
    """c1 is given the highest id (its commit time unchanged, still before c2's): the parent of c2 no longer
    precedes it in id, and commit_parents_precede_children names c2 (and no other child)."""
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET id = (SELECT max(id) + 1000 FROM pggit.commits) WHERE hash = '{chain['c1']}'")
    result = report(conn)[PARENTS_PRECEDE]
    assert result["ok"] is False, result
    assert f'commit "{chain["c2"]}"' in result["detail"], result
    assert f'commit "{chain["c3"]}"' not in result["detail"], result


def test_a_history_row_that_repeats_the_version_before_it_is_reported(conn, chain):
    """t's second history row (1.0.0 to 1.1.0) is rewritten to go from 1.0.0 to 1.0.0, and t's version with it:
    the versions agree with the history, but the history does not go up, and versions_increase names the row.
    Positive control: before, every check passes."""
    conn.execute("ALTER TABLE t ADD COLUMN x int")
    assert_all_ok(conn)
    row = scalar(conn, "SELECT max(h.id) FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id "
                       "WHERE o.object_name = 't'")
    assert scalar(conn, f"SELECT old_version || '>' || new_version FROM pggit.history WHERE id = {row}") == "1.0.0>1.1.0"
    as_superuser_behind_pggits_back(
        conn,
        f"UPDATE pggit.history SET new_version = '1.0.0' WHERE id = {row}",
        "UPDATE pggit.objects SET version_minor = 0 WHERE object_name = 't' AND schema_name = 'public'",
    )
    checks = report(conn)
    assert checks[VERSIONS_MATCH]["ok"] is True, checks[VERSIONS_MATCH]
    result = checks[VERSIONS_INCREASE]
    assert result["ok"] is False and f"history row {row} goes from 1.0.0 to 1.0.0 after 1.0.0" in result["detail"], result


def test_versions_disagreeing_with_history_are_named_in_object_order(conn, chain):
    """Two objects' versions are damaged, the later object's first (so its row is stored first):
    versions_match_history names both, the object with the lower id first."""
    conn.execute("CREATE TABLE a_first (id int)")
    conn.execute("CREATE TABLE b_second (id int)")
    ids = [scalar(conn, f"SELECT id FROM pggit.objects WHERE object_name = '{name}'") for name in ("a_first", "b_second")]
    assert ids[0] < ids[1]
    as_superuser_behind_pggits_back(
        conn,
        "UPDATE pggit.objects SET version_major = 7 WHERE object_name = 'b_second'",
        "UPDATE pggit.objects SET version_major = 8 WHERE object_name = 'a_first'",
    )
    detail = report(conn)[VERSIONS_MATCH]["detail"]
    assert f"(id {ids[0]})" in detail and f"(id {ids[1]})" in detail, detail
    assert detail.index("a_first") < detail.index("b_second"), detail


def test_branches_whose_parent_branch_is_missing_are_named_in_id_order(conn, chain):
    """Two branches lose their parent branch, the later branch first (so its row is stored first):
    branch_parents_exist names both, the branch with the lower id first."""
    early = create_branch(conn, "early")
    late = create_branch(conn, "late")
    assert early < late
    as_superuser_behind_pggits_back(
        conn,
        f"UPDATE pggit.branches SET parent_branch_id = 999999 WHERE id = {late}",
        f"UPDATE pggit.branches SET parent_branch_id = 999998 WHERE id = {early}",
    )
    result = report(conn)[BRANCH_PARENTS_EXIST]
    assert result["ok"] is False, result
    assert result["detail"] == (f'branch "early" (id {early}): parent branch id 999998 not found; '
                                f'branch "late" (id {late}): parent branch id 999999 not found'), result


def test_trinity_ids_used_twice_are_named_in_id_order_the_first_ten_of_them(conn):
    """Twelve Trinity IDs each used by two commits (the copies made in reverse order): unique_commit_ids names the
    ten lowest IDs in order and counts the other two, whatever order the duplicates are found in."""
    ids = [f"release-{n:02d}" for n in range(1, 13)]
    for trinity_id in ids:
        assert scalar(conn, "SELECT pggit.commit_changes('main', 'release', %s)", (trinity_id,)) == trinity_id
    constraints = [r[0] for r in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'pggit.commits'::regclass AND contype IN ('u', 'p') "
        "AND conkey = ARRAY[(SELECT attnum FROM pg_attribute "
        "                     WHERE attrelid = 'pggit.commits'::regclass AND attname = 'hash')]")]
    assert constraints, "pggit.commits.hash has no unique constraint to drop"
    as_superuser_behind_pggits_back(
        conn,
        *[f'ALTER TABLE pggit.commits DROP CONSTRAINT "{name}" CASCADE' for name in constraints],
        *[f"INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message) "
          f"SELECT hash, branch_id, NULL, 'copy' FROM pggit.commits WHERE hash = '{trinity_id}'"
          for trinity_id in reversed(ids)],
    )
    result = report(conn)[UNIQUE_IDS]
    assert result["ok"] is False, result
    assert result["detail"] == "; ".join(f'Trinity ID "{trinity_id}" is used by 2 commits' for trinity_id in ids[:10]) \
        + "; ... and 2 more", result


def test_a_branch_four_branches_down_from_main_is_on_mains_line(conn):
    """main <- b1 <- b2 <- b3 <- b4, each made from the one before with no commit of its own: b4's head is main's
    commit, and once b4 commits, its commit's parent is main's commit; both are on b4's line (its fourth ancestor)
    and every check passes, before and after."""
    base = commit(conn, "main", "base")
    for parent, name in [("main", "b1"), ("b1", "b2"), ("b2", "b3"), ("b3", "b4")]:
        create_branch(conn, name, parent)
    assert head(conn, "b4") == base
    assert_all_ok(conn)
    own = commit(conn, "b4", "own")
    assert scalar(conn, "SELECT parent_commit_hash FROM pggit.commits WHERE hash = %s", (own,)) == base
    assert_all_ok(conn)


def test_a_parent_off_its_childs_line_is_reported_though_another_branch_lost_its_parent(conn, chain):
    """feature's second commit is given a parent on 'side', a branch feature does not descend from:
    commit_parents_on_branch_line names it, and still does once the unrelated branch 'loose' loses its parent
    branch (only a commit whose own branch's line is broken is left to branch_parents_exist, which names loose)."""
    create_branch(conn, "side")
    side = commit(conn, "side", "side commit")
    loose = create_branch(conn, "loose")
    second = commit(conn, "feature", "feature's second")
    as_superuser_behind_pggits_back(
        conn, f"UPDATE pggit.commits SET parent_commit_hash = '{side}' WHERE hash = '{second}'")
    before = report(conn)[PARENTS_ON_LINE]
    assert before["ok"] is False and f'commit "{second}"' in before["detail"], before
    as_superuser_behind_pggits_back(conn, f"UPDATE pggit.branches SET parent_branch_id = 999999 WHERE id = {loose}")
    checks = report(conn)
    assert checks[BRANCH_PARENTS_EXIST]["ok"] is False and '"loose"' in checks[BRANCH_PARENTS_EXIST]["detail"], checks
    after = checks[PARENTS_ON_LINE]
    assert after["ok"] is False, after
    assert after["detail"] == (f'commit "{second}" (id {commit_row(conn, second)["id"]}): parent "{side}" is on '
                               f'branch id {commit_row(conn, side)["branch_id"]}, not on branch id '
                               f'{commit_row(conn, second)["branch_id"]} or its ancestors'), after


def test_integrity_detail_uses_pg_catalogs_operators_whatever_the_callers_search_path(conn):
    """An integer "=" planted ahead of pg_catalog that calls everything equal does not make pggit's detail helper
    take a list of offenders for an empty one. Positive control: the planted operator is in force for the
    caller's own queries, and the helper still answers its ok text for no offenders."""
    conn.execute("CREATE SCHEMA planted")
    conn.execute("CREATE FUNCTION planted.same(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
    conn.execute("CREATE OPERATOR planted.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = planted.same)")
    conn.execute("SET search_path = planted, pg_catalog, public")
    assert scalar(conn, "SELECT 1 = 2") is True
    assert scalar(conn, "SELECT pggit._integrity_detail(ARRAY['first offender', 'second offender'], 'all fine')") \
        == "first offender; second offender"
    assert scalar(conn, "SELECT pggit._integrity_detail(ARRAY[]::text[], 'all fine')") == "all fine"
