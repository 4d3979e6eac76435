"""Isolation levels: every writing pggit function and documented workflow, raced under each isolation level.

The contract ("Every isolation level"): each writing function, and each
documented sequence of calls in one transaction, is correct under READ
COMMITTED, REPEATABLE READ and SERIALIZABLE when racing itself and the
others. It takes effect exactly once, or fails with a retryable SQLSTATE
(40001) leaving nothing behind; user SQL passed to pggit never runs twice for
one successful call; documented workflows never deadlock with each other
(a 40P01 between two of them is a bug: pggit takes its locks in one order).

Workload: two sessions, a and b, each running one operation (a pggit call,
a DDL statement that pggit tracks, or a documented workflow of two calls) in
a transaction at one isolation level. Fault: a forced schedule. In
``interleaved``, both transactions take their snapshot, then their steps
alternate (a's first), with sequential scans only, and a step that waits on a
lock is seen waiting before the other session goes on; in ``a_commits_first``, b takes its snapshot,
then a runs and commits, then b runs on its old snapshot. History: each
session's transaction as one operation, with the step results or the
SQLSTATE. Oracle: the same two operations run one after the other, in both
orders, each in a namespace of its own (a schema and a branch prefix); the
dangerous pairs' two schedules at one level share one oracle, computed by the
same pggit template.
Invariants: the racing pair ends like one of the serial orders, or the
loser failed with 40001 and the state is the survivor's alone (both failed:
the state is untouched); side-effect rows of migration SQL match the
successful applies; ``schema_consistent`` and ``pggit_consistent`` over every
branch.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.history import History, Operation
from pggit_chaos.monitor import TransactionMonitor
from pggit_chaos.profiles import share_of_examples
from psycopg import IsolationLevel, sql

pytestmark = [pytest.mark.chaos, pytest.mark.isolation, pytest.mark.concurrent]

RETRYABLE = "40001"
DEADLOCK = "40P01"
ISOLATION_LEVELS = {
    "read_committed": IsolationLevel.READ_COMMITTED,
    "repeatable_read": IsolationLevel.REPEATABLE_READ,
    "serializable": IsolationLevel.SERIALIZABLE,
}
ORDERS = ("interleaved", "a_commits_first")
# How long a step may take before the schedule gives up on it (a hang, not a lock wait).
STEP_TIMEOUT = 60.0


# ---------------------------------------------------------------------------
# The operations: each a list of steps run in one transaction
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """One namespace of the test database: schema ``iso<n>`` and the branch prefix ``iso<n>/``."""

    n: int

    @property
    def token(self) -> str:
        return f"iso{self.n}"

    def branch(self, name: str) -> str:
        return f"{self.token}/{name}"

    def table(self, name: str) -> str:
        return f"{self.token}.{name}"

    def setup(self, conn: psycopg.Connection) -> None:
        """The starting state every operation expects: a tracked table with a row and a check not yet
        validated, a side-effect
        table for migration SQL, a branch with one commit, and an applied migration with down SQL."""
        t = self.token
        conn.execute(f"""
            CREATE SCHEMA {t};
            CREATE TABLE {t}.acc (id int PRIMARY KEY, note text);
            INSERT INTO {t}.acc VALUES (1, 'one');
            ALTER TABLE {t}.acc ADD CONSTRAINT acc_id_check CHECK (id > 0) NOT VALID;
            CREATE TABLE {t}.side (k text PRIMARY KEY);
        """)
        conn.execute("SELECT pggit.create_branch(%s)", (self.branch("feat"),))
        conn.execute("SELECT pggit.commit_changes(%s, 'base')", (self.branch("feat"),))
        conn.execute("SELECT pggit.apply_migration(%s, 'SELECT 1', %s)",
                     (self.branch("down"), f"INSERT INTO {t}.side VALUES ('down')"))


Step = Callable[[psycopg.Connection, Space, int], Any]


def _call(query: str, *args: Callable[[Space, int], Any]) -> Step:
    """A step ``SELECT <query>`` whose parameters are computed from the namespace and the worker."""
    def step(conn: psycopg.Connection, space: Space, worker: int) -> Any:
        row = conn.execute(query, tuple(arg(space, worker) for arg in args)).fetchone()
        return row[0] if row else None
    return step


def _ddl(template: str) -> Step:
    """A DDL step; ``{t}`` is the namespace's schema, ``{w}`` the worker."""
    def step(conn: psycopg.Connection, space: Space, worker: int) -> Any:
        conn.execute(template.format(t=space.token, w=worker))
        return None
    return step


def _up_sql(space: Space, worker: int) -> str:
    return f"INSERT INTO {space.token}.side VALUES ('up')"


COMMIT = _call("SELECT pggit.commit_changes(%s, %s)", lambda s, w: s.branch("feat"), lambda s, w: f"w{w}")
OPERATIONS: dict[str, tuple[Step, ...]] = {
    # Every writing function.
    "commit": (COMMIT,),
    "commit_new_branch": (_call("SELECT pggit.commit_changes(%s, %s)", lambda s, w: s.branch("auto"),
                                lambda s, w: f"w{w}"),),
    "create_branch": (_call("SELECT pggit.create_branch(%s)", lambda s, w: s.branch("new")),),
    "create_branch_from": (_call("SELECT pggit.create_branch(%s, %s)", lambda s, w: s.branch(f"from{w}"),
                                 lambda s, w: s.branch("feat")),),
    "delete_branch": (_call("SELECT pggit.delete_branch_simple(%s)", lambda s, w: s.branch("feat")),),
    "apply_migration": (_call("SELECT pggit.apply_migration(%s, %s, 'SELECT 1')", lambda s, w: s.branch("up"),
                              _up_sql),),
    "rollback_migration": (_call("SELECT pggit.rollback_migration(%s)", lambda s, w: s.branch("down")),),
    "create_data_branch": (_call("SELECT pggit.create_data_branch(%s, 'main', %s)", lambda s, w: s.table("acc"),
                                 lambda s, w: s.branch("feat")),),
    # DDL that pggit tracks (increment_version through the event triggers).
    "add_column": (_ddl("ALTER TABLE {t}.acc ADD COLUMN c{w} int"),),
    "create_index": (_ddl("CREATE INDEX acc_w{w}_idx ON {t}.acc (note)"),),
    "create_table": (_ddl("CREATE TABLE {t}.fresh (id int)"),),
    "alter_new_table": (_ddl("ALTER TABLE {t}.fresh ADD COLUMN c{w} int"),),
    "drop_new_table": (_ddl("DROP TABLE {t}.fresh"),),
    # DDL on what a tracked table is made of: each updates a catalog row of the table's other than pg_class.
    "validate_check": (_ddl("ALTER TABLE {t}.acc VALIDATE CONSTRAINT acc_id_check"),),
    "rename_check": (_ddl("ALTER TABLE {t}.acc RENAME CONSTRAINT acc_id_check TO acc_id_check{w}"),),
    "rename_column": (_ddl("ALTER TABLE {t}.acc RENAME COLUMN note TO note{w}"),),
    # Documented workflows: several calls in one transaction (docs/reference/pggit.md, "Quick tour").
    "branch_then_commit": (_call("SELECT pggit.create_branch(%s, %s)", lambda s, w: s.branch(f"wf{w}"),
                                 lambda s, w: s.branch("feat")),
                           _call("SELECT pggit.commit_changes(%s, 'first')", lambda s, w: s.branch(f"wf{w}"))),
    "commit_then_branch": (COMMIT,
                           _call("SELECT pggit.create_branch(%s, %s)", lambda s, w: s.branch(f"tour{w}"),
                                 lambda s, w: s.branch("feat"))),
    "branch_then_data_branch": (_call("SELECT pggit.create_branch(%s)", lambda s, w: s.branch(f"data{w}")),
                                _call("SELECT pggit.create_data_branch(%s, 'main', %s)",
                                      lambda s, w: s.table("acc"), lambda s, w: s.branch(f"data{w}"))),
    "migrate_then_commit": (_call("SELECT pggit.apply_migration(%s, %s, 'SELECT 1')", lambda s, w: s.branch("up"),
                                  _up_sql),
                            COMMIT),
}


# ---------------------------------------------------------------------------
# Outcomes and states
# ---------------------------------------------------------------------------


def _normalize(value: Any, space: Space) -> Any:
    """A step result with what differs between namespaces and runs taken out (IDs, the namespace)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return "<id>"
    if isinstance(value, str):
        return "<trinity id>" if value.startswith("TRN-") else value.replace(space.token, "N")
    return repr(value)


@dataclass(frozen=True)
class Outcome:
    """How one session's transaction ended: its step results and committed, or the SQLSTATE it failed with."""

    results: tuple
    sqlstate: str | None = None

    @property
    def committed(self) -> bool:
        return self.sqlstate is None


def _run_serially(conn: psycopg.Connection, space: Space, op: str, worker: int,
                  isolation: IsolationLevel) -> Outcome:
    """One operation alone, in one transaction, on a connection of its own."""
    conn.isolation_level = isolation
    results: list[Any] = []
    try:
        with conn.transaction():
            for step in OPERATIONS[op]:
                results.append(_normalize(step(conn, space, worker), space))
    except psycopg.Error as error:
        return Outcome(tuple(results), error.sqlstate)
    return Outcome(tuple(results))


def _state(conn: psycopg.Connection, space: Space) -> dict[str, list]:
    """Everything the operations can change in one namespace, with the namespace's name taken out."""
    queries = {
        "branches": """
            SELECT b.name, b.status, p.name, (SELECT count(*) FROM pggit.commits c WHERE c.branch_id = b.id)
              FROM pggit.branches b LEFT JOIN pggit.branches p ON p.id = b.parent_branch_id
             WHERE starts_with(b.name, %(prefix)s) ORDER BY b.name""",
        "migrations": """
            SELECT version, status, up_sql, down_sql,
                   checksum = encode(sha256(convert_to(up_sql, 'UTF8')), 'hex') FROM pggit.migrations
             WHERE starts_with(version, %(prefix)s) ORDER BY version""",
        "objects": """
            SELECT o.object_name, o.is_active, o.version_major, o.version_minor, o.version_patch,
                   -- A data-branch copy's index names hold the namespace, and so does its hash.
                   CASE WHEN strpos(o.object_name, '__') = 0 THEN o.content_hash END,
                   (SELECT array_agg(h.change_type || ' ' || h.severity || ' ' || h.new_version ORDER BY h.id)
                      FROM pggit.history h WHERE h.object_id = o.id)
              FROM pggit.objects o WHERE o.schema_name = %(schema)s ORDER BY o.object_name, o.id""",
        "tables": """
            SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = %(schema)s AND c.relkind = 'r' GROUP BY c.relname ORDER BY c.relname""",
    }
    params = {"prefix": space.branch(""), "schema": space.token}
    state = {name: [tuple(_normalize(v, space) if isinstance(v, str) else v for v in row)
                    for row in conn.execute(query, params).fetchall()]
             for name, query in queries.items()}
    state["side effects"] = [k for (k,) in conn.execute(
        sql.SQL("SELECT k FROM {} ORDER BY k").format(sql.Identifier(space.token, "side"))).fetchall()]
    return state


@dataclass
class Serial:
    """The oracle: both operations one after the other, a then b and b then a, and the states between."""

    initial: dict
    a_alone: Outcome
    b_after_a: Outcome
    after_a: dict
    after_ab: dict
    b_alone: Outcome
    a_after_b: Outcome
    after_b: dict
    after_ba: dict


def _serial(dsn: str, spaces: Iterator[Space], op_a: str, op_b: str, isolation: IsolationLevel) -> Serial:
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn) as conn:
        ab, ba = next(spaces), next(spaces)
        ab.setup(admin)
        ba.setup(admin)
        initial = _state(admin, ab)
        a_alone = _run_serially(conn, ab, op_a, 0, isolation)
        after_a = _state(admin, ab)
        b_after_a = _run_serially(conn, ab, op_b, 1, isolation)
        after_ab = _state(admin, ab)
        b_alone = _run_serially(conn, ba, op_b, 1, isolation)
        after_b = _state(admin, ba)
        a_after_b = _run_serially(conn, ba, op_a, 0, isolation)
        after_ba = _state(admin, ba)
    return Serial(initial, a_alone, b_after_a, after_a, after_ab, b_alone, a_after_b, after_b, after_ba)


# ---------------------------------------------------------------------------
# The forced schedule
# ---------------------------------------------------------------------------


@dataclass
class _Session:
    """One racing session: its own connection and thread, its transaction recorded as one operation."""

    worker: int
    op: str
    space: Space
    conn: psycopg.Connection
    history: History
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="isolation"))
    results: list = field(default_factory=list)
    error: psycopg.Error | None = None
    record: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    entry: Operation | None = None
    waited: bool = False

    def begin(self) -> None:
        self.entry = self.record.enter_context(self.history.record(self.worker, self.op, self.space.token))
        # The transaction's snapshot (REPEATABLE READ, SERIALIZABLE) is taken here.
        self.conn.execute("SELECT pg_current_snapshot()")

    def step(self, index: int) -> None:
        if self.error is not None:
            return
        try:
            self.results.append(_normalize(OPERATIONS[self.op][index](self.conn, self.space, self.worker),
                                           self.space))
        except psycopg.Error as error:
            self.error = error
            self.conn.rollback()

    def end(self) -> None:
        if self.error is None:
            try:
                self.conn.commit()
            except psycopg.Error as error:
                self.error = error
        with contextlib.suppress(psycopg.Error):
            if self.error is not None:
                self.record.__exit__(type(self.error), self.error, self.error.__traceback__)
            else:
                self.entry.result = tuple(self.results)
                self.record.close()

    @property
    def outcome(self) -> Outcome:
        return Outcome(tuple(self.results), self.error.sqlstate if self.error is not None else None)


def _schedule(order: str, op_a: str, op_b: str) -> list[tuple[int, str, int]]:
    """The events in order: (worker, "begin" | "step" | "end", step index)."""
    steps_a = [(0, "step", i) for i in range(len(OPERATIONS[op_a]))]
    steps_b = [(1, "step", i) for i in range(len(OPERATIONS[op_b]))]
    if order == "a_commits_first":
        return [(1, "begin", 0), (0, "begin", 0), *steps_a, (0, "end", 0), *steps_b, (1, "end", 0)]
    alternating = [event for pair in itertools.zip_longest(steps_a, steps_b) for event in pair if event]
    return [(0, "begin", 0), (1, "begin", 0), *alternating, (0, "end", 0), (1, "end", 0)]


def _race(dsn: str, space: Space, op_a: str, op_b: str, isolation: IsolationLevel, order: str,
          history: History) -> tuple[_Session, _Session]:
    """Run the two operations in ``space`` on the forced schedule; each event runs until it is over
    or its session is seen waiting on a lock, then the next event starts."""
    with contextlib.ExitStack() as stack:
        monitor = stack.enter_context(TransactionMonitor(dsn))
        sessions = []
        for worker, op in enumerate((op_a, op_b)):
            conn = stack.enter_context(psycopg.connect(dsn, autocommit=True))
            if order == "interleaved":
                # Sequential scans only: an index scan hides the second version of a catalog row that a
                # stale snapshot sees, a sequential scan shows it (it once broke DDL tracking).
                conn.execute("SET enable_indexscan = off")
                conn.execute("SET enable_bitmapscan = off")
            conn.autocommit = False
            conn.isolation_level = isolation
            session = _Session(worker, op, space, conn, history)
            stack.callback(session.pool.shutdown)
            sessions.append(session)
        pending: list[Future] = []
        for worker, kind, index in _schedule(order, op_a, op_b):
            session = sessions[worker]
            call = {"begin": session.begin, "end": session.end}.get(kind) or (lambda s=session, i=index: s.step(i))
            future = session.pool.submit(call)
            pending.append(future)
            try:
                monitor.wait_until_blocked(session.conn.info.backend_pid, timeout=STEP_TIMEOUT, finished=future.done)
                session.waited = True
            except TimeoutError:
                if not future.done():
                    raise
        for future in pending:
            future.result(timeout=STEP_TIMEOUT)
    return sessions[0], sessions[1]


# Serial oracles kept for reuse, by (server, pggit template and its OID, op_a, op_b, isolation level): a template
# rebuilt from another script (a mutant) has a new OID, so an oracle only ever serves the pggit that computed it.
_ORACLES: dict[tuple, Serial] = {}


def _check_race(dsn: str, spaces: Iterator[Space], op_a: str, op_b: str, isolation: IsolationLevel,
                order: str, template: tuple[str, str] | None = None) -> History:
    """Race ``op_a`` (session a) against ``op_b`` (session b) and check the outcome against the serial oracle.

    With ``template`` (the server's address and the pggit template's name), the oracle of the pair at this
    level is computed once for every test that names the same template and kept (``_ORACLES``)."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        key = None
        if template is not None:
            server, name = template
            [(oid,)] = admin.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchall()
            key = (server, name, oid, op_a, op_b, isolation)
        serial = _ORACLES.get(key) if key else None
        if serial is None:
            serial = _serial(dsn, spaces, op_a, op_b, isolation)
            if key:
                _ORACLES[key] = serial
        space = next(spaces)
        space.setup(admin)
        # A kept oracle started where this race starts: pggit set up the namespace the same way.
        assert _state(admin, space) == serial.initial, f"{space.token} starts unlike the oracle's namespaces"
        history = History()
        a, b = _race(dsn, space, op_a, op_b, isolation, order, history)
        state = _state(admin, space)
        where = f"{op_a} (a) against {op_b} (b), {isolation.name}, {order}, in {space.token}"

        assert history.overlapping(), f"{where}: the two transactions did not overlap\n{history.dump()}"
        for session in (a, b):
            assert session.outcome.sqlstate != DEADLOCK, (
                f"{where}: session {'ab'[session.worker]} deadlocked: pggit must take its locks in one order\n"
                f"{history.dump()}")

        if a.outcome.committed and b.outcome.committed:
            serial_orders = {"a then b": ((serial.a_alone, serial.b_after_a), serial.after_ab),
                             "b then a": ((serial.a_after_b, serial.b_alone), serial.after_ba)}
        elif b.outcome.committed:
            serial_orders = {"b alone": ((a.outcome, serial.b_alone), serial.after_b)}
        elif a.outcome.committed:
            serial_orders = {"a alone": ((serial.a_alone, b.outcome), serial.after_a)}
        else:
            serial_orders = {"neither": ((a.outcome, b.outcome), serial.initial)}
        for session, serial_outcomes in ((a, (serial.a_alone, serial.a_after_b)), (b, (serial.b_alone, serial.b_after_a))):
            outcome = session.outcome
            # PostgreSQL's own race of two CREATE TABLE of one name: a unique violation in its catalog.
            catalog_race = outcome.sqlstate == "23505" and session.error.diag.schema_name == "pg_catalog"
            if not outcome.committed and outcome not in serial_outcomes and not catalog_race:
                assert outcome.sqlstate == RETRYABLE, (
                    f"{where}: session {'ab'[session.worker]} failed with {outcome.sqlstate}, which no serial "
                    f"order gives and which is not retryable (40001): {session.error}\n"
                    f"serial outcomes: {serial_outcomes}\n{history.dump()}")
        matches = [name for name, (outcomes, expected_state) in serial_orders.items()
                   if (a.outcome if not a.outcome.committed else outcomes[0]) == a.outcome
                   and (b.outcome if not b.outcome.committed else outcomes[1]) == b.outcome
                   and expected_state == state]
        assert matches, (
            f"{where}: the race ended like no serial order.\nraced: a={a.outcome} b={b.outcome}\n"
            f"state: {state}\nserial a then b: a={serial.a_alone} b={serial.b_after_a} state={serial.after_ab}\n"
            f"serial b then a: b={serial.b_alone} a={serial.a_after_b} state={serial.after_ba}\n"
            f"a alone: {serial.after_a}\nb alone: {serial.after_b}\n{history.dump()}")

        checkers.schema_consistent(admin)
        checkers.pggit_consistent(admin, branch=checkers.EVERY_BRANCH)
    return history


@pytest.fixture
def spaces() -> Iterator[Space]:
    """Fresh namespaces for one test's database."""
    return (Space(n) for n in itertools.count(1))


# ---------------------------------------------------------------------------
# The pairs that broke pggit, at every level and in both orders
# ---------------------------------------------------------------------------

# Each of these pairs once ended in a non-retryable error, user SQL run twice, or a lost record.
DANGEROUS_PAIRS = [
    ("apply_migration", "apply_migration"),
    ("rollback_migration", "rollback_migration"),
    ("create_table", "alter_new_table"),
    ("create_table", "drop_new_table"),
    ("migrate_then_commit", "migrate_then_commit"),
    ("create_data_branch", "create_data_branch"),
    ("add_column", "add_column"),
    ("validate_check", "rename_check"),
    ("rename_column", "create_data_branch"),
]


def _dangerous_cases() -> list:
    """Every pair at every level in both orders. Each pair stands in the smoke tier once (its other cases are
    ``variant``s), at REPEATABLE READ, where one side's snapshot predates the other's work for the whole
    transaction, the orders taking turns over the pairs: standing at READ COMMITTED, two of the catalog's mutants
    (a drop trusting a stale snapshot, a trackability check seeing two catalog rows) got through the smoke tier."""
    levels, cases = list(ISOLATION_LEVELS), []
    for i, (a, b) in enumerate(DANGEROUS_PAIRS):
        standing = ("repeatable_read", ORDERS[i % len(ORDERS)])
        for level in levels:
            for order in ORDERS:
                # The cases of one pair share a worker (their xdist group), so its two orders at a level share one
                # serial oracle.
                marks = [pytest.mark.xdist_group(f"pair-{a}-{b}")]
                if (level, order) != standing:
                    marks.append(pytest.mark.variant)
                cases.append(pytest.param(a, b, level, order, marks=marks, id=f"{a}-{b}-{level}-{order}"))
    return cases


@pytest.mark.parametrize(("op_a", "op_b", "isolation", "order"), _dangerous_cases())
def test_dangerous_pairs_end_like_a_serial_order_or_with_a_retryable_error(db_connection_string, spaces, pg_server,
                                                                          pggit_template, op_a, op_b, isolation,
                                                                          order):
    """Two applies (or rollbacks) of one migration version, or DDL on a table newer than the DDL's
    snapshot: the pair ends like a serial order, or the loser gets 40001 and leaves nothing; the
    migration's side-effect SQL ran once per successful apply."""
    _check_race(db_connection_string, spaces, op_a, op_b, ISOLATION_LEVELS[isolation], order,
                template=(pg_server.dsn(), pggit_template))


def test_racing_applies_of_one_version_run_the_up_sql_once_and_the_loser_can_retry(db_connection_string, spaces):
    """Under REPEATABLE READ, b took its snapshot before a applied version v: b's apply waits for a,
    then fails with 40001 without running the up SQL again; b's retry returns false. Exactly one
    side-effect row, and the positive control: a's apply did run it."""
    space = next(spaces)
    up = _up_sql(space, 0)
    with psycopg.connect(db_connection_string, autocommit=True) as admin:
        space.setup(admin)
        with psycopg.connect(db_connection_string) as a, psycopg.connect(db_connection_string) as b, \
                TransactionMonitor(db_connection_string) as monitor:
            for conn in (a, b):
                conn.isolation_level = IsolationLevel.REPEATABLE_READ
            b.execute("SELECT pg_current_snapshot()")
            assert a.execute("SELECT pggit.apply_migration(%s, %s)", (space.branch("up"), up)).fetchone()[0] is True
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(b.execute, "SELECT pggit.apply_migration(%s, %s)", (space.branch("up"), up))
                wait = monitor.wait_until_blocked(b.info.backend_pid, finished=waiting.done)
                a.commit()
                with pytest.raises(psycopg.Error) as refused:
                    waiting.result(timeout=STEP_TIMEOUT)
            assert a.info.backend_pid in wait.blocking_pids
            assert refused.value.sqlstate == RETRYABLE, refused.value
            b.rollback()
            assert b.execute("SELECT pggit.apply_migration(%s, %s)", (space.branch("up"), up)).fetchone()[0] is False
            b.commit()
        assert admin.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(space.token, "side"))).fetchone()[0] == 1
        assert _state(admin, space)["side effects"] == ["up"]


# ---------------------------------------------------------------------------
# The whole matrix
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("isolation", list(ISOLATION_LEVELS), ids=list(ISOLATION_LEVELS))
# A third of the profile's examples for each of the six level-and-order cases (5 in dev and gate, 166 in
# thorough): every example is a real race of two sessions, and the whole matrix runs weekly (below).
@share_of_examples(3, 5)
@given(pair=st.tuples(st.sampled_from(sorted(OPERATIONS)), st.sampled_from(sorted(OPERATIONS))))
def test_any_two_operations_race_like_a_serial_order(db_connection_string, spaces, isolation, order, pair):
    """Hypothesis draws two operations (functions, tracked DDL, documented workflows); raced at this
    isolation level in this order, they end like a serial order or with a retryable error."""
    _check_race(db_connection_string, spaces, *pair, ISOLATION_LEVELS[isolation], order)


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("isolation", list(ISOLATION_LEVELS), ids=list(ISOLATION_LEVELS))
@pytest.mark.parametrize("op_a", sorted(OPERATIONS))
def test_every_operation_against_every_other(db_connection_string, spaces, op_a, isolation, order):
    """The full matrix: ``op_a`` against every operation, at this level and in this order."""
    for op_b in sorted(OPERATIONS):
        _check_race(db_connection_string, spaces, op_a, op_b, ISOLATION_LEVELS[isolation], order)
