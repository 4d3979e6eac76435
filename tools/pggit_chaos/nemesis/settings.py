"""Setting faults: the server or one session reconfigured under a workload, and waiting for a change to arrive."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg

from pggit_chaos.history import History, fault_recorded

__all__ = ["await_setting", "server_configured", "session_configured"]


@contextlib.contextmanager
def server_configured(pg_cluster, history: History | None = None, **settings: str | int) -> Iterator[None]:
    """The server runs with ``settings`` (ALTER SYSTEM) for the block, then with its own again.

    A setting that needs a restart (``max_connections``, say) restarts the
    server on the way in and out; any other is a reload, which sessions
    already open pick up only between two statements (``await_setting``).
    With ``history``, recorded as fault ``"configured"`` with the settings,
    spanning the block.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    if not pg_cluster.can_control:
        pytest.skip("needs a server this test run started")
    with nemesis.server_configured(pg_cluster, statement_timeout="1min"):
        with psycopg.connect(db_connection_string) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("1min",)
    with psycopg.connect(db_connection_string) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    ```
    """
    with fault_recorded(history, "configured", tuple(sorted(settings.items()))), pg_cluster.configured(**settings):
        yield


@contextlib.contextmanager
def session_configured(conn: psycopg.Connection, history: History | None = None,
                       **settings: str | int) -> Iterator[None]:
    """Session ``conn`` runs with ``settings`` (``set_config``) for the block; each goes back to its old value after.

    Only settings an ordinary session may change (``work_mem``,
    ``statement_timeout``, ``TimeZone``, ...). Inside a transaction the
    values last as long as the block, whether it commits or not; the old
    values are restored on the way out unless the transaction has failed
    (then its rollback restores them). With ``history``, recorded as fault
    ``"session configured"`` with the session's pid and the settings.

    ```python fixture:sync_conn
    from pggit_chaos import nemesis

    sync_conn.autocommit = True
    before = sync_conn.execute("SHOW work_mem").fetchone()
    with nemesis.session_configured(sync_conn, work_mem="64kB", DateStyle="German"):
        assert sync_conn.execute("SHOW work_mem").fetchone() == ("64kB",)
    assert sync_conn.execute("SHOW work_mem").fetchone() == before != ("64kB",)
    ```
    """
    names = list(settings)
    with fault_recorded(history, "session configured", conn.info.backend_pid, tuple(sorted(settings.items()))):
        old = {name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in names}
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
        try:
            yield
        finally:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR and not conn.closed:
                for name, value in old.items():
                    conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def await_setting(conn: psycopg.Connection, name: str, value: str, timeout: float = 10.0) -> None:
    """Wait until session ``conn`` runs with ``name = value``.

    A reload (``server_configured``, ``memory_capped``, ``temp_disk_capped``)
    reaches the postmaster and then each session asynchronously, between two
    of its statements: a session that asks too soon still has the old value,
    and a fault it was meant to feel does not happen. Raises ``TimeoutError``
    naming the value the session still has.

    ```python fixture:sync_conn
    import pytest
    from pggit_chaos import nemesis

    sync_conn.execute("SET work_mem = '1MB'")
    nemesis.await_setting(sync_conn, "work_mem", "1MB")
    with pytest.raises(TimeoutError, match="still has work_mem = 1MB"):
        nemesis.await_setting(sync_conn, "work_mem", "2MB", timeout=0.05)
    ```
    """
    deadline = time.monotonic() + timeout
    while (current := conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]) != value:
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {conn.info.backend_pid} still has {name} = {current}, not {value}")
        time.sleep(0.01)
