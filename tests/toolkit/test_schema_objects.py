"""The schema-object generator creates, for real, every kind of object it says it makes.

``schema_types``, ``schema_objects``, ``schema_fragments`` and ``schema_ddl``
are checked against a bare PostgreSQL database (no pggit: what fails here is
the generator): every name fits in 63 bytes and comes back as written, every
fragment and every kind of object in it is created, every DDL step runs, and
the type families are drawn about equally often.
"""

from __future__ import annotations

import collections
import warnings

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import HypothesisWarning, NoSuchExample
from hypothesis import strategies as st
from pggit_chaos.client import execute_each
from pggit_chaos.schema_ddl import _lent_sequences, ddl_sequences
from pggit_chaos.schema_fragments import FAMILIES, column_types, schema_fragments
from pggit_chaos.schema_objects import (Column, ColumnType, Constraint, Fragment, Function, Index, Schema, Table,
                                        UserType)
from pggit_chaos.schema_types import NAME_FAMILIES, BuiltinType, builtin_types, names, object_name, quote
from pggit_chaos.schema_types import NAME_KINDS as KINDS

from tests.chaos.test_property_based_schema_objects import _lent_sequence_fragment

# Every kind of object and feature schema_fragments() makes (kinds_of()).
EVERY_KIND = sorted({
    "table: plain", "table: unlogged", "table: empty", "table: as", "table: partition", "table: child",
    "partition by: range", "partition by: list", "partition by: hash", "nested partition",
    "type: enum", "type: domain", "type: composite", "user type in another schema",
    "constraint: primary key", "constraint: unique", "constraint: check", "constraint: foreign key",
    "constraint: exclusion",
    "column: serial", "column: identity", "column: generated", "column: sequence",
    "array column", "collated column", "default expression", "default from a serial or identity sequence",
    "index: include", "index: partial", "index: expression", "index: multi-column",
    "collation", "sequence", "function",
})
# A fixed seed for the searches below: the same examples every run, never a flaky miss.
SEARCH = settings(derandomize=True, database=None, max_examples=2000, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), deadline=None)


def kinds_of(fragment: Fragment) -> set[str]:
    """Every kind of object and feature in the fragment."""
    found = {f"table: {t.kind}" for t in fragment.tables}
    found |= {f"type: {t.kind}" for t in fragment.types}
    found |= {f"constraint: {k.kind}" for t in fragment.tables for k in t.constraints}
    found |= {f"column: {c.kind}" for t in fragment.tables for c in t.columns}
    found |= {f"partition by: {t.partition_by[0].split()[0].lower()}" for t in fragment.tables if t.partition_by}
    found |= {"nested partition" for t in fragment.tables if t.kind == "partition" and t.partition_by}
    found |= {"array column" for t in fragment.tables for c in t.columns if c.type.array}
    found |= {"collated column" for t in fragment.tables for c in t.columns if c.collation is not None}
    found |= {"default expression" for t in fragment.tables for c in t.columns
              if c.kind == "plain" and c.default is not None}
    found |= {"default from a serial or identity sequence" for _ in _lent_sequences(fragment)}
    found |= {"user type in another schema" for t in fragment.types if t.schema is not fragment.home}
    found |= {"index: include" for i in fragment.indexes if i.include}
    found |= {"index: partial" for i in fragment.indexes if i.where is not None}
    found |= {"index: expression" for i in fragment.indexes if any(len(k) > 1 for k in i.keys)}
    found |= {"index: multi-column" for i in fragment.indexes if len(i.keys) > 1}
    found |= {f"{kind}" for kind, objs in (("collation", fragment.collations), ("sequence", fragment.sequences),
                                           ("function", fragment.functions)) if objs}
    return found


@pytest.fixture(scope="module")
def plain_conn(fresh_database):
    """An autocommit connection to a bare database (no pggit) for this module: every example runs in a
    transaction that is rolled back, so examples stay independent."""
    with fresh_database("schema_objects", pggit=False) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def tables_created(conn: psycopg.Connection, fragment: Fragment) -> list[tuple[str, int]]:
    """Each table of the fragment as the server has it: qualified name and number of columns."""
    return [conn.execute(
        "SELECT %s, count(a.attnum)::int FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid "
        "AND a.attnum > 0 AND NOT a.attisdropped WHERE c.oid = %s::regclass GROUP BY c.oid",
        (name, name)).fetchone() for name in fragment.table_names()]


def constraints_created(conn: psycopg.Connection, fragment: Fragment) -> list[set[str]]:
    """Each table's own named constraints as the server has them (not inherited ones, not NOT NULL)."""
    return [{row[0] for row in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND conislocal AND contype <> 'n'",
        (name,)).fetchall()} for name in fragment.table_names()]


# --------------------------------------------------------------------------
# names()
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_every_name_fits_in_63_bytes_and_is_stored_as_written(plain_conn, kind, data):
    name = data.draw(names(kind), label="name")
    assert 0 < len(name.encode()) <= 63
    quoted = quote(name)
    statement = {
        "schema": f"CREATE SCHEMA {quoted}",
        "table": f"CREATE TABLE {quoted} ()",
        "column": f"CREATE TABLE named ({quoted} int)",
        "index": f"CREATE TABLE named (c int); CREATE INDEX {quoted} ON named (c)",
        "constraint": f"CREATE TABLE named (c int CONSTRAINT {quoted} CHECK (c > 0))",
        "type": f"CREATE TYPE {quoted} AS ENUM ('a')",
        "function": f"CREATE FUNCTION {quoted}(integer) RETURNS integer LANGUAGE sql AS 'SELECT 1'",
        "sequence": f"CREATE SEQUENCE {quoted}",
        "collation": f'CREATE COLLATION {quoted} FROM "C"',
    }[kind]
    stored = {
        "schema": "SELECT nspname FROM pg_namespace WHERE nspname = %s",
        "column": "SELECT attname FROM pg_attribute WHERE attrelid = 'named'::regclass AND attname = %s",
        "constraint": "SELECT conname FROM pg_constraint WHERE conname = %s",
        "type": "SELECT typname FROM pg_type WHERE typname = %s",
        "function": "SELECT proname FROM pg_proc WHERE proname = %s AND pronamespace = 'public'::regnamespace",
        "collation": "SELECT collname FROM pg_collation WHERE collname = %s",
    }.get(kind, "SELECT relname FROM pg_class WHERE relname = %s AND relnamespace = 'public'::regnamespace")
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, [statement])
        assert plain_conn.execute(stored, (name,)).fetchone() == (name,)


def test_every_name_family_reaches_the_63_byte_limit_only_in_bytes():
    """The longest names are 63 bytes of multi-byte characters: fewer than 63 characters, never more bytes."""
    longest = NAME_FAMILIES["longest"]
    seen = []
    SEARCH_SMALL = settings(SEARCH, max_examples=50)

    @SEARCH_SMALL
    @given(longest)
    def collect(name):
        seen.append(name)

    collect()
    assert max(len(n.encode()) for n in seen) == 63
    assert any(len(n) < 63 and len(n.encode()) >= 60 for n in seen)


# --------------------------------------------------------------------------
# column_types()
# --------------------------------------------------------------------------


@given(column_type=column_types(), default=st.booleans())
def test_every_built_in_column_type_and_its_default_create(plain_conn, column_type, default):
    definition = f"c {column_type.sql()}" + (f" DEFAULT {column_type.default()[0]}" if default else "")
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, [f"CREATE TABLE typed ({definition})", "INSERT INTO typed DEFAULT VALUES"])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_type_family_creates(plain_conn, family):
    """One fragment per family, found with a fixed seed: a column of that family, created for real."""
    fragment = _find(lambda f: any(c.type.family == family for t in f.tables for c in t.columns),
                     families=(family,))
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())


def test_type_families_are_about_equally_likely():
    """Over 600 draws with a fixed seed every family is drawn between a quarter of a fair share and 2.5 times it.

    Hypothesis repeats and mutates earlier examples and mixes in constants of the modules the process has
    loaded, so the sample depends on the tests an xdist worker ran before this one: one worker drew
    ``binary`` 13 times, a third of a fair share, where the test run alone drew it at least 16 times."""
    counts = collections.Counter()

    @settings(SEARCH, max_examples=600)
    @given(st.builds(Fragment, st.builds(Schema, st.just("s"))).flatmap(column_types))
    def count(column_type):
        counts[column_type.family] += 1

    count()
    fair = sum(counts.values()) / len(FAMILIES)
    assert set(counts) == set(FAMILIES)
    assert all(fair * 0.25 <= n <= fair * 2.5 for n in counts.values()), counts


# --------------------------------------------------------------------------
# schema_fragments()
# --------------------------------------------------------------------------


def _find(condition, **knobs) -> Fragment:
    """The first fragment that meets ``condition`` (the same one every run: the seed is fixed)."""
    with warnings.catch_warnings():
        # find() renders its example as text, which nothing shows: a fragment of nine tables warns of its size.
        warnings.filterwarnings("ignore", "Generating overly large repr", HypothesisWarning)
        return find(schema_fragments(**knobs), condition, settings=SEARCH)


def _knobs(kind: str) -> dict:
    """What narrows schema_fragments() towards fragments with that kind of object in them."""
    if kind.startswith(("table: partition", "partition by", "nested")):
        return {"table_kinds": ("partitioned",)}
    if kind == "table: child":
        return {"table_kinds": ("inheritance",)}
    if kind.startswith("table: "):
        return {"table_kinds": (kind.split(": ")[1],)}
    if kind.startswith("type: ") or kind == "user type in another schema":
        return {"families": ("enum", "domain", "composite")}
    if kind == "constraint: exclusion":
        return {"families": ("range",), "table_kinds": ("plain",)}
    if kind in ("collated column", "collation"):
        return {"families": ("character",)}
    return {"table_kinds": ("plain",)}


@given(fragment=schema_fragments())
def test_every_fragment_creates_every_table_it_describes(plain_conn, fragment):
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        created = tables_created(plain_conn, fragment)
        constraints = constraints_created(plain_conn, fragment)
    assert [n for n, _ in created] == fragment.table_names()
    assert [c for _, c in created] == [len(t.all_columns()) for t in fragment.tables]
    # Every constraint the model holds exists (CREATE TABLE merges keys on the same columns, for one).
    assert constraints == [{k.name for k in t.constraints} for t in fragment.tables]


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_each_kind_of_object_is_created(plain_conn, kind):
    """A fragment with that kind, found with a fixed seed, is created for real in two schemas."""
    fragment = _find(lambda f: kind in kinds_of(f), **_knobs(kind))
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql() + fragment.drop_sql())
        execute_each(plain_conn, fragment.create_sql(home="second home"))


# --------------------------------------------------------------------------
# ddl_sequences()
# --------------------------------------------------------------------------


@given(data=st.data())
def test_every_ddl_step_runs(plain_conn, data):
    fragment = data.draw(schema_fragments(), label="fragment")
    steps = data.draw(ddl_sequences(fragment), label="steps")
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        execute_each(plain_conn, [s.sql for s in steps.steps])
        execute_each(plain_conn, steps.result.drop_sql() + steps.result.create_sql())


INTEGER = BuiltinType("numeric", "integer", "0", integral=True)


def _integer(name: str, not_null: bool = False) -> Column:
    return Column(name, ColumnType(INTEGER), not_null=not_null)


@pytest.mark.parametrize("array", [False, True], ids=["domain column", "array-of-domain column"])
def test_a_domain_constraint_is_added_only_where_postgresql_can_check_the_values(plain_conn, array):
    """ALTER DOMAIN ... ADD CONSTRAINT checks every value of the domain in the tables, which PostgreSQL
    refuses when a column holds an array of the domain: the generator makes the step only where it can run."""
    home = Schema("home")
    domain = UserType(home, "d", "domain", base=INTEGER)
    fragment = Fragment(home, types=[domain], names={"home", "d", "t", "c"})
    fragment.tables.append(Table(home, "t", columns=[Column("c", ColumnType(user=domain, array=array))]))
    # First, so that no earlier step has changed the column's type.
    adds_constraint = lambda s: s.steps[0].kind == "domain constraint"  # noqa: E731
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        if array:  # why the generator must not make the step while the array column is there
            with pytest.raises(psycopg.errors.FeatureNotSupported), plain_conn.transaction():
                plain_conn.execute('ALTER DOMAIN "home"."d" ADD CONSTRAINT "k" CHECK (VALUE IS NOT NULL)')
            with pytest.raises(NoSuchExample):  # 300 tries: the other case finds one within a few
                find(ddl_sequences(fragment), adds_constraint, settings=settings(SEARCH, max_examples=300))
        else:
            sequence = find(ddl_sequences(fragment), adds_constraint, settings=SEARCH)
            execute_each(plain_conn, [s.sql for s in sequence.steps])


def _partitioned_with_function_index() -> tuple[Fragment, Function]:
    """A range-partitioned table with one partition and an index on ``f(a)`` of the parent."""
    home = Schema("home")
    function = Function(home, "f")
    column = _integer("a", not_null=True)
    parent = Table(home, "p", columns=[column], partition_by=("RANGE", column))
    part = Table(home, "p1", kind="partition", parent=parent, bound="FOR VALUES FROM (0) TO (100)")
    fragment = Fragment(home, functions=[function], tables=[parent, part], names={"home", "f", "a", "p", "p1", "i"})
    fragment.indexes.append(Index("i", parent, [(function, "(", column, ")")]))
    return fragment, function


@pytest.mark.parametrize("direct_only", [False, True], ids=["any step", "direct only"])
def test_a_function_a_partitioned_index_calls_is_renamed_only_when_direct_creation_is_not_compared(
        plain_conn, direct_only):
    """The partition's copy of the index is named after the function (p1_f_idx) and keeps that name when the
    function is renamed: a table created directly would name it after the new name, so the steps of the
    alters-versus-direct property never rename such a function."""
    fragment, function = _partitioned_with_function_index()
    # First, so that no earlier step has dropped the index.
    renames = lambda s: s.steps[0].kind == "rename function"  # noqa: E731
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        assert plain_conn.execute("SELECT indexrelid::regclass::text FROM pg_index "
                                  "WHERE indrelid = 'home.p1'::regclass").fetchone()[0] == "home.p1_f_idx"
        if direct_only:
            with pytest.raises(NoSuchExample):
                find(ddl_sequences(fragment, direct_only=True), renames, settings=settings(SEARCH, max_examples=300))
        else:  # the positive control: without direct_only the rename is drawn, and the old name stays
            sequence = find(ddl_sequences(fragment), renames, settings=SEARCH)
            execute_each(plain_conn, [sequence.steps[0].sql])
            assert plain_conn.execute("SELECT indexrelid::regclass::text FROM pg_index "
                                      "WHERE indrelid = 'home.p1'::regclass").fetchone()[0] == "home.p1_f_idx"


@pytest.mark.parametrize("direct_only", [False, True], ids=["any step", "direct only"])
def test_a_table_whose_sequence_another_default_draws_from_is_moved_and_never_renamed_for_direct_creation(
        plain_conn, direct_only):
    """Moving the lender moves its identity sequence, and the model's default follows it; renaming the lender
    leaves the sequence's name, which a table created directly would not have, so the steps of the
    alters-versus-direct property never rename it (nor move it, as for serial columns)."""
    fragment = _lent_sequence_fragment("identity")
    touches_lender = lambda s: s.steps and (  # noqa: E731
        s.steps[0].table == ("home", "lender") or s.steps[0].sql.startswith('ALTER TABLE "home"."lender"'))
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        if direct_only:
            with pytest.raises(NoSuchExample):
                find(ddl_sequences(fragment, max_steps=1, direct_only=True),
                     lambda s: touches_lender(s) and s.steps[0].kind in (
                         "rename table", "rename column", "set schema", "sequence set schema"),
                     settings=settings(SEARCH, max_examples=300))
        else:  # the positive control: the move is drawn, as a step on the sequence, and the model follows it
            moved = find(ddl_sequences(fragment, max_steps=1),
                         lambda s: s.steps and s.steps[0].kind == "sequence set schema", settings=SEARCH)
            assert moved.steps[0].sql == 'ALTER TABLE "home"."lender" SET SCHEMA "other"'
            execute_each(plain_conn, [moved.steps[0].sql])
            default = plain_conn.execute("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
                                         "WHERE adrelid = 'home.t'::regclass").fetchone()[0]
            assert default == "nextval('other.lender_id_seq'::regclass)"
            assert moved.result.create_sql()[-1].endswith("""DEFAULT nextval('"other"."lender_id_seq"'::regclass))""")


def _lent_sequence_names(conn: psycopg.Connection, fragment: Fragment) -> tuple:
    """The lender's sequence as the server names it, the lender's own default and the borrower's default."""
    lender, borrower = fragment.tables
    return conn.execute(
        "SELECT pg_get_serial_sequence(%(lender)s, %(column)s), "
        "(SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = %(lender)s::regclass), "
        "(SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = %(borrower)s::regclass)",
        {"lender": lender.sql(), "column": lender.columns[0].name, "borrower": borrower.sql()}).fetchone()


@pytest.mark.parametrize("rename", ["rename column", "rename table"])
@pytest.mark.parametrize("kind", ["serial", "identity"])
def test_a_renamed_lender_keeps_its_sequence_name_and_the_result_recreates_as_altered(plain_conn, kind, rename):
    """Renaming a serial or identity column, or its table, leaves its sequence's name as PostgreSQL gave it,
    and another table's default names that sequence: the model keeps the name, so the fragment after the
    step is created directly (a serial as pg_dump writes it, an identity with SEQUENCE NAME) with the same
    names as the altered one. A random seed of ``make test`` found the recreation failing."""
    fragment = _lent_sequence_fragment(kind)
    steps = find(ddl_sequences(fragment, max_steps=1),
                 lambda s: s.steps and s.steps[0].kind == rename and s.steps[0].sql.startswith('ALTER TABLE "home"."lender"'),
                 settings=settings(SEARCH, max_examples=300))
    assert steps.result.tables[0].renamed_sequences()  # the model knows the name is no longer the implicit one
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql() + [steps.steps[0].sql])
        altered = _lent_sequence_names(plain_conn, steps.result)
        assert altered[0] == "home.lender_id_seq"
        execute_each(plain_conn, steps.result.drop_sql() + steps.result.create_sql())
        assert _lent_sequence_names(plain_conn, steps.result) == altered


def _partition_copies(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT indexrelid::regclass::text FROM pg_index "
                                            "WHERE indrelid = 'home.p1'::regclass ORDER BY 1")]


@pytest.mark.parametrize("direct_only", [False, True], ids=["any step", "direct only"])
def test_an_older_index_of_a_partitioned_table_is_dropped_only_when_direct_creation_is_not_compared(
        plain_conn, direct_only):
    """Two indexes on one expression of a partitioned table: the partition's copies are p1_expr_idx and
    p1_expr_idx1. Dropping the older leaves p1_expr_idx1, where a table created directly with the newer one
    alone has p1_expr_idx; the alters-versus-direct steps drop only the newest index of such a table (an
    ordinary user's random seed found the difference)."""
    home = Schema("home")
    column = _integer("a", not_null=True)
    parent = Table(home, "p", columns=[column], partition_by=("RANGE", column))
    part = Table(home, "p1", kind="partition", parent=parent, bound="FOR VALUES FROM (0) TO (100)")
    fragment = Fragment(home, tables=[parent, part], names={"home", "a", "p", "p1", "i", "j"})
    fragment.indexes += [Index(name, parent, [("(", column, " IS NULL)")]) for name in ("i", "j")]
    drop_older = f"DROP INDEX {home.sql()}.{quote('i')}"
    drops_older = lambda s: s.steps[0].sql == drop_older  # noqa: E731
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        assert _partition_copies(plain_conn) == ["home.p1_expr_idx", "home.p1_expr_idx1"]
        if direct_only:
            with pytest.raises(NoSuchExample):
                find(ddl_sequences(fragment, direct_only=True), drops_older,
                     settings=settings(SEARCH, max_examples=300))
            newest = find(ddl_sequences(fragment, direct_only=True),
                          lambda s: s.steps[0].kind == "drop index", settings=SEARCH)
            assert newest.steps[0].sql == f"DROP INDEX {home.sql()}.{quote('j')}"
        else:  # the positive control: without direct_only the older one is dropped, and the number stays
            execute_each(plain_conn, [find(ddl_sequences(fragment), drops_older, settings=SEARCH).steps[0].sql])
            assert _partition_copies(plain_conn) == ["home.p1_expr_idx1"]


def _tree(shape: str) -> Fragment:
    """p (a primary key on a, a check on b) and a table l under it: a partition of p (p partitioned by
    range), a partition of a partition m of p (m partitioned by hash again), or an inheritance child."""
    home = Schema("home")
    a, b = _integer("a", not_null=True), _integer("b")
    parent = Table(home, "p", columns=[a, b], partition_by=None if shape == "inheritance child" else ("RANGE", a),
                   constraints=[Constraint("k", "primary key", [a]), Constraint("c", "check", [b], ("(", b, " > 0)"))])
    range_bound = "FOR VALUES FROM (0) TO (100)"
    if shape == "inheritance child":
        tables = [parent, Table(home, "l", kind="child", parent=parent)]
    elif shape == "partition of a partition":
        middle = Table(home, "m", kind="partition", parent=parent, bound=range_bound, partition_by=("HASH", a))
        tables = [parent, middle, Table(home, "l", kind="partition", parent=middle,
                                        bound="FOR VALUES WITH (MODULUS 1, REMAINDER 0)")]
    else:
        tables = [parent, Table(home, "l", kind="partition", parent=parent, bound=range_bound)]
    return Fragment(home, tables=tables, names={"home", "a", "b", "p", "k", "c", "m", "l"})


@pytest.mark.parametrize("shape", ["partition", "partition of a partition", "inheritance child"])
def test_a_table_taken_out_of_its_tree_keeps_the_constraints_postgresql_leaves_it(plain_conn, shape):
    """DETACH PARTITION leaves a partition the primary key and checks it had through the tables above it;
    NO INHERIT leaves a child its parent's checks (a child never has its parent's keys). The generator
    knows: it never drops NOT NULL from a column a kept key covers (an ordinary user's random seed found it
    doing that to a partition of a partition)."""
    fragment = _tree(shape)
    unlink = "no inherit" if shape == "inheritance child" else "detach partition"
    one_step = lambda f: ddl_sequences(f, max_steps=1, dependencies=False)  # noqa: E731
    drops_not_null = lambda column: lambda s: [step.sql for step in s.steps] == [  # noqa: E731
        f'ALTER TABLE "home"."l" ALTER COLUMN {quote(column)} DROP NOT NULL']
    with plain_conn.transaction(force_rollback=True):
        execute_each(plain_conn, fragment.create_sql())
        unlinked = find(one_step(fragment), lambda s: [step.kind for step in s.steps] == [unlink],
                        settings=SEARCH)
        execute_each(plain_conn, [unlinked.steps[0].sql])
        live = sorted(plain_conn.execute(
            "SELECT contype::text, array(SELECT attname::text FROM pg_attribute WHERE attrelid = conrelid "
            "AND attnum = ANY (conkey) ORDER BY attnum) FROM pg_constraint "
            "WHERE conrelid = 'home.l'::regclass AND contype <> 'n'").fetchall())
        assert live == [("c", ["b"])] + ([] if shape == "inheritance child" else [("p", ["a"])])
        (table,) = [t for t in unlinked.result.tables if t.name == "l"]
        assert sorted(({"check": "c", "primary key": "p"}[k.kind], [c.name for c in k.columns])
                      for k in table.constraints) == live
        first = lambda condition, tries=2000: find(  # noqa: E731
            one_step(unlinked.result), condition, settings=settings(SEARCH, max_examples=tries)).steps[0].sql
        if shape == "inheritance child":  # no key: a may lose its NOT NULL too
            execute_each(plain_conn, [first(drops_not_null("a"))])
        else:
            with pytest.raises(NoSuchExample):
                first(drops_not_null("a"), 500)
        # The positive control: the column no key covers can lose its NOT NULL, and the statement runs.
        execute_each(plain_conn, [first(drops_not_null("b"))])


TABLE = "日λ日𝔘λéx本x語𝔘λжß𝔘本😀éßßßλß𝔘"
COLUMNS = ("𝔘日😀😀éж語λ😀😀λ本本λж日é語😀本𝔘", "𝔘日😀😀éж語λ😀😀λ本本λж日é語😀本2")


def test_implicit_sequence_names_are_predicted_and_a_clash_never_generated(plain_conn):
    """PostgreSQL cuts <table>_<column>_seq to 63 bytes; two identity columns whose names differ only past
    the cut cannot be made by one CREATE TABLE (the case the hunting profile found), so the generator makes
    the second one a plain column."""
    with plain_conn.transaction(force_rollback=True):
        plain_conn.execute(f"CREATE TABLE {quote(TABLE)} ({quote(COLUMNS[0])} int GENERATED ALWAYS AS IDENTITY)")
        made = plain_conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (quote(TABLE), COLUMNS[0])).fetchone()[0]
        assert made == f"public.{quote(object_name(TABLE, COLUMNS[0], 'seq'))}"
    assert object_name(TABLE, COLUMNS[0], "seq") == object_name(TABLE, COLUMNS[1], "seq")
    # Why: PostgreSQL refuses both in one statement.
    with plain_conn.transaction(force_rollback=True), pytest.raises(psycopg.errors.DuplicateTable):
        plain_conn.execute(f"CREATE TABLE {quote(TABLE)} ({quote(COLUMNS[0])} int GENERATED ALWAYS AS IDENTITY, "
                           f"{quote(COLUMNS[1])} int GENERATED ALWAYS AS IDENTITY)")

    @given(schema_fragments())
    @settings(SEARCH, max_examples=300)
    def every_table_has_distinct_sequence_names(fragment):
        for table in fragment.tables:
            owned = [object_name(table.name, c.name, "seq") for c in table.columns if c.kind in ("serial", "identity")]
            assert len(owned) == len(set(owned)), table

    every_table_has_distinct_sequence_names()
