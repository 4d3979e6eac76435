"""Property-based tests of pggit's data branches, and a model-based test of pggit as a whole.

``TestPggitModel`` drives branches, commits and DDL at random against a
small Python model of what pggit should hold, and after every step checks
that the database and the model agree. A disagreement shrinks to the
shortest sequence of steps that shows it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pggit_chaos import checkers
from pggit_chaos.generators import (
    commit_message,
    data_row,
    git_branch_name,
    invalid_branch_name,
    pg_identifier,
    pg_text,
    table_definition,
)
from pggit_chaos.snapshot import DatabaseStateSnapshot
from psycopg import sql

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
def test_a_data_branch_copies_exactly_the_rows_and_is_idempotent(sync_conn, table, branch, data):
    """create_data_branch makes <table>__<branch> with the same structure and exactly the same rows
    (duplicates and NULLs included); calling it again returns the same name and changes nothing."""
    assume(_fits(table.name, branch))
    rows = data.draw(st.lists(data_row(table), max_size=6), label="rows")
    source = table.qualified_name()
    try:
        sync_conn.execute(table.create_sql())
        with sync_conn.cursor() as cur:
            cur.executemany(table.insert_sql(), rows + rows[:1])  # one duplicate row, when there are rows
        name = _data_branch(sync_conn, source, "main", branch)
        assert name == f"{table.name}__{branch}"
        copy = sql.Identifier(name)

        assert _count(sync_conn, copy) == _count(sync_conn, source)
        assert _rows_differ(sync_conn, source, copy) == 0
        source_hash, copy_hash = (sync_conn.execute("SELECT pggit.calculate_schema_hash(%s)", (t.as_string(sync_conn),))
                                  .fetchone()[0] for t in (source, copy))
        assert source_hash == copy_hash, "the copy's structure differs from the table's"

        # Idempotent: same name, nothing changes, even when the table has moved on since.
        sync_conn.execute(sql.SQL("DELETE FROM {}").format(source))
        before = DatabaseStateSnapshot.capture(sync_conn, extra={
            "copy": sql.SQL("SELECT count(*) FROM {}").format(copy).as_string(sync_conn)})
        assert _data_branch(sync_conn, source, "main", branch) == name
        DatabaseStateSnapshot.capture(sync_conn, extra={
            "copy": sql.SQL("SELECT count(*) FROM {}").format(copy).as_string(sync_conn)}).assert_unchanged(before)
    finally:
        sync_conn.rollback()


@given(table=table_definition(max_columns=3, name=table_name),
       branches=st.lists(git_branch_name(), min_size=2, max_size=2, unique=True), data=st.data())
def test_a_data_branch_of_a_branch_copies_that_branch_not_main(sync_conn, table, branches, data):
    """Copying from a branch that has its own copy takes that copy's rows, not the table's."""
    first, second = branches
    assume(_fits(table.name, first) and _fits(table.name, second))
    rows = data.draw(st.lists(data_row(table), min_size=1, max_size=4), label="rows")
    source = table.qualified_name()
    try:
        sync_conn.execute(table.create_sql())
        with sync_conn.cursor() as cur:
            cur.executemany(table.insert_sql(), rows)
        first_copy = sql.Identifier(_data_branch(sync_conn, source, "main", first))
        sync_conn.execute(sql.SQL("DELETE FROM {}").format(source))  # now only the first branch has the rows
        second_copy = sql.Identifier(_data_branch(sync_conn, source, first, second))
        assert _count(sync_conn, second_copy) == len(rows)
        assert _rows_differ(sync_conn, first_copy, second_copy) == 0
        assert _count(sync_conn, source) == 0
    finally:
        sync_conn.rollback()


# ---------------------------------------------------------------------------
# The model of pggit
# ---------------------------------------------------------------------------


@dataclass
class BranchModel:
    status: str
    head: str | None
    parent: str | None
    commits: list[str] = field(default_factory=list)  # this branch's own commits, oldest first


@dataclass
class TableModel:
    columns: list[str]
    version: tuple[int, int, int] = (1, 0, 0)
    live: bool = True


def _step(version: tuple[int, int, int], kind: str) -> tuple[int, int, int]:
    major, minor, patch = version
    return {"major": (major + 1, 0, 0), "minor": (major, minor + 1, 0), "patch": (major, minor, patch + 1)}[kind]


class PggitModel(RuleBasedStateMachine):
    """pggit against a model of it: branches (status, head, parent), commits (chains), table versions.

    Every run gets a database of its own, made in ``__init__`` with the
    factory that the ``pggit_model_databases`` fixture hands to the class,
    and dropped again in ``teardown``.
    """

    databases = None  # (make, drop), set by the pggit_model_databases fixture

    def __init__(self) -> None:
        super().__init__()
        if self.databases is None:
            raise RuntimeError("PggitModel needs the pggit_model_databases fixture")
        make, self._drop = self.databases
        self.dbname, dsn = make()
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.branches = {"main": BranchModel(status="ACTIVE", head=None, parent=None)}
        self.tables: dict[str, TableModel] = {}
        self.issued: list[str] = []

    def teardown(self) -> None:
        self.conn.close()
        self._drop(self.dbname)

    # ---- helpers ----

    def _expect_error(self, sqlstate: str, query: str, params) -> None:
        """The call fails with the SQLSTATE the model predicts, and writes nothing."""
        before = DatabaseStateSnapshot.capture(self.conn)
        try:
            self.conn.execute(query, params)
        except psycopg.Error as exc:
            assert exc.sqlstate == sqlstate, (
                f"{query} {params!r}: expected SQLSTATE {sqlstate}, got {exc.sqlstate}: {exc}")
        else:
            raise AssertionError(f"{query} {params!r}: the model predicts SQLSTATE {sqlstate}, pggit accepted it")
        DatabaseStateSnapshot.capture(self.conn).assert_unchanged(before)

    def _branch_name(self, data) -> str:
        """An existing branch (any status) or a new, valid name."""
        return data.draw(st.sampled_from(sorted(self.branches)) | git_branch_name(), label="branch")

    def _live_table(self, data) -> str:
        return data.draw(st.sampled_from(sorted(n for n, t in self.tables.items() if t.live)), label="table")

    def _has_live_tables(self) -> bool:
        return any(t.live for t in self.tables.values())

    # ---- branches ----

    @rule(data=st.data())
    def create_branch(self, data) -> None:
        name = self._branch_name(data)
        parent = data.draw(st.sampled_from(sorted(self.branches)) | st.just("no/such/parent"), label="parent")
        query, params = "SELECT pggit.create_branch(%s, %s)", (name, parent)
        if name in self.branches:
            return self._expect_error("23505", query, params)  # names are never reused, even deleted ones
        if parent not in self.branches:
            return self._expect_error("42704", query, params)
        if self.branches[parent].status == "DELETED":
            return self._expect_error("55000", query, params)
        self.conn.execute(query, params)
        self.branches[name] = BranchModel(status="ACTIVE", head=self.branches[parent].head, parent=parent)

    @rule(name=invalid_branch_name(include_null=True))
    def create_branch_with_an_invalid_name(self, name) -> None:
        self._expect_error("22023", "SELECT pggit.create_branch(%s)", (name,))

    @rule(data=st.data())
    def delete_branch(self, data) -> None:
        name = data.draw(st.just("main") | st.sampled_from(sorted(self.branches)) | git_branch_name(), label="branch")
        query, params = "SELECT pggit.delete_branch_simple(%s)", (name,)
        if name == "main":
            return self._expect_error("22023", query, params)
        self.conn.execute(query, params)  # unknown or already deleted: nothing happens
        if name in self.branches:
            self.branches[name].status = "DELETED"

    # ---- commits ----

    @rule(data=st.data(), message=commit_message(max_length=300))
    def commit(self, data, message) -> None:
        name = self._branch_name(data)
        query, params = "SELECT pggit.commit_changes(%s, %s)", (name, message)
        branch = self.branches.get(name)
        if branch is not None and branch.status == "DELETED":
            return self._expect_error("55000", query, params)
        trinity_id = self.conn.execute(query, params).fetchone()[0]
        if branch is None:  # created from main on the fly
            branch = self.branches[name] = BranchModel(status="ACTIVE", head=self.branches["main"].head, parent="main")
        branch.head = trinity_id
        branch.commits.append(trinity_id)
        self.issued.append(trinity_id)

    @rule(name=invalid_branch_name(include_null=True), message=commit_message(max_length=50))
    def commit_to_an_invalid_branch_name(self, name, message) -> None:
        self._expect_error("22023", "SELECT pggit.commit_changes(%s, %s)", (name, message))

    # ---- DDL ----

    @rule(name=pg_identifier(max_length=20))
    def create_table(self, name) -> None:
        if name in self.tables and self.tables[name].live:
            return self._expect_error("42P07", sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(name)), None)
        self.conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(name)))
        self.tables[name] = TableModel(columns=["id"])  # a re-created table starts again at 1.0.0

    @precondition(_has_live_tables)
    @rule(data=st.data(), column=pg_identifier(max_length=20))
    def add_column(self, data, column) -> None:
        name = self._live_table(data)
        table = self.tables[name]
        assume(column not in table.columns and column not in {"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
        self.conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} text").format(
            sql.Identifier(name), sql.Identifier(column)))
        table.columns.append(column)
        table.version = _step(table.version, "minor")

    @precondition(lambda self: any(t.live and t.columns for t in self.tables.values()))
    @rule(data=st.data())
    def drop_column(self, data) -> None:
        name = data.draw(st.sampled_from(sorted(n for n, t in self.tables.items() if t.live and t.columns)))
        table = self.tables[name]
        column = data.draw(st.sampled_from(table.columns), label="column")
        self.conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(sql.Identifier(name), sql.Identifier(column)))
        table.columns.remove(column)
        table.version = _step(table.version, "major")

    @precondition(_has_live_tables)
    @rule(data=st.data(), comment=pg_text(max_size=10))
    def comment_on_table(self, data, comment) -> None:
        name = self._live_table(data)
        self.conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
        self.tables[name].version = _step(self.tables[name].version, "patch")

    @precondition(_has_live_tables)
    @rule(data=st.data())
    def drop_table(self, data) -> None:
        name = self._live_table(data)
        self.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        self.tables[name].live = False

    # ---- the database equals the model ----

    @invariant()
    def branches_match(self) -> None:
        rows = self.conn.execute(
            "SELECT b.name, b.status, b.head_commit_hash, p.name FROM pggit.branches b "
            "LEFT JOIN pggit.branches p ON p.id = b.parent_branch_id").fetchall()
        actual = {name: (status, head, parent) for name, status, head, parent in rows}
        expected = {name: (b.status, b.head, b.parent) for name, b in self.branches.items()}
        assert actual == expected, f"branches (status, head, parent) differ from the model:\n" \
                                   f"  database: {actual}\n  model:    {expected}"

    @invariant()
    def chains_match(self) -> None:
        for name, branch in self.branches.items():
            assert checkers.linear_chain_invariant(self.conn, name) == branch.commits, f"chain of {name!r}"
        checkers.unique_trinity_ids(self.conn, extra_ids=self.issued)

    @invariant()
    def versions_match(self) -> None:
        for name, table in self.tables.items():
            row = self.conn.execute("SELECT major, minor, patch FROM pggit.get_version(%s)",
                                    (sql.Identifier(name).as_string(self.conn),)).fetchone()
            expected = table.version if table.live else None
            assert row == expected, f"get_version({name!r}) is {row}, the model says {expected}"

    @invariant()
    def integrity_holds(self) -> None:
        checkers.integrity_ok(self.conn)


@pytest.fixture
def pggit_model_databases(pg_server, make_database):
    """Hands PggitModel a factory of fresh databases (and a way to drop each one at the end of its run)."""

    def make() -> tuple[str, str]:
        dsn = make_database(prefix="model")
        return psycopg.conninfo.conninfo_to_dict(dsn)["dbname"], dsn

    PggitModel.databases = (make, pg_server.drop_database)
    try:
        yield
    finally:
        PggitModel.databases = None


@pytest.mark.slow
@pytest.mark.timeout(900)  # a failure shrinks for up to Hypothesis's five minutes, one database per attempt
@pytest.mark.usefixtures("pggit_model_databases")
class TestPggitModel(PggitModel.TestCase):
    """Random sequences of branch, commit and DDL steps: after each one the database equals the model."""

    settings = settings(stateful_step_count=20)
