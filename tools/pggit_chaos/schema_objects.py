"""Schema fragments: a model of schemas, types, sequences, functions, collations, tables and indexes that creates itself.

A ``Fragment`` holds the objects; each refers to the others by identity, not
by name, so renaming one (``ddl_sequences`` does) changes how every object
that uses it is written. ``Fragment.create_sql(home=...)`` gives the ordered
statements that create it all, with the tables' own schema renamed to
``home`` when given. The Hypothesis strategies are in ``schema_fragments``
(``schema_fragments()``, ``column_types()``), ``schema_types`` (``names()``)
and ``schema_ddl`` (``ddl_sequences(fragment)``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pggit_chaos.schema_types import BuiltinType, literal, object_name, quote

__all__ = [
    "Collation", "Column", "ColumnType", "Constraint", "Fragment", "Function", "Index", "OwnedSequence", "Schema",
    "Sequence", "Table", "UserType", "render",
]


def render(expr: tuple[Any, ...]) -> str:
    """An expression held as parts: text as it is, objects as their current (qualified, quoted) names."""
    return "".join(part if isinstance(part, str) else part.sql() for part in expr)


@dataclass(eq=False)
class Schema:
    """A schema the fragment creates."""

    name: str

    def sql(self) -> str:
        return quote(self.name)


@dataclass(eq=False)
class _InSchema:
    schema: Schema
    name: str

    def sql(self) -> str:
        return f"{self.schema.sql()}.{quote(self.name)}"


@dataclass(eq=False)
class Collation(_InSchema):
    """``CREATE COLLATION ... FROM "C"``: a user collation."""

    def create_sql(self) -> list[str]:
        return [f'CREATE COLLATION {self.sql()} FROM "C"']


@dataclass(eq=False)
class Sequence(_InSchema):
    """A sequence that integer defaults draw from (``nextval``)."""

    def create_sql(self) -> list[str]:
        return [f"CREATE SEQUENCE {self.sql()}"]

    def nextval(self) -> tuple[Any, ...]:
        return ("nextval(", _Literal(self), "::regclass)")


@dataclass(eq=False)
class OwnedSequence(Sequence):
    """The sequence of a serial or identity column, which a default draws from: it keeps the name PostgreSQL
    gave it and moves with its table (``SET SCHEMA``), which creates it."""

    table: Any = field(default=None, repr=False)  # the table's own repr holds this one

    def sql(self) -> str:
        return f"{self.table.schema.sql()}.{quote(self.name)}"


@dataclass(eq=False)
class _Literal:
    """An object's qualified name as a string literal (``'s.seq'::regclass``)."""

    target: Any

    def sql(self) -> str:
        return literal(self.target.sql())


@dataclass(eq=False)
class Function(_InSchema):
    """An immutable ``f(bigint) RETURNS bigint`` that defaults, checks and index expressions call."""

    def create_sql(self) -> list[str]:
        return [f"CREATE FUNCTION {self.sql()}(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE "
                "AS 'SELECT $1 + 1'"]


@dataclass(eq=False)
class UserType(_InSchema):
    """An enum (``labels``), a domain with a check (``base``), or a composite type (``fields``)."""

    kind: str = "enum"
    labels: list[str] = field(default_factory=list)
    base: BuiltinType | None = None
    fields: list[tuple[str, BuiltinType]] = field(default_factory=list)

    @property
    def btree(self) -> bool:
        if self.kind == "domain":
            return self.base.btree
        return self.kind == "enum" or all(t.btree for _, t in self.fields)

    def create_sql(self) -> list[str]:
        if self.kind == "enum":
            return [f"CREATE TYPE {self.sql()} AS ENUM ({', '.join(map(literal, self.labels))})"]
        if self.kind == "domain":
            return [f"CREATE DOMAIN {self.sql()} AS {self.base.sql} CHECK (VALUE IS NOT NULL)"]
        return [f"CREATE TYPE {self.sql()} AS ({', '.join(f'{quote(n)} {t.sql}' for n, t in self.fields)})"]

    def default(self) -> tuple[Any, ...]:
        if self.kind == "enum":
            return (_Label(self), "::", self)
        if self.kind == "domain":
            return ("(", self.base.default, ")::", self)
        return ("NULL::", self)


@dataclass(eq=False)
class _Label:
    """An enum's first label as a literal, as it is now (``RENAME VALUE`` changes it)."""

    type: UserType

    def sql(self) -> str:
        return literal(self.type.labels[0])


@dataclass(eq=False)
class ColumnType:
    """A column's type: a built-in or a user type, maybe an array of it."""

    builtin: BuiltinType | None = None
    user: UserType | None = None
    array: bool = False

    @property
    def family(self) -> str:
        return self.builtin.family if self.builtin else self.user.kind

    @property
    def btree(self) -> bool:
        return self.builtin.btree if self.builtin else self.user.btree

    @property
    def integral(self) -> bool:
        return bool(self.builtin and self.builtin.integral and not self.array)

    @property
    def collatable(self) -> bool:
        return bool(self.builtin and self.builtin.family == "character" and self.builtin.sql != '"char"')

    def sql(self) -> str:
        return (self.builtin.sql if self.builtin else self.user.sql()) + ("[]" if self.array else "")

    def default(self) -> tuple[Any, ...]:
        if self.array:
            return ("'{}'",)
        return (self.builtin.default,) if self.builtin else self.user.default()


_SERIAL = {"smallint": "smallserial", "integer": "serial", "bigint": "bigserial"}


@dataclass(eq=False)
class Column:
    """A column: ``kind`` is plain, serial, identity, generated (stored) or sequence (a nextval default)."""

    name: str
    type: ColumnType
    kind: str = "plain"
    not_null: bool = False
    default: tuple[Any, ...] | None = None  # for generated: the expression
    collation: Collation | str | None = None
    identity: str = "ALWAYS"
    # A serial or identity column's sequence keeps the name PostgreSQL gave it through renames of the column or
    # table (ddl_sequences sets it then); None: the name the table and column give (Table.renamed_sequences).
    sequence: str | None = None

    def sql(self) -> str:
        return quote(self.name)

    def definition(self, sequence: str | None = None) -> str:
        """The column as CREATE TABLE writes it; ``sequence``: its sequence's qualified name, made beforehand."""
        if self.kind == "serial" and sequence:  # as pg_dump writes it
            return f"{self.sql()} {self.type.sql()} NOT NULL DEFAULT nextval({literal(sequence)}::regclass)"
        if self.kind == "serial":
            return f"{self.sql()} {_SERIAL[self.type.builtin.sql]}"
        parts = [self.sql(), self.type.sql()]
        if self.collation is not None:
            parts.append("COLLATE " + (quote(self.collation) if isinstance(self.collation, str)
                                       else self.collation.sql()))
        if self.not_null:
            parts.append("NOT NULL")
        if self.kind == "identity":
            named = f" (SEQUENCE NAME {sequence})" if sequence else ""
            parts.append(f"GENERATED {self.identity} AS IDENTITY{named}")
        elif self.kind == "generated":
            parts.append(f"GENERATED ALWAYS AS ({render(self.default)}) STORED")
        elif self.default is not None:
            parts.append("DEFAULT " + render(self.default))
        return " ".join(parts)


@dataclass(eq=False)
class Constraint:
    """A table constraint: primary key, unique, check, foreign key or exclusion, always named."""

    name: str
    kind: str
    columns: list[Column] = field(default_factory=list)
    check: tuple[Any, ...] = ()
    ref: Table | None = None
    ref_columns: list[Column] = field(default_factory=list)
    # False for a key PostgreSQL copied from a parent to a partition: it named the copy itself (and names
    # it again when the model's table is created).
    name_known: bool = True

    def sql(self) -> str:
        cols = ", ".join(c.sql() for c in self.columns)
        body = {
            "primary key": lambda: f"PRIMARY KEY ({cols})",
            "unique": lambda: f"UNIQUE ({cols})",
            "check": lambda: f"CHECK ({render(self.check)})",
            "foreign key": lambda: (f"FOREIGN KEY ({cols}) REFERENCES {self.ref.sql()} "
                                    f"({', '.join(c.sql() for c in self.ref_columns)})"),
            "exclusion": lambda: f"EXCLUDE USING gist ({self.columns[0].sql()} WITH &&)",
        }[self.kind]()
        return f"CONSTRAINT {quote(self.name)} {body}" if self.name_known else body


@dataclass(eq=False)
class Index:
    """``CREATE INDEX``: keys (columns or expressions), maybe ``INCLUDE`` columns and a ``WHERE``."""

    name: str
    table: Table
    keys: list[tuple[Any, ...]]
    include: list[Column] = field(default_factory=list)
    where: tuple[Any, ...] | None = None

    def create_sql(self) -> list[str]:
        text = (f"CREATE INDEX {quote(self.name)} ON {self.table.sql()} "
                f"({', '.join(render(k) for k in self.keys)})")
        if self.include:
            text += f" INCLUDE ({', '.join(c.sql() for c in self.include)})"
        if self.where is not None:
            text += f" WHERE {render(self.where)}"
        return [text]

    def repoint(self, copies: dict[int, Column]) -> None:
        """Name the copies (by the id of the column each copies) instead of the columns copied."""
        self.keys = [repointed(key, copies) for key in self.keys]
        self.include = repointed(self.include, copies)
        self.where = None if self.where is None else repointed(self.where, copies)


def repointed(parts, copies: dict[int, Column]):
    """``parts`` (a tuple or list of columns and SQL text) with every copied column replaced by its copy."""
    return type(parts)(copies.get(id(p), p) for p in parts)


@dataclass(eq=False)
class Table(_InSchema):
    """A table: ``kind`` is plain, unlogged, empty (no columns), as (``CREATE TABLE AS``), partitioned,
    partition (``parent`` and ``bound``; partitioned again when ``partition_by`` is set) or child
    (``INHERITS (parent)``)."""

    kind: str = "plain"
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    parent: Table | None = None
    bound: str = ""
    partition_by: tuple[str, Column] | None = None
    comment: str | None = None

    def all_columns(self) -> list[Column]:
        """Own columns and, for a partition or child, the parent's first."""
        inherited = self.parent.all_columns() if self.parent is not None else []
        return inherited + self.columns

    def create_sql(self) -> list[str]:
        name = self.sql()
        if self.kind == "as":
            select = ", ".join(f"CAST(NULL AS {c.type.sql()}) AS {c.sql()}" for c in self.columns)
            return [f"CREATE TABLE {name} AS SELECT {select} WITH NO DATA"]
        inline, added = self._inline_and_added_constraints()
        renamed = self.renamed_sequences()
        body = [c.definition(renamed.get(id(c))) for c in self.columns] + [k.sql() for k in inline]
        if self.kind == "partition":
            text = f"CREATE TABLE {name} PARTITION OF {self.parent.sql()}"
            text += f" ({', '.join(body)}) {self.bound}" if body else f" {self.bound}"
        else:
            unlogged = "UNLOGGED " if self.kind == "unlogged" else ""
            text = f"CREATE {unlogged}TABLE {name} ({', '.join(body)})"
            if self.kind == "child":
                text += f" INHERITS ({self.parent.sql()})"
        if self.partition_by is not None:
            text += f" PARTITION BY {self.partition_by[0]} ({self.partition_by[1].sql()})"
        serials = [c for c in self.columns if c.kind == "serial" and id(c) in renamed]
        statements = ([f"CREATE SEQUENCE {renamed[id(c)]} AS {c.type.sql()}" for c in serials] + [text]
                      + [f"ALTER SEQUENCE {renamed[id(c)]} OWNED BY {name}.{c.sql()}" for c in serials]
                      + [f"ALTER TABLE {name} ADD {k.sql()}" for k in added])
        if self.comment is not None:
            statements.append(f"COMMENT ON TABLE {name} IS {literal(self.comment)}")
        return statements

    def implicit_sequence_name(self, column: Column) -> str:
        """The name CREATE TABLE gives the sequence of the table's serial or identity ``column``."""
        return object_name(self.name, column.name, "seq")

    def renamed_sequences(self) -> dict[int, str]:
        """By column id, the qualified name of each column sequence whose name CREATE TABLE would not give."""
        return {id(c): f"{self.schema.sql()}.{quote(c.sequence)}" for c in self.columns
                if c.kind in ("serial", "identity") and c.sequence not in (None, self.implicit_sequence_name(c))}

    def _inline_and_added_constraints(self) -> tuple[list[Constraint], list[Constraint]]:
        """The constraints CREATE TABLE can make, and those it would silently merge away: PostgreSQL keeps one
        of several keys (primary key first) on the same columns in one CREATE TABLE, so the others are added
        by ALTER TABLE, which makes them all."""
        keys = sorted((k for k in self.constraints if k.kind in ("primary key", "unique")),
                      key=lambda k: k.kind != "primary key")
        seen, merged = set(), set()
        for key in keys:
            columns = tuple(c.name for c in key.columns)
            if columns in seen:
                merged.add(id(key))
            seen.add(columns)
        return ([k for k in self.constraints if id(k) not in merged],
                [k for k in self.constraints if id(k) in merged])


@dataclass(eq=False)
class Fragment:
    """A schema fragment: its schemas and every object in them, in the order they are created."""

    home: Schema
    others: list[Schema] = field(default_factory=list)
    collations: list[Collation] = field(default_factory=list)
    sequences: list[Sequence] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    types: list[UserType] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # every name given so far (for fresh ones)

    @property
    def schemas(self) -> list[Schema]:
        return [self.home, *self.others]

    def objects(self) -> list[Any]:
        """Everything but the schemas, in creation order."""
        return [*self.collations, *self.sequences, *self.functions, *self.types, *self.tables, *self.indexes]

    def create_sql(self, home: str | None = None) -> list[str]:
        """The statements that create the fragment, the tables' own schema named ``home`` when given."""
        fragment = self if home is None else self.copy_with_home(home)
        statements = [f"CREATE SCHEMA {s.sql()}" for s in fragment.schemas]
        for obj in fragment.objects():
            statements += obj.create_sql()
        return statements

    def drop_sql(self) -> list[str]:
        """The statements that drop the fragment: each of its schemas, with everything in it."""
        return [f"DROP SCHEMA {s.sql()} CASCADE" for s in self.schemas]

    def table_names(self) -> list[str]:
        """Every table's qualified, quoted name, in creation order."""
        return [t.sql() for t in self.tables]

    def copy_with_home(self, home: str) -> Fragment:
        """A deep copy whose tables' own schema is named ``home``."""
        fragment = copy.deepcopy(self)
        fragment.home.name = home
        return fragment

    def copy(self) -> Fragment:
        """A deep copy that ``ddl_sequences`` may change."""
        return copy.deepcopy(self)
