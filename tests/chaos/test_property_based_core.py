"""Property-based tests of pggit's core: Trinity IDs, commit messages, versions, schema hashes.

Each property holds for every input Hypothesis generates, not just for the
handful a person would think of; a failure shrinks to a minimal example.
"""

from __future__ import annotations

import contextlib
import re

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit
from pggit_chaos.generators import (
    MAX_COMMIT_MESSAGE_LENGTH,
    commit_message,
    git_branch_name,
    table_definition,
)
from pggit_chaos.snapshot import DatabaseStateSnapshot
from psycopg import sql

pytestmark = [pytest.mark.chaos, pytest.mark.property]

# The documented format (docs/reference/pggit.md, "Trinity IDs").
TRINITY_ID = re.compile(r"^TRN-(?P<time>\d{14})-(?P<seq>\d{12})-(?P<random>[0-9a-f]{8})$")
UTC_STAMP = "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS')"
INT_MAX = 2**31 - 1


def _sequence_part(trinity_id: str) -> int:
    match = TRINITY_ID.match(trinity_id)
    assert match, f"{trinity_id!r} does not have the documented format TRN-<14 digits>-<12 digits>-<8 hex>"
    return int(match["seq"])


# ---------------------------------------------------------------------------
# Trinity IDs
# ---------------------------------------------------------------------------


@given(branch=git_branch_name(), messages=st.lists(commit_message(), min_size=1, max_size=4))
def test_trinity_ids_are_unique_well_formed_and_increasing_for_any_branch_and_message(fresh_connection, branch, messages):
    """Whatever the branch name and message, every commit gets a new ID in the documented format,
    with a sequence part above every earlier one."""
    with fresh_connection(autocommit=True) as conn:
        previous = conn.execute(
            "SELECT coalesce(max(substr(hash, 20, 12)::bigint), 0) FROM pggit.commits"
        ).fetchone()[0]
        issued = []
        for message in messages:
            before = conn.execute(UTC_STAMP).fetchone()[0]
            trinity_id = commit(conn, branch, message)
            after = conn.execute(UTC_STAMP).fetchone()[0]
            sequence = _sequence_part(trinity_id)
            assert sequence > previous, f"sequence part of {trinity_id} is not above the previous one ({previous})"
            assert before <= TRINITY_ID.match(trinity_id)["time"] <= after, (
                f"time part of {trinity_id} is not the UTC time of the call ({before}..{after})")
            previous = sequence
            issued.append(trinity_id)

        checkers.unique_trinity_ids(conn, extra_ids=issued)
        chain = checkers.linear_chain_invariant(conn, branch)
        assert chain[-len(issued):] == issued


def test_many_commits_and_ids_are_unique_and_ordered_by_their_sequence_part(sync_conn):
    """Hundreds of commits across branches in one statement, and thousands of bare IDs, never repeat
    and sort by their sequence part in the order they were issued."""
    sync_conn.autocommit = True
    commit_ids = [row[0] for row in sync_conn.execute(
        "SELECT pggit.commit_changes('bulk/' || (g % 5), 'bulk commit ' || g) "
        "FROM generate_series(1, 500) AS g ORDER BY g"
    )]
    bare_ids = [row[0] for row in sync_conn.execute(
        "SELECT pggit.generate_trinity_id() FROM generate_series(1, 2000) AS g ORDER BY g"
    )]

    checkers.unique_trinity_ids(sync_conn, extra_ids=commit_ids + bare_ids)
    sequence = [_sequence_part(i) for i in commit_ids + bare_ids]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    assert sorted(commit_ids + bare_ids, key=lambda i: i[19:31]) == commit_ids + bare_ids
    for branch in range(5):
        chain = checkers.linear_chain_invariant(sync_conn, f"bulk/{branch}")
        assert chain == [i for n, i in enumerate(commit_ids, start=1) if n % 5 == branch]
    checkers.integrity_ok(sync_conn)


# ---------------------------------------------------------------------------
# Commit messages
# ---------------------------------------------------------------------------


@given(message=commit_message())
def test_any_valid_commit_message_is_stored_exactly(fresh_connection, message):
    """Any text up to 10,000 characters comes back from pggit.commits exactly as it was given."""
    with fresh_connection(autocommit=True) as conn:
        trinity_id = commit(conn, "messages", message)
        stored = conn.execute("SELECT message FROM pggit.commits WHERE hash = %s", (trinity_id,)).fetchone()[0]
        assert stored == message


@pytest.mark.parametrize("character", ["x", "é", "日", "😀", "'", "\\", "\n"])
def test_a_message_of_exactly_ten_thousand_characters_is_stored_whole(sync_conn, character):
    """The limit counts characters, not bytes: 10,000 of any character (4-byte emoji included) is accepted."""
    sync_conn.autocommit = True
    message = character * MAX_COMMIT_MESSAGE_LENGTH
    trinity_id = commit(sync_conn, "limit", message)
    stored, length = sync_conn.execute(
        "SELECT message, length(message) FROM pggit.commits WHERE hash = %s", (trinity_id,)).fetchone()
    assert (stored == message, length) == (True, MAX_COMMIT_MESSAGE_LENGTH)


@given(
    length=st.integers(MAX_COMMIT_MESSAGE_LENGTH + 1, MAX_COMMIT_MESSAGE_LENGTH + 50) | st.just(100_000),
    piece=st.sampled_from(["x", "é", "😀", "a'b\\c\n"]),
)
def test_a_message_over_the_limit_is_refused_naming_the_limit_and_writes_nothing(fresh_connection, length, piece):
    """10,001 characters or more: SQLSTATE 22023, a message that names the limit, and no row anywhere."""
    with fresh_connection(autocommit=True) as conn:
        message = (piece * length)[:length]
        before = DatabaseStateSnapshot.capture(conn)
        with pytest.raises(psycopg.Error) as refused:
            commit(conn, "over-the-limit", message)
        assert refused.value.sqlstate == "22023", refused.value
        text = str(refused.value)
        assert "10000" in text.replace(",", ""), f"the error does not name the limit: {text}"
        assert str(length) in text, f"the error does not say how long the message was: {text}"
        DatabaseStateSnapshot.capture(conn).assert_unchanged(before)


# ---------------------------------------------------------------------------
# Semantic versions
# ---------------------------------------------------------------------------

VERSION_PART = st.integers(0, INT_MAX - 1)


@st.composite
def any_case(draw, word_strategy):
    word = draw(word_strategy)
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if u else c for c, u in zip(word, upper))


def _increment(conn, major, minor, patch, kind):
    return conn.execute("SELECT * FROM pggit.increment_version(%s, %s, %s, %s)", (major, minor, patch, kind)).fetchone()


@given(major=VERSION_PART, minor=VERSION_PART, patch=VERSION_PART,
       kind=any_case(st.sampled_from(["major", "minor", "patch"])))
def test_increment_version_obeys_the_semver_laws(fresh_connection, major, minor, patch, kind):
    """major resets minor and patch, minor resets patch, patch adds one; the result is always greater
    in semver order, and full_version is the dotted triple."""
    with fresh_connection(autocommit=True) as conn:
        new_major, new_minor, new_patch, full_version = _increment(conn, major, minor, patch, kind)
        expected = {
            "major": (major + 1, 0, 0),
            "minor": (major, minor + 1, 0),
            "patch": (major, minor, patch + 1),
        }[kind.lower()]
        assert (new_major, new_minor, new_patch) == expected
        assert (new_major, new_minor, new_patch) > (major, minor, patch)
        assert full_version == f"{new_major}.{new_minor}.{new_patch}"


@given(parts=st.tuples(st.integers(-(2**31), INT_MAX), st.integers(-(2**31), INT_MAX), st.integers(-(2**31), INT_MAX))
       .filter(lambda p: min(p) < 0),
       kind=st.sampled_from(["major", "minor", "patch"]))
def test_increment_version_refuses_a_negative_part_naming_it(fresh_connection, parts, kind):
    """Any negative part: SQLSTATE 22023 and a message naming the negative value."""
    with fresh_connection(autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as refused:
            _increment(conn, *parts, kind)
        assert refused.value.sqlstate == "22023", refused.value
        assert str(min(parts)) in str(refused.value), refused.value


@given(kind=st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20)
       .filter(lambda k: k.lower() not in {"major", "minor", "patch"}))
def test_increment_version_refuses_an_unknown_type_naming_it(fresh_connection, kind):
    """Any type but major/minor/patch (in any case): SQLSTATE 22023 and a message naming that type."""
    with fresh_connection(autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as refused:
            _increment(conn, 1, 2, 3, kind)
        assert refused.value.sqlstate == "22023", refused.value
        assert f'"{kind}"' in str(refused.value), refused.value


def test_increment_version_refuses_null_and_overflow_instead_of_wrapping(sync_conn):
    """A NULL type or part is a 22023 error; a step past the integer range is an error, never a wrap-around."""
    sync_conn.autocommit = True
    for args in [(1, 2, 3, None), (None, 2, 3, "major"), (1, None, 3, "minor"), (1, 2, None, "patch")]:
        with pytest.raises(psycopg.Error) as refused:
            _increment(sync_conn, *args)
        assert refused.value.sqlstate == "22023", (args, refused.value)
        assert "NULL" in str(refused.value), refused.value
    for args in [(INT_MAX, 0, 0, "major"), (0, INT_MAX, 0, "minor"), (0, 0, INT_MAX, "patch")]:
        with pytest.raises(psycopg.Error) as refused:
            _increment(sync_conn, *args)
        assert refused.value.sqlstate == "22003", (args, refused.value)  # numeric_value_out_of_range


# ---------------------------------------------------------------------------
# Schema hash
# ---------------------------------------------------------------------------

# Session settings that change how PostgreSQL prints values, and so how a
# default expression reads; the hash must not depend on any of them.
SESSION_SETTINGS = st.fixed_dictionaries({
    "TimeZone": st.sampled_from(["UTC", "Asia/Kolkata", "America/Los_Angeles", "Pacific/Chatham"]),
    "DateStyle": st.sampled_from(["ISO, MDY", "ISO, DMY", "German", "SQL, DMY", "Postgres, MDY"]),
    "IntervalStyle": st.sampled_from(["postgres", "iso_8601", "sql_standard"]),
    "bytea_output": st.sampled_from(["hex", "escape"]),
    "extra_float_digits": st.integers(-15, 3).map(str),
})


def _hash(conn: psycopg.Connection, qualified: sql.Composable) -> str:
    return conn.execute("SELECT pggit.calculate_schema_hash(%s)", (qualified.as_string(conn),)).fetchone()[0]


@contextlib.contextmanager
def two_databases(fresh_connection):
    """Two connections, each to a database of its own, with a second schema in each; autocommit off."""
    with fresh_connection() as conn_a, fresh_connection() as conn_b:
        for conn in (conn_a, conn_b):
            conn.execute("CREATE SCHEMA elsewhere")
            conn.commit()
        yield conn_a, conn_b


@given(table=table_definition(), settings_a=SESSION_SETTINGS, settings_b=SESSION_SETTINGS)
def test_schema_hash_is_the_same_for_the_same_table_in_any_database_schema_and_session(
        fresh_connection, table, settings_a, settings_b):
    """The same table_definition() created in two databases, or in two schemas, by sessions with
    different settings, hashes the same everywhere (and the same as pggit recorded it)."""
    with two_databases(fresh_connection) as (conn_a, conn_b):
        with nemesis.session_configured(conn_a, **settings_a), nemesis.session_configured(conn_b, **settings_b):
            conn_a.execute(table.create_sql())
            conn_b.execute(table.create_sql("elsewhere"))
            conn_a.execute(table.create_sql("elsewhere"))
            hashes = {
                "database A, public": _hash(conn_a, table.qualified_name("public")),
                "database A, elsewhere": _hash(conn_a, table.qualified_name("elsewhere")),
                "database B, elsewhere": _hash(conn_b, table.qualified_name("elsewhere")),
            }
            with nemesis.session_configured(conn_a, **settings_b):  # the same session, read under other settings
                hashes["database A, public, other settings"] = _hash(conn_a, table.qualified_name("public"))
        recorded = conn_a.execute(
            "SELECT content_hash FROM pggit.objects WHERE is_active AND schema_name = 'public' AND object_name = %s",
            (table.name,)).fetchone()
        hashes["recorded by pggit"] = recorded[0] if recorded else None
        assert len(set(hashes.values())) == 1, f"hashes differ for {table.create_sql().as_string(conn_a)}: {hashes}"
        assert re.fullmatch(r"[0-9a-f]{64}", hashes["recorded by pggit"])


def _type_change(column) -> str:
    return "varchar(10000)" if column.type.canonical == "text" else "text"


@given(table=table_definition(), data=st.data())
def test_schema_hash_changes_with_every_structural_change(fresh_connection, table, data):
    """Adding, dropping, renaming or retyping a column, changing nullability or a default, adding a
    constraint or an index: each gives a new hash."""
    with fresh_connection(autocommit=False) as conn:
        column = data.draw(st.sampled_from(table.columns), label="column")
        name, target = sql.Identifier(column.name), table.qualified_name()
        if column.has_default:
            default_change = sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(target, name)
        else:
            value = data.draw(column.type.values.filter(lambda v: v is not None), label="new default")
            default_change = sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                target, name, sql.Literal(value))
        changes = {
            "add column": sql.SQL("ALTER TABLE {} ADD COLUMN {} int").format(target, sql.Identifier("Added Column")),
            "drop column": sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(target, name),
            "rename column": sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
                target, name, sql.Identifier("Renamed Column")),
            "type change": sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::text").format(
                target, name, sql.SQL(_type_change(column)), name),
            "nullability": sql.SQL("ALTER TABLE {} ALTER COLUMN {} {} NOT NULL").format(
                target, name, sql.SQL("SET" if column.nullable else "DROP")),
            "default": default_change,
            "check constraint": sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL)").format(
                target, sql.Identifier("Chaos Check"), name),
            "unique constraint": sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})").format(
                target, sql.Identifier("Chaos Unique"), name),
            "index": sql.SQL("CREATE INDEX {} ON {} ({})").format(sql.Identifier("Chaos Index"), target, name),
        }
        try:
            conn.execute(table.create_sql())
            base = _hash(conn, target)
            unchanged = []
            for change, statement in changes.items():
                conn.execute("SAVEPOINT change")
                conn.execute(statement)
                if _hash(conn, target) == base:
                    unchanged.append(f"{change}: {statement.as_string(conn)}")
                conn.execute("ROLLBACK TO SAVEPOINT change")
            assert _hash(conn, target) == base, "rolling the changes back did not restore the hash"
            assert not unchanged, "these structural changes left the hash as it was:\n" + "\n".join(unchanged)
        finally:
            conn.rollback()


# ---------------------------------------------------------------------------
# Trinity IDs at the edges of the sequence
# ---------------------------------------------------------------------------

# pggit.trinity_id_seq's MAXVALUE: the sequence part of an ID has 12 digits.
SEQUENCE_MAX = 999_999_999_999
NEXT_SEQUENCE_NUMBER = "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM pggit.trinity_id_seq"


@pytest.mark.resource
@pytest.mark.parametrize("left", [0, 1, 3])
def test_when_the_id_space_runs_out_commits_are_refused_and_numbers_never_wrap_around(sync_conn, left):
    """With ``left`` sequence numbers still free, that many commits get the last numbers in order; the
    next commit is refused (sequence limit, 2200H) and writes nothing, instead of wrapping around to
    numbers already issued."""
    sync_conn.autocommit = True
    first = commit(sync_conn, "main", "an early commit")
    sync_conn.execute("SELECT setval('pggit.trinity_id_seq', %s)", (SEQUENCE_MAX - left,))
    last = [commit(sync_conn, "space/edge", f"commit {i}") for i in range(left)]
    assert [_sequence_part(i) for i in last] == list(range(SEQUENCE_MAX - left + 1, SEQUENCE_MAX + 1))
    before = DatabaseStateSnapshot.capture(sync_conn)
    with pytest.raises(psycopg.Error) as refused:
        commit(sync_conn, "space/edge", "one too many")
    assert refused.value.sqlstate == "2200H", refused.value  # sequence_generator_limit_exceeded
    DatabaseStateSnapshot.capture(sync_conn).assert_unchanged(before)
    assert checkers.linear_chain_invariant(sync_conn, "main") == [first]
    checkers.integrity_ok(sync_conn)


@given(ahead=st.integers(0, 10**9), random_part=st.from_regex(r"[0-9a-f]{8}", fullmatch=True))
def test_a_custom_id_with_a_sequence_number_not_issued_yet_is_refused_and_writes_nothing(fresh_connection, ahead, random_part):
    """A custom Trinity ID in the generated format whose sequence number pggit has not issued yet
    would collide with a future generated ID: it is refused (22023, naming the ID), and nothing is
    written."""
    with fresh_connection(autocommit=True) as conn:
        stamp = conn.execute(UTC_STAMP).fetchone()[0]
        forged = f"TRN-{stamp}-{conn.execute(NEXT_SEQUENCE_NUMBER).fetchone()[0] + ahead:012d}-{random_part}"
        before = DatabaseStateSnapshot.capture(conn)
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT pggit.commit_changes('forged', 'from the future', %s)", (forged,))
        assert refused.value.sqlstate == "22023", refused.value
        assert forged in str(refused.value), refused.value
        DatabaseStateSnapshot.capture(conn).assert_unchanged(before)
        checkers.integrity_ok(conn)


# Every Unicode White_Space character (Python's str.isspace() agrees, and adds U+001C-U+001F, controls anyway).
UNICODE_SPACES = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
# C0 (but NUL, which no text holds), DEL and C1.
CONTROL_CHARACTERS = st.characters(min_codepoint=1, max_codepoint=0x9F).filter(lambda c: c < " " or c >= "\x7f")


@example(custom_id="\x85" * 10)  # found by TestPggitModel: ten NEXT LINE controls (blank, too) were taken
@example(custom_id="\u3000" * 10)  # blank in Unicode, not to [[:space:]] in a database with the C locale
@example(custom_id="custom-id-\x9b")
@given(custom_id=st.one_of(
    st.text(st.sampled_from(UNICODE_SPACES), min_size=10, max_size=20),
    st.tuples(st.from_regex(r"[a-z0-9-]{10,20}", fullmatch=True), CONTROL_CHARACTERS, st.integers(0, 20))
    .map(lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:]),
))
def test_a_blank_custom_id_or_one_with_a_control_character_is_refused_in_any_locale(fresh_connection, custom_id):
    """A custom Trinity ID made only of Unicode spaces, or holding any control character (C0, DEL or C1),
    is refused with 22023 and writes nothing, whatever LC_CTYPE the database has."""
    with fresh_connection(autocommit=True) as conn:
        before = DatabaseStateSnapshot.capture(conn)
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT pggit.commit_changes('main', 'custom', %s)", (custom_id,))
        assert refused.value.sqlstate == "22023", refused.value
        assert "blank or contain control characters" in str(refused.value), refused.value
        DatabaseStateSnapshot.capture(conn).assert_unchanged(before)


# ---------------------------------------------------------------------------
# Schema hash: defaults that print differently per session
# ---------------------------------------------------------------------------

# Every default here is a constant that PostgreSQL prints with the session's settings.
PRINTED_DEFAULTS = """
CREATE TABLE printed (
    at timestamptz DEFAULT '2024-02-29 23:30:00+00',
    day date DEFAULT '2024-02-29',
    span interval DEFAULT '1 day 02:03:04.5',
    raw bytea DEFAULT '\\xdeadbeef',
    ratio double precision DEFAULT 0.1
)
"""


@example(settings={"TimeZone": "Pacific/Chatham", "DateStyle": "German", "IntervalStyle": "iso_8601",
                   "bytea_output": "escape", "extra_float_digits": "-15"})
@given(settings=SESSION_SETTINGS)
def test_defaults_that_print_per_session_hash_as_recorded_under_any_session_settings(fresh_connection, settings):
    """A table whose defaults are a timestamp, a date, an interval, bytes and a float hashes the same,
    and as pggit recorded it, whatever TimeZone, DateStyle, IntervalStyle, bytea_output and
    extra_float_digits the reading session has."""
    with fresh_connection(autocommit=False) as conn:
        try:
            conn.execute(PRINTED_DEFAULTS)
            recorded = conn.execute(
                "SELECT content_hash FROM pggit.objects WHERE is_active AND object_name = 'printed'").fetchone()[0]
            with nemesis.session_configured(conn, **settings):
                assert _hash(conn, sql.Identifier("printed")) == recorded, settings
        finally:
            conn.rollback()


@given(table=table_definition())
def test_an_unqualified_table_name_is_resolved_through_the_callers_search_path(fresh_connection, table):
    """With a table of the same name in public and in the schema first on the caller's search_path,
    calculate_schema_hash of the bare name hashes the table the session sees, the one pggit recorded."""
    with fresh_connection(autocommit=False) as conn:
        try:
            conn.execute("CREATE SCHEMA first_on_path")
            conn.execute(table.create_sql("first_on_path"))
            conn.execute(sql.SQL("CREATE TABLE {} (shadowed_by_the_path int)").format(table.qualified_name("public")))
            conn.execute("SELECT set_config('search_path', 'first_on_path, public', true)")
            seen = _hash(conn, table.qualified_name())
            assert seen == _hash(conn, table.qualified_name("first_on_path"))
            assert seen != _hash(conn, table.qualified_name("public"))
            recorded = conn.execute(
                "SELECT content_hash FROM pggit.objects WHERE is_active AND schema_name = 'first_on_path' "
                "AND object_name = %s", (table.name,)).fetchone()[0]
            assert seen == recorded
        finally:
            conn.rollback()
