"""Hypothesis strategies for pggit chaos tests: small values that compose.

Each strategy generates only values valid for what it feeds, and
``tests/toolkit/test_toolkit_strategies.py`` proves it against a real server:

``pg_identifier()``
    a name usable unquoted as a table or column name;
``table_definition()``
    a table (name, typed columns, nullability, defaults) with ``create_sql()``;
``data_row(table)``
    a row of parameters that inserts into that table;
``git_branch_name()`` / ``invalid_branch_name()``
    names that both git and ``pggit.create_branch`` accept / that pggit's
    contract says must be refused;
``commit_message()``
    any text PostgreSQL can store, up to pggit's 10,000-character limit.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

__all__ = [
    "ColumnDefinition",
    "ColumnType",
    "MAX_BRANCH_NAME_LENGTH",
    "MAX_COMMIT_MESSAGE_LENGTH",
    "NON_UNRESERVED_KEYWORDS",
    "SYSTEM_COLUMN_NAMES",
    "TableDefinition",
    "column_type",
    "commit_message",
    "data_row",
    "git_branch_name",
    "invalid_branch_name",
    "pg_identifier",
    "pg_text",
    "shadowed_by_pg_catalog",
    "table_definition",
]

MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names silently
MAX_BRANCH_NAME_LENGTH = 255
MAX_COMMIT_MESSAGE_LENGTH = 10_000

# Every PostgreSQL 14-18 keyword that is not "unreserved" (pg_get_keywords()
# catcode R, T or C): reserved, type/function-name and column-name keywords.
# Column-name keywords are legal table names but not everywhere a name can
# appear, so they are left out too. The toolkit tests compare this list with
# the running server's pg_get_keywords().
NON_UNRESERVED_KEYWORDS = frozenset("""
    all analyse analyze and any array as asc asymmetric both case cast check collate column
    constraint create current_catalog current_date current_role current_time current_timestamp
    current_user default deferrable desc distinct do else end except false fetch for foreign from
    grant group having in initially intersect into lateral leading limit localtime localtimestamp
    not null offset on only or order placing primary references returning select session_user some
    symmetric system_user table then to trailing true union unique user using variadic when where
    window with
    authorization binary collation concurrently cross current_schema freeze full ilike inner is
    isnull join left like natural notnull outer overlaps right similar tablesample verbose
    between bigint bit boolean char character coalesce dec decimal exists extract float greatest
    grouping inout int integer interval json json_array json_arrayagg json_exists json_object
    json_objectagg json_query json_scalar json_serialize json_table json_value least merge_action
    national nchar none normalize nullif numeric out overlay position precision real row setof
    smallint substring time timestamp treat trim values varchar xmlattributes xmlconcat xmlelement
    xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
""".split())

# A user column may not take a system column's name (oid only up to PostgreSQL 11, kept for safety).
SYSTEM_COLUMN_NAMES = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid", "oid"})

# pg_catalog comes first in every search_path, so a user table named like one of
# its relations (pg_config, pg_class, ...) is created but never found unqualified.
SYSTEM_RELATION_PREFIX = "pg_"

_IDENTIFIER_START = string.ascii_lowercase + "_"
_IDENTIFIER_REST = string.ascii_lowercase + string.digits + "_"


# --------------------------------------------------------------------------
# Text PostgreSQL can store
# --------------------------------------------------------------------------

# No NUL (text cannot hold it) and no lone surrogates (they have no UTF-8 form).
_PG_CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def pg_text(min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Any Unicode text a PostgreSQL ``text`` value (UTF-8 database) can hold.

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from pggit_chaos.generators import pg_text

    @settings(max_examples=20)
    @given(text=pg_text(max_size=50))
    def round_trips(text):
        assert sync_conn.execute("SELECT %s::text", (text,)).fetchone() == (text,)

    round_trips()
    ```
    """
    return st.text(_PG_CHARACTERS, min_size=min_size, max_size=max_size)


# --------------------------------------------------------------------------
# Identifiers and tables
# --------------------------------------------------------------------------


def shadowed_by_pg_catalog(name: str) -> bool:
    """Whether a table of this name could be hidden by a pg_catalog relation of the same name.

    ```python
    from pggit_chaos.generators import shadowed_by_pg_catalog

    assert shadowed_by_pg_catalog("pg_class") and not shadowed_by_pg_catalog("accounts")
    ```
    """
    return name.startswith(SYSTEM_RELATION_PREFIX)


def pg_identifier(max_length: int = MAX_IDENTIFIER_BYTES) -> st.SearchStrategy[str]:
    """A name safe to write unquoted: ``[a-z_][a-z0-9_]*``, at most 63 bytes, never a keyword,
    never starting with ``pg_`` (see ``shadowed_by_pg_catalog``).

    ``max_length`` below 63 leaves room for a suffix (pggit's data branches
    are named ``<table>__<branch>``).

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from pggit_chaos.generators import pg_identifier

    @settings(max_examples=20)
    @given(name=pg_identifier())
    def usable_unquoted(name):
        with sync_conn.transaction(force_rollback=True):
            sync_conn.execute(f"CREATE TABLE {name} (id int)")
            assert sync_conn.execute("SELECT to_regclass(%s)::text", (name,)).fetchone() == (name,)

    usable_unquoted()
    ```
    """
    if not 1 <= max_length <= MAX_IDENTIFIER_BYTES:
        raise ValueError(f"max_length must be 1..{MAX_IDENTIFIER_BYTES}, got {max_length}")
    rest = st.one_of(
        st.text(_IDENTIFIER_REST, max_size=max_length - 1),
        # Half the time close to the limit, where silent truncation would bite.
        st.text(_IDENTIFIER_REST, min_size=max(0, max_length - 4), max_size=max_length - 1),
    )
    return st.builds(str.__add__, st.sampled_from(_IDENTIFIER_START), rest).filter(
        lambda name: name not in NON_UNRESERVED_KEYWORDS and not shadowed_by_pg_catalog(name)
    )


@dataclass(frozen=True)
class ColumnType:
    """A column type: how to write it, how ``format_type()`` prints it, and its values.

    ```python fixture:sync_conn
    from hypothesis import strategies as st
    from pggit_chaos.generators import ColumnType

    short = ColumnType("varchar(5)", "character varying(5)", st.text(max_size=5))
    sync_conn.execute(f"CREATE TABLE typed (c {short.sql})")
    assert sync_conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                             "WHERE attrelid = 'typed'::regclass AND attname = 'c'").fetchone() == (short.canonical,)
    ```
    """

    sql: str
    canonical: str
    values: st.SearchStrategy[Any]


def _numeric(precision: int, scale: int) -> ColumnType:
    # numeric(p, s) holds absolute values below 10**(p - s), with s decimal places.
    largest = Decimal(10) ** (precision - scale) - Decimal(10) ** -scale
    return ColumnType(
        f"numeric({precision},{scale})",
        f"numeric({precision},{scale})",
        st.decimals(min_value=-largest, max_value=largest, places=scale,
                    allow_nan=False, allow_infinity=False),
    )


def _varchar(length: int) -> ColumnType:
    return ColumnType(f"varchar({length})", f"character varying({length})", pg_text(max_size=length))


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN or Infinity
    | pg_text(max_size=20)
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(pg_text(max_size=10), inner, max_size=3),
    max_leaves=8,
)

_TIMEZONES = st.sampled_from([
    dt.timezone.utc,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-8)),
])

_FIXED_TYPES = (
    ColumnType("smallint", "smallint", st.integers(-(2**15), 2**15 - 1)),
    ColumnType("int", "integer", st.integers(-(2**31), 2**31 - 1)),
    ColumnType("bigint", "bigint", st.integers(-(2**63), 2**63 - 1)),
    ColumnType("text", "text", pg_text(max_size=200)),
    ColumnType("boolean", "boolean", st.booleans()),
    ColumnType("double precision", "double precision", st.floats()),
    ColumnType("real", "real", st.floats(width=32)),
    ColumnType("date", "date", st.dates()),
    ColumnType(
        "timestamptz",
        "timestamp with time zone",
        # A day's margin at both ends keeps every offset inside Python's datetime range.
        st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=_TIMEZONES),
    ),
    ColumnType("jsonb", "jsonb", _JSON_VALUES.map(Jsonb)),
    ColumnType("uuid", "uuid", st.uuids()),
    ColumnType("bytea", "bytea", st.binary(max_size=64)),
)


def column_type() -> st.SearchStrategy[ColumnType]:
    """One of the common column types, parametrised ones (varchar(n), numeric(p,s)) included.

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from pggit_chaos.generators import column_type

    @settings(max_examples=20)
    @given(col_type=column_type())
    def printed_as_canonical(col_type):
        with sync_conn.transaction(force_rollback=True):
            sync_conn.execute(f"CREATE TABLE typed (c {col_type.sql})")
            printed = sync_conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                        "WHERE attrelid = 'typed'::regclass AND attname = 'c'").fetchone()[0]
            assert printed == col_type.canonical

    printed_as_canonical()
    ```
    """
    numeric = st.integers(1, 18).flatmap(
        lambda p: st.integers(0, min(p, 6)).map(lambda s: _numeric(p, s))
    )
    return st.one_of(st.sampled_from(_FIXED_TYPES), st.integers(1, 64).map(_varchar), numeric)


@dataclass(frozen=True)
class ColumnDefinition:
    """One column: name, type, nullability and an optional default (a Python value, or ``Jsonb``).

    ```python fixture:sync_conn
    from hypothesis import strategies as st
    from pggit_chaos.generators import ColumnDefinition, ColumnType

    age = ColumnDefinition("age", ColumnType("integer", "integer", st.integers()), nullable=False,
                           has_default=True, default=0)
    assert age.sql().as_string(sync_conn) == '"age" integer NOT NULL DEFAULT 0'
    ```
    """

    name: str
    type: ColumnType
    nullable: bool = True
    has_default: bool = False
    default: Any = None

    def sql(self) -> sql.Composed:
        """The column's definition in ``CREATE TABLE``, the name quoted."""
        parts = [sql.Identifier(self.name), sql.SQL(self.type.sql)]
        if not self.nullable:
            parts.append(sql.SQL("NOT NULL"))
        if self.has_default:
            parts += [sql.SQL("DEFAULT"), sql.Literal(self.default)]
        return sql.SQL(" ").join(parts)


@dataclass(frozen=True)
class TableDefinition:
    """A generated table: a name and one or more columns with distinct names (``table_definition`` makes them).

    ```python fixture:sync_conn
    from hypothesis import strategies as st
    from pggit_chaos.generators import ColumnDefinition, ColumnType, TableDefinition

    text = ColumnType("text", "text", st.text())
    people = TableDefinition("people", (ColumnDefinition("name", text), ColumnDefinition("email", text)))
    sync_conn.execute(people.create_sql())
    sync_conn.execute(people.insert_sql(), {"name": "Ada", "email": None})
    assert people.column_names == ("name", "email")
    assert people.qualified_name("public").as_string(sync_conn) == '"public"."people"'
    ```
    """

    name: str
    columns: tuple[ColumnDefinition, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns' names, in order."""
        return tuple(col.name for col in self.columns)

    def qualified_name(self, schema: str | None = None) -> sql.Identifier:
        """The table's name, in ``schema`` when one is given, as a quoted identifier."""
        return sql.Identifier(schema, self.name) if schema else sql.Identifier(self.name)

    def create_sql(self, schema: str | None = None) -> sql.Composed:
        """``CREATE TABLE`` for this table, every identifier quoted by psycopg."""
        return sql.SQL("CREATE TABLE {} ({})").format(
            self.qualified_name(schema), sql.SQL(", ").join(col.sql() for col in self.columns)
        )

    def insert_sql(self, schema: str | None = None) -> sql.Composed:
        """``INSERT`` with one named placeholder per column: execute it with a ``data_row`` dict."""
        return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self.qualified_name(schema),
            sql.SQL(", ").join(sql.Identifier(name) for name in self.column_names),
            sql.SQL(", ").join(sql.Placeholder(name) for name in self.column_names),
        )


@st.composite
def _column(draw: st.DrawFn, name: str) -> ColumnDefinition:
    col_type = draw(column_type())
    has_default = draw(st.booleans())
    return ColumnDefinition(
        name=name,
        type=col_type,
        nullable=draw(st.booleans()),
        has_default=has_default,
        default=draw(col_type.values) if has_default else None,
    )


def table_definition(
    max_columns: int = 6, name: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[TableDefinition]:
    """A table name (``pg_identifier()`` unless ``name`` is given) and 1..``max_columns`` columns.

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pggit_chaos.generators import data_row, table_definition

    @settings(max_examples=15)
    @given(data=st.data(), table=table_definition())
    def created_tracked_and_filled(data, table):
        with sync_conn.transaction(force_rollback=True):
            sync_conn.execute(table.create_sql())
            sync_conn.execute(table.insert_sql(), data.draw(data_row(table)))
            version = sync_conn.execute("SELECT full_version FROM pggit.get_version(%s)", (table.name,)).fetchone()
            assert version == ("1.0.0",)

    created_tracked_and_filled()
    ```
    """
    return _table_definition(max_columns, name)


@st.composite
def _table_definition(
    draw: st.DrawFn, max_columns: int, name: st.SearchStrategy[str] | None
) -> TableDefinition:
    names = pg_identifier() if name is None else name.filter(lambda n: not shadowed_by_pg_catalog(n))
    table_name = draw(names)
    column_names = draw(st.lists(
        pg_identifier().filter(lambda n: n not in SYSTEM_COLUMN_NAMES),
        min_size=1, max_size=max_columns, unique=True,
    ))
    return TableDefinition(table_name, tuple(draw(_column(col)) for col in column_names))


def data_row(table: TableDefinition) -> st.SearchStrategy[dict[str, Any]]:
    """``{column: value}`` for ``table``, ready as query parameters for ``table.insert_sql()``.

    Values fit their column's type (jsonb values come wrapped in ``Jsonb``);
    NOT NULL columns never get None.

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pggit_chaos.generators import ColumnDefinition, ColumnType, TableDefinition, data_row

    counts = TableDefinition("counts", (ColumnDefinition("n", ColumnType("integer", "integer", st.integers(0, 9)),
                                                         nullable=False),))
    sync_conn.execute(counts.create_sql())

    @settings(max_examples=10)
    @given(row=data_row(counts))
    def inserts(row):
        assert row["n"] is not None
        sync_conn.execute(counts.insert_sql(), row)

    inserts()
    ```
    """
    return _data_row(table)


@st.composite
def _data_row(draw: st.DrawFn, table: TableDefinition) -> dict[str, Any]:
    row = {}
    for col in table.columns:
        values = col.type.values
        row[col.name] = draw((st.none() | values) if col.nullable else values)
    return row


# --------------------------------------------------------------------------
# pggit values
# --------------------------------------------------------------------------

# Characters git allows in a ref, ASCII punctuation and some non-ASCII
# letters included; "{" is left out so that "@{" cannot occur.
_BRANCH_CHARS = (
    string.ascii_letters + string.digits + "-_+=,.%#!&@'\"$;()<>|}" + "éüßжλ日本"
)
_BRANCH_CHARS_NO_DOT = _BRANCH_CHARS.replace(".", "")
# What the contract says create_branch refuses, NUL aside (no text value can hold it).
_FORBIDDEN_BRANCH_CHARS = " ~^:?*[\\" + "".join(map(chr, range(1, 32))) + "\x7f"
_RESERVED_BRANCH_NAMES = frozenset({"main", "master", "HEAD", "@"})


def _valid_component(part: str) -> bool:
    # git: a component may not start with ".", end with "." or ".lock", or contain "..".
    return not (part.startswith(".") or part.endswith(".") or part.endswith(".lock") or ".." in part)


def _valid_branch_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_BRANCH_NAME_LENGTH
        and not name.startswith("-")
        and name not in _RESERVED_BRANCH_NAMES
        and all(_valid_component(part) for part in name.split("/"))
    )


def git_branch_name() -> st.SearchStrategy[str]:
    """A branch name git accepts (``git check-ref-format --branch``) and pggit must accept.

    No space, control character, ``..`` or any of ``~^:?*[\\``; no leading
    ``-``, no component starting or ending with ``.`` or ending with
    ``.lock``, no ``@{``, no ``//``, no trailing ``/``; 1 to 255 characters;
    never ``main``, ``master`` or ``HEAD``. Mostly short slash-separated
    names, sometimes one near the 255-character limit.

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from pggit_chaos.generators import git_branch_name

    @settings(max_examples=20)
    @given(name=git_branch_name())
    def accepted(name):
        with sync_conn.transaction(force_rollback=True):
            sync_conn.execute("SELECT pggit.create_branch(%s)", (name,))

    accepted()
    ```
    """
    return _git_branch_name()


@st.composite
def _git_branch_name(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) < 9:
        component = st.text(_BRANCH_CHARS, min_size=1, max_size=30).filter(_valid_component)
        name_strategy = st.lists(component, min_size=1, max_size=4).map("/".join)
    else:
        name_strategy = st.text(_BRANCH_CHARS_NO_DOT, min_size=MAX_BRANCH_NAME_LENGTH - 15,
                                max_size=MAX_BRANCH_NAME_LENGTH)
    return draw(name_strategy.filter(_valid_branch_name))


def invalid_branch_name(include_null: bool = False) -> st.SearchStrategy[str | None]:
    """A name pggit's ``create_branch`` must refuse: blank, over 255 characters, or a forbidden character.

    Forbidden: space, control characters, ``..``, and ``~^:?*[\\``. With
    ``include_null`` it also yields None (SQL NULL).

    ```python fixture:sync_conn
    import psycopg
    import pytest
    from hypothesis import given, settings
    from pggit_chaos.generators import invalid_branch_name

    @settings(max_examples=20)
    @given(name=invalid_branch_name(include_null=True))
    def refused(name):
        with sync_conn.transaction(force_rollback=True), pytest.raises(psycopg.errors.InvalidParameterValue):
            sync_conn.execute("SELECT pggit.create_branch(%s)", (name,))

    refused()
    ```
    """
    return _invalid_branch_name(include_null)


@st.composite
def _invalid_branch_name(draw: st.DrawFn, include_null: bool) -> str | None:
    kinds = ["blank", "too_long", "forbidden_char", "double_dot"] + (["null"] if include_null else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "null":
        return None
    if kind == "blank":
        return draw(st.text(" ", max_size=5))
    if kind == "too_long":
        return draw(st.text(_BRANCH_CHARS_NO_DOT, min_size=MAX_BRANCH_NAME_LENGTH + 1,
                            max_size=MAX_BRANCH_NAME_LENGTH + 40))
    base = draw(st.text(_BRANCH_CHARS_NO_DOT, min_size=0, max_size=40))
    bad = draw(st.sampled_from(_FORBIDDEN_BRANCH_CHARS)) if kind == "forbidden_char" else ".."
    at = draw(st.integers(0, len(base)))
    return base[:at] + bad + base[at:]


# Pieces that have broken quoting, escaping or COPY somewhere before.
_TRICKY_TEXT = (
    "'", '"', "\\", "\n", "\r\n", "\t", "%s", "%(x)s", "{}", "$$", "$tag$", "--", "/*", "*/", ";",
    "\\x00", "\\N", "\\.", "NULL", "' OR '1'='1", "😀", "👨‍👩‍👧", "\u202e", "e\u0301", "\ufeff",
    "\uffff", "\U0010ffff", "Ω≈ç√", "日本語",
)


def commit_message(max_length: int = MAX_COMMIT_MESSAGE_LENGTH) -> st.SearchStrategy[str]:
    """Any text PostgreSQL can hold, 0 to ``max_length`` characters (pggit's limit: 10,000).

    Unicode throughout, with quotes, backslashes, newlines, placeholders and
    emoji mixed in; no NUL and no lone surrogate, which no ``text`` value can
    hold. Mostly short; about one in ten within 10 characters of the limit,
    the limit itself included (a drawn piece repeated to that length).

    ```python fixture:sync_conn
    from hypothesis import given, settings
    from pggit_chaos.client import commit
    from pggit_chaos.generators import commit_message

    @settings(max_examples=20)
    @given(message=commit_message())
    def stored_exactly(message):
        trinity_id = commit(sync_conn, "main", message)
        stored = sync_conn.execute("SELECT message FROM pggit.commits WHERE hash = %s", (trinity_id,)).fetchone()
        assert stored == (message,)

    stored_exactly()
    ```
    """
    return _commit_message(max_length)


@st.composite
def _commit_message(draw: st.DrawFn, max_length: int) -> str:
    kind = draw(st.integers(0, 9))  # shrinks towards 0: towards the short messages
    if kind < 7:
        pieces = st.lists(pg_text(max_size=20) | st.sampled_from(_TRICKY_TEXT), max_size=8)
        return draw(pieces.map("".join))[:max_length]
    if kind < 9:
        return draw(pg_text(max_size=min(2000, max_length)))
    length = max_length - draw(st.integers(0, min(10, max_length)))  # shrinks towards the limit itself
    # Hypothesis cannot draw 10,000 characters at once: repeat a drawn piece up to the length.
    piece = draw(pg_text(min_size=1, max_size=300)) + draw(st.sampled_from(_TRICKY_TEXT))
    return (piece * (length // len(piece) + 1))[:length]
