"""Every strategy in ``tools/pggit_chaos/generators.py`` generates only values valid for what it feeds.

Each value goes to the real consumer: PostgreSQL for identifiers, tables,
rows and text; ``pggit.create_branch`` / ``pggit.commit_changes`` for pggit
values; ``git check-ref-format`` for branch names. Every example runs in a
transaction that is rolled back, so examples stay independent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pggit_chaos.generators import (
    MAX_BRANCH_NAME_LENGTH,
    MAX_COMMIT_MESSAGE_LENGTH,
    NON_UNRESERVED_KEYWORDS,
    SYSTEM_COLUMN_NAMES,
    commit_message,
    data_row,
    git_branch_name,
    invalid_branch_name,
    pg_identifier,
    shadowed_by_pg_catalog,
    table_definition,
)
from psycopg import sql

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed: cannot cross-check branch names with git")


@pytest.fixture
def plain_conn(pg_server):
    """An autocommit connection to a bare database (no pggit) of this test's own."""
    name = pg_server.next_database_name("strategies")
    pg_server.create_database(name)
    try:
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            yield conn
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def pggit_conn(sync_conn):
    """``sync_conn`` in autocommit mode: each example opens and rolls back its own transaction."""
    sync_conn.autocommit = True
    return sync_conn


def git_accepts_branch(name: str, cwd) -> bool:
    # Outside any repository and without GIT_* variables, so only the name decides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run(
        [GIT, "check-ref-format", "--branch", name], cwd=cwd, env=env, capture_output=True, text=True
    )
    return result.returncode == 0 and result.stdout.rstrip("\n") == name


# --------------------------------------------------------------------------
# pg_identifier
# --------------------------------------------------------------------------


def test_keyword_list_covers_every_non_unreserved_keyword_of_the_server(plain_conn):
    server_keywords = {row[0] for row in plain_conn.execute("SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'")}
    assert server_keywords - NON_UNRESERVED_KEYWORDS == set()


def test_every_pg_catalog_relation_name_counts_as_shadowing(plain_conn):
    """A table named like a catalog relation is created in public but looked up in pg_catalog,
    so the strategies must never name a table that way."""
    names = [row[0] for row in plain_conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace")]
    assert names and [n for n in names if not shadowed_by_pg_catalog(n)] == []


@given(name=pg_identifier())
def test_pg_identifier_works_unquoted_as_a_table_and_column_name(plain_conn, name):
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name) and len(name.encode()) <= 63
    column = "c" if name in SYSTEM_COLUMN_NAMES else name
    with plain_conn.transaction(force_rollback=True):
        plain_conn.execute(f"CREATE TABLE {name} ({column} int)")
        plain_conn.execute(f"INSERT INTO {name} ({column}) VALUES (1)")
        assert plain_conn.execute(f"SELECT {column} FROM {name}").fetchone() == (1,)
        # Stored exactly as written: no case folding, no truncation.
        stored = plain_conn.execute("SELECT relname FROM pg_class WHERE oid = %s::regclass", (name,)).fetchone()
        assert stored == (name,)


# --------------------------------------------------------------------------
# table_definition / data_row
# --------------------------------------------------------------------------


@given(table=table_definition(), in_schema=st.booleans())
def test_table_definition_creates_exactly_the_table_it_describes(plain_conn, table, in_schema):
    schema = "public" if in_schema else None
    with plain_conn.transaction(force_rollback=True):
        plain_conn.execute(table.create_sql(schema))
        columns = plain_conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull, atthasdef FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table.qualified_name("public").as_string(plain_conn),),
        ).fetchall()
    assert columns == [(c.name, c.type.canonical, not c.nullable, c.has_default) for c in table.columns]


@given(data=st.data())
def test_data_row_inserts_into_its_table(plain_conn, data):
    table = data.draw(table_definition(), label="table")
    rows = data.draw(st.lists(data_row(table), min_size=1, max_size=3), label="rows")
    with plain_conn.transaction(force_rollback=True):
        plain_conn.execute(table.create_sql())
        for row in rows:
            plain_conn.execute(table.insert_sql(), row)
        count = plain_conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table.qualified_name())).fetchone()
    assert count == (len(rows),)


@given(table=table_definition())
def test_table_definition_creates_under_pggit_ddl_tracking(pggit_conn, table):
    with pggit_conn.transaction(force_rollback=True):
        pggit_conn.execute(table.create_sql("public"))
        assert pggit_conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                  (table.qualified_name("public").as_string(pggit_conn),)).fetchone() == (True,)


# --------------------------------------------------------------------------
# commit_message
# --------------------------------------------------------------------------


@given(message=commit_message())
def test_commit_message_round_trips_exactly_through_a_text_column(plain_conn, message):
    assert len(message) <= MAX_COMMIT_MESSAGE_LENGTH and "\x00" not in message
    with plain_conn.transaction(force_rollback=True):
        plain_conn.execute("CREATE TABLE messages (m text)")
        plain_conn.execute("INSERT INTO messages VALUES (%s)", (message,))
        assert plain_conn.execute("SELECT m FROM messages").fetchone() == (message,)


@given(message=commit_message())
def test_commit_message_round_trips_exactly_through_pggit_commit_changes(pggit_conn, message):
    with pggit_conn.transaction(force_rollback=True):
        commit_id = pggit_conn.execute("SELECT pggit.commit_changes('main', %s)", (message,)).fetchone()[0]
        stored = pggit_conn.execute("SELECT message FROM pggit.commits WHERE hash = %s", (commit_id,)).fetchone()
    assert stored == (message,)


def test_commit_message_reaches_its_length_limit():
    lengths = set()

    @settings(max_examples=100, derandomize=True, database=None)
    @given(commit_message(max_length=12))
    def collect(message):
        lengths.add(len(message))

    collect()
    assert max(lengths) == 12 and 0 in lengths


# --------------------------------------------------------------------------
# git_branch_name / invalid_branch_name
# --------------------------------------------------------------------------


@needs_git
@given(name=git_branch_name())
def test_git_branch_name_is_accepted_by_git(tmp_path, name):
    assert 0 < len(name) <= MAX_BRANCH_NAME_LENGTH and name not in ("main", "master")
    assert git_accepts_branch(name, tmp_path), f"git refuses {name!r}"


@given(name=git_branch_name())
def test_git_branch_name_is_accepted_by_pggit_create_branch(pggit_conn, name):
    with pggit_conn.transaction(force_rollback=True):
        branch_id = pggit_conn.execute("SELECT pggit.create_branch(%s)", (name,)).fetchone()[0]
        stored = pggit_conn.execute("SELECT name FROM pggit.branches WHERE id = %s", (branch_id,)).fetchone()
    assert stored == (name,)


@given(name=invalid_branch_name(include_null=True))
def test_invalid_branch_name_is_refused_by_pggit_create_branch(pggit_conn, name):
    count = "SELECT count(*) FROM pggit.branches"
    before = pggit_conn.execute(count).fetchone()
    with pytest.raises(psycopg.Error) as refused, pggit_conn.transaction():
        pggit_conn.execute("SELECT pggit.create_branch(%s)", (name,))
    # The contract asks for a data-exception SQLSTATE (class 22) a client can branch on.
    assert refused.value.sqlstate and refused.value.sqlstate.startswith("22"), refused.value
    assert pggit_conn.execute(count).fetchone() == before


@needs_git
@given(name=invalid_branch_name())
def test_invalid_branch_name_is_refused_by_git_too_unless_only_too_long(tmp_path, name):
    if len(name) > MAX_BRANCH_NAME_LENGTH:
        return  # git sets no length limit; 255 is pggit's own
    assert not git_accepts_branch(name, tmp_path), f"git accepts {name!r}"
