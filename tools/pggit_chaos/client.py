"""pggit's functions as Python calls, and the few values tests read back after them.

One statement each, on the connection given and inside whatever transaction
it is in. The chaos tests and the extension's contract tests both use these,
so a call is written once.
"""

from __future__ import annotations

from typing import Any

import psycopg


def scalar(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    """The first column of the query's first row; None when there is no row."""
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def commit(conn: psycopg.Connection, branch: str, message: str | None = "") -> str:
    """``pggit.commit_changes(branch, message)``: the new commit's Trinity ID."""
    return scalar(conn, "SELECT pggit.commit_changes(%s, %s)", (branch, message))


def create_branch(conn: psycopg.Connection, name: str, parent: str = "main") -> int:
    """``pggit.create_branch(name, parent)``: the new branch's id."""
    return scalar(conn, "SELECT pggit.create_branch(%s, %s)", (name, parent))


def apply_migration(conn: psycopg.Connection, version: str, up: str, down: str | None = None) -> bool:
    """``pggit.apply_migration(version, up, down)``: whether it ran (false when already applied)."""
    return scalar(conn, "SELECT pggit.apply_migration(%s, %s, %s)", (version, up, down))


def head(conn: psycopg.Connection, branch: str) -> str | None:
    """The branch's head commit; None when it has none, or there is no such branch."""
    return scalar(conn, "SELECT head_commit_hash FROM pggit.branches WHERE name = %s", (branch,))


def parent_of(conn: psycopg.Connection, trinity_id: str) -> str | None:
    """The commit's parent; None for a root commit, or no such commit."""
    return scalar(conn, "SELECT parent_commit_hash FROM pggit.commits WHERE hash = %s", (trinity_id,))


def version(conn: psycopg.Connection, table: str) -> str | None:
    """get_version's full_version, or None when it returns no row."""
    return scalar(conn, "SELECT full_version FROM pggit.get_version(%s)", (table,))


def schema_hash(conn: psycopg.Connection, table: str) -> str | None:
    """``pggit.calculate_schema_hash(table)``."""
    return scalar(conn, "SELECT pggit.calculate_schema_hash(%s)", (table,))
