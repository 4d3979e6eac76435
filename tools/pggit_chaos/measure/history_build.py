"""A pggit history of a chosen size, bulk-loaded in the shape pggit itself writes, for the history benchmark.

A history of size n holds:

- n commits with generated-format Trinity IDs (sequence numbers 1..n, the
  sequence moved past them), in order of id and time: the first half on
  ``main`` as one linear chain, the rest spread over n/100 - 1 further
  branches (at least one), each forked from a commit of main spread evenly
  along it, each a linear chain whose last commit is the branch head;
- n/10 tracked tables (``pggit.objects`` rows, at least 10): n/100 of them
  (at least 1) live tables in schema ``bench_live``, created by real DDL so
  pggit's own event triggers version them, the others dropped tables (inactive,
  no hash) with about ten history rows each: CREATE 1.0.0, PATCH changes,
  DROP 2.0.0;
- n history rows in all (the live tables' own, the bulk-loaded ones);
- n/100 applied migrations (at least 1), their checksums computed by pggit.

Commits, dropped tables, their history and the migrations are inserted with
``INSERT ... SELECT generate_series`` (pggit's own functions would take
minutes at 10^5); the live tables go through pggit's DDL tracking. The
tables are then analyzed, as autovacuum would, and the history must pass
``verify_integrity()`` with every check ok and ``detect_drift()`` empty
before anything is timed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from psycopg import Connection


@dataclass(frozen=True)
class Shape:
    """How many rows of each kind a history of size ``n`` gets."""

    n: int

    @property
    def commits(self) -> int:
        return self.n

    @property
    def main_commits(self) -> int:
        return max(1, self.n // 2)

    @property
    def branches(self) -> int:
        """Branches besides main that carry commits."""
        return max(1, min(self.n // 100 - 1, self.n - self.main_commits))

    @property
    def live_tables(self) -> int:
        return max(1, self.n // 100)

    @property
    def tracked_tables(self) -> int:
        return max(10, self.n // 10)

    @property
    def dropped_tables(self) -> int:
        return self.tracked_tables - self.live_tables

    @property
    def rows_per_dropped_table(self) -> int:
        """History rows per dropped table (CREATE, PATCHes, DROP): the rest of the n rows, at least 2."""
        return max(2, (self.n - self.live_tables) // self.dropped_tables)

    @property
    def migrations(self) -> int:
        return max(1, self.n // 100)

    def as_dict(self) -> dict:
        return {**asdict(self), "commits": self.commits, "branches": self.branches + 1,
                "live_tables": self.live_tables, "dropped_tables": self.dropped_tables,
                "history_rows": self.live_tables + self.dropped_tables * self.rows_per_dropped_table,
                "migrations": self.migrations}


# Trinity ID i: TRN-<UTC time>-<i, 12 digits>-<8 hex>, as generate_trinity_id() writes them.
_COMMITS = """
CREATE TEMP TABLE bench_ids AS
SELECT i, ts,
       'TRN-' || to_char(ts AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS') || '-' || lpad(i::text, 12, '0') || '-'
       || substr(md5(i::text), 1, 8) AS hash
  FROM generate_series(1, %(n)s) i
 CROSS JOIN LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS ts) t;
CREATE UNIQUE INDEX ON bench_ids (i);

INSERT INTO pggit.branches (name, parent_branch_id, status, created_by, created_at)
SELECT 'feature/' || j, 1, 'ACTIVE', current_user, timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, %(branches)s) j;

-- Commit i: on main up to main_commits, then per_branch commits on each further branch in turn.
INSERT INTO pggit.commits (id, hash, branch_id, parent_commit_hash, message, author, committed_at)
SELECT h.i, h.hash, b.id, p.hash, 'change ' || h.i, current_user, h.ts
  FROM bench_ids h
 CROSS JOIN LATERAL (
       SELECT CASE WHEN h.i <= %(main)s THEN 0
                   ELSE least((h.i - %(main)s - 1) / %(per_branch)s + 1, %(branches)s) END AS j
 ) s
 CROSS JOIN LATERAL (
       SELECT CASE WHEN s.j = 0 THEN h.i - 1
                   -- A branch's first commit follows the main commit it was forked from.
                   WHEN h.i = %(main)s + (s.j - 1) * %(per_branch)s + 1
                        THEN greatest(1, s.j::bigint * %(main)s / (%(branches)s + 1))
                   ELSE h.i - 1 END AS parent_i
 ) q
  JOIN pggit.branches b ON b.name = CASE WHEN s.j = 0 THEN 'main' ELSE 'feature/' || s.j END
  LEFT JOIN bench_ids p ON p.i = q.parent_i
 ORDER BY h.i;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('pggit.commits', 'id'), %(n)s);
SELECT pg_catalog.setval('pggit.trinity_id_seq', %(n)s);

UPDATE pggit.branches b SET head_commit_hash = last.hash
  FROM (SELECT DISTINCT ON (c.branch_id) c.branch_id, c.hash FROM pggit.commits c ORDER BY c.branch_id, c.id DESC) last
 WHERE last.branch_id = b.id;
DROP TABLE bench_ids;
"""

# Live tables through pggit's own DDL tracking (one CREATE history row each).
_LIVE_TABLES = """
CREATE SCHEMA bench_live;
DO $$
BEGIN
    FOR i IN 1..%(live)s LOOP
        EXECUTE format('CREATE TABLE bench_live.%%I (id bigint PRIMARY KEY, name text NOT NULL DEFAULT '''', '
                       'amount numeric(12, 2) CHECK (amount >= 0), created timestamptz DEFAULT now())', 't_' || i);
    END LOOP;
END;
$$;
"""

# Dropped tables, as _track_table_drop leaves them, with their history interleaved in time.
_DROPPED_TABLES = """
INSERT INTO pggit.objects (object_type, schema_name, object_name, version_major, version_minor, version_patch,
                           content_hash, is_active, table_oid, definition, column_list, created_at, updated_at)
SELECT 'TABLE', 'bench_gone', 'gone_' || g, 2, 0, 0, NULL, false, NULL,
       E'pggit table definition v1\\ncolumn id bigint not null\\nconstraint ' || quote_ident('gone_' || g || '_pkey')
       || E' PRIMARY KEY (id)\\nindex ' || quote_ident('gone_' || g || '_pkey')
       || ' CREATE UNIQUE INDEX ' || quote_ident('gone_' || g || '_pkey') || ' ON <table> USING btree (id)',
       '[{"name": "id", "type": "bigint"}]'::jsonb,
       timestamptz '2024-01-01 00:00:00+00', timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, %(dropped)s) g
 ORDER BY g;

INSERT INTO pggit.history (object_id, change_type, severity, command_tag, old_version, new_version,
                           created_at, created_by)
SELECT o.id,
       CASE WHEN k = 1 THEN 'CREATE' WHEN k = %(rows)s THEN 'DROP' ELSE 'ALTER' END,
       CASE WHEN k = 1 OR k = %(rows)s THEN 'MAJOR' ELSE 'PATCH' END,
       CASE WHEN k = 1 THEN 'CREATE TABLE' WHEN k = %(rows)s THEN 'DROP TABLE' ELSE 'COMMENT' END,
       CASE WHEN k = 1 THEN NULL ELSE '1.0.' || (k - 2) END,
       CASE WHEN k = %(rows)s THEN '2.0.0' ELSE '1.0.' || (k - 1) END,
       timestamptz '2024-01-01 00:00:00+00' + (k * %(dropped)s + o.id) * interval '1 second', current_user
  FROM pggit.objects o
 CROSS JOIN generate_series(1, %(rows)s) k
 WHERE o.schema_name = 'bench_gone'
 ORDER BY k, o.id;

INSERT INTO pggit.migrations (version, description, checksum, up_sql, down_sql, status, applied_at, applied_by)
SELECT 'bench_' || lpad(g::text, 8, '0'), 'migration ' || g, pggit._migration_checksum('SELECT ' || g),
       'SELECT ' || g, 'SELECT -' || g, 'APPLIED', timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
       current_user
  FROM generate_series(1, %(migrations)s) g;

ANALYZE pggit.branches, pggit.commits, pggit.objects, pggit.history, pggit.migrations;
"""


def build_history(conn: Connection, n: int) -> dict:
    """Load a history of size ``n`` into the (fresh) pggit of ``conn``'s database; its shape as counts.

    Raises RuntimeError unless verify_integrity() is clean and detect_drift() empty afterwards.
    """
    shape = Shape(n)
    rest = shape.commits - shape.main_commits
    params = {"n": shape.commits, "main": shape.main_commits, "branches": shape.branches,
              "per_branch": max(1, rest // shape.branches), "live": shape.live_tables,
              "dropped": shape.dropped_tables, "rows": shape.rows_per_dropped_table,
              "migrations": shape.migrations}
    for script in (_COMMITS, _LIVE_TABLES, _DROPPED_TABLES):
        conn.execute(script % params)
    check_clean(conn)
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM pggit.commits), (SELECT count(*) FROM pggit.branches),"
        " (SELECT count(*) FROM pggit.objects), (SELECT count(*) FROM pggit.objects WHERE is_active),"
        " (SELECT count(*) FROM pggit.history), (SELECT count(*) FROM pggit.migrations)").fetchone()
    return dict(zip(("commits", "branches", "tracked_tables", "live_tables", "history_rows", "migrations"), counts))


def check_clean(conn: Connection) -> None:
    """Raise RuntimeError naming the failed checks unless pggit reports the history intact and without drift."""
    failed = conn.execute("SELECT check_name, detail FROM pggit.verify_integrity() WHERE NOT ok").fetchall()
    drift = conn.execute("SELECT schema_name, object_name FROM pggit.detect_drift()").fetchall()
    if failed or drift:
        raise RuntimeError(f"the bulk-loaded history is not clean: failed checks {failed}, drift {drift[:5]}")
