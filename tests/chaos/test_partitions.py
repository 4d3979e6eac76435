"""Partition and inheritance chaos: DDL on any table of a tree keeps every affected table's version current.

PostgreSQL reports a DDL statement against the table it names, yet many
statements change other tables too: an index or a column added to a
partitioned table reaches every partition, ``ATTACH PARTITION`` creates
indexes and foreign keys in the partition, ``DETACH PARTITION CONCURRENTLY``
adds a CHECK constraint to the table it detaches, a new partition of a
referenced table gives every referencing foreign key a hidden clone. pggit's
contract ("Partitions and inheritance"): every table whose structure changed
gets its version bumped and its recorded hash made current, so
``detect_drift()`` stays empty.

Workload: Hypothesis draws DDL sequences over one small tree (a LIST-
partitioned root with plain, default, RANGE- and HASH-subpartitioned
partitions, an inheritance chain, a table that can join and leave it, a table
referencing the root). Fault: the DDL itself, including statements that fail.
Invariants, after every statement: each user table's recorded hash is its
live ``calculate_schema_hash``, a table whose hash changed got a higher
version, pggit tracks exactly the live tables, no drift, integrity holds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import version
from pggit_chaos.nemesis import tracking_paused
from pggit_chaos.profiles import share_of_examples
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.partitions]

_fresh = itertools.count()


def _tables(conn: psycopg.Connection, schema: str) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Every table of the schema: name -> (live hash, recorded hash, recorded version)."""
    found = conn.execute(
        """
        SELECT c.relname, pggit.calculate_schema_hash(format('%%I.%%I', n.nspname, c.relname)),
               o.content_hash, o.version_major || '.' || o.version_minor || '.' || o.version_patch
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pggit.objects o ON o.is_active AND o.object_type = 'TABLE'
                                   AND o.schema_name = n.nspname AND o.object_name = c.relname
         WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
        """, (schema,)).fetchall()
    return {name: (live, recorded, ver) for name, live, recorded, ver in found}


def _semver(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")) if text else ()


def assert_versions_follow(conn: psycopg.Connection, schema: str, before: dict, what: str) -> dict:
    """After one statement: every table's recorded hash is live, a changed table has a higher version, no drift."""
    after = _tables(conn, schema)
    stale = {name: (live, recorded) for name, (live, recorded, _) in after.items() if live is None or live != recorded}
    assert not stale, f"after {what}: recorded hash is not the live one for {sorted(stale)}"
    unbumped = sorted(name for name, (live, _, ver) in after.items()
                      if name in before and before[name][0] != live and _semver(ver) <= _semver(before[name][2]))
    assert not unbumped, f"after {what}: structure changed but version did not go up: {unbumped}"
    checkers.drift_is(conn)
    return after


@pytest.fixture
def conn(sync_conn: psycopg.Connection) -> psycopg.Connection:
    sync_conn.autocommit = True
    return sync_conn


@pytest.fixture
def schema(conn: psycopg.Connection) -> str:
    name = f"tree_{next(_fresh)}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(name)))
    return name


def _run(conn: psycopg.Connection, schema: str, statements: list[str]) -> dict:
    """Runs each statement and checks the versions after each one; returns the last table state."""
    state = _tables(conn, schema)
    for statement in statements:
        conn.execute(statement)
        state = assert_versions_follow(conn, schema, state, statement)
    return state


# --------------------------------------------------------------------------
# One statement, the tables it changes: regression tests with positive controls
# --------------------------------------------------------------------------

TREE = [
    "CREATE TABLE m (id int NOT NULL, region text NOT NULL, k int NOT NULL, v int) PARTITION BY LIST (region)",
    "CREATE TABLE m_a PARTITION OF m FOR VALUES IN ('a')",
    "CREATE TABLE m_def PARTITION OF m DEFAULT",
    "CREATE TABLE m_s PARTITION OF m FOR VALUES IN ('s') PARTITION BY RANGE (k)",
    "CREATE TABLE m_s_lo PARTITION OF m_s FOR VALUES FROM (0) TO (100)",
    "CREATE TABLE m_h PARTITION OF m FOR VALUES IN ('h') PARTITION BY HASH (id)",
    "CREATE TABLE m_h_0 PARTITION OF m_h FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
]
EVERY_PARTITION = {"m_a", "m_def", "m_s", "m_s_lo", "m_h", "m_h_0"}


def _bumped(before: dict, after: dict) -> set[str]:
    return {name for name in after if name in before and after[name][2] != before[name][2]}


@pytest.mark.parametrize("target, reached", [
    ("m", {"m"} | EVERY_PARTITION),
    ("m_s", {"m_s", "m_s_lo"}),
], ids=["root", "subpartitioned-partition"])
def test_create_index_on_a_partitioned_table_bumps_every_partition_it_reaches(conn, schema, target, reached):
    """CREATE INDEX on a partitioned table creates the index in every partition below it (list, default, range and
    hash, nested): each of them gets a patch bump and its new hash, the tables above and beside it do not change."""
    before = _run(conn, schema, TREE)
    after = _run(conn, schema, [f"CREATE INDEX {target}_v_idx ON {target} (v)"])
    assert _bumped(before, after) == reached
    assert {name for name in after if after[name][0] != before[name][0]} == reached  # the index really reached them
    assert version(conn, "m_s_lo") == ("1.0.1" if "m_s_lo" in reached else "1.0.0")


def test_create_index_on_an_inheritance_parent_changes_only_the_parent(conn, schema):
    """An index on an inheritance parent is not inherited: the parent is bumped, its children keep their version."""
    before = _run(conn, schema, ["CREATE TABLE ip (id int, v int)", "CREATE TABLE ic () INHERITS (ip)"])
    after = _run(conn, schema, ["CREATE INDEX ip_v_idx ON ip (v)"])
    assert _bumped(before, after) == {"ip"}
    after = _run(conn, schema, ["ALTER TABLE ip ADD COLUMN w int"])  # positive control: columns are inherited
    assert version(conn, "ic") == "1.1.0"


@pytest.mark.parametrize("concurrently", [False, True], ids=["detach", "detach-concurrently"])
def test_detached_partition_is_recorded_with_its_new_structure(conn, schema, concurrently):
    """DETACH PARTITION (plain, or CONCURRENTLY, which adds a CHECK constraint for the old bound) changes the
    partition, which PostgreSQL does not report: pggit records it all the same, and its version goes up."""
    state = _run(conn, schema, TREE[:2] + ["CREATE TABLE m_b PARTITION OF m FOR VALUES IN ('b')"])
    state = _run(conn, schema, [f"ALTER TABLE m DETACH PARTITION m_b{' CONCURRENTLY' if concurrently else ''}"])
    assert version(conn, "m_b") == "1.0.1" and version(conn, "m_a") == "1.0.0"
    checks = conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'm_b'::regclass AND contype = 'c'")
    assert checks.fetchone() == ((1,) if concurrently else (0,))
    _run(conn, schema, ["ALTER TABLE m ATTACH PARTITION m_b FOR VALUES IN ('b')"])  # and back in the tree
    assert version(conn, "m_b") == "1.0.2"


def test_attach_partition_records_the_indexes_it_creates_in_the_partition(conn, schema):
    """ATTACH PARTITION builds the parent's indexes in the attached table: the table's version goes up with them."""
    _run(conn, schema, TREE[:2] + ["CREATE INDEX m_v_idx ON m (v)",
                                   "CREATE TABLE m_b (id int NOT NULL, region text NOT NULL, k int NOT NULL, v int)"])
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'm_b'").fetchone() == (0,)
    _run(conn, schema, ["ALTER TABLE m ATTACH PARTITION m_b FOR VALUES IN ('b')"])
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'm_b'").fetchone() == (1,)
    assert version(conn, "m_b") == "1.0.1"


@pytest.mark.parametrize("statements", [
    ["CREATE TABLE m_b PARTITION OF m FOR VALUES IN ('b')"],
    ["ALTER TABLE m ATTACH PARTITION m_c FOR VALUES IN ('c')"],
    ["ALTER TABLE m DETACH PARTITION m_a"],
    ["ALTER TABLE m DETACH PARTITION m_a CONCURRENTLY", "DROP TABLE m_a"],
], ids=["create-partition", "attach", "detach", "detach-and-drop"])
def test_partitions_of_a_referenced_table_come_and_go_without_drift_in_the_referencing_table(conn, schema, statements):
    """A foreign key to a partitioned table gets a hidden clone per partition (pg_dump does not show them): a new,
    attached, detached or dropped partition leaves the referencing table's structure, hash and version as they were,
    while a real change to that foreign key still is one."""
    before = _run(conn, schema, TREE[:2] + [
        "ALTER TABLE m ADD PRIMARY KEY (id, region)",
        "CREATE TABLE m_c (id int NOT NULL, region text NOT NULL, k int NOT NULL, v int)",
        "CREATE TABLE r (id int, region text, CONSTRAINT r_m_fkey FOREIGN KEY (id, region) REFERENCES m)"])
    after = _run(conn, schema, statements)
    assert after["r"] == before["r"]
    after = _run(conn, schema, ["ALTER TABLE r ALTER CONSTRAINT r_m_fkey DEFERRABLE"])  # positive control
    assert after["r"][0] != before["r"][0] and version(conn, "r") == "1.0.1"


def test_renaming_a_parent_records_its_partitions_and_children(conn, schema):
    """A partition's and an inheritance child's structure names their parent: renaming the parent records them too."""
    before = _run(conn, schema, TREE[:2] + ["CREATE TABLE ip (id int)", "CREATE TABLE ic () INHERITS (ip)"])
    after = _run(conn, schema, ["ALTER TABLE m RENAME TO m_renamed", "ALTER TABLE ip RENAME TO ip_renamed"])
    assert version(conn, "m_a") == "1.0.1" and version(conn, "ic") == "1.0.1"
    assert after["m_a"][0] != before["m_a"][0]


def test_only_an_alter_table_of_a_partitioned_table_records_the_tables_its_transaction_holds_locked(conn, schema):
    """A drifted table the transaction holds in ACCESS EXCLUSIVE mode stays drifted through CREATE INDEX on a
    partitioned table and ALTER TABLE on a plain one: only the detach path of an ALTER TABLE on a partitioned
    table records the tables held locked. Positive control: a DETACH PARTITION in that transaction records it."""
    _run(conn, schema, TREE[:2] + ["CREATE TABLE m_b PARTITION OF m FOR VALUES IN ('b')",
                                   "CREATE TABLE plain (id int)", "CREATE TABLE other (id int)"])
    with tracking_paused(conn):
        conn.execute("ALTER TABLE other ADD COLUMN sneaky int")
    checkers.drift_is(conn, {f"{schema}.other"})
    for statement in ["CREATE INDEX m_v_idx ON m (v)", "ALTER TABLE plain ADD COLUMN w int"]:
        with conn.transaction():
            conn.execute("LOCK TABLE other IN ACCESS EXCLUSIVE MODE")
            conn.execute(statement)
        assert version(conn, "other") == "1.0.0", statement
        checkers.drift_is(conn, {f"{schema}.other"})
    assert (version(conn, "m_a"), version(conn, "plain")) == ("1.0.1", "1.1.0")
    with conn.transaction():
        conn.execute("LOCK TABLE other IN ACCESS EXCLUSIVE MODE")
        conn.execute("ALTER TABLE m DETACH PARTITION m_b")
    assert (version(conn, "m_b"), version(conn, "other")) == ("1.0.2", "1.1.0")
    checkers.drift_is(conn)


# --------------------------------------------------------------------------
# Generated DDL sequences over one tree
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A table that can be a partition: its parent and bound, and the clause that makes it partitioned itself."""

    parent: str
    bound: str
    partition_by: str = ""


SLOTS = {
    "m_a": Slot("m", "FOR VALUES IN ('a')"),
    "m_b": Slot("m", "FOR VALUES IN ('b')"),
    "m_def": Slot("m", "DEFAULT"),
    "m_s": Slot("m", "FOR VALUES IN ('s')", "PARTITION BY RANGE (k)"),
    "m_s_lo": Slot("m_s", "FOR VALUES FROM (0) TO (100)"),
    "m_s_hi": Slot("m_s", "FOR VALUES FROM (100) TO (200)"),
    "m_h_0": Slot("m_h", "FOR VALUES WITH (MODULUS 2, REMAINDER 0)"),
    "m_h_1": Slot("m_h", "FOR VALUES WITH (MODULUS 2, REMAINDER 1)"),
}
SETUP = [
    "CREATE TABLE m (id int NOT NULL, region text NOT NULL, k int NOT NULL, v int, PRIMARY KEY (id, region, k))"
    " PARTITION BY LIST (region)",
    "CREATE TABLE m_h PARTITION OF m FOR VALUES IN ('h') PARTITION BY HASH (id)",
    "CREATE TABLE ip (id int, v int)",
    "CREATE TABLE ic1 () INHERITS (ip)",
    "CREATE TABLE ic2 (extra text) INHERITS (ic1)",
    "CREATE TABLE solo (id int, v int)",
]
# Tables DDL may name: parents (whose changes cascade), single partitions and inheritance members.
TARGETS = ["m", "m_s", "m_h", "m_a", "m_s_lo", "ip", "ic1", "ic2", "solo"]
OPERATIONS = ["create_partition", "attach", "detach", "detach_concurrently", "drop_partition", "create_index",
              "drop_index", "add_column", "drop_column", "alter_type", "set_default", "add_check", "drop_check",
              "set_not_null", "drop_not_null", "inherit", "no_inherit", "reference", "comment"]


@dataclass
class Tree:
    """What the test knows of the tree: which slots are attached or stand alone, and what it added where."""

    slots: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SLOTS, "absent"))
    indexes: list[str] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)
    int_type: str = "int"

    def exists(self, table: str) -> bool:
        return table not in SLOTS or self.slots[table] != "absent"

    def statement(self, operation: str, pick: int, n: int) -> str | None:
        """The SQL for one drawn operation, or None when it does not apply to the tree as it is."""
        slot = sorted(SLOTS)[pick % len(SLOTS)]
        spec = SLOTS[slot]
        target = [t for t in TARGETS if self.exists(t)][pick % len([t for t in TARGETS if self.exists(t)])]
        parent_ok = self.exists(spec.parent)
        if operation == "create_partition" and self.slots[slot] == "absent" and parent_ok:
            self.slots[slot] = "attached"
            return f"CREATE TABLE {slot} PARTITION OF {spec.parent} {spec.bound} {spec.partition_by}"
        if operation == "attach" and self.slots[slot] != "attached" and parent_ok:
            create = "" if self.slots[slot] == "detached" else (
                f"CREATE TABLE {slot} (LIKE {spec.parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) {spec.partition_by}; ")
            self.slots[slot] = "detached" if create else self.slots[slot]
            return create + f"ALTER TABLE {spec.parent} ATTACH PARTITION {slot} {spec.bound}"
        if operation in ("detach", "detach_concurrently") and self.slots[slot] == "attached":
            concurrently = " CONCURRENTLY" if operation == "detach_concurrently" else ""
            return f"ALTER TABLE {spec.parent} DETACH PARTITION {slot}{concurrently}"
        if operation == "drop_partition" and self.slots[slot] != "absent":
            return f"DROP TABLE {slot}"
        if operation == "create_index":
            self.indexes.append(f"ix{n}_{target}")
            return f"CREATE INDEX ix{n}_{target} ON {target} (v)"
        if operation == "drop_index" and self.indexes:
            return f"DROP INDEX IF EXISTS {self.indexes.pop(pick % len(self.indexes))}"
        if operation == "add_column":
            self.columns.append((target, f"c{n}"))
            return f"ALTER TABLE {target} ADD COLUMN c{n} int"
        if operation == "drop_column" and self.columns:
            table, column = self.columns.pop(pick % len(self.columns))
            return f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}"
        if operation == "alter_type":
            self.int_type = "bigint" if self.int_type == "int" else "int"
            return f"ALTER TABLE {target} ALTER COLUMN v TYPE {self.int_type}"
        if operation == "set_default":
            return f"ALTER TABLE {target} ALTER COLUMN v SET DEFAULT {n}"
        if operation == "add_check":
            self.checks.append((target, f"ck{n}"))
            return f"ALTER TABLE {target} ADD CONSTRAINT ck{n} CHECK (v <> {n})"
        if operation == "drop_check" and self.checks:
            table, name = self.checks.pop(pick % len(self.checks))
            return f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"
        if operation == "set_not_null":
            return f"ALTER TABLE {target} ALTER COLUMN v SET NOT NULL"
        if operation == "drop_not_null":
            return f"ALTER TABLE {target} ALTER COLUMN v DROP NOT NULL"
        if operation == "inherit":
            return "ALTER TABLE solo INHERIT ip"
        if operation == "no_inherit":
            return "ALTER TABLE solo NO INHERIT ip"
        if operation == "reference":
            return (f"CREATE TABLE IF NOT EXISTS r{n} (id int, region text, k int, "
                    f"FOREIGN KEY (id, region, k) REFERENCES m (id, region, k))")
        if operation == "comment":
            return f"COMMENT ON TABLE {target} IS 'c{n}'"
        return None


def _refused_by_postgresql(error: psycopg.Error) -> bool:
    """A statement PostgreSQL refused for the tree as it is (never an error raised inside pggit)."""
    return "pggit" not in (error.diag.context or "") and (error.sqlstate or "")[:2] in ("42", "23", "55", "0A", "2B")


def _apply(conn: psycopg.Connection, tree: Tree, statement: str) -> bool:
    """Runs a drawn statement; returns whether PostgreSQL accepted it, and keeps the model in step with the catalog."""
    try:
        for part in statement.split("; "):
            conn.execute(part)
        accepted = True
    except psycopg.Error as error:
        assert _refused_by_postgresql(error), f"{statement}: {error.sqlstate} {error} ({error.diag.context})"
        accepted = False
    for slot in SLOTS:
        row = conn.execute("SELECT c.relispartition FROM pg_class c WHERE c.oid = to_regclass(%s)", (slot,)).fetchone()
        tree.slots[slot] = "absent" if row is None else ("attached" if row[0] else "detached")
    return accepted


@pytest.mark.slow
@pytest.mark.property
@example(steps=[("create_index", 0), ("create_partition", 5), ("create_partition", 3), ("create_index", 1),
                ("detach_concurrently", 3), ("attach", 3), ("reference", 0), ("create_partition", 1),
                ("detach", 1), ("inherit", 0), ("add_column", 5), ("no_inherit", 0)])
# Half the profile's examples (10 in dev and gate, 250 in thorough): each one builds and changes a tree of up to
# 14 DDL steps, about 0.15 s an example.
@share_of_examples(2, 10)
@given(steps=st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 63)), min_size=1, max_size=14))
def test_any_ddl_sequence_over_a_partition_and_inheritance_tree_keeps_every_version_current(conn, steps):
    """For any drawn sequence of DDL over partitions (create, attach, detach, detach concurrently, drop; list, range,
    hash, default, nested), inheritance (inherit, no inherit, nested children) and their parents (indexes,
    columns, types, defaults, checks, not null, referencing foreign keys), after every statement each table's
    recorded hash is its live one, a table whose structure changed has a higher version, and nothing drifts."""
    schema = f"tree_{next(_fresh)}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
    tree = Tree()
    try:
        state = _run(conn, schema, SETUP)
        accepted = 0
        for operation, pick in steps:
            statement = tree.statement(operation, pick, next(_fresh))
            if statement is None:
                continue
            accepted += _apply(conn, tree, statement)
            state = assert_versions_follow(conn, schema, state, statement)
        checkers.tracked_tables_match_catalog(conn)
        for table in sorted(state):
            checkers.versions_strictly_increasing(conn, f"{schema}.{table}")
        checkers.integrity_ok(conn)
    finally:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.execute("RESET search_path")
