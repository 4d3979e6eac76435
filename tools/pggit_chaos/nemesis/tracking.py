"""Tracking faults: pggit's event triggers silenced, so DDL happens behind its back (drift)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Literal

import psycopg
from psycopg import sql

from pggit_chaos.history import History, fault_recorded

__all__ = ["event_triggers", "tracking_paused"]

How = Literal["disable", "replica"]


def event_triggers(conn: psycopg.Connection) -> list[str]:
    """Names of the event triggers that belong to the pggit extension, sorted.

    ```python fixture:sync_conn
    from pggit_chaos import nemesis

    assert nemesis.event_triggers(sync_conn) == ["pggit_ddl_command_end", "pggit_sql_drop"]
    ```
    """
    return [
        row[0]
        for row in conn.execute(
            """
            SELECT e.evtname
              FROM pg_event_trigger e
              JOIN pg_depend d ON d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid
                              AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
              JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pggit'
             ORDER BY 1
            """
        )
    ]


@contextlib.contextmanager
def tracking_paused(conn: psycopg.Connection, how: How = "disable", triggers: Iterable[str] | None = None,
                    history: History | None = None) -> Iterator[None]:
    """pggit records no DDL inside the block; afterwards it tracks again.

    ``how="disable"``: ``ALTER EVENT TRIGGER ... DISABLE`` on pggit's event
    triggers (``triggers``, or all of them), for every session of the
    database, as a hurried hotfix or a restore script would; needs the
    triggers' owner. ``how="replica"``: ``session_replication_role =
    replica`` on ``conn`` only, which silences triggers enabled in the
    default (origin) mode. With ``history``, recorded as fault ``"tracking
    paused"`` with ``how``, spanning the block.

    ```python fixture:sync_conn
    from pggit_chaos import checkers, nemesis

    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE watched (id int)")
    with nemesis.tracking_paused(sync_conn):
        sync_conn.execute("ALTER TABLE watched ADD COLUMN behind_the_back int")
    assert checkers.drift_is(sync_conn, {"public.watched"})
    ```
    """
    if how not in ("disable", "replica"):
        raise ValueError(f"how must be 'disable' or 'replica', got {how!r}")
    names = list(triggers) if triggers is not None else event_triggers(conn)
    with fault_recorded(history, "tracking paused", how, tuple(names)):
        if how == "disable":
            _set_enabled(conn, names, enabled=False)
        else:
            conn.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            if how == "disable":
                _set_enabled(conn, names, enabled=True)
            else:
                conn.execute("RESET session_replication_role")


def _set_enabled(conn: psycopg.Connection, names: list[str], enabled: bool) -> None:
    for name in names:
        conn.execute(sql.SQL("ALTER EVENT TRIGGER {} {}").format(
            sql.Identifier(name), sql.SQL("ENABLE" if enabled else "DISABLE")))
