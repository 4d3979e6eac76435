"""generate_trinity_id: documented format, unique across sessions and crashes, sortable by its sequence part."""

from __future__ import annotations

import concurrent.futures
import datetime
import re

import psycopg
import pytest

from pggit_chaos import nemesis
from tests.extension.helpers import assert_lends_no_rights, commit, scalar

# docs/reference/pggit.md: TRN-<UTC time YYYYMMDDHH24MISS>-<sequence number, 12 digits>-<8 random hex digits>
TRINITY_ID = re.compile(r"TRN-(?P<time>\d{14})-(?P<seq>\d{12})-(?P<random>[0-9a-f]{8})")


def parts(trinity_id: str) -> re.Match:
    match = TRINITY_ID.fullmatch(trinity_id)
    assert match, f"{trinity_id!r} does not have the documented Trinity ID format"
    return match


def sequence_part(trinity_id: str) -> int:
    return int(parts(trinity_id)["seq"])


def generate(conn: psycopg.Connection, n: int) -> list[str]:
    """n IDs from one statement, in the order they were generated."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT pggit.generate_trinity_id() FROM generate_series(1, %s) g ORDER BY g", (n,)
        )
    ]


def test_trinity_id_has_the_documented_format(conn):
    trinity_id = scalar(conn, "SELECT pggit.generate_trinity_id()")
    parts(trinity_id)


def test_time_part_is_the_current_utc_time(conn):
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    trinity_id = scalar(conn, "SELECT pggit.generate_trinity_id()")
    after = datetime.datetime.now(datetime.UTC)
    stamp = datetime.datetime.strptime(parts(trinity_id)["time"], "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)
    assert before - datetime.timedelta(seconds=5) <= stamp <= after + datetime.timedelta(seconds=5)


def test_sequence_part_comes_from_trinity_id_seq(conn):
    trinity_id = scalar(conn, "SELECT pggit.generate_trinity_id()")
    assert sequence_part(trinity_id) == scalar(conn, "SELECT last_value FROM pggit.trinity_id_seq")


def test_random_part_differs_between_ids(conn):
    randoms = {parts(t)["random"] for t in generate(conn, 200)}
    assert len(randoms) > 190


def test_trinity_ids_are_unique_within_a_session(conn):
    ids = generate(conn, 5000)
    assert len(set(ids)) == len(ids)


def test_trinity_ids_sort_by_sequence_part_in_generation_order(conn):
    ids = generate(conn, 500)
    sequence = [sequence_part(t) for t in ids]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    # The sequence part is fixed width, so plain text order of that part is the same order.
    assert sorted(ids, key=lambda t: parts(t)["seq"]) == ids


def test_trinity_ids_are_unique_across_concurrent_sessions(db_connection_string):
    def work(_: int) -> list[str]:
        with psycopg.connect(db_connection_string, autocommit=True) as c:
            return [c.execute("SELECT pggit.generate_trinity_id()").fetchone()[0] for _ in range(300)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = [t for batch in pool.map(work, range(8)) for t in batch]
    assert len(ids) == 2400
    assert len(set(ids)) == len(ids)
    assert len({sequence_part(t) for t in ids}) == len(ids)


def test_later_ids_have_higher_sequence_parts_across_sessions(conn, connect):
    first = scalar(conn, "SELECT pggit.generate_trinity_id()")
    second = scalar(connect(), "SELECT pggit.generate_trinity_id()")
    third = scalar(conn, "SELECT pggit.generate_trinity_id()")
    assert sequence_part(first) < sequence_part(second) < sequence_part(third)


def test_commits_use_generated_trinity_ids(conn):
    first = commit(conn, "main", "one")
    second = commit(conn, "main", "two")
    assert sequence_part(first) < sequence_part(second)


def test_the_custom_id_check_runs_with_the_callers_rights(conn, connect, make_role):
    """pggit's custom Trinity ID check lends no rights: a role denied EXECUTE on pg_catalog.length(text) is denied it
    through pggit._check_custom_trinity_id too (as SECURITY DEFINER the check would lend it the owner's right).
    Positive controls: the owner's call accepts the ID, and so does the role's once it holds the right."""
    role = make_role()
    assert_lends_no_rights(conn, connect(user=role), role, builtin="length(text)",
                           probe="SELECT pg_catalog.length('release-2024.01.01'::text)",
                           call="SELECT pggit._check_custom_trinity_id('release-2024.01.01')::text",
                           answer="")


@pytest.mark.needs_control
def test_trinity_ids_stay_unique_after_a_crash_and_restart(pg_cluster, db_connection_string):
    c = psycopg.connect(db_connection_string, autocommit=True)
    try:
        acknowledged = generate(c, 100)
        acknowledged.append(commit(c, "main", "acknowledged before the crash"))
        # A transaction still open when the server dies: its IDs were handed out too.
        c.execute("BEGIN")
        in_flight = generate(c, 50)
        nemesis.crash_postmaster(pg_cluster)  # SIGKILL, then a restart that runs crash recovery
    finally:
        c.close()
    with psycopg.connect(db_connection_string, autocommit=True) as c:
        after = generate(c, 100)
        assert c.execute("SELECT count(*) FROM pggit.commits").fetchone()[0] == 1
    issued = acknowledged + in_flight + after
    assert len(set(issued)) == len(issued)
    # Numbers of committed work are never issued again.
    assert min(sequence_part(t) for t in after) > max(sequence_part(t) for t in acknowledged)
