"""Server faults: the whole server killed, a standby held back or failed over to, or one session ended."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg

from pggit_chaos.history import History, fault_recorded

__all__ = ["crash_postmaster", "fail_over", "replication_stalled", "terminate_backend"]


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


def fail_over(pair, history: History | None = None) -> float:
    """SIGKILL a primary and every process of it, then promote its streaming standby; returns the seconds
    from the kill until the promoted server took a write.

    ``pair`` is a primary and its standby (the ``standby_pair`` fixture).
    Unlike ``crash_postmaster``, the killed server is not started again: two
    servers taking writes would split the history in two. Clients that
    connect with ``pair.dsn()`` reach the promoted standby from then on. With
    ``history``, recorded as fault ``"failover"`` spanning the kill, the
    promotion and the first write, so a checker can tell which operations it caught.

    ```python fixture:standby_pair
    import psycopg
    from pggit_chaos import nemesis
    from pggit_chaos.client import commit
    from pggit_chaos.history import History

    standby_pair.replicate(synchronous=True)
    with psycopg.connect(standby_pair.dsn(), autocommit=True) as conn:
        acknowledged = commit(conn, "main", "before the failover")
    history = History()
    seconds = nemesis.fail_over(standby_pair, history=history)
    assert seconds > 0 and history.faults("failover")[0].ok
    with psycopg.connect(standby_pair.dsn(), autocommit=True) as conn:  # the same string, the promoted standby
        assert conn.info.port == standby_pair.standby.port
        assert conn.execute("SELECT count(*) FROM pggit.commits WHERE hash = %s", (acknowledged,)).fetchone() == (1,)
    ```
    """
    with fault_recorded(history, "failover"):
        started = time.monotonic()
        pair.fail_over()
        return time.monotonic() - started


@contextlib.contextmanager
def replication_stalled(pair, history: History | None = None) -> Iterator[object]:
    """For the block, no WAL reaches the standby: the link it streams through swallows every byte, as a
    stalled network does. Afterwards the link is healed and reset, and the standby streams again.

    ``pair`` is a primary and a standby that streams through a
    ``FaultyProxy`` (the ``standby_pair`` fixture's, ``pair.link``); the
    block gets that proxy. An asynchronous standby falls behind meanwhile:
    what commits in the block is acknowledged but not on the standby, so a
    failover in the block loses it. A synchronous standby makes every commit
    in the block wait. With ``history``, recorded as fault
    ``"replication_stall"`` spanning the block.

    ```python fixture:standby_pair
    import psycopg
    from pggit_chaos import nemesis
    from pggit_chaos.client import commit

    standby_pair.replicate(synchronous=False)
    count = "SELECT count(*) FROM pggit.commits WHERE hash = %s"
    with psycopg.connect(standby_pair.dsn(), autocommit=True) as conn:
        with nemesis.replication_stalled(standby_pair):
            held_back = commit(conn, "main", "acknowledged, not sent")
            with standby_pair.standby.connect(standby_pair.database) as standby:
                assert standby.execute(count, (held_back,)).fetchone() == (0,)
    standby_pair.standby.wait_streaming()  # the link is back: the standby catches up
    with standby_pair.standby.connect(standby_pair.database) as standby:
        assert standby.execute(count, (held_back,)).fetchone() == (1,)
    ```
    """
    link = pair.link
    if link is None:
        raise ValueError("replication_stalled(): the standby streams straight from the primary; it needs a pair "
                         "whose standby streams through a FaultyProxy (pair.link, as the standby_pair fixture makes)")
    with fault_recorded(history, "replication_stall"):
        link.blackhole()
        try:
            yield link
        finally:
            # Healed first: the standby reconnects as soon as its link is reset, and a link opened while
            # the blackhole was on would lose its startup packet and hang until authentication_timeout.
            link.heal()
            link.reset_all()  # bytes were swallowed mid-stream: the standby reconnects and resumes


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
