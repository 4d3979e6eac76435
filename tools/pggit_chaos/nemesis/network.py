"""Network faults on a client's own link: the connection cut dead (``FaultyProxy`` is in proxy.py)."""

from __future__ import annotations

import psycopg

from pggit_chaos.history import History, fault_recorded
from pggit_chaos.nemesis.injector import ChaosInjector

__all__ = ["cut_connection"]


def cut_connection(conn: psycopg.Connection | psycopg.AsyncConnection, history: History | None = None) -> None:
    """The client's side of the connection goes dead mid-session (no goodbye to the server).

    The next statement on ``conn`` raises ``psycopg.OperationalError``; the
    server sees the link drop and rolls back the open transaction. With
    ``history``, recorded as fault ``"cut"`` with the session's pid.

    ```python fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    conn = psycopg.connect(db_connection_string)
    conn.execute("SELECT pggit.commit_changes('main', 'never committed')")
    nemesis.cut_connection(conn)
    with pytest.raises(psycopg.OperationalError):
        conn.commit()
    conn.close()
    ```
    """
    pid = None if conn.closed else conn.info.backend_pid
    with fault_recorded(history, "cut", pid):
        ChaosInjector.break_connection(conn)
