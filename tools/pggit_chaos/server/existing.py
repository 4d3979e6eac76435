"""A server this process did not start (a DSN): databases and sessions yes, restarts, crashes and settings no."""

from __future__ import annotations

import psycopg

from pggit_chaos.server.base import Server, ServerNotControllable


class ExistingServer(Server):
    """A running server someone else owns; pggit's files must be installed there already.

    Every control raises ServerNotControllable: a test run may not restart,
    crash or reconfigure a server other people may be using.
    """

    can_control = False

    def __init__(self, base_dsn: str) -> None:
        self.base_dsn = base_dsn
        with psycopg.connect(base_dsn, autocommit=True) as conn:
            # "16.4 (Debian 16.4-1)" on some builds: the number is the first word.
            self._version = conn.execute("SHOW server_version").fetchone()[0].split()[0]

    def __repr__(self) -> str:
        return f"ExistingServer(version={self._version!r})"  # the DSN may hold a password

    @property
    def version(self) -> str:
        return self._version

    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        return psycopg.conninfo.make_conninfo(self.base_dsn, dbname=dbname, **params)

    # ---- controls: none ----------------------------------------------------------

    def is_running(self) -> bool:
        return True

    def start(self, *args, **kwargs):
        raise ServerNotControllable("start()")

    def stop(self, *args, **kwargs):
        raise ServerNotControllable("stop()")

    def restart(self, *args, **kwargs):
        raise ServerNotControllable("restart()")

    def crash(self, *args, **kwargs):
        raise ServerNotControllable("crash()")

    def set_config(self, **settings):
        raise ServerNotControllable("set_config()")

    def reset_config(self):
        raise ServerNotControllable("reset_config()")

    def configured(self, **settings):
        raise ServerNotControllable("configured()")

    def restore(self) -> None:
        """Nothing to undo: every change was refused."""

    def destroy(self) -> None:
        """Nothing to remove: the server belongs to someone else."""
