"""Resource chaos: the disk fills up in the middle of a transaction.

Two ways to run out of disk: the per-session cap on temporary files
(``temp_file_limit``, SQLSTATE 53400), and a real file system with no free
block left (SQLSTATE 53100, "No space left on device"). In both the failing
statement aborts its transaction, so pggit's work in that transaction (a
commit, a tracked ALTER, a migration) must vanish with it and the metadata
must stay whole.
"""

from __future__ import annotations

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.snapshot import DatabaseStateSnapshot
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.resource, pytest.mark.destructive, pytest.mark.needs_control]

# A sort of this many rows writes several MB of temporary files.
BIG_SORT = "SELECT count(*) FROM (SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g ORDER BY h) s"
TRACKED_TABLES = "SELECT object_name, version_major, version_minor, version_patch FROM pggit.objects ORDER BY id"


def test_temp_file_limit_mid_transaction_discards_the_pggit_work_before_it(pg_cluster, db_connection_string):
    """When a statement passes temp_file_limit (53400) after a commit, a tracked ALTER and a migration in the same transaction, none of them remains and pggit stays whole."""
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text)")
        first = commit(conn, "main", "before the disk fills")
        before = DatabaseStateSnapshot.capture(conn)

        with nemesis.temp_disk_capped(pg_cluster, "1MB"):
            nemesis.await_setting(conn, "temp_file_limit", "1MB")
            conn.autocommit = False
            commit(conn, "main", "lost with its transaction")
            conn.execute("ALTER TABLE ledger ADD COLUMN amount numeric")
            conn.execute("SELECT pggit.apply_migration('disk-1', 'CREATE TABLE disk_audit (id int)')")
            with pytest.raises(psycopg.errors.ConfigurationLimitExceeded,
                               match='temporary file size exceeds "?temp_file_limit"?') as err:
                conn.execute(BIG_SORT)
            assert err.value.sqlstate == "53400"
            conn.rollback()
            conn.autocommit = True

            # The session that hit the limit goes on working under it.
            second = commit(conn, "main", "after the limit")
        after = DatabaseStateSnapshot.capture(conn)
        changed = before.diff(after)
        assert set(changed.changes) == {"commits", "branches"}, changed.describe()
        assert [row[1] for row in changed["commits"].added] == [second]
        assert conn.execute("SELECT count(*) FROM pggit.commits WHERE message = 'lost with its transaction'"
                            ).fetchone() == (0,)
        assert checkers.linear_chain_invariant(conn, "main") == [first, second]
        assert not checkers.migration_all_or_nothing(conn, "disk-1", "SELECT to_regclass('disk_audit') IS NOT NULL")
        assert checkers.versions_strictly_increasing(conn, "ledger") == ["1.0.0"]
        checkers.drift_is(conn)
        checkers.integrity_ok(conn)


def test_migration_that_passes_temp_file_limit_leaves_no_trace(pg_cluster, db_connection_string):
    """A migration whose own statements pass temp_file_limit fails with 53400 and leaves neither a table nor a record."""
    up = ("CREATE TABLE sorted_copy AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 300000) g ORDER BY h;"
          " CREATE INDEX sorted_copy_h_idx ON sorted_copy (h)")
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        before = DatabaseStateSnapshot.capture(conn)
        with nemesis.temp_disk_capped(pg_cluster, "1MB"):
            nemesis.await_setting(conn, "temp_file_limit", "1MB")
            with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match=r'migration "disk-2" \(up\) failed'):
                conn.execute("SELECT pggit.apply_migration('disk-2', %s, 'DROP TABLE sorted_copy')", (up,))
        before.assert_unchanged(DatabaseStateSnapshot.capture(conn))
        # Once the limit is lifted (and this session has seen the reload) the same migration runs and is recorded.
        nemesis.await_setting(conn, "temp_file_limit", "-1")
        assert conn.execute("SELECT pggit.apply_migration('disk-2', %s, 'DROP TABLE sorted_copy')", (up,)
                            ).fetchone() == (True,)
        assert checkers.migration_all_or_nothing(conn, "disk-2", "SELECT to_regclass('sorted_copy') IS NOT NULL")
        assert checkers.versions_strictly_increasing(conn, "sorted_copy") == ["1.0.0", "1.0.1"]
        checkers.integrity_ok(conn)


# ---------------------------------------------------------------------------
# A real full disk: a tablespace on a tiny tmpfs
# ---------------------------------------------------------------------------


@pytest.fixture
def full_disk(pg_cluster, db_connection_string):
    """A tablespace on an 8 MB file system (``nemesis.disk_full``); skipped where no tmpfs can be mounted."""
    try:
        with nemesis.disk_full(pg_cluster, db_connection_string) as space:
            yield space
    except nemesis.FaultUnavailable as unavailable:
        pytest.skip(str(unavailable))


def test_real_full_disk_fails_the_transaction_and_leaves_pggit_whole(full_disk, db_connection_string):
    """When a tracked table's file system is full (53100 "No space left on device"), the failing transaction leaves no commit, no history and no version change, and pggit goes on working."""
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE filler (id int, pad text) TABLESPACE {}").format(sql.Identifier(full_disk)))
        first = commit(conn, "main", "filler created")
        before = DatabaseStateSnapshot.capture(conn, extra={"tracked": TRACKED_TABLES})

        # Fault: one transaction records pggit work, then writes more than the file system holds.
        conn.autocommit = False
        commit(conn, "main", "lost on a full disk")
        conn.execute("ALTER TABLE filler ADD COLUMN extra int")
        with pytest.raises(psycopg.errors.DiskFull, match="could not extend file") as err:
            # Incompressible rows of about 1 kB: 20 MB for an 8 MB file system.
            conn.execute("INSERT INTO filler SELECT g, string_agg(md5(g::text || i::text), '') "
                         "FROM generate_series(1, 20000) g, generate_series(1, 30) i GROUP BY g")
        assert err.value.sqlstate == "53100"
        assert "No space left on device" in str(err.value)
        conn.rollback()
        conn.autocommit = True

        # A tracked CREATE TABLE AS that fills the disk leaves no history either.
        with pytest.raises(psycopg.errors.DiskFull):
            conn.execute(sql.SQL("CREATE TABLE overflow TABLESPACE {} AS SELECT g AS id, "
                                 "(SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 30) i) AS pad "
                                 "FROM generate_series(1, 20000) g").format(sql.Identifier(full_disk)))

        after = DatabaseStateSnapshot.capture(conn, extra={"tracked": TRACKED_TABLES})
        before.assert_unchanged(after)
        assert checkers.versions_strictly_increasing(conn, "filler") == ["1.0.0"]
        checkers.drift_is(conn)
        checkers.integrity_ok(conn)
        # pggit's own tables live elsewhere: it goes on committing while that disk is full.
        second = commit(conn, "main", "disk still full")
        assert checkers.linear_chain_invariant(conn, "main") == [first, second]
