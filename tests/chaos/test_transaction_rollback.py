"""pggit's work is transactional: a rollback removes all of it, a savepoint part of it.

Every pggit write (commits, branches, DDL history, migrations, data
branches) happens in the caller's transaction. The one thing a rollback
cannot take back is a sequence number: Trinity IDs handed out by a
rolled-back transaction are never handed out again.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import commit, version
from pggit_chaos.snapshot import DatabaseStateSnapshot

pytestmark = [pytest.mark.chaos, pytest.mark.transaction]

SEQUENCE_PART = "substr(hash, 20, 12)::bigint"


def _sequence(trinity_id: str) -> int:
    return int(trinity_id[19:31])


def _all_pggit_work(conn: psycopg.Connection) -> list[str]:
    """One of everything pggit writes, in the current transaction; returns the commit IDs."""
    ids = [commit(conn, "main", "rolled back 1"), commit(conn, "feature/rollback", "rolled back 2")]
    conn.execute("SELECT pggit.create_branch('release/rollback')")
    conn.execute("SELECT pggit.delete_branch_simple('feature/rollback')")
    conn.execute("CREATE TABLE rollback_t (id int PRIMARY KEY)")
    conn.execute("ALTER TABLE rollback_t ADD COLUMN note text")
    conn.execute("ALTER TABLE kept ADD COLUMN added_in_rollback int")
    conn.execute("SELECT pggit.apply_migration('rollback-1', 'CREATE TABLE rollback_m (a int)', "
                 "'DROP TABLE rollback_m')")
    conn.execute("SELECT pggit.create_data_branch('kept', 'main', 'release/rollback')")
    return ids


def _prepared(conn: psycopg.Connection) -> psycopg.Connection:
    """``conn`` (autocommit off) with a committed commit and a tracked table to build on."""
    commit(conn, "main", "committed before the test")
    conn.execute("CREATE TABLE kept (id int)")
    conn.execute("INSERT INTO kept VALUES (1), (2)")
    conn.commit()
    return conn


@pytest.fixture
def conn(sync_conn):
    """The test's connection (autocommit off) with a committed commit and a tracked table to build on."""
    return _prepared(sync_conn)


def test_a_rolled_back_transaction_leaves_no_trace_of_any_pggit_work(conn):
    """Commits, branches, deletions, DDL history, migrations and data branches made in a
    transaction that rolls back leave every pggit table and the schema exactly as they were."""
    before = DatabaseStateSnapshot.capture(conn)
    ids = _all_pggit_work(conn)
    assert DatabaseStateSnapshot.capture(conn).diff(before), "the work should be visible inside the transaction"
    conn.rollback()

    DatabaseStateSnapshot.capture(conn).assert_unchanged(before)
    assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = ANY(%s)", (ids,)).fetchone()[0] == 0
    assert version(conn, "kept") == "1.0.0"
    checkers.integrity_ok(conn)
    checkers.drift_is(conn)


def test_rollback_to_savepoint_undoes_only_the_later_pggit_work(conn):
    """ROLLBACK TO SAVEPOINT removes what pggit did after the savepoint and keeps what it did
    before; the branch head goes back, so the next commit builds on the kept one."""
    root = conn.execute("SELECT head_commit_hash FROM pggit.branches WHERE name = 'main'").fetchone()[0]
    kept = commit(conn, "main", "before the savepoint")
    conn.execute("CREATE TABLE before_savepoint (id int)")
    conn.execute("SAVEPOINT s")
    undone = _all_pggit_work(conn)
    conn.execute("ROLLBACK TO SAVEPOINT s")
    after = commit(conn, "main", "after the rollback to savepoint")
    conn.commit()

    assert checkers.linear_chain_invariant(conn, "main")[-3:] == [root, kept, after]
    assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = ANY(%s)", (undone,)).fetchone()[0] == 0
    branches = {name for (name,) in conn.execute("SELECT name FROM pggit.branches")}
    assert branches == {"main"}
    assert version(conn, "before_savepoint") == "1.0.0"
    assert version(conn, "kept") == "1.0.0"
    assert version(conn, "rollback_t") is None
    assert conn.execute("SELECT count(*) FROM pggit.migrations").fetchone()[0] == 0
    assert conn.execute("SELECT to_regclass('rollback_m'), to_regclass('\"kept__release/rollback\"')").fetchone() \
        == (None, None)
    checkers.integrity_ok(conn)
    checkers.drift_is(conn)


def test_a_rolled_back_commits_trinity_id_never_reappears(conn, db_connection_string):
    """IDs of rolled-back commits are never issued again, by this session or another: the
    sequence only moves forward, and every later ID is above every rolled-back one."""
    rolled_back = [commit(conn, "main", f"rolled back {i}") for i in range(5)]
    conn.rollback()

    later = [commit(conn, "main", f"later {i}") for i in range(20)]
    conn.commit()
    with psycopg.connect(db_connection_string, autocommit=True) as other:
        later += [commit(other, "main", f"other session {i}") for i in range(20)]

    assert not set(rolled_back) & set(later)
    assert min(map(_sequence, later)) > max(map(_sequence, rolled_back))
    checkers.unique_trinity_ids(conn, extra_ids=rolled_back + later)
    checkers.integrity_ok(conn)  # sequence_ahead_of_ids included


# Steps of a random transactional workload: what pggit must keep is what a
# model of PostgreSQL's transactions says survives.
STEPS = st.lists(st.sampled_from(["commit", "commit", "savepoint", "rollback to savepoint",
                                  "release savepoint", "commit transaction", "rollback transaction"]),
                 min_size=1, max_size=12)


@pytest.mark.property
@given(steps=STEPS)
def test_after_any_mix_of_commits_savepoints_and_rollbacks_exactly_the_surviving_commits_remain(fresh_connection, steps):
    """Whatever the interleaving of pggit commits, savepoints, releases and rollbacks, pggit holds
    exactly the commits the transaction semantics keep, as one chain, and IDs stay unique and rising."""
    with fresh_connection() as connection:
        conn = _prepared(connection)
        chain_before = checkers.linear_chain_invariant(conn, "main")
        max_before = conn.execute(f"SELECT max({SEQUENCE_PART}) FROM pggit.commits").fetchone()[0]
        # Model: a stack of frames (transaction, then one per open savepoint) of commit IDs.
        frames: list[list[str]] = [[]]
        survived: list[str] = []
        issued: list[str] = []
        for step in steps:
            if step == "commit":
                issued.append(commit(conn, "main", f"step {len(issued)}"))
                frames[-1].append(issued[-1])
            elif step == "savepoint":
                conn.execute(f"SAVEPOINT s{len(frames)}")
                frames.append([])
            elif step == "rollback to savepoint" and len(frames) > 1:
                conn.execute(f"ROLLBACK TO SAVEPOINT s{len(frames) - 1}")
                frames[-1] = []
            elif step == "release savepoint" and len(frames) > 1:
                conn.execute(f"RELEASE SAVEPOINT s{len(frames) - 1}")
                released = frames.pop()
                frames[-1].extend(released)
            elif step in ("commit transaction", "rollback transaction"):
                if step == "commit transaction":
                    conn.commit()
                    survived += [i for frame in frames for i in frame]
                else:
                    conn.rollback()
                frames = [[]]
        conn.commit()
        survived += [i for frame in frames for i in frame]

        assert checkers.linear_chain_invariant(conn, "main") == chain_before + survived
        sequence = [_sequence(i) for i in issued]
        assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
        assert not issued or min(sequence) > max_before
        checkers.unique_trinity_ids(conn, extra_ids=issued)


def test_a_rolled_back_ddl_leaves_the_version_and_history_unchanged(conn):
    """DDL rolled back (whole transaction, or to a savepoint) leaves get_version and the history as
    they were; the next real change continues from there with no gap."""
    history = conn.execute("SELECT count(*) FROM pggit.history").fetchone()[0]
    conn.execute("ALTER TABLE kept ADD COLUMN gone int")
    conn.execute("ALTER TABLE kept DROP COLUMN id")
    assert version(conn, "kept") == "2.0.0"  # visible inside the transaction
    conn.rollback()
    assert version(conn, "kept") == "1.0.0"
    assert conn.execute("SELECT count(*) FROM pggit.history").fetchone()[0] == history

    conn.execute("COMMENT ON TABLE kept IS 'kept'")
    conn.execute("SAVEPOINT s")
    conn.execute("ALTER TABLE kept ALTER COLUMN id TYPE bigint")
    conn.execute("ROLLBACK TO SAVEPOINT s")
    conn.execute("ALTER TABLE kept ADD COLUMN added int")
    conn.commit()

    assert checkers.versions_strictly_increasing(conn, "kept") == ["1.0.0", "1.0.1", "1.1.0"]
    checkers.integrity_ok(conn)
    checkers.drift_is(conn)


def test_a_failed_ddl_statement_leaves_no_history(conn):
    """A DDL statement that fails (here: a type change the data cannot take) records nothing,
    and the transaction's savepoint keeps the earlier change."""
    conn.execute("INSERT INTO kept VALUES (-1)")
    conn.execute("ALTER TABLE kept ADD COLUMN label text")
    conn.execute("UPDATE kept SET label = 'not a number'")
    conn.execute("SAVEPOINT s")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute("ALTER TABLE kept ALTER COLUMN label TYPE int USING label::int")
    conn.execute("ROLLBACK TO SAVEPOINT s")
    conn.commit()
    assert checkers.versions_strictly_increasing(conn, "kept") == ["1.0.0", "1.1.0"]
    checkers.drift_is(conn)
