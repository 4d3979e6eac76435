"""Recovery chaos: the documented repair procedures repair what they are for.

Each procedure is a SQL file in ``docs/testing/recovery/``: the
troubleshooting guide shows the file, and this module runs the very same
text. Every procedure is checked three ways: on the damage it is for (the
report sees it before, is clean after), run a second time (nothing more
changes), and on a healthy database (nothing changes at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.snapshot import DatabaseStateSnapshot

pytestmark = [pytest.mark.chaos, pytest.mark.corruption, pytest.mark.recovery]

RECOVERY_DIR = Path(__file__).resolve().parents[2] / "docs" / "testing" / "recovery"
PROCEDURES = sorted(p.name for p in RECOVERY_DIR.glob("*.sql"))

# What the default snapshot leaves out but a procedure could touch.
EXTRA_STATE = {
    "sequence": "SELECT last_value, is_called FROM pggit.trinity_id_seq",
    "comments": "SELECT objoid::regclass::text, objsubid, description FROM pg_description "
                "WHERE classoid = 'pg_class'::regclass AND objoid::regclass::text NOT LIKE 'pggit.%' ORDER BY 1, 2",
    "event_triggers": "SELECT evtname, evtenabled FROM pg_event_trigger ORDER BY 1",
}


def _run_procedure(conn: psycopg.Connection, name: str) -> None:
    """Run the file's text exactly as stored, as psql would send it."""
    conn.execute((RECOVERY_DIR / name).read_text())


def _snapshot(conn: psycopg.Connection) -> DatabaseStateSnapshot:
    return DatabaseStateSnapshot.capture(conn, extra=EXTRA_STATE)


def _failing_checks(conn: psycopg.Connection) -> dict[str, str]:
    return {name: detail for name, ok, detail in conn.execute("SELECT * FROM pggit.verify_integrity()") if not ok}


@dataclass
class Repo:
    main: list[str]
    feature_x: list[str]
    feature_y_head: str


@pytest.fixture
def conn(sync_conn: psycopg.Connection) -> psycopg.Connection:
    sync_conn.autocommit = True
    return sync_conn


@pytest.fixture
def repo(conn: psycopg.Connection) -> Repo:
    """main with three commits; feature/x with three of its own; feature/y branched from x after
    x's second commit and without commits of its own; two tracked tables with some history."""

    def commit(branch: str, message: str) -> str:
        return conn.execute("SELECT pggit.commit_changes(%s, %s)", (branch, message)).fetchone()[0]

    main = [commit("main", f"main {i}") for i in range(3)]
    conn.execute("SELECT pggit.create_branch('feature/x')")
    feature_x = [commit("feature/x", "x 0"), commit("feature/x", "x 1")]
    conn.execute("SELECT pggit.create_branch('feature/y', 'feature/x')")
    feature_x.append(commit("feature/x", "x 2"))
    main.append(commit("main", "main 3"))
    conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, email text)")
    conn.execute("ALTER TABLE accounts ADD COLUMN created_at timestamptz")
    conn.execute("CREATE INDEX accounts_email_idx ON accounts (email)")
    conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, total numeric)")
    conn.execute("COMMENT ON TABLE invoices IS 'billing'")
    checkers.integrity_ok(conn)
    checkers.drift_is(conn)
    return Repo(main, feature_x, feature_x[1])


def _heads(conn: psycopg.Connection) -> dict[str, str | None]:
    return dict(conn.execute("SELECT name, head_commit_hash FROM pggit.branches").fetchall())


def _repaired(conn: psycopg.Connection, name: str) -> None:
    """Run a procedure on a damaged database; then the report is clean and a second run changes nothing."""
    _run_procedure(conn, name)
    checkers.integrity_ok(conn)
    checkers.drift_is(conn)
    after_first = _snapshot(conn)
    _run_procedure(conn, name)
    after_first.assert_unchanged(_snapshot(conn))


# ---------------------------------------------------------------------------
# Healthy database: every procedure is a no-op
# ---------------------------------------------------------------------------


def test_the_recovery_directory_holds_the_four_procedures():
    """The procedures the troubleshooting guide includes are all there."""
    assert PROCEDURES == ["clear_drift_by_recording.sql", "rebuild_versions_from_history.sql",
                          "repair_branch_heads.sql", "resync_trinity_sequence.sql"]


@pytest.mark.parametrize("name", PROCEDURES)
def test_procedure_changes_nothing_on_a_healthy_database(conn, repo, name):
    """Run on a healthy database, a recovery procedure changes nothing: not pggit's tables, the sequence, comments or the event triggers."""
    before = _snapshot(conn)
    _run_procedure(conn, name)
    before.assert_unchanged(_snapshot(conn))
    checkers.integrity_ok(conn)


# ---------------------------------------------------------------------------
# repair_branch_heads.sql
# ---------------------------------------------------------------------------


def _dangling_head_with_own_commits(conn, repo):
    conn.execute("UPDATE pggit.branches SET head_commit_hash = 'TRN-LOST-HEAD-00001' WHERE name = 'feature/x'")


def _dangling_head_without_own_commits(conn, repo):
    conn.execute("UPDATE pggit.branches SET head_commit_hash = 'TRN-LOST-HEAD-00002' WHERE name = 'feature/y'")


def _head_moved_back(conn, repo):
    conn.execute("UPDATE pggit.branches SET head_commit_hash = %s WHERE name = 'main'", (repo.main[1],))


def _every_head_dangling(conn, repo):
    conn.execute("UPDATE pggit.branches SET head_commit_hash = 'TRN-LOST-' || id || '-0000000' "
                 "WHERE head_commit_hash IS NOT NULL")


HEAD_DAMAGE: dict[str, Callable] = {
    "dangling head, own commits": _dangling_head_with_own_commits,
    "dangling head, no own commits": _dangling_head_without_own_commits,
    "head moved back": _head_moved_back,
    "every head dangling": _every_head_dangling,
}


@pytest.mark.parametrize("kind", sorted(HEAD_DAMAGE))
def test_repair_branch_heads_restores_each_head(conn, repo, kind):
    """After branch heads are damaged, repair_branch_heads.sql points every head back at the tip of its chain: own commits' tip, or for a branch without commits the parent's head when it was created."""
    healthy = _heads(conn)
    HEAD_DAMAGE[kind](conn, repo)
    if kind == "head moved back":
        # A lost head: the head does not end main's chain, and the newer commits hang unreachable behind it.
        failing = _failing_checks(conn)
        assert set(failing) == {"branch_chains_end_at_heads", "commits_reachable"}, failing
        assert repo.main[3] in failing["commits_reachable"]
        with pytest.raises(checkers.InvariantViolation, match="not reachable from the head"):
            checkers.linear_chain_invariant(conn, "main")
    else:
        assert "branch_heads_exist" in _failing_checks(conn)
    _repaired(conn, "repair_branch_heads.sql")
    assert _heads(conn) == healthy
    assert checkers.linear_chain_invariant(conn, "main") == repo.main
    assert checkers.linear_chain_invariant(conn, "feature/x") == repo.feature_x
    assert healthy["feature/y"] == repo.feature_y_head


# ---------------------------------------------------------------------------
# resync_trinity_sequence.sql
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("set_back_to", [(1, False), (2, True), ("issued - 1", True)])
def test_resync_trinity_sequence_moves_the_sequence_past_every_issued_id(conn, repo, set_back_to):
    """After the Trinity sequence is set back behind issued IDs, resync_trinity_sequence.sql moves it past the largest one, and the next commit gets a fresh, higher number."""
    issued = conn.execute("SELECT max(substr(hash, 20, 12)::bigint) FROM pggit.commits").fetchone()[0]
    value, is_called = set_back_to
    value = issued - 1 if value == "issued - 1" else value
    conn.execute("SELECT setval('pggit.trinity_id_seq', %s, %s)", (value, is_called))
    assert "sequence_ahead_of_ids" in _failing_checks(conn)
    _repaired(conn, "resync_trinity_sequence.sql")
    assert conn.execute("SELECT last_value, is_called FROM pggit.trinity_id_seq").fetchone() == (issued, True)
    fresh = conn.execute("SELECT pggit.commit_changes('main', 'after resync')").fetchone()[0]
    assert int(fresh[19:31]) == issued + 1
    checkers.unique_trinity_ids(conn)
    checkers.integrity_ok(conn)


# ---------------------------------------------------------------------------
# clear_drift_by_recording.sql
# ---------------------------------------------------------------------------

DRIFT = {
    "column added": ("ALTER TABLE accounts ADD COLUMN sneaky int", "public.accounts", ("accounts", "1.2.0")),
    "column retyped": ("ALTER TABLE invoices ALTER COLUMN total TYPE bigint", "public.invoices", ("invoices", "2.0.0")),
    "index dropped": ("DROP INDEX accounts_email_idx", "public.accounts", ("accounts", "1.1.2")),
    "table renamed": ("ALTER TABLE invoices RENAME TO bills", "public.invoices", ("bills", "2.0.0")),
    "table dropped": ("DROP TABLE invoices", "public.invoices", None),
    "restored with another structure": (
        "DROP TABLE invoices; CREATE TABLE invoices (id bigint PRIMARY KEY, amount numeric NOT NULL)",
        "public.invoices", ("invoices", "2.0.0")),
}


@pytest.mark.parametrize("kind", sorted(DRIFT))
def test_clear_drift_by_recording_records_each_drifted_table(conn, repo, kind):
    """After a change made while tracking was off, clear_drift_by_recording.sql records it through pggit (a change, a rename, or a drop) so that detect_drift is empty and the version follows the change."""
    ddl, drifted, expected = DRIFT[kind]
    with nemesis.tracking_paused(conn):
        conn.execute(ddl)
    assert checkers.drift_is(conn, {drifted})
    comment = conn.execute("SELECT obj_description(to_regclass('invoices'), 'pg_class')").fetchone()[0]

    _repaired(conn, "clear_drift_by_recording.sql")
    if expected is None:
        assert conn.execute("SELECT is_active, content_hash, version_major FROM pggit.objects "
                            "WHERE object_name = 'invoices' ORDER BY id DESC LIMIT 1").fetchone() == (False, None, 2)
    else:
        table, version = expected
        assert checkers.versions_strictly_increasing(conn, table)[-1] == version
        checkers.recorded_hash_is_live(conn, table)
    if kind in ("column retyped", "column added", "index dropped"):
        # The no-op DDL really was a no-op: the comment is what it was.
        assert conn.execute("SELECT obj_description('invoices'::regclass, 'pg_class')").fetchone()[0] == comment


@pytest.mark.parametrize("how", ["trigger disabled", "replica role"])
def test_clear_drift_by_recording_refuses_while_tracking_is_off(conn, repo, how):
    """Run while pggit's event triggers would not fire, clear_drift_by_recording.sql stops with a clear error instead of silently recording nothing."""
    with nemesis.tracking_paused(conn):
        conn.execute("ALTER TABLE accounts ADD COLUMN sneaky int")
    # One trigger of the two disabled is enough to refuse.
    off = (nemesis.tracking_paused(conn, triggers=["pggit_ddl_command_end"]) if how == "trigger disabled"
           else nemesis.tracking_paused(conn, how="replica"))
    with off:
        before = _snapshot(conn)
        with pytest.raises(psycopg.errors.RaiseException, match="event triggers would not fire in this session"):
            _run_procedure(conn, "clear_drift_by_recording.sql")
        before.assert_unchanged(_snapshot(conn))
    _repaired(conn, "clear_drift_by_recording.sql")


# ---------------------------------------------------------------------------
# rebuild_versions_from_history.sql
# ---------------------------------------------------------------------------


def test_rebuild_versions_from_history_restores_tampered_versions(conn, repo):
    """After tracked versions are edited by hand, rebuild_versions_from_history.sql sets each back to its latest history row's version."""
    healthy = conn.execute("SELECT id, version_major, version_minor, version_patch FROM pggit.objects ORDER BY id"
                           ).fetchall()
    conn.execute("UPDATE pggit.objects SET version_major = 9, version_patch = version_patch + 3")
    assert "versions_match_history" in _failing_checks(conn)
    _repaired(conn, "rebuild_versions_from_history.sql")
    assert conn.execute("SELECT id, version_major, version_minor, version_patch FROM pggit.objects ORDER BY id"
                        ).fetchall() == healthy


def test_rebuild_versions_from_history_leaves_an_object_without_history_which_a_tracked_ddl_then_fixes(conn, repo):
    """An object whose history rows are all gone cannot be rebuilt by SQL: rebuild_versions_from_history.sql leaves it reported, and a tracked no-op DDL on the table (as its comment says) gives it a history so the report is clean."""
    conn.execute("DELETE FROM pggit.history WHERE object_id = (SELECT id FROM pggit.objects WHERE object_name = 'invoices')")
    assert "(no history)" in _failing_checks(conn)["versions_match_history"]
    before = _snapshot(conn)
    _run_procedure(conn, "rebuild_versions_from_history.sql")
    before.assert_unchanged(_snapshot(conn))
    assert "invoices" in _failing_checks(conn)["versions_match_history"]
    conn.execute("COMMENT ON TABLE invoices IS 'billing'")
    checkers.integrity_ok(conn)
    assert checkers.versions_strictly_increasing(conn, "invoices") == ["1.0.2"]
