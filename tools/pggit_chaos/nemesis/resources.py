"""Resource faults: no connection slot left, the smallest work_mem, capped temporary files, a full file system."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from pggit_chaos.history import History, fault_recorded
from pggit_chaos.nemesis.settings import server_configured

__all__ = ["FaultUnavailable", "connections_exhausted", "disk_full", "memory_capped", "temp_disk_capped"]


class FaultUnavailable(RuntimeError):
    """This machine cannot inject the fault (no root for a mount, say); a test skips rather than fails.

    ```python
    import pytest
    from pggit_chaos import nemesis

    with pytest.raises(RuntimeError, match="no root"):
        raise nemesis.FaultUnavailable("no root for a mount")
    ```
    """


@contextlib.contextmanager
def connections_exhausted(dsn: str, limit: int = 1000,
                          history: History | None = None) -> Iterator[list[psycopg.Connection]]:
    """Open connections until the server refuses one, hold them for the block, then close them all.

    Yields the held connections, which still work. Raises ``RuntimeError`` if
    the server accepted ``limit`` connections (lower ``max_connections``
    first, with ``server_configured``). With ``history``, recorded as fault
    ``"connections exhausted"`` with the number held, spanning the block.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    if not pg_cluster.can_control:
        pytest.skip("needs a server this test run started")
    with (nemesis.server_configured(pg_cluster, max_connections=12),
          nemesis.connections_exhausted(db_connection_string) as held):
        with pytest.raises(psycopg.OperationalError, match="too many clients|reserved"):
            psycopg.connect(db_connection_string, connect_timeout=5)
        assert held[0].execute("SELECT 1").fetchone() == (1,)
    ```
    """
    held: list[psycopg.Connection] = []
    try:
        for _ in range(limit):
            try:
                held.append(psycopg.connect(dsn, autocommit=True, connect_timeout=5))
            except psycopg.OperationalError:
                break
        else:
            raise RuntimeError(f"the server accepted {limit} connections; lower max_connections first")
        with fault_recorded(history, "connections exhausted", len(held)):
            yield held
    finally:
        for conn in held:
            conn.close()


@contextlib.contextmanager
def memory_capped(pg_cluster, work_mem: str = "64kB", history: History | None = None) -> Iterator[None]:
    """Sorts and hashes get only ``work_mem`` each (the smallest PostgreSQL allows is 64kB), server-wide.

    A reload: a session already open sees the cap only after
    ``await_setting(conn, "work_mem", work_mem)``. With ``history``, recorded
    as fault ``"memory capped"``, spanning the block.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    if not pg_cluster.can_control:
        pytest.skip("needs a server this test run started")
    with nemesis.memory_capped(pg_cluster), psycopg.connect(db_connection_string) as conn:
        nemesis.await_setting(conn, "work_mem", "64kB")
    ```
    """
    with fault_recorded(history, "memory capped", work_mem), server_configured(pg_cluster, work_mem=work_mem):
        yield


@contextlib.contextmanager
def temp_disk_capped(pg_cluster, temp_file_limit: str = "1MB", history: History | None = None) -> Iterator[None]:
    """A session may write at most ``temp_file_limit`` of temporary files; past it, its statement fails (53400).

    A reload, like ``memory_capped``. With ``history``, recorded as fault
    ``"temp disk capped"``, spanning the block.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    if not pg_cluster.can_control:
        pytest.skip("needs a server this test run started")
    with nemesis.temp_disk_capped(pg_cluster, "64kB"), psycopg.connect(db_connection_string) as conn:
        nemesis.await_setting(conn, "temp_file_limit", "64kB")
        conn.execute("SET work_mem = '64kB'")
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):
            conn.execute("SELECT count(*) FROM (SELECT md5(g::text) h FROM generate_series(1, 100000) g ORDER BY h) s")
    ```
    """
    with fault_recorded(history, "temp disk capped", temp_file_limit), \
            server_configured(pg_cluster, temp_file_limit=temp_file_limit):
        yield


@contextlib.contextmanager
def disk_full(pg_cluster, dsn: str, size: str = "8m", history: History | None = None) -> Iterator[str]:
    """A tablespace on a file system of only ``size``: a table put there fills it (53100, "No space left on device").

    Mounts a tmpfs under the cluster's directory (needs root, and a container
    that allows the mount: otherwise ``FaultUnavailable``), makes a
    tablespace on it and yields the tablespace's name. Afterwards every
    table of ``dsn``'s database in it is dropped, then the tablespace, then
    the mount. With ``history``, recorded as fault ``"disk full"``, spanning
    the block.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    if not pg_cluster.can_control:
        pytest.skip("needs a server this test run started")
    try:
        with nemesis.disk_full(pg_cluster, db_connection_string, size="1m") as space:
            with psycopg.connect(db_connection_string, autocommit=True) as conn:
                conn.execute(f"CREATE TABLE filler (pad text) TABLESPACE {space}")
                with pytest.raises(psycopg.errors.DiskFull):
                    conn.execute("INSERT INTO filler SELECT string_agg(md5(g::text || i::text), '') "
                                 "FROM generate_series(1, 3000) g, generate_series(1, 30) i GROUP BY g")
    except nemesis.FaultUnavailable as unavailable:
        pytest.skip(str(unavailable))
    ```
    """
    with _tiny_tmpfs(pg_cluster.root, size) as mount_point, _tablespace(pg_cluster, mount_point, dsn) as space, \
            fault_recorded(history, "disk full", size):
        yield space


@contextlib.contextmanager
def _tiny_tmpfs(parent: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` owned by the server's account; unmount and remove it afterwards."""
    from pggit_chaos.server import server_account

    if os.geteuid() != 0:
        raise FaultUnavailable(f"a real full disk needs a tmpfs mount, which needs root; running as uid {os.geteuid()}")
    account = server_account()
    mount_point = parent / f"full_disk_{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    options = f"size={size},mode=0700"
    if account is not None:
        options += f",uid={account.pw_uid},gid={account.pw_gid}"
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        mount_point.rmdir()
        raise FaultUnavailable(f"mount -t tmpfs refused in this container (exit {result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=30).returncode != 0:
            # A server process may still hold a file there open: detach now, free it when closed.
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30, check=True)
        mount_point.rmdir()


@contextlib.contextmanager
def _tablespace(pg_cluster, location: Path, dsn: str) -> Iterator[str]:
    """A tablespace at ``location``; afterwards every table of ``dsn``'s database in it is dropped, then it."""
    name = f"chaos_full_{uuid.uuid4().hex[:8]}"
    with pg_cluster.connect() as admin:
        admin.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
            sql.Identifier(name), sql.Literal(str(location))))
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for (table,) in conn.execute(
                    "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
                    "WHERE t.spcname = %s AND c.relkind IN ('r', 'p')", (name,)).fetchall():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.SQL(table)))
        with pg_cluster.connect() as admin:
            admin.execute(sql.SQL("DROP TABLESPACE {}").format(sql.Identifier(name)))
