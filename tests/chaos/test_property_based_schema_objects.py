"""Property-based tests of pggit over generated schema fragments: names, types, keys, partitions and the DDL on them.

The fragments (``pggit_chaos.schema_fragments``) hold quoted, mixed-case,
multi-byte and reserved names up to 63 bytes, every built-in type family,
arrays, enums, domains and composite types in the tables' schema and in
others, serial, identity, generated and collated columns, keys, checks,
foreign keys, exclusions, indexes, partitions, inheritance; the DDL
sequences (``pggit_chaos.schema_ddl``) alter the tables and everything
they depend on. Each example gets a database of its own.
"""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import execute_each
from pggit_chaos.profiles import share_of_examples
from pggit_chaos.schema_ddl import ddl_sequences
from pggit_chaos.schema_fragments import schema_fragments, unused_name
from pggit_chaos.schema_objects import Column, ColumnType, Fragment, OwnedSequence, Schema, Sequence, Table, UserType
from pggit_chaos.schema_types import BuiltinType, names

from tests.chaos.test_backup_restore import dump_and_restore, live_tables_agree

# A failure shrinks for up to Hypothesis's five minutes, two databases per attempt: past the suite's 300 s
# timeout, a failing property was reported as a timeout with its first, unshrunk example.
pytestmark = [pytest.mark.chaos, pytest.mark.property, pytest.mark.timeout(900)]


def hashes(conn: psycopg.Connection, fragment: Fragment) -> list[str | None]:
    """calculate_schema_hash of each table of the fragment, in order."""
    return [conn.execute("SELECT pggit.calculate_schema_hash(%s)", (name,)).fetchone()[0]
            for name in fragment.table_names()]


def recorded(conn: psycopg.Connection, fragment: Fragment) -> list[str | None]:
    """The hash pggit recorded for each table of the fragment, in order."""
    return [conn.execute("SELECT content_hash FROM pggit.objects WHERE is_active AND table_oid = %s::regclass",
                         (name,)).fetchone()[0] for name in fragment.table_names()]


def _enum_fragment(type_schema: str, type_name: str) -> Fragment:
    """One table in schema "home" with a column of an enum type: the minimal case of several defects."""
    home = Schema("home")
    fragment = Fragment(home, others=[Schema(type_schema)] if type_schema != "home" else [])
    schema = home if type_schema == "home" else fragment.others[0]
    fragment.types.append(UserType(schema, type_name, "enum", labels=["a"]))
    fragment.tables.append(Table(home, "t", columns=[Column("c", ColumnType(user=fragment.types[0]))]))
    fragment.names |= {"home", type_schema, type_name, "t", "c"}
    return fragment


def _sequence_fragment(sequence_schema: str = "other", sequence: str = "s", home_name: str = "home") -> Fragment:
    """A table in schema ``home_name`` whose column draws from a sequence (``nextval``); a
    ``sequence_schema`` of "home" is that schema."""
    home = Schema(home_name)
    fragment = Fragment(home, others=[Schema(sequence_schema)] if sequence_schema != "home" else [])
    schema = home if sequence_schema == "home" else fragment.others[0]
    fragment.sequences.append(Sequence(schema, sequence))
    column = Column("c", ColumnType(BuiltinType("numeric", "integer", "0", integral=True)), kind="sequence",
                    default=fragment.sequences[0].nextval())
    fragment.tables.append(Table(home, "t", columns=[column]))
    fragment.names |= {home_name, sequence_schema, sequence, "t", "c"}
    return fragment


def _lent_sequence_fragment(kind: str = "serial") -> Fragment:
    """Table "t" whose default draws from the sequence (lender_id_seq) of table "lender"'s ``kind`` column
    (serial or identity); schema "other" is empty."""
    home = Schema("home")
    integer = BuiltinType("numeric", "integer", "0", integral=True)
    lender = Table(home, "lender", columns=[Column("id", ColumnType(integer), kind=kind)])
    column = Column("c", ColumnType(integer), kind="sequence",
                    default=OwnedSequence(home, "lender_id_seq", lender).nextval())
    return Fragment(home, others=[Schema("other")], tables=[lender, Table(home, "t", columns=[column])],
                    names={"home", "other", "lender", "id", "t", "c"})


class FixedSteps:
    """Stands in for ``st.data()`` in an ``@example``: the statements of a confirmed defect's minimal case."""

    def __init__(self, *statements: str) -> None:
        self.statements = list(statements)


# ---------------------------------------------------------------------------
# DDL on what a tracked table depends on
# ---------------------------------------------------------------------------


@example(fragment=_enum_fragment("home", "e"), data=FixedSteps('ALTER TYPE "home"."e" RENAME TO "renamed"')
         ).via("the minimal case: an enum type renamed")
@example(fragment=_sequence_fragment(), data=FixedSteps('ALTER SCHEMA "other" RENAME TO "renamed"')
         ).via("the minimal case: the schema of a sequence a default draws from, renamed")
@example(fragment=_lent_sequence_fragment(), data=FixedSteps('ALTER TABLE "home"."lender" SET SCHEMA "other"')
         ).via("the minimal case: a table moved, with the serial sequence another table's default draws from")
@given(fragment=schema_fragments(), data=st.data())
def test_ddl_on_anything_a_tracked_table_depends_on_keeps_every_recorded_structure_current(
        fresh_connection, fragment, data):
    """After each generated statement (on the tables, or on the types, sequences, functions, collations
    and schemas they depend on) every tracked table's recorded structure is its live one: detect_drift()
    is empty."""
    if isinstance(data, FixedSteps):
        steps = data.statements
    else:
        steps = [s.sql for s in data.draw(ddl_sequences(fragment), label="steps").steps]
    with fresh_connection(autocommit=True) as conn:
        execute_each(conn, fragment.create_sql())
        # The positive control: the tables are tracked and their recorded structure is the live one, so an
        # empty detect_drift() below says something (a pggit that tracks nothing reports no drift either).
        assert recorded(conn, fragment) == hashes(conn, fragment) and None not in hashes(conn, fragment)
        assert checkers.drift_is(conn) == set()
        for statement in steps:
            execute_each(conn, [statement])
            assert checkers.drift_is(conn) == set(), f"drift after: {statement}"


# ---------------------------------------------------------------------------
# Hashes: any schema, any name; ALTERed or created directly
# ---------------------------------------------------------------------------


@example(fragment=_enum_fragment("home", "text"), home="elsewhere").via("a type named like a built-in one")
@example(fragment=_sequence_fragment("home", "pg_type"), home="elsewhere").via(
    "a default's sequence named like a catalog table: its schema is printed inside the regclass literal")
@example(fragment=_sequence_fragment("home", "pg_class", home_name="a'a"), home="elsewhere").via(
    "the same, the schema's name with a quote: doubled inside the literal")
@example(fragment=_enum_fragment("home2", "text"), home="home").via("the drawn name taken, and the next one too")
@given(fragment=schema_fragments(), home=names("schema"))
def test_the_same_fragment_hashes_the_same_whatever_its_schema_is_called(fresh_connection, fragment, home):
    """The same fragment created in two databases, its tables' schema named differently, gives every
    table the same hash, and pggit recorded that hash."""
    other = unused_name(fragment, home)
    with fresh_connection(autocommit=True) as conn_a, fresh_connection(autocommit=True) as conn_b:
        execute_each(conn_a, fragment.create_sql())
        execute_each(conn_b, fragment.create_sql(home=other))
        in_a, in_b = hashes(conn_a, fragment), hashes(conn_b, fragment.copy_with_home(other))
        assert in_a == in_b, f"home {fragment.home.name!r} and {other!r}:\n" + "\n".join(fragment.create_sql())
        assert recorded(conn_a, fragment) == in_a


@pytest.mark.slow
@given(fragment=schema_fragments(), data=st.data())
def test_a_table_reached_by_alters_hashes_like_the_same_table_created_directly(fresh_connection, fragment, data):
    """Every table a series of generated statements reached hashes as the same tables created directly."""
    sequence = data.draw(ddl_sequences(fragment, direct_only=True), label="steps")
    with fresh_connection(autocommit=True) as altered, fresh_connection(autocommit=True) as direct:
        execute_each(altered, fragment.create_sql() + [s.sql for s in sequence.steps])
        execute_each(direct, sequence.result.create_sql())
        assert hashes(altered, sequence.result) == hashes(direct, sequence.result), "\n".join(
            s.sql for s in sequence.steps)
        # Hashes that are there, and recorded as pggit saw the statements: two NULLs would compare equal too.
        assert recorded(altered, sequence.result) == hashes(altered, sequence.result)
        assert None not in hashes(direct, sequence.result)
        assert checkers.drift_is(altered) == set()


# ---------------------------------------------------------------------------
# Severities
# ---------------------------------------------------------------------------


@given(fragment=schema_fragments(), data=st.data())
def test_every_generated_table_change_gets_the_severity_the_contract_gives_it(fresh_connection, fragment, data):
    """A column added is MINOR; dropped, renamed or retyped, or the table renamed or moved, MAJOR;
    anything else on the table PATCH: one history row per statement for the table it names."""
    sequence = data.draw(ddl_sequences(fragment, dependencies=False), label="steps")
    with fresh_connection(autocommit=True) as conn:
        execute_each(conn, fragment.create_sql())
        for step in sequence.steps:
            last = conn.execute("SELECT coalesce(max(id), 0) FROM pggit.history").fetchone()[0]
            execute_each(conn, [step.sql])
            rows = conn.execute(
                "SELECT h.severity FROM pggit.history h JOIN pggit.objects o ON o.id = h.object_id "
                "WHERE h.id > %s AND o.is_active AND o.schema_name = %s AND o.object_name = %s ORDER BY h.id",
                (last, *step.table)).fetchall()
            assert rows == [(step.severity,)] * step.statements, step


# ---------------------------------------------------------------------------
# Dump and restore
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.backup
# A fifth of the profile's examples (5 in dev and gate, 100 in thorough): each one dumps a database and
# restores it into another, about 6 s an example (the suite's costliest), where the other properties here
# take well under a second.
@share_of_examples(5, 5)
@given(fragment=schema_fragments(max_tables=2), data=st.data())
def test_a_dump_and_restore_keeps_every_hash_of_a_generated_fragment(
        pg_server, fresh_database, tmp_path_factory, fragment, data):
    """A fragment and its DDL, dumped and restored (custom format), keeps every tracked table's hash
    and version; the restored tables hash as recorded and nothing drifts."""
    sequence = data.draw(ddl_sequences(fragment), label="steps")
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(fresh_database("dumped"))
        with psycopg.connect(source, autocommit=True) as conn:
            execute_each(conn, fragment.create_sql() + [s.sql for s in sequence.steps])
            before = conn.execute("SELECT schema_name, object_name, content_hash, version_major, version_minor, "
                                  "version_patch FROM pggit.objects WHERE is_active ORDER BY id").fetchall()
            assert before, "the fragment's tables are tracked before the dump (the positive control)"
        target = dump_and_restore(pg_server, lambda pggit=True: stack.enter_context(
            fresh_database("restored", pggit=pggit)), source, "custom", tmp_path_factory.mktemp("dump"))
        with psycopg.connect(target, autocommit=True) as conn:
            after = conn.execute("SELECT schema_name, object_name, content_hash, version_major, version_minor, "
                                 "version_patch FROM pggit.objects WHERE is_active ORDER BY id").fetchall()
            assert after == before
            assert live_tables_agree(conn) == len(before)
            assert checkers.drift_is(conn) == set()
