"""Helpers shared by the extension's contract tests.

The contract asks, for every documented error, three things: the SQLSTATE a
client can branch on, a message that names the bad value, and that nothing
was written. ``expect_error`` checks the first two, ``snapshot`` plus
``assert_nothing_written`` the third.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

import psycopg

# pggit's calls have their home in the chaos toolkit; the contract tests import them from here.
from pggit_chaos.client import commit, create_branch, head, scalar, schema_hash, version  # noqa: F401
from pggit_chaos.interleavings import run_blocked
from pggit_chaos.monitor import TransactionMonitor
from psycopg import sql
from psycopg.rows import dict_row

# The tables the contract fixes, in the order they are reported.
PGGIT_TABLES = ("branches", "commits", "objects", "history", "migrations")

# SQLSTATEs the contract names (Safety section), and PostgreSQL's own for a missing privilege.
UNIQUE_VIOLATION = "23505"
INVALID_PARAMETER_VALUE = "22023"
INSUFFICIENT_PRIVILEGE = "42501"

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


# --------------------------------------------------------------------------
# Nothing written
# --------------------------------------------------------------------------


def snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every pggit table, as sorted JSON text: equal snapshots mean nothing was written."""
    return {
        table: [
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT to_jsonb(t)::text FROM pggit.{} AS t ORDER BY 1").format(sql.Identifier(table))
            )
        ]
        for table in PGGIT_TABLES
    }


def assert_nothing_written(conn: psycopg.Connection, before: dict[str, list[str]]) -> None:
    after = snapshot(conn)
    changed = {
        table: {"added": sorted(set(after[table]) - set(before[table])),
                "removed": sorted(set(before[table]) - set(after[table]))}
        for table in PGGIT_TABLES
        if after[table] != before[table]
    }
    assert not changed, f"pggit tables changed: {changed}"


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def assert_names(message: str, value: str) -> None:
    """The message names ``value``; control characters may be shown escaped, so only
    the printable parts of such a value have to appear."""
    if value in message:
        return
    fragments = [part for part in _CONTROL_CHARS.split(value) if part]
    assert fragments and all(part in message for part in fragments), (
        f"error message does not name {value!r}: {message!r}"
    )


def expect_error(
    conn: psycopg.Connection,
    query: str,
    params: Iterable[Any] | dict[str, Any] | None = None,
    *,
    sqlstate: str | Iterable[str],
    names: Iterable[str] = (),
) -> psycopg.Error:
    """Run ``query``; it must fail with ``sqlstate`` and a message naming every string in ``names``.

    On a connection in a transaction the transaction is rolled back afterwards.
    """
    states = {sqlstate} if isinstance(sqlstate, str) else set(sqlstate)
    try:
        conn.execute(query, params)
    except psycopg.Error as exc:
        error = exc
    else:
        raise AssertionError(f"expected SQLSTATE {sorted(states)}, but the call succeeded: {query} {params!r}")
    finally:
        if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
    assert error.sqlstate in states, (
        f"expected SQLSTATE {sorted(states)}, got {error.sqlstate}: {error.diag.message_primary}"
    )
    message = error.diag.message_primary or ""
    for value in names:
        assert_names(message, value)
    return error


def assert_lends_no_rights(owner: psycopg.Connection, as_role: psycopg.Connection, role: str, *,
                           builtin: str, probe: str, call: str, answer: Any) -> None:
    """A pggit function that calls ``pg_catalog.<builtin>`` lends a role no right to it, as SECURITY DEFINER would.

    With EXECUTE on the built-in (a signature, ``length(text)``) revoked from
    PUBLIC, the role's own ``probe`` of it and its ``call`` of pggit's function
    both fail with 42501, the second naming the built-in. Positive controls: the
    owner's call gives ``answer``, and so does the role's once it holds the right.
    """
    signature = sql.SQL("pg_catalog." + builtin)
    owner.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(signature))
    expect_error(as_role, probe, sqlstate=INSUFFICIENT_PRIVILEGE)
    expect_error(as_role, call, sqlstate=INSUFFICIENT_PRIVILEGE, names=[builtin.split("(")[0]])
    for conn in (owner, as_role):
        if conn is as_role:
            owner.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(signature, sql.Identifier(role)))
        got = scalar(conn, call)
        assert got == answer and type(got) is type(answer), f"{call} gave {got!r}, not {answer!r}"


# --------------------------------------------------------------------------
# Reading pggit's state
# --------------------------------------------------------------------------


def one(conn: psycopg.Connection, query: str, params: Any = None) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchone()


def rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def branch(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    return one(conn, "SELECT * FROM pggit.branches WHERE name = %s", (name,))


def commit_row(conn: psycopg.Connection, trinity_id: str) -> dict[str, Any] | None:
    return one(conn, "SELECT * FROM pggit.commits WHERE hash = %s", (trinity_id,))


def tracked_object(conn: psycopg.Connection, schema: str, name: str) -> dict[str, Any] | None:
    """The newest objects row of a table (a table dropped and made again may have two)."""
    return one(
        conn,
        "SELECT * FROM pggit.objects WHERE schema_name = %s AND object_name = %s ORDER BY id DESC LIMIT 1",
        (schema, name),
    )


def history_of(conn: psycopg.Connection, object_id: int) -> list[dict[str, Any]]:
    return rows(conn, "SELECT * FROM pggit.history WHERE object_id = %s ORDER BY id", (object_id,))


def history_count(conn: psycopg.Connection) -> int:
    return scalar(conn, "SELECT count(*) FROM pggit.history")


# --------------------------------------------------------------------------
# Two sessions, one of them waiting for the other
# --------------------------------------------------------------------------


def run_while_blocked(
    holder: psycopg.Connection,
    waiter: psycopg.Connection,
    observer: psycopg.Connection,
    call: Callable[[psycopg.Connection], Any],
    *,
    end: Literal["commit", "rollback"] = "commit",
) -> tuple[Any, psycopg.Error | None]:
    """Run ``call(waiter)`` in a thread, check that it waits for ``holder``, then end ``holder``'s
    transaction with ``end``; the interleaving is ``pggit_chaos.interleavings.run_blocked``.

    ``holder`` must already hold its locks in an open transaction; ``observer``
    is an autocommit connection to watch them with. Returns the call's result
    and the psycopg error it raised (one of them is None).
    """
    waiter.execute("SET statement_timeout = '20s'")

    def outcome() -> tuple[Any, psycopg.Error | None]:
        try:
            return call(waiter), None
        except psycopg.Error as exc:
            return None, exc

    with TransactionMonitor(observer) as monitor:
        blocked = run_blocked(monitor, holder, waiter, outcome, end=end)
    assert holder.info.backend_pid in blocked.wait.blocking_pids, (
        f"session {waiter.info.backend_pid} waited for {blocked.wait.blocking_pids}, not for {holder.info.backend_pid}"
    )
    return blocked.result
