"""pggit's functions as Python calls, and the few values tests read back after them.

One statement each, on the connection given and inside whatever transaction
it is in. The chaos tests and the extension's contract tests both use these,
so a call is written once.

```python fixture:sync_conn
from pggit_chaos.client import commit, head, parent_of

first = commit(sync_conn, "main", "first")
second = commit(sync_conn, "main", "second")
assert head(sync_conn, "main") == second and parent_of(sync_conn, second) == first
```
"""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["apply_migration", "commit", "create_branch", "execute_each", "head", "parent_of", "scalar", "schema_hash",
           "version"]


def scalar(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    """The first column of the query's first row; None when there is no row.

    ```python fixture:sync_conn
    from pggit_chaos.client import scalar

    assert scalar(sync_conn, "SELECT name FROM pggit.branches WHERE name = %s", ("main",)) == "main"
    assert scalar(sync_conn, "SELECT 1 WHERE false") is None
    ```
    """
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def execute_each(conn: psycopg.Connection, statements: list[str]) -> None:
    """Runs the statements in order; the first that fails raises AssertionError naming it and the error.

    ```python fixture:sync_conn
    import pytest

    from pggit_chaos.client import execute_each

    execute_each(sync_conn, ["CREATE TABLE t (a int)", "ALTER TABLE t ADD COLUMN b int"])
    with pytest.raises(AssertionError, match="ALTER TABLE t ADD COLUMN b int"):
        execute_each(sync_conn, ["ALTER TABLE t ADD COLUMN b int"])
    ```
    """
    for statement in statements:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            raise AssertionError(f"{statement}\n-> {exc}") from exc


def commit(conn: psycopg.Connection, branch: str, message: str | None = "") -> str:
    """``pggit.commit_changes(branch, message)``: the new commit's Trinity ID.

    ```python fixture:sync_conn
    from pggit_chaos.client import commit

    assert commit(sync_conn, "feature/x", "creates the branch").startswith("TRN-")
    ```
    """
    return scalar(conn, "SELECT pggit.commit_changes(%s, %s)", (branch, message))


def create_branch(conn: psycopg.Connection, name: str, parent: str = "main") -> int:
    """``pggit.create_branch(name, parent)``: the new branch's id.

    ```python fixture:sync_conn
    from pggit_chaos.client import commit, create_branch, head

    base = commit(sync_conn, "main", "base")
    assert isinstance(create_branch(sync_conn, "feature/y"), int)
    assert head(sync_conn, "feature/y") == base
    ```
    """
    return scalar(conn, "SELECT pggit.create_branch(%s, %s)", (name, parent))


def apply_migration(conn: psycopg.Connection, version: str, up: str, down: str | None = None) -> bool:
    """``pggit.apply_migration(version, up, down)``: whether it ran (false when already applied).

    ```python fixture:sync_conn
    from pggit_chaos.client import apply_migration

    assert apply_migration(sync_conn, "v1", "CREATE TABLE t (a int)", "DROP TABLE t") is True
    assert apply_migration(sync_conn, "v1", "CREATE TABLE t (a int)", "DROP TABLE t") is False
    ```
    """
    return scalar(conn, "SELECT pggit.apply_migration(%s, %s, %s)", (version, up, down))


def head(conn: psycopg.Connection, branch: str) -> str | None:
    """The branch's head commit; None when it has none, or there is no such branch.

    ```python fixture:sync_conn
    from pggit_chaos.client import head

    assert head(sync_conn, "main") is None and head(sync_conn, "no/such/branch") is None
    ```
    """
    return scalar(conn, "SELECT head_commit_hash FROM pggit.branches WHERE name = %s", (branch,))


def parent_of(conn: psycopg.Connection, trinity_id: str) -> str | None:
    """The commit's parent; None for a root commit, or no such commit.

    ```python fixture:sync_conn
    from pggit_chaos.client import commit, parent_of

    root = commit(sync_conn, "main", "root")
    assert parent_of(sync_conn, root) is None
    assert parent_of(sync_conn, commit(sync_conn, "main", "child")) == root
    ```
    """
    return scalar(conn, "SELECT parent_commit_hash FROM pggit.commits WHERE hash = %s", (trinity_id,))


def version(conn: psycopg.Connection, table: str) -> str | None:
    """get_version's full_version, or None when it returns no row.

    ```python fixture:sync_conn
    from pggit_chaos.client import version

    sync_conn.execute("CREATE TABLE t (a int)")
    assert version(sync_conn, "t") == "1.0.0" and version(sync_conn, "missing") is None
    ```
    """
    return scalar(conn, "SELECT full_version FROM pggit.get_version(%s)", (table,))


def schema_hash(conn: psycopg.Connection, table: str) -> str | None:
    """``pggit.calculate_schema_hash(table)``: hex sha256 of the table's structure; None for a missing table.

    ```python fixture:sync_conn
    from pggit_chaos.client import schema_hash

    sync_conn.execute("CREATE TABLE t (a int)")
    before = schema_hash(sync_conn, "t")
    sync_conn.execute("ALTER TABLE t ADD COLUMN b int")
    assert len(before) == 64 and schema_hash(sync_conn, "t") != before
    ```
    """
    return scalar(conn, "SELECT pggit.calculate_schema_hash(%s)", (table,))
