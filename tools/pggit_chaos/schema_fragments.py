"""Hypothesis strategies for schema fragments: ``schema_fragments()`` and ``column_types()``.

A fragment is one home schema for its tables, sometimes another schema for
types, sequences, functions and collations, and one to three groups of
tables: plain, unlogged, with no columns, made by ``CREATE TABLE AS``,
partitioned (range, list or hash, with partitions, sometimes partitioned
again), or an inheritance parent with a child. Tables get primary keys,
unique, check, foreign-key and exclusion constraints, serial, identity,
generated and collated columns, defaults that are expressions or draw from
a sequence (one the fragment creates, or a serial or identity column's),
and indexes (multi-column, expression, partial, with ``INCLUDE``). Each type family
(``FAMILIES``) is about equally likely; ``event()`` records the mix and
``target()`` pushes towards more tables and columns.
"""

from __future__ import annotations

from hypothesis import event, target
from hypothesis import strategies as st

from pggit_chaos.schema_objects import (
    Collation, Column, ColumnType, Constraint, Fragment, Function, Index, OwnedSequence, Schema, Sequence, Table,
    UserType,
)
from pggit_chaos.schema_types import BUILTIN_FAMILIES, INTEGRAL_TYPES, _cut, builtin_types, fair, names

__all__ = ["FAMILIES", "TABLE_KINDS", "column_types", "fresh_name", "schema_fragments"]

USER_FAMILIES = ("enum", "domain", "composite")
FAMILIES = BUILTIN_FAMILIES + USER_FAMILIES
TABLE_KINDS = ("plain", "unlogged", "empty", "as", "partitioned", "inheritance")
PARTITION_STRATEGIES = ("RANGE", "LIST", "HASH")
COLUMN_KINDS = ("plain", "default", "collated", "serial", "identity", "generated", "sequence")


def unused_name(fragment: Fragment, base: str) -> str:
    """``base``, or when the fragment has used it, ``base`` with the first number that makes it unused
    (cut to stay within 63 bytes)."""
    name, number = base, 2
    while name in fragment.names:
        name = _cut(base, 63 - len(str(number))) + str(number)
        number += 1
    return name


def fresh_name(draw: st.DrawFn, fragment: Fragment, kind: str) -> str:
    """A name of ``kind`` that the fragment has not used yet (and now has)."""
    name = unused_name(fragment, draw(names(kind)))
    fragment.names.add(name)
    return name


def _schema_for(draw: st.DrawFn, fragment: Fragment) -> Schema:
    return draw(st.sampled_from(fragment.schemas))


def _user_type(draw: st.DrawFn, fragment: Fragment, kind: str) -> UserType:
    existing = [t for t in fragment.types if t.kind == kind]
    if existing and draw(st.booleans()):
        return draw(st.sampled_from(existing))
    schema = _schema_for(draw, fragment)
    made = UserType(schema, fresh_name(draw, fragment, "type"), kind)
    if kind == "enum":
        made.labels = draw(st.lists(names("type"), min_size=1, max_size=4, unique=True))
    elif kind == "domain":
        made.base = draw(builtin_types())
    else:
        made.fields = [(n, draw(builtin_types())) for n in
                       draw(st.lists(names("column"), min_size=1, max_size=3, unique=True))]
        fragment.names |= {n for n, _ in made.fields}  # so that an attribute added later has a fresh name
    fragment.types.append(made)
    return made


def column_types(fragment: Fragment | None = None, families: tuple[str, ...] = FAMILIES
                 ) -> st.SearchStrategy[ColumnType]:
    """A column type, each of ``FAMILIES`` about equally likely, an array of it one time in four.

    User types (enums, domains, composites) are made in ``fragment``, in its
    home schema or another one, or reused; without a fragment only built-in
    families are drawn.
    """
    if fragment is None:
        families = tuple(f for f in families if f in BUILTIN_FAMILIES)
    return _column_types(fragment, families)


@st.composite
def _column_types(draw: st.DrawFn, fragment: Fragment | None, families: tuple[str, ...]) -> ColumnType:
    family = draw(fair(families))
    event(f"type family: {family}")
    array = draw(st.integers(0, 3)) == 0
    if array:
        event("type: array")
    if family in USER_FAMILIES:
        return ColumnType(user=_user_type(draw, fragment, family), array=array)
    return ColumnType(builtin=draw(builtin_types(family)), array=array)


def _integral(draw: st.DrawFn) -> ColumnType:
    return ColumnType(builtin=draw(INTEGRAL_TYPES))


def _pick(draw: st.DrawFn, fragment: Fragment, objects: list, make):
    if objects and draw(st.booleans()):
        return draw(st.sampled_from(objects))
    made = make(_schema_for(draw, fragment), fresh_name(draw, fragment, make.__name__.lower()))
    objects.append(made)
    return made


def _column(draw: st.DrawFn, fragment: Fragment, table: Table, families: tuple[str, ...]) -> Column:
    earlier = table.columns
    kind = draw(fair(COLUMN_KINDS))
    event(f"column kind: {kind}")
    name = fresh_name(draw, fragment, "column")
    if kind in ("serial", "identity", "sequence", "generated"):
        column = Column(name, _integral(draw), kind)
        if kind == "identity":
            column.identity = draw(st.sampled_from(["ALWAYS", "BY DEFAULT"]))
        elif kind == "sequence":
            lenders = [(t, c) for t in [*fragment.tables, table] for c in t.columns
                       if c.kind in ("serial", "identity")]
            if lenders and draw(st.booleans()):
                # The sequence of an earlier serial or identity column, of this table or another: the lender's
                # SET SCHEMA moves it, and changes this default and its copies in partitions and children.
                owner, lender = draw(st.sampled_from(lenders))
                event("sequence default: a serial or identity column's sequence")
                column.default = OwnedSequence(owner.schema, owner.implicit_sequence_name(lender), owner).nextval()
            else:
                column.default = _pick(draw, fragment, fragment.sequences, Sequence).nextval()
        elif kind == "generated":
            sources = [c for c in earlier if c.type.integral and c.kind != "generated"]
            column.default = ("(", draw(st.sampled_from(sources)), " * 2)") if sources else ("(1 + 1)",)
        return column
    column = Column(name, draw(column_types(fragment, families)), not_null=draw(st.booleans()))
    if kind == "default":
        column.default = column.type.default()
        if column.type.integral and draw(st.booleans()):
            column.default = (_pick(draw, fragment, fragment.functions, Function), "(1)")
    elif kind == "collated" and column.type.collatable:
        column.collation = draw(st.sampled_from(["C", "POSIX", None]))
        if column.collation is None:
            column.collation = _pick(draw, fragment, fragment.collations, Collation)
    return column


def _constraints(draw: st.DrawFn, fragment: Fragment, table: Table, key: Column | None) -> None:
    """Keys, checks, foreign keys and exclusions on ``table``; a partitioned table's keys hold ``key``."""
    columns = [c for c in table.columns if c.kind != "generated"]
    keyable = [c for c in columns if c.type.btree and c.kind not in ("identity", "serial") or c is key]
    for kind in draw(st.lists(st.sampled_from(["primary key", "unique", "check", "foreign key", "exclusion"]),
                              max_size=3, unique=True)):
        constraint = Constraint(fresh_name(draw, fragment, "constraint"), kind)
        if kind in ("primary key", "unique"):
            if key is not None:
                constraint.columns = [key]
            elif keyable:
                constraint.columns = draw(st.lists(st.sampled_from(keyable), min_size=1, max_size=2, unique=True))
            else:
                continue
            if kind == "primary key":
                for c in constraint.columns:
                    c.not_null = True
        elif kind == "check":
            if not columns:
                continue
            column = draw(st.sampled_from(columns))
            constraint.columns = [column]
            constraint.check = ("(", column, " IS NOT NULL)")
            if column.type.integral and draw(st.booleans()):
                constraint.check = (_pick(draw, fragment, fragment.functions, Function), "(", column, ") > 0")
        elif kind == "foreign key":
            # A permanent table may not reference an unlogged one.
            targets = [(t, k) for t in fragment.tables for k in t.constraints if k.kind == "primary key"
                       and (t.kind != "unlogged" or table.kind == "unlogged")]
            if not targets or key is not None:
                continue
            ref_table, ref_key = draw(st.sampled_from(targets))
            constraint.ref, constraint.ref_columns = ref_table, ref_key.columns
            constraint.columns = [Column(fresh_name(draw, fragment, "column"), c.type) for c in ref_key.columns]
            table.columns += constraint.columns
        else:
            ranges = [c for c in columns if c.type.family == "range" and not c.type.array]
            if not ranges or key is not None:
                continue
            constraint.columns = [draw(st.sampled_from(ranges))]
        event(f"constraint: {kind}")
        table.constraints.append(constraint)


def _indexes(draw: st.DrawFn, fragment: Fragment, table: Table) -> None:
    columns = table.all_columns()
    if not columns:
        return
    keyable = [c for c in columns if c.type.btree]
    for kind in draw(st.lists(st.sampled_from(["multi-column", "expression", "partial", "include"]),
                              max_size=2, unique=True)):
        column = draw(st.sampled_from(columns))
        index = Index(fresh_name(draw, fragment, "index"), table, [("(", column, " IS NULL)")])
        if kind == "multi-column" and keyable:
            index.keys = [(c,) for c in draw(st.lists(st.sampled_from(keyable), min_size=2, max_size=3))]
        elif kind == "expression" and column.type.integral:
            index.keys = [(_pick(draw, fragment, fragment.functions, Function), "(", column, ")")]
        elif kind == "partial":
            index.where = ("(", column, " IS NOT NULL)")
        elif kind == "include":
            index.include = [column]
        event(f"index: {kind}")
        fragment.indexes.append(index)


def _table(draw: st.DrawFn, fragment: Fragment, kind: str, max_columns: int, families: tuple[str, ...]) -> Table:
    table = Table(fragment.home, fresh_name(draw, fragment, "table"), kind)
    if kind != "empty":
        for _ in range(draw(st.integers(1 if kind != "as" else 0, max_columns))):
            column = _column(draw, fragment, table, families)
            if column.kind in ("serial", "identity") and table.implicit_sequence_name(column) in {
                    table.implicit_sequence_name(c) for c in table.columns if c.kind in ("serial", "identity")}:
                # The same implicit sequence name, once both names are cut to fit: one CREATE TABLE cannot
                # make both sequences, so this one is a plain column.
                column.kind = "plain"
            table.columns.append(column)
    if kind == "as":
        for c in table.columns:
            c.kind, c.default, c.collation, c.not_null = "plain", None, None, False
    return table


def _partitions(draw: st.DrawFn, fragment: Fragment, parent: Table, key: Column, strategy: str, depth: int) -> None:
    count = draw(st.integers(1, 3))
    for i in range(count):
        bound = {
            "RANGE": f"FOR VALUES FROM ({i * 100}) TO ({i * 100 + 100})",
            "LIST": f"FOR VALUES IN ({i * 10 + 1}, {i * 10 + 2})",
            "HASH": f"FOR VALUES WITH (MODULUS {count}, REMAINDER {i})",
        }[strategy]
        part = Table(fragment.home, fresh_name(draw, fragment, "table"), "partition", parent=parent, bound=bound)
        fragment.tables.append(part)
        if depth == 0 and draw(st.integers(0, 2)) == 0:
            part.partition_by = ("HASH", key)
            _partitions(draw, fragment, part, key, "HASH", depth + 1)
    if strategy != "HASH" and draw(st.booleans()):
        fragment.tables.append(Table(fragment.home, fresh_name(draw, fragment, "table"), "partition",
                                     parent=parent, bound="DEFAULT"))


def schema_fragments(max_tables: int = 3, max_columns: int = 5, table_kinds: tuple[str, ...] = TABLE_KINDS,
                     families: tuple[str, ...] = FAMILIES) -> st.SearchStrategy[Fragment]:
    """A schema fragment: 1..``max_tables`` groups of tables, each of ``table_kinds`` equally likely,
    with up to ``max_columns`` columns whose types are of ``families``."""
    unknown = set(table_kinds) - set(TABLE_KINDS) | set(families) - set(FAMILIES)
    if unknown or not table_kinds or not families:
        raise ValueError(f"unknown or no table kinds or type families: {sorted(unknown)}")
    return _fragments(max_tables, max_columns, tuple(table_kinds), tuple(families))


@st.composite
def _fragments(draw: st.DrawFn, max_tables: int, max_columns: int, table_kinds: tuple[str, ...],
               families: tuple[str, ...]) -> Fragment:
    fragment = Fragment(Schema(""))
    fragment.home.name = fresh_name(draw, fragment, "schema")
    if draw(st.booleans()):
        fragment.others.append(Schema(fresh_name(draw, fragment, "schema")))
    groups = draw(st.integers(1, max_tables))
    for _ in range(groups):
        kind = draw(fair(table_kinds))
        event(f"table kind: {kind}")
        if kind in ("partitioned", "inheritance"):
            table = _table(draw, fragment, "plain", max_columns, families)
            key = None
            if kind == "partitioned":
                key = Column(fresh_name(draw, fragment, "column"), _integral(draw), not_null=True)
                table.columns.insert(0, key)
                table.partition_by = (draw(st.sampled_from(PARTITION_STRATEGIES)), key)
            _constraints(draw, fragment, table, key)
            fragment.tables.append(table)
            if kind == "partitioned":
                _partitions(draw, fragment, table, key, table.partition_by[0], 0)
            else:
                child = _table(draw, fragment, "child", 2, families)
                child.parent = table
                fragment.tables.append(child)
        else:
            table = _table(draw, fragment, kind, max_columns, families)
            if kind in ("plain", "unlogged"):
                _constraints(draw, fragment, table, None)
            fragment.tables.append(table)
        if kind != "as" and draw(st.booleans()):
            table.comment = draw(names("table"))
        _indexes(draw, fragment, table)
    target(float(max(len(n.encode()) for n in fragment.names)), label="longest name in bytes")
    target(float(len(fragment.tables)), label="tables")
    target(float(sum(len(t.columns) for t in fragment.tables)), label="columns")
    return fragment
