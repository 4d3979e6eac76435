"""Server faults: the whole server killed, or one session ended by the server."""

from __future__ import annotations

import psycopg

from pggit_chaos.history import History, fault_recorded

__all__ = ["crash_postmaster", "terminate_backend"]


def crash_postmaster(pg_cluster, history: History | None = None) -> None:
    """SIGKILL the postmaster and every server process, then start again (crash recovery runs).

    ``pg_cluster`` is the run's server (the ``pg_cluster`` fixture); with
    ``history``, the crash is recorded as fault ``"crash"`` spanning the kill
    and the restart, so a checker can tell which operations it caught.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis
    from pggit_chaos.client import commit
    from pggit_chaos.history import History

    if not pg_cluster.can_control:
        pytest.skip("needs a server this test run started")
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        before = pg_cluster.postmaster_pid
        acknowledged = commit(conn, "main", "before the crash")
        history = History()
        nemesis.crash_postmaster(pg_cluster, history=history)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")  # its server process died with the postmaster
    assert pg_cluster.postmaster_pid != before and history.faults("crash")[0].ok
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = %s", (acknowledged,)).fetchone() == (1,)
    ```
    """
    with fault_recorded(history, "crash"):
        pg_cluster.crash()
        pg_cluster.start()


def terminate_backend(pg_cluster, conn: psycopg.Connection, history: History | None = None) -> int:
    """The server ends one client's session (pg_terminate_backend), as an admin or OOM killer would.

    Returns once that server process has exited (at most 5 s), with its
    process id. Raises ``RuntimeError`` if the server had no such process or
    it did not exit (the fault did not happen). With ``history``, recorded as
    fault ``"terminate"`` with the pid.

    ```python fixture:pg_cluster fixture:db_connection_string
    import psycopg
    import pytest
    from pggit_chaos import nemesis

    victim = psycopg.connect(db_connection_string, autocommit=True)
    pid = nemesis.terminate_backend(pg_cluster, victim)
    assert pid > 0
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()
    ```
    """
    pid = conn.info.backend_pid
    with fault_recorded(history, "terminate", pid), pg_cluster.connect() as admin:
        # With a timeout, pg_terminate_backend waits for the process to exit: the fault is done, not just asked for.
        if not admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]:
            raise RuntimeError(f"pg_terminate_backend({pid}) did not end a server process within 5 s")
    return pid
