"""DDL sequences over a schema fragment: ``ddl_sequences(fragment)``, every ALTER a user can run on it.

Each step changes a copy of the fragment's model as the statement changes
the database, so after the steps ``DdlSequence.result`` creates directly
what the steps reached. Steps on tables (columns added, dropped, renamed,
retyped; defaults, NOT NULL, constraints and indexes changed; tables
renamed, moved, commented; partitions detached and attached; inheritance
dropped and restored) carry the severity pggit's contract gives them; steps
on what tables depend on (types, enum values, composite attributes,
domains, sequences, functions, collations, schemas) carry none.

With ``direct_only`` only steps whose result hashes like the same table
created directly are drawn: none that leaves a name PostgreSQL chose
itself (a serial's sequence, a partition's index, named after a column or
a function) describing an old name, or numbered after an index since dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import event, target
from hypothesis import strategies as st

from pggit_chaos.generators import pg_text
from pggit_chaos.schema_fragments import fresh_name
from pggit_chaos.schema_objects import (Column, ColumnType, Constraint, Fragment, Index, OwnedSequence, Table,
                                        repointed)
from pggit_chaos.schema_types import BuiltinType, builtin_types, fair, literal, quote

__all__ = ["DdlSequence", "DdlStep", "TABLE_STEPS", "DEPENDENCY_STEPS", "ddl_sequences"]


@dataclass(frozen=True)
class DdlStep:
    """One statement (two for a detach or no-inherit undone at once); ``table`` is the (schema, name) of
    the table it changes, as they are after it, and ``severity`` the contract's severity for that
    table, both None for a step on something a table depends on."""

    kind: str
    sql: str
    table: tuple[str, str] | None = None
    severity: str | None = None
    statements: int = 1


@dataclass
class DdlSequence:
    """The steps, and the fragment as they leave it."""

    steps: list[DdlStep]
    result: Fragment


TABLE_STEPS = ("add column", "drop column", "rename column", "retype column", "set default", "drop default",
               "set not null", "drop not null", "add check", "drop constraint", "rename constraint",
               "create index", "drop index", "rename index", "rename table", "set schema", "comment",
               "detach partition", "detach and attach", "no inherit", "no inherit and inherit")
DEPENDENCY_STEPS = ("rename type", "type set schema", "add enum value", "rename enum value", "add attribute",
                    "rename attribute", "domain constraint", "domain default", "rename sequence",
                    "sequence set schema", "restart sequence", "rename function", "function set schema",
                    "rename collation", "collation set schema", "rename schema")
SEVERITY = {"add column": "MINOR", "drop column": "MAJOR", "rename column": "MAJOR", "retype column": "MAJOR",
            "rename table": "MAJOR", "set schema": "MAJOR"}


def _referenced(fragment: Fragment) -> set[int]:
    """ids of the columns something refers to: keys, checks, indexes, generated columns, partition keys."""
    parts = []
    for t in fragment.tables:
        for k in t.constraints:
            parts += k.columns + k.ref_columns + list(k.check)
        parts += [c for col in t.columns if col.default for c in col.default]
        if t.partition_by:
            parts.append(t.partition_by[1])
    for i in fragment.indexes:
        parts += i.include + [p for k in i.keys for p in k] + list(i.where or ())
    return {id(p) for p in parts if isinstance(p, Column)}


def _lent_sequences(fragment: Fragment) -> list[OwnedSequence]:
    """The serial and identity sequences that defaults draw from, each once."""
    lent = {}
    for t in fragment.tables:
        for c in t.columns:
            for p in c.default or ():
                if isinstance(getattr(p, "target", None), OwnedSequence):
                    lent.setdefault((id(p.target.table), p.target.name), p.target)
    return list(lent.values())


def _in_tree(fragment: Fragment, table: Table) -> bool:
    return table.parent is not None or any(t.parent is table for t in fragment.tables)


def _table_step(draw, f: Fragment, kind: str, direct_only: bool) -> DdlStep | None:
    tables = [t for t in f.tables if t.kind != "partition" or kind in ("rename table", "set schema", "comment")]
    if direct_only:
        # A column added to an inheritance parent goes after the child's own columns (a table created
        # directly has the parent's first); renames leave the names of serial sequences (and of identity
        # ones another table's default names) and of partitions' indexes as they were.
        lenders = {id(s.table) for s in _lent_sequences(f)}
        tables = [t for t in tables if not (kind in ("rename table", "rename column", "set schema")
                                            and (_in_tree(f, t) or any(c.kind == "serial" for c in t.columns)
                                                 or id(t) in lenders)
                                            or kind == "add column" and any(c.parent is t and c.kind == "child"
                                                                            for c in f.tables))]
    if kind in ("detach partition", "detach and attach"):
        tables = [t for t in f.tables if t.kind == "partition" and t.partition_by is None and not direct_only]
    if kind in ("no inherit", "no inherit and inherit"):
        tables = [t for t in f.tables if t.kind == "child" and not direct_only]
    if not tables:
        return None
    t = draw(st.sampled_from(tables))
    if t.kind == "as":  # once changed, the same as a table created plainly with those columns
        t.kind = "plain"
    name, severity = t.sql(), SEVERITY.get(kind, "PATCH")
    referenced = _referenced(f)
    own = [c for c in t.columns if c.kind == "plain"]
    free = [c for c in own if id(c) not in referenced]
    alter = f"ALTER TABLE {name} "
    if kind == "add column":
        column = Column(fresh_name(draw, f, "column"), ColumnType(builtin=draw(builtin_types())))
        t.columns.append(column)
        statement = alter + "ADD COLUMN " + column.definition()
    elif kind in ("drop column", "retype column") and free:
        column = draw(st.sampled_from(free))
        if kind == "drop column":
            t.columns.remove(column)
            statement = alter + f"DROP COLUMN {column.sql()}"
        else:
            new = "varchar(500)" if column.type.sql() == "text" else "text"
            statement = (alter + f"ALTER COLUMN {column.sql()} DROP DEFAULT, ALTER COLUMN {column.sql()} "
                         f"TYPE {new} USING {column.sql()}::text")
            column.type = ColumnType(builtin=BuiltinType("character", new, "''"))
            column.default, column.collation = None, None
    elif kind == "rename column" and t.columns:
        column = draw(st.sampled_from(t.columns))
        _keep_sequence_names(t, [column])
        old = column.sql()
        column.name = fresh_name(draw, f, "column")
        statement = alter + f"RENAME COLUMN {old} TO {column.sql()}"
    elif kind in ("set default", "drop default") and own:
        column = draw(st.sampled_from(own))
        column.default = column.type.default() if kind == "set default" else None
        statement = alter + f"ALTER COLUMN {column.sql()} " + (
            f"SET DEFAULT {''.join(p if isinstance(p, str) else p.sql() for p in column.default)}"
            if column.default else "DROP DEFAULT")
    elif kind in ("set not null", "drop not null") and own:
        keys = {id(c) for k in t.constraints if k.kind == "primary key" for c in k.columns}
        choices = [c for c in own if kind == "set not null" or id(c) not in keys]
        if not choices:
            return None
        column = draw(st.sampled_from(choices))
        column.not_null = kind == "set not null"
        statement = alter + f"ALTER COLUMN {column.sql()} {kind.split()[0].upper()} NOT NULL"
    elif kind == "add check" and t.all_columns():
        column = draw(st.sampled_from(t.all_columns()))
        constraint = Constraint(fresh_name(draw, f, "constraint"), "check", [column], ("(", column, " IS NOT NULL)"))
        t.constraints.append(constraint)
        statement = alter + "ADD " + constraint.sql()
    elif kind in ("drop constraint", "rename constraint") and t.constraints:
        referenced_keys = {id(c) for other in f.tables for k in other.constraints for c in k.ref_columns}
        choices = [k for k in t.constraints if k.name_known and (
                   kind == "rename constraint" or k.kind == "check" or k.kind == "foreign key"
                   or not {id(c) for c in k.columns} & referenced_keys)]
        if not choices:
            return None
        constraint = draw(st.sampled_from(choices))
        if kind == "drop constraint":
            t.constraints.remove(constraint)
            statement = alter + f"DROP CONSTRAINT {quote(constraint.name)}"
        else:
            old = quote(constraint.name)
            constraint.name = fresh_name(draw, f, "constraint")
            statement = alter + f"RENAME CONSTRAINT {old} TO {quote(constraint.name)}"
    elif kind == "create index" and t.all_columns():
        column = draw(st.sampled_from(t.all_columns()))
        index = Index(fresh_name(draw, f, "index"), t, [("(", column, " IS NULL)")])
        f.indexes.append(index)
        statement = index.create_sql()[0]
    elif kind in ("drop index", "rename index") and [i for i in f.indexes if i.table is t]:
        choices = [i for i in f.indexes if i.table is t]
        if direct_only and kind == "drop index" and any(c.parent is t and c.kind == "partition" for c in f.tables):
            # A partition's copy of an index is named <partition>_<column or expr>_idx, numbered when an older
            # copy has that name; dropping the older index leaves the number, which a table created directly
            # does not have. Only the newest index goes.
            choices = choices[-1:]
        index = draw(st.sampled_from(choices))
        old = f"{t.schema.sql()}.{quote(index.name)}"
        if kind == "drop index":
            f.indexes.remove(index)
            statement = f"DROP INDEX {old}"
        else:
            index.name = fresh_name(draw, f, "index")
            statement = f"ALTER INDEX {old} RENAME TO {quote(index.name)}"
    elif kind == "rename table":
        _keep_sequence_names(t, t.columns)
        t.name = fresh_name(draw, f, "table")
        statement = alter + f"RENAME TO {quote(t.name)}"
    elif kind == "set schema" and len(f.schemas) > 1:
        t.schema = draw(st.sampled_from([s for s in f.schemas if s is not t.schema]))
        statement = alter + f"SET SCHEMA {t.schema.sql()}"
    elif kind == "comment":
        t.comment = draw(pg_text(max_size=20))
        statement = f"COMMENT ON TABLE {name} IS {literal(t.comment)}"
    elif kind in ("detach partition", "detach and attach", "no inherit", "no inherit and inherit"):
        parent, bound = t.parent, t.bound
        unlink = (f"ALTER TABLE {parent.sql()} DETACH PARTITION {name}" if t.kind == "partition"
                  else alter + f"NO INHERIT {parent.sql()}")
        relink = (f"ALTER TABLE {parent.sql()} ATTACH PARTITION {name} {bound}" if t.kind == "partition"
                  else alter + f"INHERIT {parent.sql()}")
        if " and " in kind:
            # Back as it was: the model is unchanged; the parent is the table the relinking statement names.
            statement = f"{unlink}; {relink}"
            return DdlStep(kind, statement, _key(parent if t.kind == "partition" else t), "PATCH", 2)
        target_table = parent if bound else t
        copies = _unlink(t)
        for index in (i for i in f.indexes if i.table is t):  # they name the table's own copies now
            index.repoint(copies)
        return DdlStep(kind, unlink, _key(target_table), "PATCH")
    else:
        return None
    return DdlStep(kind, statement, _key(t), severity)


def _keep_sequence_names(table: Table, columns: list[Column]) -> None:
    """Before a rename of the table or of these columns: their sequences keep the names PostgreSQL gave them."""
    for c in columns:
        if c.kind in ("serial", "identity") and c.sequence is None:
            c.sequence = table.implicit_sequence_name(c)


def _unlink(table: Table) -> dict[int, Column]:
    """Make ``table`` what ``DETACH PARTITION`` or ``NO INHERIT`` leaves: a plain table with every column its own.
    Its own columns stay as they were (an identity stays an identity); of the inherited ones a generated
    column stays generated (its expression is the table's own now), the others become plain. Returns
    the copies of the inherited columns by the id of the column each copies: the caller repoints the
    table's indexes (``Index.repoint``), which the fragment holds."""
    inherited = table.parent.all_columns() if table.parent is not None else []
    copies = {id(c): Column(c.name, c.type, not_null=c.not_null) for c in inherited}
    for c in inherited:
        if c.kind == "generated":  # its expression names the copies, so that they count as referenced
            copies[id(c)].kind = "generated"
            copies[id(c)].default = repointed(c.default, copies)
    table.columns = [copies[id(c)] for c in inherited] + table.columns
    # What the table itself says about an inherited column now names the copy.
    for k in table.constraints:
        k.columns, k.check = repointed(k.columns, copies), repointed(k.check, copies)
    # The ancestors' checks stay, named as they were; a partition keeps their keys and foreign keys too.
    kinds = ("check",) if table.kind == "child" else ("check", "primary key", "unique", "foreign key", "exclusion")
    ancestor = table.parent
    while ancestor is not None:
        table.constraints += [Constraint(k.name, k.kind, repointed(k.columns, copies), repointed(k.check, copies),
                                         k.ref, k.ref_columns, name_known=k.kind == "check")
                              for k in ancestor.constraints if k.kind in kinds]
        ancestor = ancestor.parent
    if table.partition_by is not None:
        table.partition_by = repointed(table.partition_by, copies)
    table.kind, table.parent, table.bound = "plain", None, ""
    return copies


def _key(table: Table) -> tuple[str, str]:
    return table.schema.name, table.name


_STEP_OBJECTS = {
    "rename type": "type", "type set schema": "type", "add enum value": "enum", "rename enum value": "enum",
    "add attribute": "composite", "rename attribute": "composite", "domain constraint": "domain",
    "domain default": "domain", "rename sequence": "sequence", "sequence set schema": "sequence",
    "restart sequence": "sequence", "rename function": "function", "function set schema": "function",
    "rename collation": "collation", "collation set schema": "collation", "rename schema": "schema",
}


def _dependency_step(draw, f: Fragment, kind: str, direct_only: bool = False) -> DdlStep | None:
    what = _STEP_OBJECTS[kind]
    objects = {"sequence": f.sequences, "function": f.functions, "collation": f.collations,
               "schema": f.schemas}.get(what) or [t for t in f.types if what in ("type", t.kind)]
    if direct_only and kind == "rename function":
        # A partition's copy of an expression index is named after the function it calls
        # (<partition>_<function>_idx) and keeps that name when the function is renamed.
        named = {id(part) for i in f.indexes if _in_tree(f, i.table) for key in i.keys for part in key}
        objects = [o for o in objects if id(o) not in named]
    lent = _lent_sequences(f) if kind == "sequence set schema" and not direct_only else []
    if lent and (not objects or draw(st.booleans())):
        objects = lent  # as likely as all the fragment's own sequences together: rarer, and missed before
    if not objects:
        return None
    obj = draw(st.sampled_from(objects))
    if isinstance(obj, OwnedSequence):
        # A serial or identity sequence moves only with its table: ALTER TABLE ... SET SCHEMA moves both,
        # and changes every default that draws from the sequence.
        others = [s for s in f.schemas if s is not obj.table.schema]
        if not others:
            return None
        name, obj.table.schema = obj.table.sql(), draw(st.sampled_from(others))
        return DdlStep(kind, f"ALTER TABLE {name} SET SCHEMA {obj.table.schema.sql()}",
                       (obj.table.schema.name, obj.table.name), SEVERITY["set schema"])
    noun = {"sequence": "SEQUENCE", "function": "FUNCTION", "collation": "COLLATION", "schema": "SCHEMA"}.get(
        what, "DOMAIN" if getattr(obj, "kind", "") == "domain" else "TYPE")
    name = obj.sql() + ("(bigint)" if noun == "FUNCTION" else "")
    alter = f"ALTER {noun} {name} "
    if kind.startswith("rename") and kind.split()[1] == what:
        obj.name = fresh_name(draw, f, "type" if noun in ("TYPE", "DOMAIN") else what)
        return DdlStep(kind, alter + f"RENAME TO {quote(obj.name)}")
    if kind.endswith("set schema"):
        others = [s for s in f.schemas if s is not obj.schema]
        if not others:
            return None
        obj.schema = draw(st.sampled_from(others))
        return DdlStep(kind, alter + f"SET SCHEMA {obj.schema.sql()}")
    if kind == "add enum value":
        obj.labels.append(draw(st.sampled_from(["added", "Added Value", "ж"]).filter(lambda v: v not in obj.labels)))
        return DdlStep(kind, alter + f"ADD VALUE {literal(obj.labels[-1])}")
    if kind == "rename enum value":
        index = draw(st.integers(0, len(obj.labels) - 1))
        old, new = obj.labels[index], draw(st.sampled_from(["renamed", "Renamed Value", "é"]))
        if new in obj.labels:
            return None
        obj.labels[index] = new
        return DdlStep(kind, alter + f"RENAME VALUE {literal(old)} TO {literal(new)}")
    if kind == "add attribute":
        obj.fields.append((fresh_name(draw, f, "column"), draw(builtin_types())))
        return DdlStep(kind, alter + f"ADD ATTRIBUTE {quote(obj.fields[-1][0])} {obj.fields[-1][1].sql}")
    if kind == "rename attribute":
        index = draw(st.integers(0, len(obj.fields) - 1))
        old, field_type = obj.fields[index]
        obj.fields[index] = (fresh_name(draw, f, "column"), field_type)
        return DdlStep(kind, alter + f"RENAME ATTRIBUTE {quote(old)} TO {quote(obj.fields[index][0])}")
    if kind == "domain constraint":
        # PostgreSQL cannot check existing values of a domain that an array column holds: it refuses.
        if any(c.type.user is obj and c.type.array for t in f.tables for c in t.columns):
            return None
        return DdlStep(kind, alter + f"ADD CONSTRAINT {quote(fresh_name(draw, f, 'constraint'))} "
                                     "CHECK (VALUE IS NOT NULL)")
    if kind == "domain default":
        return DdlStep(kind, alter + draw(st.sampled_from(["DROP DEFAULT", f"SET DEFAULT {obj.base.default}"])))
    if kind == "restart sequence":
        return DdlStep(kind, alter + draw(st.sampled_from(["RESTART WITH 7", "INCREMENT BY 3", "NO CYCLE"])))
    return None


def ddl_sequences(fragment: Fragment, max_steps: int = 6, direct_only: bool = False,
                  dependencies: bool = True) -> st.SearchStrategy[DdlSequence]:
    """Up to ``max_steps`` statements over a copy of ``fragment``; ``fragment`` itself stays as it is.

    Table steps and (with ``dependencies``) steps on what the tables depend
    on are equally likely as groups; each step kind within them too.
    """
    return _ddl_sequences(fragment, max_steps, direct_only, dependencies)


@st.composite
def _ddl_sequences(draw, fragment: Fragment, max_steps: int, direct_only: bool, dependencies: bool) -> DdlSequence:
    result = fragment.copy()
    steps: list[DdlStep] = []
    wanted = draw(st.integers(1, max_steps))
    attempts = 0
    while len(steps) < wanted and attempts < 4 * max_steps:
        attempts += 1
        group = draw(fair(["table", "dependency"] if dependencies else ["table"]))
        kind = draw(fair(TABLE_STEPS if group == "table" else DEPENDENCY_STEPS))
        step = (_table_step(draw, result, kind, direct_only) if group == "table"
                else _dependency_step(draw, result, kind, direct_only))
        if step is not None:
            event(f"ddl step: {kind}")
            steps.append(step)
    target(float(len(steps)), label="ddl steps")
    return DdlSequence(steps, result)
