"""Property-based tests of pggit's data branches, and a model-based test of pggit as a whole.

``TestPggitModel`` drives every public function, DDL, paused tracking,
transactions with savepoints and a second session at random against a
Python model of what pggit should hold, about 50 steps a run, and after
every step checks that the database and the model agree. A disagreement
shrinks to the shortest sequence of steps that shows it. It runs
smoke-sized in every tier; ``TestPggitModelSoak`` runs it weekly-size.
"""

from __future__ import annotations

import contextlib
import copy
import string
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from pggit_chaos import checkers
from pggit_chaos.generators import (
    SYSTEM_COLUMN_NAMES,
    commit_message,
    data_row,
    git_branch_name,
    invalid_branch_name,
    pg_identifier,
    pg_text,
    table_definition,
)
from pggit_chaos.profiles import share_of_examples
from pggit_chaos.snapshot import DatabaseStateSnapshot
from psycopg import sql

try:  # the generator of every kind of schema object, when this checkout has it
    from pggit_chaos.schema_ddl import ddl_sequences
    from pggit_chaos.schema_fragments import schema_fragments
except ImportError:
    ddl_sequences = schema_fragments = None

pytestmark = [pytest.mark.chaos, pytest.mark.property]

MAX_IDENTIFIER_BYTES = 63

# ---------------------------------------------------------------------------
# Data branches
# ---------------------------------------------------------------------------

# Table names that only work quoted: capitals, spaces, quotes, dots, semicolons, non-ASCII.
_QUOTED_NAME_CHARS = string.ascii_letters + string.digits + " _\"'.;-$()éü日"
table_name = st.one_of(pg_identifier(max_length=30), st.text(_QUOTED_NAME_CHARS, min_size=1, max_size=25))


def _fits(table: str, branch: str) -> bool:
    return len(f"{table}__{branch}".encode()) <= MAX_IDENTIFIER_BYTES


def _rows_differ(conn: psycopg.Connection, left: sql.Composable, right: sql.Composable) -> int:
    """How many rows are in one table and not the other, duplicates counted."""
    return conn.execute(sql.SQL(
        "SELECT count(*) FROM ((TABLE {a} EXCEPT ALL TABLE {b}) UNION ALL (TABLE {b} EXCEPT ALL TABLE {a})) d"
    ).format(a=left, b=right)).fetchone()[0]


def _count(conn: psycopg.Connection, table: sql.Composable) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]


def _data_branch(conn: psycopg.Connection, table: sql.Composable, from_branch: str, to_branch: str) -> str:
    return conn.execute("SELECT pggit.create_data_branch(%s, %s, %s)",
                        (table.as_string(conn), from_branch, to_branch)).fetchone()[0]


@given(table=table_definition(max_columns=4, name=table_name), branch=git_branch_name(), data=st.data())
def test_a_data_branch_copies_exactly_the_rows_and_is_idempotent(fresh_connection, table, branch, data):
    """create_data_branch makes <table>__<branch> with the same structure and exactly the same rows
    (duplicates and NULLs included); calling it again returns the same name and changes nothing."""
    assume(_fits(table.name, branch))
    rows = data.draw(st.lists(data_row(table), max_size=6), label="rows")
    source = table.qualified_name()
    with fresh_connection() as conn:
        conn.execute(table.create_sql())
        with conn.cursor() as cur:
            cur.executemany(table.insert_sql(), rows + rows[:1])  # one duplicate row, when there are rows
        name = _data_branch(conn, source, "main", branch)
        assert name == f"{table.name}__{branch}"
        copy = sql.Identifier(name)

        assert _count(conn, copy) == _count(conn, source)
        assert _rows_differ(conn, source, copy) == 0
        source_hash, copy_hash = (conn.execute("SELECT pggit.calculate_schema_hash(%s)", (t.as_string(conn),))
                                  .fetchone()[0] for t in (source, copy))
        assert source_hash == copy_hash, "the copy's structure differs from the table's"

        # Idempotent: same name, nothing changes, even when the table has moved on since.
        conn.execute(sql.SQL("DELETE FROM {}").format(source))
        copy_rows = {"copy": sql.SQL("SELECT count(*) FROM {}").format(copy).as_string(conn)}
        before = DatabaseStateSnapshot.capture(conn, extra=copy_rows)
        assert _data_branch(conn, source, "main", branch) == name
        DatabaseStateSnapshot.capture(conn, extra=copy_rows).assert_unchanged(before)


@given(table=table_definition(max_columns=3, name=table_name),
       branches=st.lists(git_branch_name(), min_size=2, max_size=2, unique=True), data=st.data())
def test_a_data_branch_of_a_branch_copies_that_branch_not_main(fresh_connection, table, branches, data):
    """Copying from a branch that has its own copy takes that copy's rows, not the table's."""
    first, second = branches
    assume(_fits(table.name, first) and _fits(table.name, second))
    rows = data.draw(st.lists(data_row(table), min_size=1, max_size=4), label="rows")
    source = table.qualified_name()
    with fresh_connection() as conn:
        conn.execute(table.create_sql())
        with conn.cursor() as cur:
            cur.executemany(table.insert_sql(), rows)
        first_copy = sql.Identifier(_data_branch(conn, source, "main", first))
        conn.execute(sql.SQL("DELETE FROM {}").format(source))  # now only the first branch has the rows
        second_copy = sql.Identifier(_data_branch(conn, source, first, second))
        assert _count(conn, second_copy) == len(rows)
        assert _rows_differ(conn, first_copy, second_copy) == 0
        assert _count(conn, source) == 0


# ---------------------------------------------------------------------------
# The model of pggit
# ---------------------------------------------------------------------------

RESERVED_BRANCH_NAMES = frozenset({"main", "master", "HEAD", "@"})
# Short names keep "<table>__<branch>" within 63 bytes, so most data branches can be made;
# git_branch_name() brings the long and odd ones.
short_branch_name = st.from_regex(r"[a-z][a-z0-9_-]{0,7}(/[a-z0-9][a-z0-9_-]{0,6})?", fullmatch=True).filter(
    lambda name: name not in RESERVED_BRANCH_NAMES)
branch_names = st.one_of(short_branch_name, git_branch_name())
# A custom Trinity ID pggit must take: 10 or more characters, not in the generated format.
custom_trinity_id = st.from_regex(r"custom-[0-9a-z]{3,20}", fullmatch=True)
migration_versions = st.from_regex(r"v[0-9]{1,3}", fullmatch=True)
SESSIONS = ("main", "other")
# Column types that add_column uses; each is what format_type() prints for it.
ADDED_TYPES = ("integer", "text", "bigint", "boolean")
# Columns whose default set_default may change: a small integer (or its text) prints the same in any session.
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


@dataclass(frozen=True)
class Column:
    """A column as pggit describes it: name, type, nullability, and a token for its default."""

    name: str
    type: str
    nullable: bool = True
    # Equal tokens print as the same default; None: no default.
    default: object = None


@dataclass(frozen=True)
class Structure:
    """What calculate_schema_hash covers of a table the machine makes: its columns in order and its indexes."""

    columns: tuple[Column, ...]
    indexes: frozenset[tuple[str, str]] = frozenset()  # (index name, column)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def replace_column(self, name: str, column: Column | None) -> Structure:
        columns = tuple(column if c.name == name else c for c in self.columns)
        return Structure(tuple(c for c in columns if c is not None), self.indexes)


@dataclass
class TableModel:
    """One table name: the live table (None: none) and pggit's active record of that name (None: none)."""

    live: Structure | None
    recorded: Structure | None = None
    version: tuple[int, int, int] | None = None

    @property
    def drifted(self) -> bool:
        return self.recorded is not None and self.live != self.recorded


@dataclass
class BranchModel:
    status: str
    head: str | None
    parent: str | None
    commits: list[str] = field(default_factory=list)  # this branch's own commits, oldest first


@dataclass
class MigrationModel:
    up: str
    down: str | None
    status: str
    up_ops: tuple
    down_ops: tuple | None


@dataclass
class ModelState:
    """Everything the model says pggit holds; one object, so a transaction can keep a copy and put it back."""

    branches: dict[str, BranchModel]
    tables: dict[str, TableModel] = field(default_factory=dict)
    migrations: dict[str, MigrationModel] = field(default_factory=dict)
    custom_ids: set[str] = field(default_factory=set)
    disabled: bool = False  # pggit's event triggers disabled: no session is tracked
    replica: bool = False  # session_replication_role = replica on the main session only
    next_index: int = 0


def _step(version: tuple[int, int, int], kind: str) -> tuple[int, int, int]:
    major, minor, patch = version
    return {"major": (major + 1, 0, 0), "minor": (major, minor + 1, 0), "patch": (major, minor, patch + 1)}[kind]


def _severity(recorded: Structure, live: Structure) -> str:
    """The contract's rule: a column gone or retyped is major, a new column minor, anything else patch."""
    old = {(c.name, c.type) for c in recorded.columns}
    new = {(c.name, c.type) for c in live.columns}
    if old - new:
        return "major"
    if {name for name, _ in new} - {name for name, _ in old}:
        return "minor"
    return "patch"


def _default_token(column_type: str, value) -> object:
    """Defaults set_default can also set get the same token as the value it would set; others are unique."""
    if column_type in INTEGER_TYPES and isinstance(value, int):
        return ("value", value)
    if column_type == "text" and isinstance(value, str):
        return ("value", value)
    return ("initial", column_type, repr(value))


def _fits_identifier(name: str) -> bool:
    return len(name.encode()) <= MAX_IDENTIFIER_BYTES


class ExpectedError(Exception):
    """The model predicts that a statement fails with this SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class PggitModel(RuleBasedStateMachine):
    """pggit against a model of it, over two sessions.

    Bundles hold the branches, tables, data branches, migrations and commits
    made so far; rules call every public function (``create_branch`` with
    and without ``p_copy_data``, custom Trinity IDs, migrations applied,
    rolled back and applied again), change tables with generated DDL, pause
    and resume pggit's tracking (the model then expects drift), and run
    steps inside a transaction with savepoints that roll back. After every
    step: branches, heads and chains, versions, drift, recorded hashes and
    migrations equal the model, versions only rose, and
    ``verify_integrity()`` is clean.

    Every run gets a database of its own: ``__init__`` opens one with the
    ``fresh_database`` factory that the ``pggit_model_databases`` fixture
    hands to the class, and ``teardown`` drops it.
    """

    databases = None  # the fresh_database factory, set by the pggit_model_databases fixture

    branches = Bundle("branches")
    tables = Bundle("tables")
    data_branches = Bundle("data_branches")
    migrations = Bundle("migrations")
    commits = Bundle("commits")

    def __init__(self) -> None:
        super().__init__()
        if self.databases is None:
            raise RuntimeError("PggitModel needs the pggit_model_databases fixture")
        self._stack = contextlib.ExitStack()
        dsn = self._stack.enter_context(self.databases("model"))
        self.sessions = {name: self._stack.enter_context(psycopg.connect(dsn, autocommit=True)) for name in SESSIONS}
        self.conn = self.sessions["main"]
        self.state = ModelState(branches={"main": BranchModel(status="ACTIVE", head=None, parent=None)})
        self.issued: list[str] = []  # every generated Trinity ID pggit handed out, rolled back ones included
        self.seen_versions: dict[str, tuple[int, int, int]] = {}
        self.fragment_drawn = False

    def teardown(self) -> None:
        self._stack.close()

    # ---- helpers ----

    def _run(self, session: str, query, params=None, expected: str | None = None):
        """Run a statement; when the model predicts an error, it must fail with that SQLSTATE and write nothing."""
        conn = self.sessions[session]
        if expected is None:
            return conn.execute(query, params)
        before = DatabaseStateSnapshot.capture(self.conn)
        try:
            with conn.transaction():  # a savepoint inside a transaction: the failure is undone, nothing more
                conn.execute(query, params)
        except psycopg.Error as exc:
            assert exc.sqlstate == expected, (
                f"{_shown(conn, query)} {params!r}: expected SQLSTATE {expected}, got {exc.sqlstate}: {exc}")
        else:
            raise AssertionError(f"{_shown(conn, query)} {params!r}: the model predicts SQLSTATE {expected}, "
                                 f"pggit accepted it")
        DatabaseStateSnapshot.capture(self.conn).assert_unchanged(before)
        return None

    def _tracked(self, session: str) -> bool:
        return not self.state.disabled and not (session == "main" and self.state.replica)

    def _table(self, name: str) -> TableModel:
        return self.state.tables.setdefault(name, TableModel(live=None))

    def _live(self, name: str) -> Structure | None:
        table = self.state.tables.get(name)
        return None if table is None else table.live

    def _changed(self, session: str, name: str, live: Structure, created: bool = False,
                 recorded_only_if_indexed: str | None = None) -> None:
        """The event triggers' part of one DDL statement on ``name``, which leaves the table as ``live``."""
        table = self._table(name)
        table.live = live
        if not self._tracked(session):
            return
        if recorded_only_if_indexed is not None:
            # DROP INDEX finds its table through the index line of the recorded definition.
            if table.recorded is None or not any(i == recorded_only_if_indexed for i, _ in table.recorded.indexes):
                return
        if created or table.recorded is None:
            table.recorded, table.version = live, (1, 0, 0)
            self.seen_versions.pop(name, None)  # a new record: its versions start again
            return
        table.version = _step(table.version, _severity(table.recorded, live))
        table.recorded = live

    def _dropped(self, session: str, name: str) -> None:
        table = self._table(name)
        table.live = None
        if self._tracked(session):
            table.recorded, table.version = None, None
            self.seen_versions.pop(name, None)

    # ---- model of table operations: each returns the SQLSTATE it must fail with, or applies itself ----

    def _op(self, session: str, op: tuple, apply: bool) -> str | None:
        """Predict (apply=False) or apply to the model (apply=True) one table operation."""
        kind, name, *args = op
        live = self._live(name)
        if kind == "create_table":
            (columns,) = args
            if live is not None:
                return "42P07"
            if apply:
                self._changed(session, name, Structure(columns), created=True)
            return None
        if live is None:
            return "42P01"
        if kind == "drop_table":
            if apply:
                self._dropped(session, name)
            return None
        if kind == "add_column":
            column, column_type = args
            if live.column(column) is not None:
                return "42701"
            if apply:
                self._changed(session, name, Structure((*live.columns, Column(column, column_type)), live.indexes))
            return None
        if kind == "drop_column":
            (column,) = args
            if live.column(column) is None:
                return "42703"
            if apply:
                indexes = frozenset(i for i in live.indexes if i[1] != column)
                self._changed(session, name, Structure(live.replace_column(column, None).columns, indexes))
            return None
        raise ValueError(op)

    def _op_sql(self, op: tuple) -> sql.Composed:
        kind, name, *args = op
        table = sql.Identifier(name)
        if kind == "create_table":
            return sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in args[0]))
        if kind == "drop_table":
            return sql.SQL("DROP TABLE {}").format(table)
        if kind == "add_column":
            return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(table, sql.Identifier(args[0]), sql.SQL(args[1]))
        return sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(table, sql.Identifier(args[0]))

    def _live_indexes(self, name: str) -> frozenset[tuple[str, str]]:
        """The indexes PostgreSQL made for a copy (LIKE ... INCLUDING ALL names them itself)."""
        rows = self.conn.execute(
            "SELECT ic.relname, a.attname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = to_regclass(%s)", (sql.Identifier(name).as_string(self.conn),)).fetchall()
        return frozenset((index, column) for index, column in rows)

    # ---- branches ----

    @initialize(target=branches)
    def main_branch(self) -> str:
        return "main"

    @rule(target=branches, name=st.one_of(branches, branch_names), parent=st.one_of(branches, st.just("no/such")),
          copy_data=st.booleans())
    def create_branch(self, name, parent, copy_data) -> str:
        query, params = "SELECT pggit.create_branch(%s, %s, %s)", (name, parent, copy_data)
        if name in self.state.branches:
            self._run("main", query, params, "23505")  # names are never reused, even deleted ones
        elif parent not in self.state.branches:
            self._run("main", query, params, "42704")
        elif self.state.branches[parent].status == "DELETED":
            self._run("main", query, params, "55000")
        elif copy_data and (copies := self._branch_copies(parent, name)) is None:
            self._run("main", query, params, "22023")  # a copy's name would be longer than 63 bytes
        else:
            self._run("main", query, params)
            self.state.branches[name] = BranchModel(status="ACTIVE", head=self.state.branches[parent].head,
                                                    parent=parent)
            for table, source in copies if copy_data else ():
                self._copy_made("main", table, source, name)
        return name

    def _branch_copies(self, parent: str, branch: str) -> list[tuple[str, str]] | None:
        """(copy, source) for each table create_branch(..., p_copy_data => true) copies; None if one cannot be."""
        recorded = {name for name, t in self.state.tables.items() if t.recorded is not None}
        copies = []
        for name in sorted(recorded):
            if self._live(name) is None or any(o != name and name.startswith(o + "__") for o in recorded):
                continue  # gone behind pggit's back, or itself a data branch of a tracked table
            prediction = self._data_branch_prediction(name, parent, branch)
            if prediction is None:
                return None
            copies.append(prediction)
        return [c for c in copies if c[1] is not None]

    def _data_branch_prediction(self, table: str, from_branch: str, to_branch: str) -> tuple[str, str | None] | None:
        """(copy name, source table or None when the copy exists already), or None: the name is too long."""
        target = f"{table}__{to_branch}"
        if not _fits_identifier(target):
            return None
        if self._live(target) is not None:
            return target, None
        source = table
        if from_branch not in ("main", "master"):
            candidate = f"{table}__{from_branch}"
            if _fits_identifier(candidate) and self._live(candidate) is not None:
                source = candidate
        return target, source

    def _copy_made(self, session: str, target: str, source: str, branch: str) -> None:
        copy = Structure(self._live(source).columns, self._live_indexes(target))
        self._changed(session, target, copy, created=True)

    @rule(name=invalid_branch_name(include_null=True), copy_data=st.booleans())
    def create_branch_with_an_invalid_name(self, name, copy_data) -> None:
        self._run("main", "SELECT pggit.create_branch(%s, 'main', %s)", (name, copy_data), "22023")

    @rule(name=st.one_of(st.just("main"), branches, branch_names))
    def delete_branch(self, name) -> None:
        query, params = "SELECT pggit.delete_branch_simple(%s)", (name,)
        if name == "main":
            return self._run("main", query, params, "22023")
        self._run("main", query, params)  # unknown or already deleted: nothing happens
        if name in self.state.branches:
            self.state.branches[name].status = "DELETED"

    # ---- commits ----

    def _commit(self, session: str, name: str, message: str, custom_id: str | None) -> str | None:
        query, params = "SELECT pggit.commit_changes(%s, %s, %s)", (name, message, custom_id)
        branch = self.state.branches.get(name)
        # The arguments are checked (a custom ID already used) before the branch (a deleted one).
        if custom_id is not None and self._committed(custom_id):
            return self._run(session, query, params, "23505")
        if branch is not None and branch.status == "DELETED":
            return self._run(session, query, params, "55000")
        trinity_id = self._run(session, query, params).fetchone()[0]
        if custom_id is None:
            self.issued.append(trinity_id)
        else:
            assert trinity_id == custom_id, f"commit_changes returned {trinity_id!r}, not the custom ID {custom_id!r}"
            self.state.custom_ids.add(custom_id)
        if branch is None:  # created from main on the fly
            branch = self.state.branches[name] = BranchModel(status="ACTIVE", head=self.state.branches["main"].head,
                                                             parent="main")
        branch.head = trinity_id
        branch.commits.append(trinity_id)
        return trinity_id

    def _committed(self, trinity_id: str) -> bool:
        return any(trinity_id in b.commits for b in self.state.branches.values())

    @rule(target=commits, name=st.one_of(branches, branch_names), message=commit_message(max_length=300),
          session=st.sampled_from(SESSIONS))
    def commit(self, name, message, session):
        return self._commit(session, name, message, None) or multiple()

    @rule(target=commits, name=branches, custom_id=st.one_of(custom_trinity_id, commits),
          session=st.sampled_from(SESSIONS), data=st.data())
    def commit_with_a_custom_id(self, name, custom_id, session, data):
        """A custom ID of our own, or one a commit already has (refused), or a generated one that a
        rolled-back transaction was given (its number was issued, but no commit holds it: accepted)."""
        rolled_back = [i for i in self.issued if not self._committed(i)]
        if rolled_back and data.draw(st.booleans(), label="reuse a rolled-back ID"):
            custom_id = data.draw(st.sampled_from(rolled_back), label="custom_id")
        return self._commit(session, name, "custom", custom_id) or multiple()

    @rule(name=invalid_branch_name(include_null=True), message=commit_message(max_length=50))
    def commit_to_an_invalid_branch_name(self, name, message) -> None:
        self._run("main", "SELECT pggit.commit_changes(%s, %s)", (name, message), "22023")

    @rule(name=branches, custom_id=st.one_of(st.text(max_size=9), st.from_regex(r"\s{10,12}", fullmatch=True)))
    def commit_with_an_invalid_custom_id(self, name, custom_id) -> None:
        assume(custom_id.strip() == "" or len(custom_id) < 10)
        assume("\x00" not in custom_id)
        self._run("main", "SELECT pggit.commit_changes(%s, 'x', %s)", (name, custom_id), "22023")

    # ---- DDL: the model's own tables, from tools/pggit_chaos/generators.py ----
    # A rule that draws a statement from another strategy needs only to say, through
    # self._changed / self._dropped, what it did to which table; the invariants then hold
    # pggit to it. generated_schema_objects (below) is the seam for schema_objects' DDL.

    @rule(target=tables, table=table_definition(max_columns=3, name=pg_identifier(max_length=20)),
          session=st.sampled_from(SESSIONS))
    def create_table(self, table, session):
        columns = tuple(Column(c.name, c.type.canonical, c.nullable,
                               _default_token(c.type.canonical, c.default) if c.has_default else None)
                        for c in table.columns)
        if self._live(table.name) is not None:
            self._run(session, table.create_sql(), None, "42P07")
        else:
            self._run(session, table.create_sql())
            self._changed(session, table.name, Structure(columns), created=True)
        return table.name

    @rule(table=tables, column=pg_identifier(max_length=20).filter(lambda n: n not in SYSTEM_COLUMN_NAMES),
          column_type=st.sampled_from(ADDED_TYPES), session=st.sampled_from(SESSIONS))
    def add_column(self, table, column, column_type, session) -> None:
        self._table_op(session, ("add_column", table, column, column_type))

    @rule(table=tables, data=st.data(), session=st.sampled_from(SESSIONS))
    def drop_column(self, table, data, session) -> None:
        live = self._live(table)
        column = data.draw(st.sampled_from([c.name for c in live.columns]) if live and live.columns
                           else pg_identifier(max_length=20), label="column")
        self._table_op(session, ("drop_column", table, column))

    def _table_op(self, session: str, op: tuple) -> None:
        expected = self._op(session, op, apply=False)
        self._run(session, self._op_sql(op), None, expected)
        if expected is None:
            self._op(session, op, apply=True)

    def _live_column(self, table: str, data, types=None) -> tuple[Structure, Column] | None:
        live = self._live(table)
        candidates = [c for c in live.columns if types is None or c.type in types] if live else []
        if not candidates:
            return None
        return live, data.draw(st.sampled_from(candidates), label="column")

    @rule(table=tables, data=st.data(), session=st.sampled_from(SESSIONS))
    def retype_column(self, table, data, session) -> None:
        """ALTER COLUMN ... TYPE (and DROP DEFAULT, so no default has to be converted): major."""
        picked = self._live_column(table, data)
        assume(picked is not None)
        live, column = picked
        new_type = "character varying" if column.type == "text" else "text"
        self._run(session, sql.SQL("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT, ALTER COLUMN {c} TYPE {ty} "
                                   "USING {c}::text").format(t=sql.Identifier(table), c=sql.Identifier(column.name),
                                                             ty=sql.SQL(new_type)))
        self._changed(session, table, live.replace_column(
            column.name, Column(column.name, new_type, column.nullable, None)))

    @rule(table=tables, data=st.data(), value=st.integers(0, 3) | st.none(), session=st.sampled_from(SESSIONS))
    def set_or_drop_default(self, table, data, value, session) -> None:
        picked = self._live_column(table, data, types=INTEGER_TYPES | {"text"})
        assume(picked is not None)
        live, column = picked
        target, name = sql.Identifier(table), sql.Identifier(column.name)
        if value is None:
            statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(target, name)
            token = None
        else:
            literal = str(value) if column.type == "text" else value
            statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                target, name, sql.Literal(literal))
            token = _default_token(column.type, literal)
        self._run(session, statement)
        self._changed(session, table, live.replace_column(
            column.name, Column(column.name, column.type, column.nullable, token)))

    @rule(table=tables, data=st.data(), session=st.sampled_from(SESSIONS))
    def create_index(self, table, data, session) -> None:
        picked = self._live_column(table, data)
        assume(picked is not None)
        live, column = picked
        index = f"ix{self.state.next_index}"  # numbered by the model: a replay names it the same
        self.state.next_index += 1
        self._run(session, sql.SQL("CREATE INDEX {} ON {} ({})").format(
            sql.Identifier(index), sql.Identifier(table), sql.Identifier(column.name)))
        self._changed(session, table, Structure(live.columns, live.indexes | {(index, column.name)}))

    @rule(table=tables, data=st.data(), session=st.sampled_from(SESSIONS))
    def drop_index(self, table, data, session) -> None:
        live = self._live(table)
        assume(live is not None and live.indexes)
        index = data.draw(st.sampled_from(sorted(live.indexes)), label="index")
        self._run(session, sql.SQL("DROP INDEX {}").format(sql.Identifier(index[0])))
        self._changed(session, table, Structure(live.columns, live.indexes - {index}),
                      recorded_only_if_indexed=index[0])

    @rule(table=tables, comment=pg_text(max_size=10), session=st.sampled_from(SESSIONS))
    def comment_on_table(self, table, comment, session) -> None:
        """A comment is no structure: a patch when tracked, and never drift when not."""
        live = self._live(table)
        statement = sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(table), sql.Literal(comment))
        if live is None:
            return self._run(session, statement, None, "42P01")
        self._run(session, statement)
        self._changed(session, table, live)

    @rule(table=tables, session=st.sampled_from(SESSIONS))
    def drop_table(self, table, session) -> None:
        self._table_op(session, ("drop_table", table))

    # Once a run: the strategies steer generation with target(), which takes each label once per run.
    @precondition(lambda self: schema_fragments is not None and not self.state.disabled
                  and not self.fragment_drawn)
    @rule(data=st.data(), session=st.sampled_from(SESSIONS))
    def generated_schema_objects(self, data, session) -> None:
        """Schemas, types, sequences, functions, collations, partitioned and inherited tables and indexes
        (schema_objects), changed by generated DDL, then dropped: after each statement the changed table's
        version rose (its major for a major change), and nothing drifts. The model's own tables stay as they
        are, so the invariants after the step hold pggit to the model as always."""
        conn = self.sessions[session]
        if not self._tracked(session):
            return
        self.fragment_drawn = True
        fragment = data.draw(schema_fragments(max_tables=2, max_columns=3), label="fragment")
        ddl = data.draw(ddl_sequences(fragment, max_steps=4, dependencies=False), label="ddl")
        versions = ("SELECT table_oid, version_major, version_minor, version_patch FROM pggit.objects "
                    "WHERE is_active AND object_type = 'TABLE'")
        expected_drift = {f"public.{name}" for name, t in self.state.tables.items() if t.drifted}
        for statement in fragment.create_sql():
            conn.execute(statement)
        for step in ddl.steps:
            before = {oid: tuple(v) for oid, *v in self.conn.execute(versions).fetchall()}
            conn.execute(step.sql)
            after = {oid: tuple(v) for oid, *v in self.conn.execute(versions).fetchall()}
            if step.table is not None:
                row = self.conn.execute("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                        "WHERE n.nspname = %s AND c.relname = %s", step.table).fetchone()
                assert row is not None, f"{step.sql}: no table {step.table} after it"
                oid = row[0]
                assert oid in after, f"{step.sql}: {step.table} is not tracked after it"
                if oid in before:
                    assert after[oid] > before[oid], f"{step.sql}: version {before[oid]} -> {after[oid]}"
                    if step.severity == "MAJOR":
                        assert after[oid][0] == before[oid][0] + 1, f"{step.sql}: {before[oid]} -> {after[oid]}"
            assert all(after[oid] >= v for oid, v in before.items() if oid in after), step.sql
            checkers.drift_is(self.conn, expected_drift)
        for statement in ddl.result.drop_sql():
            conn.execute(statement)

    # ---- data branches ----

    @rule(target=data_branches, table=tables, from_branch=st.one_of(branches, st.just("main")),
          to_branch=st.one_of(branches, branch_names), session=st.sampled_from(SESSIONS))
    def create_data_branch(self, table, from_branch, to_branch, session):
        query = "SELECT pggit.create_data_branch(%s, %s, %s)"
        params = (sql.Identifier(table).as_string(self.conn), from_branch, to_branch)
        if self._live(table) is None:
            self._run(session, query, params, "42P01")
            return multiple()
        prediction = self._data_branch_prediction(table, from_branch, to_branch)
        if prediction is None:
            self._run(session, query, params, "22023")
            return multiple()
        target, source = prediction
        before = DatabaseStateSnapshot.capture(self.conn) if source is None else None
        name = self._run(session, query, params).fetchone()[0]
        assert name == target, f"create_data_branch returned {name!r}, the model says {target!r}"
        if source is None:  # the copy exists: nothing changes
            DatabaseStateSnapshot.capture(self.conn).assert_unchanged(before)
        else:
            self._copy_made(session, target, source, to_branch)
        return target

    @rule(copy=data_branches, data=st.data())
    def a_data_branch_is_independent_of_its_source(self, copy, data) -> None:
        """A copy shares no dependency with its source: dropping one never takes the other along."""
        live = self._live(copy)
        assume(live is not None)
        self._table_op("main", ("drop_table", copy))

    # ---- migrations ----

    @rule(target=migrations, version=st.one_of(migrations, migration_versions), data=st.data(),
          with_down=st.booleans())
    def apply_migration(self, version, data, with_down):
        """A new table, or a column added to a table: its down SQL undoes it."""
        if data.draw(st.booleans(), label="adds a column") and self.state.tables:
            table = data.draw(st.sampled_from(sorted(self.state.tables)), label="table")
            column = data.draw(st.sampled_from(["m_a", "m_b"]), label="column")
            up_ops, down_ops = (("add_column", table, column, "integer"),), (("drop_column", table, column),)
        else:
            table = data.draw(st.sampled_from(["m_one", "m_two"]), label="table")
            up_ops, down_ops = (("create_table", table, (Column("id", "integer"),)),), (("drop_table", table),)
        down_ops = down_ops if with_down else None
        up = "; ".join(self._op_sql(op).as_string(self.conn) for op in up_ops)
        down = "; ".join(self._op_sql(op).as_string(self.conn) for op in down_ops) if down_ops else None
        query, params = "SELECT pggit.apply_migration(%s, %s, %s)", (version, up, down)
        recorded = self.state.migrations.get(version)
        if recorded is not None and recorded.status == "APPLIED":
            if recorded.up != up:
                self._run("main", query, params, "55000")  # checksum mismatch
            else:
                before = DatabaseStateSnapshot.capture(self.conn)
                assert self._run("main", query, params).fetchone()[0] is False
                DatabaseStateSnapshot.capture(self.conn).assert_unchanged(before)
            return version
        if (failure := self._ops_fail("main", up_ops)) is not None:
            self._run("main", query, params, failure)
            return version
        assert self._run("main", query, params).fetchone()[0] is True
        self._ops_apply("main", up_ops)
        self.state.migrations[version] = MigrationModel(up, down, "APPLIED", up_ops, down_ops)
        return version

    def _ops_fail(self, session: str, ops: tuple) -> str | None:
        """The SQLSTATE the first failing operation would raise, trying them on a copy of the model."""
        kept, self.state = self.state, copy.deepcopy(self.state)
        try:
            for op in ops:
                if (failure := self._op(session, op, apply=False)) is not None:
                    return failure
                self._op(session, op, apply=True)
            return None
        finally:
            self.state = kept

    def _ops_apply(self, session: str, ops: tuple) -> None:
        for op in ops:
            self._op(session, op, apply=True)

    @rule(version=st.one_of(migrations, migration_versions))
    def rollback_migration(self, version) -> None:
        query, params = "SELECT pggit.rollback_migration(%s)", (version,)
        recorded = self.state.migrations.get(version)
        if recorded is None:
            return self._run("main", query, params, "42704")
        if recorded.status == "ROLLED_BACK":
            assert self._run("main", query, params).fetchone()[0] is False
            return None
        if recorded.down_ops is None:
            return self._run("main", query, params, "55000")
        if (failure := self._ops_fail("main", recorded.down_ops)) is not None:
            return self._run("main", query, params, failure)
        assert self._run("main", query, params).fetchone()[0] is True
        self._ops_apply("main", recorded.down_ops)
        recorded.status = "ROLLED_BACK"
        return None

    # ---- tracking paused and resumed ----

    @precondition(lambda self: not self.state.disabled)
    @rule()
    def disable_tracking(self) -> None:
        """pggit's event triggers disabled, for every session: DDL now drifts."""
        for trigger in ("pggit_ddl_command_end", "pggit_sql_drop"):
            self.conn.execute(sql.SQL("ALTER EVENT TRIGGER {} DISABLE").format(sql.Identifier(trigger)))
        self.state.disabled = True

    @precondition(lambda self: self.state.disabled)
    @rule()
    def enable_tracking(self) -> None:
        for trigger in ("pggit_ddl_command_end", "pggit_sql_drop"):
            self.conn.execute(sql.SQL("ALTER EVENT TRIGGER {} ENABLE").format(sql.Identifier(trigger)))
        self.state.disabled = False

    @rule(replica=st.booleans())
    def replication_role(self, replica) -> None:
        """session_replication_role = replica silences pggit in the main session only."""
        self.conn.execute("SET session_replication_role = " + ("replica" if replica else "origin"))
        self.state.replica = replica

    # ---- transactions: savepoints and rollbacks ----

    @rule(data=st.data(), outcome=st.sampled_from(["commit", "rollback"]))
    def in_a_transaction(self, data, outcome) -> None:
        """A few steps in one transaction of the main session, some inside a savepoint that is rolled back
        or released; then COMMIT or ROLLBACK. pggit keeps exactly what the model of the transaction keeps."""
        steps = data.draw(st.lists(st.sampled_from(["step", "savepoint", "rollback to savepoint", "release"]),
                                   min_size=1, max_size=6), label="steps")
        before = copy.deepcopy(self.state)
        savepoints: list[tuple[psycopg.Transaction, ModelState]] = []
        with self.conn.transaction() as transaction:
            for step in steps:
                if step == "step":
                    self._one_step(data)
                elif step == "savepoint":
                    savepoint = self.conn.transaction()
                    savepoint.__enter__()
                    savepoints.append((savepoint, copy.deepcopy(self.state)))
                elif savepoints:
                    savepoint, kept = savepoints.pop()
                    if step == "rollback to savepoint":
                        savepoint.__exit__(psycopg.Rollback, psycopg.Rollback(savepoint), None)
                        self.state = kept
                    else:
                        savepoint.__exit__(None, None, None)
            while savepoints:
                savepoints.pop()[0].__exit__(None, None, None)
            if outcome == "rollback":
                raise psycopg.Rollback(transaction)
        if outcome == "rollback":
            self.state = before

    def _one_step(self, data) -> None:
        """One step of the main session inside the transaction: a commit, a branch or a table change."""
        kind = data.draw(st.sampled_from(["commit", "branch", "table", "column", "comment"]), label="step")
        if kind == "commit":
            self._commit("main", data.draw(st.sampled_from(sorted(self.state.branches)), label="branch"),
                         "in a transaction", None)
        elif kind == "branch":
            name = data.draw(short_branch_name, label="branch")
            self.create_branch(name, "main", False)
        elif kind == "table":
            self.create_table(data.draw(table_definition(max_columns=2, name=pg_identifier(max_length=20)),
                                        label="table"), "main")
        else:
            live = sorted(name for name, t in self.state.tables.items() if t.live is not None)
            if not live:
                return
            name = data.draw(st.sampled_from(live), label="table")
            if kind == "column":
                self.add_column(name, data.draw(st.sampled_from(["t_a", "t_b", "t_c"]), label="column"),
                                "integer", "main")
            else:
                self.comment_on_table(name, "in a transaction", "main")

    # ---- the database equals the model ----

    @invariant()
    def branches_match(self) -> None:
        rows = self.conn.execute(
            "SELECT b.name, b.status, b.head_commit_hash, p.name FROM pggit.branches b "
            "LEFT JOIN pggit.branches p ON p.id = b.parent_branch_id").fetchall()
        actual = {name: (status, head, parent) for name, status, head, parent in rows}
        expected = {name: (b.status, b.head, b.parent) for name, b in self.state.branches.items()}
        assert actual == expected, f"branches (status, head, parent) differ from the model:\n" \
                                   f"  database: {actual}\n  model:    {expected}"

    @invariant()
    def chains_match(self) -> None:
        for name, branch in self.state.branches.items():
            assert checkers.linear_chain_invariant(self.conn, name) == branch.commits, f"chain of {name!r}"
        checkers.unique_trinity_ids(self.conn, extra_ids=self.issued)

    @invariant()
    def versions_match_and_only_rise(self) -> None:
        for name, table in self.state.tables.items():
            row = self.conn.execute("SELECT major, minor, patch FROM pggit.get_version(%s)",
                                    (sql.Identifier(name).as_string(self.conn),)).fetchone()
            expected = table.version if table.live is not None and table.recorded is not None else None
            assert row == expected, f"get_version({name!r}) is {row}, the model says {expected}"
            if row is None:
                continue
            previous = self.seen_versions.get(name)
            assert previous is None or row >= previous, f"{name!r} went from {previous} down to {row}"
            self.seen_versions[name] = row
            # The history of the record rises step by step and ends at the current version.
            steps = self.conn.execute(
                "SELECT h.old_version, h.new_version FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id "
                "WHERE o.is_active AND o.schema_name = 'public' AND o.object_name = %s ORDER BY h.id",
                (name,)).fetchall()
            versions = [tuple(map(int, new.split("."))) for _, new in steps]
            assert versions == sorted(set(versions)) and versions[-1] == row, f"history of {name!r}: {steps}"
            assert all(old == before for (old, _), (_, before) in zip(steps[1:], steps)), f"history of {name!r}: {steps}"

    @invariant()
    def drift_and_recorded_hashes_match(self) -> None:
        """detect_drift names exactly the tables the model says drifted; every other recorded hash is live."""
        expected = {f"public.{name}" for name, t in self.state.tables.items() if t.drifted}
        checkers.drift_is(self.conn, expected)
        for name, table in self.state.tables.items():
            if table.recorded is not None and not table.drifted:
                recorded, live = self.conn.execute(
                    "SELECT content_hash, pggit.calculate_schema_hash(%s) FROM pggit.objects "
                    "WHERE is_active AND schema_name = 'public' AND object_name = %s",
                    (sql.Identifier(name).as_string(self.conn), name)).fetchone()
                assert recorded == live, f"{name!r}: recorded hash {recorded}, live hash {live}"

    @invariant()
    def migrations_match(self) -> None:
        rows = dict(self.conn.execute("SELECT version, status FROM pggit.migrations").fetchall())
        assert rows == {v: m.status for v, m in self.state.migrations.items()}

    @invariant()
    def integrity_holds(self) -> None:
        checkers.integrity_ok(self.conn)


def _shown(conn: psycopg.Connection, query) -> str:
    return query if isinstance(query, str) else query.as_string(conn)


@pytest.fixture
def pggit_model_databases(fresh_database):
    """Hands PggitModel the fresh_database factory: each run of the machine gets a database of its own."""
    PggitModel.databases = fresh_database
    try:
        yield
    finally:
        PggitModel.databases = None


# About 50 steps a run. The smoke-sized test runs in every tier (a fifth of the profile's examples:
# 2 under dev and gate); the weekly soak runs many more.
STEPS = 50


@pytest.mark.timeout(900)  # a failure shrinks for up to Hypothesis's five minutes, one database per attempt
@pytest.mark.usefixtures("pggit_model_databases")
class TestPggitModel(PggitModel.TestCase):
    """Random sequences of every pggit call, DDL, tracking pauses and transactions: after each step the
    database equals the model."""

    settings = settings(share_of_examples(5, 2), stateful_step_count=STEPS)


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("pggit_model_databases")
class TestPggitModelSoak(PggitModel.TestCase):
    """The same machine, weekly-size: many more runs of about 50 steps each."""

    settings = settings(stateful_step_count=STEPS, max_examples=200)
