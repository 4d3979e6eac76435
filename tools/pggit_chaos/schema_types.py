"""Names and column types for generated schema fragments: the vocabulary ``schema_objects`` builds from.

``names(kind)``
    a name for a schema, table, column, index, constraint, type, function,
    sequence or collation, written quoted: plain, mixed case, multi-byte,
    reserved words, built-in names, SQL fragments (``' ON '``, ``.``,
    quotes), up to 63 *bytes* (PostgreSQL's limit, in UTF-8 bytes).
``builtin_types(family)`` / ``BUILTIN_FAMILIES``
    one built-in type of a family (numeric with typmods, character with
    lengths, temporal with precisions, intervals and time zones, network,
    money, bit, uuid, json, ranges, ...), with a default expression that is
    not always a constant.

Every value here is created for real by ``tests/toolkit/test_schema_objects.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from hypothesis import event
from hypothesis import strategies as st

from pggit_chaos.generators import MAX_IDENTIFIER_BYTES, NON_UNRESERVED_KEYWORDS, SYSTEM_COLUMN_NAMES

__all__ = [
    "BUILTIN_FAMILIES",
    "INTEGRAL_TYPES",
    "BuiltinType",
    "NAME_FAMILIES",
    "builtin_types",
    "fair",
    "fits",
    "literal",
    "names",
    "quote",
]

NAME_KINDS = ("schema", "table", "column", "index", "constraint", "type", "function", "sequence", "collation")


def quote(name: str) -> str:
    """``name`` as a quoted identifier, exactly as PostgreSQL reads it back."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a standard-conforming SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def fair(choices) -> st.SearchStrategy:
    """One of ``choices``, each about equally likely.

    ``st.sampled_from`` over a few choices favours the first and the last
    (Hypothesis looks for edge cases, and stops drawing once it has seen
    every choice); a 32-bit number modulo the count spreads more evenly, and
    still shrinks towards the first choice.
    """
    return _fair(tuple(choices))


@functools.lru_cache(maxsize=256)  # built once per set of choices: a new strategy is validated at every draw
def _fair(choices: tuple) -> st.SearchStrategy:
    return st.integers(0, 2**32 - 1).map(lambda i: choices[i % len(choices)])


def fits(name: str) -> bool:
    """Whether PostgreSQL keeps ``name`` whole: 1 to 63 bytes in UTF-8, no NUL."""
    return 0 < len(name.encode()) <= MAX_IDENTIFIER_BYTES and "\x00" not in name


def _cut(name: str, limit: int = MAX_IDENTIFIER_BYTES) -> str:
    """The longest prefix of ``name`` that fits in ``limit`` bytes, never splitting a character."""
    while len(name.encode()) > limit:
        name = name[:-1]
    return name


def object_name(name1: str, name2: str, label: str) -> str:
    """The name PostgreSQL makes for an implicit object (``<table>_<column>_seq`` of a serial or identity
    column): both parts cut, the longer first, until it fits in 63 bytes, never splitting a character."""
    available = MAX_IDENTIFIER_BYTES - len(label.encode()) - 2
    first, second = len(name1.encode()), len(name2.encode())
    while first + second > available:
        if first > second:
            first -= 1
        else:
            second -= 1
    return f"{_cut(name1, first)}_{_cut(name2, second)}_{label}"


# Built-in names a user object may take: types, functions and relations of
# pg_catalog. Objects of the table's own schema named like these are printed
# schema-qualified (pg_catalog comes first on every search_path).
BUILTIN_NAMES = ("text", "int4", "integer", "date", "json", "uuid", "numeric", "now", "lower", "abs",
                 "length", "pg_class", "pg_type", "nextval", "int4range", "money")
_MULTI_BYTE = "éßжλ日本語😀𝔘"  # 2, 2, 2, 2, 3, 3, 3, 4, 4 bytes
_SQL_FRAGMENTS = (" ON ", ".", '"', "'", ";", "--", " ", "(", ")", ",", "$1", "\\", "/*")
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_PLAIN = st.builds(str.__add__, st.sampled_from(_LOWER + "_"), st.text(_LOWER + "0123456789_", max_size=12))

NAME_FAMILIES = {
    "plain": _PLAIN,
    "mixed case": st.builds(str.__add__, st.sampled_from(_LOWER.upper()), st.text(_LOWER + _LOWER.upper() + "0_ ",
                                                                                  max_size=14)),
    "multi-byte": st.text(st.sampled_from(_MULTI_BYTE + "ab_"), min_size=1, max_size=20)
                    .filter(lambda n: any(ord(c) > 127 for c in n)),
    "reserved word": st.sampled_from(sorted(NON_UNRESERVED_KEYWORDS)),
    "built-in name": st.sampled_from(BUILTIN_NAMES),
    "sql fragment": st.tuples(_PLAIN, st.sampled_from(_SQL_FRAGMENTS), _PLAIN).map("".join),
    # The limit itself: 63 bytes, reached with 1- to 4-byte characters.
    "longest": st.text(st.sampled_from("x" + _MULTI_BYTE), min_size=16, max_size=63).map(lambda n: _cut(n * 4)),
}

# Names PostgreSQL makes itself (sequences of serial columns, indexes of keys,
# array types); a generated name never ends like them, so it never collides.
_AUTO_SUFFIXES = ("_seq", "_idx", "_key", "_pkey", "_fkey", "_check", "_excl", "_not_null")


def _allowed(kind: str, name: str) -> bool:
    if not fits(name) or name.endswith(_AUTO_SUFFIXES) or name.startswith("_"):
        return False
    if kind == "schema":
        return not name.startswith("pg_") and name not in {"public", "pggit", "information_schema"}
    if kind == "column":
        return name not in SYSTEM_COLUMN_NAMES
    return True


def names(kind: str = "table") -> st.SearchStrategy[str]:
    """A name for an object of ``kind`` (see ``NAME_KINDS``), each name family about equally likely.

    Always at most 63 bytes; schema names never start with ``pg_`` (PostgreSQL
    refuses them); column names are never system column names.
    """
    if kind not in NAME_KINDS:
        raise ValueError(f"kind must be one of {NAME_KINDS}, got {kind!r}")
    return _NAMES[kind]


@st.composite
def _names(draw: st.DrawFn, families: dict[str, st.SearchStrategy[str]]) -> str:
    family = draw(fair(sorted(families)))
    event(f"name family: {family}")
    return draw(families[family])


# Built once: a strategy made anew for every draw would be validated anew every time.
_NAMES = {kind: _names({family: strategy.filter(lambda n, kind=kind: _allowed(kind, n))
                        for family, strategy in NAME_FAMILIES.items()}) for kind in NAME_KINDS}


# --------------------------------------------------------------------------
# Built-in types
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinType:
    """A built-in column type: its family, how to write it, a default expression, and what it supports."""

    family: str
    sql: str
    default: str  # an expression of this type: a constant or not
    btree: bool = True  # usable in a btree index, primary key or unique constraint
    integral: bool = False  # smallint, integer or bigint: fit for keys, partitions and generated columns


def _t(family: str, sqls, defaults, btree: bool = True, integral: bool = False) -> st.SearchStrategy[BuiltinType]:
    """Types written as one of ``sqls`` (text, or a strategy of text), with one of ``defaults``."""
    sql = sqls if isinstance(sqls, st.SearchStrategy) else st.sampled_from(sqls)
    return st.builds(BuiltinType, st.just(family), sql, st.sampled_from(defaults), st.just(btree), st.just(integral))


def _sized(names_: list[str], lo: int, hi: int, optional: bool = False) -> st.SearchStrategy[str]:
    size = st.integers(lo, hi).map(lambda n: f"({n})")
    return st.builds(str.__add__, st.sampled_from(names_), (st.just("") | size) if optional else size)


def _numeric_typmod(precision: int, scale: int) -> str:
    return f"numeric({precision},{min(scale, precision)})"


INTEGRAL_TYPES = _t("numeric", ["smallint", "integer", "bigint"], ["0", "42", "(2 + 3 * 4)", "length(current_user)"],
               integral=True)
_BUILTIN = {
    "numeric": st.one_of(
        INTEGRAL_TYPES,
        _t("numeric", st.builds(_numeric_typmod, st.integers(1, 30), st.integers(0, 30)), ["0", "(1 / 2)"]),
        _t("numeric", ["real", "double precision", "numeric", "float(10)"], ["0.5", "pi()", "random()"])),
    "character": _t("character", _sized(["varchar", "char", "character varying"], 1, 200)
                    | st.sampled_from(["text", "varchar", '"char"']),
                    ["''", "'x'", "left(current_user, 1)", "upper('a')"]),
    "temporal": st.one_of(
        _t("temporal", ["date"], ["CURRENT_DATE", "'2024-02-29'", "(DATE '2024-01-01' + 1)"]),
        _t("temporal", _sized(["timestamp", "timestamptz"], 0, 6, optional=True),
           ["LOCALTIMESTAMP", "now()", "'2024-02-29 12:00:00'"]),
        _t("temporal", _sized(["time", "timetz"], 0, 6, optional=True), ["LOCALTIME", "'12:00:00'"]),
        _t("temporal", ["timestamp with time zone", "timestamp(3) without time zone", "time(2) with time zone"],
           ["'2024-02-29 12:00:00+00'", "CURRENT_TIMESTAMP"]),
        _t("temporal", ["interval", "interval(3)", "interval year to month", "interval day to second(2)",
                        "interval hour", "interval minute to second"],
           ["'1 day'", "'0'", "make_interval(days => 2)"])),
    "bit": st.one_of(
        _t("bit", _sized(["varbit", "bit varying"], 1, 64), ["B'1'", "B''", "(B'10' || B'1')"]),
        _t("bit", ["bit", "bit(1)"], ["B'1'", "(~ B'1')"])),
    "network": st.one_of(_t("network", ["inet"], ["'192.0.2.1'", "inet_client_addr()", "'::1'"]),
                         _t("network", ["cidr"], ["'10.0.0.0/8'", "NULL"]),
                         _t("network", ["macaddr", "macaddr8"], ["'08:00:2b:01:02:03'", "NULL"])),
    "money": _t("money", ["money"], ["0", "'12.34'::money", "(1.5)::numeric::money"]),
    "uuid": _t("uuid", ["uuid"], ["gen_random_uuid()", "'00000000-0000-0000-0000-000000000000'"]),
    "json": _t("json", ["jsonb"], ["'{}'", "'[1, \"a\"]'", "jsonb_build_object('k', 1)"])
            | _t("json", ["json"], ["'{}'", "json_build_array(1, 2)"], btree=False),
    "range": _t("range", ["int4range"], ["'empty'", "'[1,2)'", "int4range(1, 9)"])
             | _t("range", ["int8range", "numrange"], ["'empty'", "'[1,2)'"])
             | _t("range", ["daterange", "tsrange", "tstzrange"], ["'empty'", "'(,)'"]),
    "boolean": _t("boolean", ["boolean"], ["true", "false", "(1 < 2)"]),
    "binary": _t("binary", ["bytea"], ["'\\xdeadbeef'::bytea", "decode('00ff', 'hex')"]),
    "geometric": _t("geometric", ["point", "box", "circle", "lseg", "path", "polygon"], ["NULL"], btree=False),
}

BUILTIN_FAMILIES = tuple(_BUILTIN)
_ANY_BUILTIN = fair(BUILTIN_FAMILIES).flatmap(_BUILTIN.__getitem__)


def builtin_types(family: str | None = None) -> st.SearchStrategy[BuiltinType]:
    """A built-in type of ``family`` (any of ``BUILTIN_FAMILIES``, equally likely, when None)."""
    if family is None:
        return _ANY_BUILTIN
    if family not in BUILTIN_FAMILIES:
        raise ValueError(f"family must be one of {BUILTIN_FAMILIES}, got {family!r}")
    return _BUILTIN[family]
