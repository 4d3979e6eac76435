"""Invariants: what "correct" means for pggit after a workload and a fault.

Each checker is a plain function over a connection (and, where it needs
one, the workload's history). It returns what it verified, or raises
``InvariantViolation`` naming the offending rows. The composed checkers at
the end (``pggit_consistent``, ``table_consistent``, ``schema_consistent``)
run the sets that most tests end with, and ``fault_struck`` reads the faults
of a history.

Each checker that reads the database reads it at one moment: on an
autocommit connection it runs in one REPEATABLE READ transaction, so a
commit or a table that lands while it reads is either wholly in its view or
not at all (``one_snapshot``). The checkers that read every table
(``schema_consistent``, ``drift_is``) first hold those tables, so a table
dropped while they read waits for them instead of failing them. On a
connection inside a transaction a checker reads what that transaction sees.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pggit_chaos.history import History, Operation


class InvariantViolation(AssertionError):
    """An invariant does not hold; the message names the rows that break it.

    An ``AssertionError``, so pytest reports it as a failed check;
    ``invariant``, ``detail`` and ``rows`` keep the parts.

    ```python
    from pggit_chaos.checkers import InvariantViolation

    error = InvariantViolation("unique Trinity IDs", "duplicate commit hashes (hash, count)", [("TRN-1", 2)])
    assert isinstance(error, AssertionError) and error.rows == [("TRN-1", 2)]
    assert str(error).splitlines() == ["unique Trinity IDs: duplicate commit hashes (hash, count)", "  ('TRN-1', 2)"]
    ```
    """

    def __init__(self, invariant: str, detail: str, rows: Iterable = ()):
        self.invariant, self.detail, self.rows = invariant, detail, list(rows)
        shown = "\n".join(f"  {row}" for row in self.rows[:20])
        more = f"\n  ... and {len(self.rows) - 20} more" if len(self.rows) > 20 else ""
        super().__init__(f"{invariant}: {detail}" + (f"\n{shown}{more}" if self.rows else ""))


@contextlib.contextmanager
def one_snapshot(conn: psycopg.Connection, *, hold_tables: bool = False) -> Iterator[None]:
    """Run the block's reads on ``conn`` against one snapshot of the database.

    An idle autocommit connection gets a REPEATABLE READ transaction for the
    block, ended when it ends; otherwise (a transaction is open, or the
    connection is not in autocommit) the caller's transaction decides.
    Without it, each statement of a checker would see a later moment: a
    commit landing between two reads would look like a branch head that lost
    a commit.

    With ``hold_tables`` the transaction first takes ACCESS SHARE locks on
    every user table it may read, then its snapshot, as pg_dump does: name
    lookups (regclass, pggit's hash and drift functions) read the catalog as
    it is now, not as the snapshot saw it, so a table dropped meanwhile would
    fail the read. A DROP or ALTER of a held table waits for the block. A
    table that DDL keeps locked for ``HOLD_SECONDS``, or a lock table without
    room for them all, leaves the tables unheld.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.autocommit = True
    with checkers.one_snapshot(sync_conn):
        first = sync_conn.execute("SELECT now()").fetchone()[0]
        assert sync_conn.execute("SELECT now()").fetchone()[0] == first  # one transaction
    assert sync_conn.info.transaction_status == sync_conn.info.transaction_status.IDLE
    ```
    """
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        yield
        return
    deadline = time.monotonic() + HOLD_SECONDS
    while True:
        tables = _user_tables(conn) if hold_tables else set()  # read before the transaction: no snapshot yet
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # Held, then the snapshot (the first query after the locks) lists no table that is not held.
            held = _hold(conn, tables) if hold_tables and time.monotonic() < deadline else None
            if held is None or (held and _user_tables(conn) <= tables):
                yield
                return
        time.sleep(0.005)


# How long a checker tries to hold the tables it reads (a try fails while DDL holds one of them, or one went
# or came meanwhile); then it reads them unheld, as a checker without hold_tables does, rather than wait on
# a transaction that keeps its DDL open.
HOLD_SECONDS = 2.0

# The tables pggit may track (schema, name): ordinary and partitioned, not temporary, outside the system.
_USER_TABLES = """
    SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pggit')
       AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"""


def _user_tables(conn: psycopg.Connection) -> set[str]:
    """The user tables this role may lock (and read), as quoted ``schema.table`` names: LOCK TABLE takes names."""
    rows = conn.execute(_USER_TABLES + " AND pg_catalog.has_table_privilege(c.oid, 'SELECT')")
    return {sql.Identifier(schema, table).as_string(conn) for schema, table in rows}


def _hold(conn: psycopg.Connection, tables: set[str]) -> bool | None:
    """Lock ``tables`` (ACCESS SHARE, NOWAIT) without taking a snapshot; False if one is locked for DDL or
    gone (try again), None if the server's lock table has no room for them all (read them unheld).

    NOWAIT: a checker that waited could deadlock with DDL that holds one of the tables and wants another.
    """
    if not tables:
        return True
    try:
        with conn.transaction():  # a savepoint: LOCK and SAVEPOINT take no snapshot
            conn.execute(f"LOCK TABLE ONLY {', '.join(sorted(tables))} IN ACCESS SHARE MODE NOWAIT")
    except (psycopg.errors.LockNotAvailable, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject,
            psycopg.errors.InvalidSchemaName):
        return False
    except psycopg.errors.OutOfMemory:  # "out of shared memory": max_locks_per_transaction is too small
        return None
    return True


def _reads_one_snapshot(check: Callable | None = None, *, hold_tables: bool = False) -> Callable:
    """Decorator: the checker (its first argument a connection) reads the database at one moment
    (``one_snapshot``; ``hold_tables`` for one that reads every table)."""
    if check is None:
        return functools.partial(_reads_one_snapshot, hold_tables=hold_tables)

    @functools.wraps(check)
    def checked(conn: psycopg.Connection, *args, **kwargs):
        with one_snapshot(conn, hold_tables=hold_tables):
            return check(conn, *args, **kwargs)
    return checked


def _rows(conn: psycopg.Connection, query: str, params=None) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def _tracked_table(conn: psycopg.Connection, table: str, invariant: str,
                   columns: str = "o.id, o.version_major, o.version_minor, o.version_patch") -> tuple:
    """The active objects row (``columns`` of it) of the table ``table`` names, found by regclass as
    PostgreSQL resolves the name; raises ``InvariantViolation`` for ``invariant`` if pggit does not track it.

    ``columns`` may use ``%(table)s``, the name as given.
    """
    row = conn.execute(
        f"SELECT {columns} FROM pggit.objects o WHERE o.object_type = 'TABLE' AND o.is_active "
        "AND format('%%I.%%I', o.schema_name, o.object_name)::regclass = %(table)s::regclass",
        {"table": table},
    ).fetchone()
    if row is None:
        raise InvariantViolation(invariant, f"table {table!r} is not tracked")
    return row


@_reads_one_snapshot
def linear_chain_invariant(conn: psycopg.Connection, branch: str) -> list[str]:
    """The branch's commits form one chain: no forks, no lost head, nothing unreachable.

    Returns the chain's Trinity IDs from oldest to newest.

    ```python fixture:sync_conn
    from pggit_chaos import checkers
    from pggit_chaos.client import commit

    sync_conn.autocommit = True
    ids = [commit(sync_conn, "main", f"c{i}") for i in range(3)]
    assert checkers.linear_chain_invariant(sync_conn, "main") == ids
    ```
    """
    branch_row = conn.execute(
        "SELECT id, head_commit_hash FROM pggit.branches WHERE name = %s", (branch,)
    ).fetchone()
    if branch_row is None:
        raise InvariantViolation("linear chain", f"branch {branch!r} does not exist")
    branch_id, head = branch_row
    commits = _rows(conn, "SELECT hash, parent_commit_hash FROM pggit.commits WHERE branch_id = %s", (branch_id,))
    if not commits:
        if head is not None and not _exists(conn, head):
            raise InvariantViolation("linear chain", f"branch {branch!r} head {head} is not a commit")
        return []
    parent_of = dict(commits)
    forks = [(parent, n) for parent, n in Counter(p for _, p in commits).items() if n > 1]
    if forks:
        children = [(h, p) for h, p in commits if p in {f for f, _ in forks}]
        raise InvariantViolation(
            "linear chain", f"branch {branch!r} forks: {len(forks)} commit(s) have several children "
            "(hash, parent)", sorted(children, key=str))
    if head not in parent_of:
        raise InvariantViolation("linear chain", f"branch {branch!r} head {head!r} is not one of its commits")
    chain, cursor = [], head
    while cursor in parent_of:
        chain.append(cursor)
        cursor = parent_of[cursor]
        if len(chain) > len(parent_of):
            raise InvariantViolation("linear chain", f"branch {branch!r} has a cycle", chain[-5:])
    unreachable = set(parent_of) - set(chain)
    if unreachable:
        raise InvariantViolation(
            "linear chain", f"branch {branch!r}: {len(unreachable)} commit(s) not reachable from the head "
            "(lost head)", sorted(unreachable))
    return chain[::-1]


def _exists(conn: psycopg.Connection, trinity_id: str) -> bool:
    return conn.execute("SELECT 1 FROM pggit.commits WHERE hash = %s", (trinity_id,)).fetchone() is not None


@_reads_one_snapshot
def unique_trinity_ids(conn: psycopg.Connection, extra_ids: Iterable[str] = ()) -> int:
    """No Trinity ID appears twice: in pggit.commits, and among ``extra_ids`` (IDs handed out elsewhere).

    Returns how many IDs were checked.

    ```python fixture:sync_conn
    import pytest
    from pggit_chaos import checkers

    ids = [sync_conn.execute("SELECT pggit.generate_trinity_id()").fetchone()[0] for _ in range(3)]
    assert checkers.unique_trinity_ids(sync_conn, extra_ids=ids) == 3
    with pytest.raises(checkers.InvariantViolation, match="more than once"):
        checkers.unique_trinity_ids(sync_conn, extra_ids=ids + ids[:1])
    ```
    """
    duplicates = _rows(conn, "SELECT hash, count(*) FROM pggit.commits GROUP BY hash HAVING count(*) > 1")
    if duplicates:
        raise InvariantViolation("unique Trinity IDs", "duplicate commit hashes (hash, count)", duplicates)
    extra = list(extra_ids)
    repeated = [(i, n) for i, n in Counter(extra).items() if n > 1]
    if repeated:
        raise InvariantViolation("unique Trinity IDs", "IDs handed out more than once (id, times)", repeated)
    return conn.execute("SELECT count(*) FROM pggit.commits").fetchone()[0] + len(extra)


@_reads_one_snapshot
def acknowledged_commits_present(conn: psycopg.Connection, history: History, op: str = "commit") -> int:
    """Every commit a client was told succeeded is in pggit.commits, exactly once, with its message.

    ``op`` names the history's commit operations, recorded with the branch
    and message as arguments and the Trinity ID as result. Returns how many
    were checked.

    ```python fixture:sync_conn
    from pggit_chaos import checkers
    from pggit_chaos.client import commit
    from pggit_chaos.history import History

    sync_conn.autocommit = True
    history = History()
    with history.record(0, "commit", "main", "kept") as op:
        op.result = commit(sync_conn, "main", "kept")
    assert checkers.acknowledged_commits_present(sync_conn, history) == 1
    ```
    """
    acked = history.acknowledged(op)
    stored = dict(_rows(conn, "SELECT hash, message FROM pggit.commits WHERE hash = ANY(%s)",
                        ([o.result for o in acked],)))
    missing = [(o.worker, o.result, o.args) for o in acked if o.result not in stored]
    if missing:
        raise InvariantViolation("acknowledged commits present", "acknowledged but missing (worker, id, args)",
                                 missing)
    wrong = [(o.result, o.args[1], stored[o.result]) for o in acked
             if len(o.args) > 1 and stored[o.result] != o.args[1]]
    if wrong:
        raise InvariantViolation("acknowledged commits present", "message changed (id, sent, stored)", wrong)
    return len(acked)


@_reads_one_snapshot
def failed_commits_absent(conn: psycopg.Connection, history: History, op: str = "commit") -> int:
    """A commit whose call raised left nothing: no row carries its message.

    Workloads give each commit a unique message so a half-done commit is
    visible. Returns how many failed commits were checked.

    ```python fixture:sync_conn
    import psycopg
    import pytest
    from pggit_chaos import checkers
    from pggit_chaos.client import commit
    from pggit_chaos.history import History

    sync_conn.autocommit = True
    history = History()
    with pytest.raises(psycopg.Error), history.record(0, "commit", "main", "x" * 10_001):
        commit(sync_conn, "main", "x" * 10_001)
    assert checkers.failed_commits_absent(sync_conn, history) == 1
    ```
    """
    failed = history.failed(op)
    messages = [o.args[1] for o in failed if len(o.args) > 1]
    leftovers = _rows(conn, "SELECT hash, message FROM pggit.commits WHERE message = ANY(%s)", (messages,))
    if leftovers:
        raise InvariantViolation("failed commits absent", "a failed commit left a row (hash, message)", leftovers)
    return len(failed)


@_reads_one_snapshot
def versions_strictly_increasing(conn: psycopg.Connection, table: str) -> list[str]:
    """The table's history is complete and its versions only go up; the current version is the last one.

    Returns the versions in order.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.execute("CREATE TABLE t (a int)")
    sync_conn.execute("ALTER TABLE t ADD COLUMN b int")
    assert checkers.versions_strictly_increasing(sync_conn, "t") == ["1.0.0", "1.1.0"]
    ```
    """
    object_id, *current = _tracked_table(conn, table, "versions increase")
    steps = _rows(conn, "SELECT id, change_type, old_version, new_version FROM pggit.history "
                        "WHERE object_id = %s ORDER BY id", (object_id,))
    problems, previous = [], None
    for step_id, change, old, new in steps:
        if previous is not None and old != previous:
            problems.append((step_id, change, f"old_version {old} but previous step ended at {previous}"))
        if previous is not None and _semver(new) <= _semver(previous):
            problems.append((step_id, change, f"{previous} -> {new} does not increase"))
        previous = new
    expected_current = ".".join(map(str, current))
    if previous != expected_current:
        problems.append((object_id, "objects", f"current version {expected_current}, history ends at {previous}"))
    if problems:
        raise InvariantViolation("versions increase", f"history of {table!r} (history id, change, problem)", problems)
    return [new for _, _, _, new in steps]


def _semver(text: str | None) -> tuple[int, ...]:
    return tuple(int(p) for p in (text or "0.0.0").split("."))


@_reads_one_snapshot
def migration_all_or_nothing(conn: psycopg.Connection, version: str, effect_query: str) -> bool:
    """A migration is recorded as applied exactly when its effect is there.

    ``effect_query`` returns one boolean: is the migration's change visible?
    Returns whether it was applied.

    ```python fixture:sync_conn
    from pggit_chaos import checkers
    from pggit_chaos.client import apply_migration

    effect = "SELECT to_regclass('m1_t') IS NOT NULL"
    assert checkers.migration_all_or_nothing(sync_conn, "m1", effect) is False
    apply_migration(sync_conn, "m1", "CREATE TABLE m1_t (a int)")
    assert checkers.migration_all_or_nothing(sync_conn, "m1", effect) is True
    ```
    """
    recorded = conn.execute(
        "SELECT status FROM pggit.migrations WHERE version = %s", (version,)
    ).fetchone()
    applied = recorded is not None and recorded[0].upper() == "APPLIED"
    effect = bool(conn.execute(effect_query).fetchone()[0])
    if applied != effect:
        raise InvariantViolation(
            "migration all or nothing", f"migration {version!r}: recorded={recorded}, effect visible={effect}"
        )
    return applied


@_reads_one_snapshot
def integrity_ok(conn: psycopg.Connection) -> int:
    """pggit.verify_integrity() reports every check ok; returns how many checks ran.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    assert checkers.integrity_ok(sync_conn) >= 6
    ```
    """
    rows = _rows(conn, "SELECT check_name, ok, detail FROM pggit.verify_integrity()")
    bad = [r for r in rows if not r[1]]
    if bad:
        raise InvariantViolation("verify_integrity", "checks failed (check, ok, detail)", bad)
    if not rows:
        raise InvariantViolation("verify_integrity", "returned no checks at all")
    return len(rows)


@_reads_one_snapshot(hold_tables=True)
def drift_is(conn: psycopg.Connection, expected: Iterable[str] = ()) -> set[str]:
    """detect_drift() reports exactly the ``schema.table`` names given (none by default).

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.execute("CREATE TABLE t (a int)")
    assert checkers.drift_is(sync_conn) == set()
    ```
    """
    found = {f"{s}.{t}" for s, t, *_ in _rows(conn, "SELECT * FROM pggit.detect_drift()")}
    wanted = set(expected)
    if found != wanted:
        raise InvariantViolation(
            "drift", f"expected drift on {sorted(wanted)}, detect_drift reports {sorted(found)}; "
            "the tables they disagree on:", sorted(found ^ wanted))
    return found


@_reads_one_snapshot
def single_branch(conn: psycopg.Connection, name: str) -> dict:
    """Exactly one pggit.branches row carries ``name``; returns it as a dict.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    assert checkers.single_branch(sync_conn, "main")["status"] == "ACTIVE"
    ```
    """
    cur = conn.execute(
        "SELECT id, name, parent_branch_id, head_commit_hash, status FROM pggit.branches WHERE name = %s", (name,)
    )
    columns = [c.name for c in cur.description]
    rows = [dict(zip(columns, row)) for row in cur.fetchall()]
    if len(rows) != 1:
        raise InvariantViolation("single branch", f"{len(rows)} rows are named {name!r}, expected exactly 1", rows)
    return rows[0]


def no_error_with_sqlstate(history: History, sqlstate: str, op: str | None = None) -> int:
    """No operation (of kind ``op``, or of any kind) in the history failed with ``sqlstate``.

    Returns how many operations were looked at.

    ```python
    from pggit_chaos import checkers
    from pggit_chaos.history import History

    history = History()
    with history.record(0, "commit", "main", "m") as op:
        op.result = "TRN-1"
    assert checkers.no_error_with_sqlstate(history, "40P01") == 1
    ```
    """
    looked_at = history.of(op) if op else list(history.operations)
    hits = [(o.worker, o.op, o.args, o.error) for o in looked_at if o.sqlstate == sqlstate]
    if hits:
        raise InvariantViolation(f"no SQLSTATE {sqlstate}", f"{len(hits)} operation(s) failed with it "
                                 "(worker, op, args, error)", hits)
    return len(looked_at)


def refused_after_acknowledged(history: History, cutoff_op: str, op: str, sqlstate: str) -> int:
    """Every ``op`` that started after an acknowledged ``cutoff_op`` had returned was refused with ``sqlstate``.

    Once a client has been told that (say) a branch is deleted, no later
    request on it may succeed: linearizability, checked from the client side.
    Returns how many operations started after the cutoff.

    ```python fixture:sync_conn
    import psycopg
    import pytest
    from pggit_chaos import checkers
    from pggit_chaos.client import commit, create_branch
    from pggit_chaos.history import History

    sync_conn.autocommit = True
    create_branch(sync_conn, "doomed")
    history = History()
    with history.record(0, "delete", "doomed"):
        sync_conn.execute("SELECT pggit.delete_branch_simple('doomed')")
    with pytest.raises(psycopg.Error), history.record(1, "commit", "doomed", "late"):
        commit(sync_conn, "doomed", "late")
    assert checkers.refused_after_acknowledged(history, "delete", "commit", "55000") == 1
    ```
    """
    cutoffs = [o.ended for o in history.acknowledged(cutoff_op) if o.ended is not None]
    if not cutoffs:
        return 0
    cutoff = min(cutoffs)
    later = [o for o in history.of(op) if o.started > cutoff]
    wrong = [(o.worker, o.args, o.ok, o.sqlstate, o.result) for o in later
             if o.ok is not False or o.sqlstate != sqlstate]
    if wrong:
        raise InvariantViolation(
            "refused after acknowledged", f"{op} started after {cutoff_op} returned but was not refused with "
            f"{sqlstate} (worker, args, ok, sqlstate, result)", wrong)
    return len(later)


@_reads_one_snapshot
def recorded_hash_is_live(conn: psycopg.Connection, table: str) -> str:
    """The table's recorded ``objects.content_hash`` equals ``calculate_schema_hash`` of the live table.

    Returns the hash.

    ```python fixture:sync_conn
    from pggit_chaos import checkers
    from pggit_chaos.client import schema_hash

    sync_conn.execute("CREATE TABLE t (a int)")
    assert checkers.recorded_hash_is_live(sync_conn, "t") == schema_hash(sync_conn, "t")
    ```
    """
    object_id, recorded, live = _tracked_table(
        conn, table, "recorded hash is live", "o.id, o.content_hash, pggit.calculate_schema_hash(%(table)s)")
    if live is None or recorded != live:
        raise InvariantViolation("recorded hash is live", f"table {table!r} (object id {object_id}): "
                                 f"recorded content_hash {recorded}, calculate_schema_hash {live}")
    return live


_BUMP = {"MAJOR": lambda v: (v[0] + 1, 0, 0), "MINOR": lambda v: (v[0], v[1] + 1, 0),
         "PATCH": lambda v: (v[0], v[1], v[2] + 1)}


@_reads_one_snapshot
def version_steps_match_changes(conn: psycopg.Connection, table: str, expected: dict[str, int]) -> tuple[int, ...]:
    """The table's ALTER history has exactly ``expected`` rows per severity, each one bump of that size.

    ``expected`` maps ``MAJOR``/``MINOR``/``PATCH`` to the number of changes
    the workload applied (one history row per change, no more, no fewer).
    Returns the current version.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.execute("CREATE TABLE t (a int)")
    sync_conn.execute("ALTER TABLE t ADD COLUMN b int")
    sync_conn.execute("COMMENT ON TABLE t IS 'patched'")
    assert checkers.version_steps_match_changes(sync_conn, "t", {"MINOR": 1, "PATCH": 1}) == (1, 1, 1)
    ```
    """
    object_id, *current = _tracked_table(conn, table, "version steps")
    steps = _rows(conn, "SELECT id, severity, old_version, new_version FROM pggit.history "
                        "WHERE object_id = %s AND change_type = 'ALTER' ORDER BY id", (object_id,))
    problems = [(step_id, severity, f"{old} -> {new} is not one {severity} bump")
                for step_id, severity, old, new in steps
                if severity not in _BUMP or _semver(new) != _BUMP[severity](_semver(old))]
    counts = Counter(severity for _, severity, _, _ in steps)
    for severity in sorted(set(counts) | set(expected)):
        if counts.get(severity, 0) != expected.get(severity, 0):
            problems.append((None, severity, f"{counts.get(severity, 0)} history rows, "
                                             f"{expected.get(severity, 0)} changes applied"))
    if problems:
        raise InvariantViolation("version steps", f"history of {table!r} (history id, severity, problem)", problems)
    return tuple(current)


def trinity_sequence_increasing(ids_by_session: dict, pattern: str = r"^TRN-\d{14}-(\d{12})-[0-9a-f]{8}$") -> int:
    """Each session's Trinity IDs, in the order it got them, have strictly increasing sequence parts,
    and no sequence part was handed to two sessions.

    ``ids_by_session`` maps a session (any key) to its IDs in issue order. Returns how many IDs were checked.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    ids = [sync_conn.execute("SELECT pggit.generate_trinity_id()").fetchone()[0] for _ in range(5)]
    assert checkers.trinity_sequence_increasing({"one session": ids}) == 5
    ```
    """
    parts: dict[int, list] = {}
    problems = []
    for session, ids in ids_by_session.items():
        previous = None
        for trinity_id in ids:
            match = re.match(pattern, trinity_id)
            if match is None:
                problems.append((session, trinity_id, "not in the generated format"))
                continue
            number = int(match.group(1))
            if previous is not None and number <= previous:
                problems.append((session, trinity_id, f"sequence part {number} after {previous}"))
            previous = number
            parts.setdefault(number, []).append((session, trinity_id))
    problems += [(owners, number, "sequence part issued more than once") for number, owners in parts.items()
                 if len(owners) > 1]
    if problems:
        raise InvariantViolation("Trinity sequence increasing", "(session, id, problem)", problems)
    return sum(len(ids) for ids in ids_by_session.values())


@_reads_one_snapshot
def commit_rows_complete(conn: psycopg.Connection) -> int:
    """Every commit row is whole: hash, branch, message, author and time are all there, and every
    branch head is one of the commits. Returns how many commits were checked.

    ```python fixture:sync_conn
    from pggit_chaos import checkers
    from pggit_chaos.client import commit

    commit(sync_conn, "main", "whole")
    assert checkers.commit_rows_complete(sync_conn) == 1
    ```
    """
    partial = _rows(conn, "SELECT id, hash, branch_id, message IS NULL, author, committed_at FROM pggit.commits "
                          "WHERE hash IS NULL OR branch_id IS NULL OR message IS NULL OR author IS NULL "
                          "OR committed_at IS NULL ORDER BY id")
    if partial:
        raise InvariantViolation("commit rows complete", "commits with missing fields "
                                 "(id, hash, branch_id, message missing, author, committed_at)", partial)
    dangling = _rows(conn, "SELECT b.name, b.head_commit_hash FROM pggit.branches b "
                           "WHERE b.head_commit_hash IS NOT NULL AND NOT EXISTS "
                           "(SELECT 1 FROM pggit.commits c WHERE c.hash = b.head_commit_hash) ORDER BY b.name")
    if dangling:
        raise InvariantViolation("commit rows complete", "branch heads that are no commit (branch, head)", dangling)
    return conn.execute("SELECT count(*) FROM pggit.commits").fetchone()[0]


@_reads_one_snapshot
def tracked_tables_match_catalog(conn: psycopg.Connection) -> set[str]:
    """pggit's active table objects are exactly the user tables that exist (``schema.table``).

    A table pggit does not know, or a live object whose table is gone, means
    the DDL history and the catalog disagree. Returns the tables.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.execute("CREATE TABLE t (a int)")
    assert checkers.tracked_tables_match_catalog(sync_conn) == {"public.t"}
    ```
    """
    live = {f"{s}.{t}" for s, t in _rows(conn, _USER_TABLES)}
    tracked = {f"{s}.{t}" for s, t in _rows(conn, "SELECT schema_name, object_name FROM pggit.objects "
                                                  "WHERE object_type = 'TABLE' AND is_active")}
    if live != tracked:
        raise InvariantViolation(
            "tracked tables match the catalog", "(table, exists, tracked)",
            sorted((name, name in live, name in tracked) for name in live ^ tracked))
    return live


# ---------------------------------------------------------------------------
# Composed checkers: the sets most tests end with
# ---------------------------------------------------------------------------

# A branch name pggit's contract refuses (git refuses ``*`` in a ref), so it can stand for "every branch".
EVERY_BRANCH = "*"


@dataclass(frozen=True)
class Consistent:
    """What ``pggit_consistent`` verified: how many integrity checks and commits, each branch's chain,
    and how many acknowledged and failed commits of the history it compared.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    result = checkers.pggit_consistent(sync_conn)
    assert result == checkers.Consistent(result.integrity_checks, commits=0, chains={"main": []})
    ```
    """

    integrity_checks: int
    commits: int
    chains: dict[str, list[str]]
    acknowledged: int = 0
    failed: int = 0


def _part(name: str, check, *args, **kwargs):
    """Run one checker of a composed one; a violation is re-raised naming that part."""
    try:
        return check(*args, **kwargs)
    except InvariantViolation as violation:
        raise InvariantViolation(f"{name} ({violation.invariant})", violation.detail, violation.rows) from violation


@_reads_one_snapshot
def pggit_consistent(conn: psycopg.Connection, history: History | None = None,
                     branch: str | Iterable[str] = "main", *, op: str = "commit") -> Consistent:
    """pggit's commit metadata is whole and agrees with what the clients were told.

    Runs, in order: ``integrity_ok``, ``commit_rows_complete``,
    ``unique_trinity_ids`` (with the acknowledged commits' IDs), then
    ``linear_chain_invariant`` for ``branch`` (a name, several, or
    ``EVERY_BRANCH``), and with a ``history`` ``acknowledged_commits_present``
    and ``failed_commits_absent`` for its ``op`` operations. The first part
    that fails raises ``InvariantViolation`` named after it, e.g.
    ``"linear_chain_invariant('main') (linear chain)"``.

    ```python fixture:sync_conn
    from pggit_chaos import checkers
    from pggit_chaos.client import commit
    from pggit_chaos.history import History

    sync_conn.autocommit = True
    history = History()
    with history.record(0, "commit", "main", "first") as op:
        op.result = commit(sync_conn, "main", "first")
    result = checkers.pggit_consistent(sync_conn, history)
    assert result.chains == {"main": [op.result]} and result.acknowledged == 1
    ```
    """
    checks = _part("integrity_ok", integrity_ok, conn)
    commits = _part("commit_rows_complete", commit_rows_complete, conn)
    acknowledged_ids = [o.result for o in history.acknowledged(op)] if history is not None else []
    _part("unique_trinity_ids", unique_trinity_ids, conn, extra_ids=acknowledged_ids)
    if branch == EVERY_BRANCH:
        branches = [name for (name,) in _rows(conn, "SELECT name FROM pggit.branches ORDER BY name")]
    else:
        branches = [branch] if isinstance(branch, str) else list(branch)
    chains = {name: _part(f"linear_chain_invariant({name!r})", linear_chain_invariant, conn, name) for name in branches}
    if history is None:
        return Consistent(checks, commits, chains)
    acknowledged = _part("acknowledged_commits_present", acknowledged_commits_present, conn, history, op)
    failed = _part("failed_commits_absent", failed_commits_absent, conn, history, op)
    return Consistent(checks, commits, chains, acknowledged, failed)


@_reads_one_snapshot
def table_consistent(conn: psycopg.Connection, table: str, changes: dict[str, int] | None = None) -> list[str]:
    """One tracked table's versioning is whole: its history only goes up, its recorded hash is the
    live one, and (given ``changes``, as for ``version_steps_match_changes``) it has exactly one
    history row per change applied.

    Returns the table's versions in order; a failing part raises
    ``InvariantViolation`` named after it.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.execute("CREATE TABLE t (a int)")
    sync_conn.execute("ALTER TABLE t ADD COLUMN b int")
    assert checkers.table_consistent(sync_conn, "t", {"MINOR": 1}) == ["1.0.0", "1.1.0"]
    ```
    """
    versions = _part(f"versions_strictly_increasing({table!r})", versions_strictly_increasing, conn, table)
    if changes is not None:
        _part(f"version_steps_match_changes({table!r})", version_steps_match_changes, conn, table, changes)
    _part(f"recorded_hash_is_live({table!r})", recorded_hash_is_live, conn, table)
    return versions


@_reads_one_snapshot(hold_tables=True)
def schema_consistent(conn: psycopg.Connection) -> set[str]:
    """pggit's record of the schema agrees with the catalog: it tracks exactly the tables that exist,
    each one's versioning is whole (``table_consistent``), nothing drifted, and integrity holds.

    Returns the tracked tables; a failing part raises ``InvariantViolation`` named after it.

    ```python fixture:sync_conn
    from pggit_chaos import checkers

    sync_conn.execute("CREATE TABLE t (a int)")
    assert checkers.schema_consistent(sync_conn) == {"public.t"}
    ```
    """
    tables = _part("tracked_tables_match_catalog", tracked_tables_match_catalog, conn)
    for table in sorted(tables):
        table_consistent(conn, table)
    _part("drift_is", drift_is, conn)
    _part("integrity_ok", integrity_ok, conn)
    return tables


def fault_struck(history: History, fault: str, op: str | None = None) -> list[Operation]:
    """The history holds fault ``fault``, it completed, and worker operations (named ``op``, or any)
    were running while it was in force: the fault really hit the workload.

    Returns those operations.

    ```python
    from pggit_chaos import checkers
    from pggit_chaos.history import History

    history = History()
    with history.record(0, "commit", "main", "hit") as op, history.fault("crash"):
        op.result = "TRN-1"
    assert checkers.fault_struck(history, "crash", "commit") == [op]
    ```
    """
    faults = history.faults(fault)
    if not faults:
        raise InvariantViolation("fault struck", f"no {fault!r} fault in the history",
                                 [(f.op, f.args) for f in history.faults()])
    incomplete = [(f.op, f.args, f.error) for f in faults if f.ok is not True]
    if incomplete:
        raise InvariantViolation("fault struck", f"a {fault!r} fault did not complete (fault, args, error)", incomplete)
    hit = [o for f in faults for o in history.during(f, op)]
    if not hit:
        raise InvariantViolation("fault struck", f"no {op or 'worker'} operation was running during the "
                                 f"{fault!r} fault(s) (started, ended)", [(f.started, f.ended) for f in faults])
    return hit
