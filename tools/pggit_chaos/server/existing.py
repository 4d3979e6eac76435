"""A server this process did not start (a DSN): databases and sessions yes, restarts, crashes and settings no.

While the run lasts it keeps one idle session open, named after its run id
(application_name ``pggit_chaos run <id>``): ``pggit-chaos sweep`` leaves
alone whatever a run with such a session created.
"""

from __future__ import annotations

import psycopg

from pggit_chaos.server.base import RUN_APPLICATION, Server, ServerNotControllable


class ExistingServer(Server):
    """A running server someone else owns; pggit's files must be installed there already.

    Every control raises ServerNotControllable: a test run may not restart,
    crash or reconfigure a server other people may be using.
    """

    can_control = False

    def __init__(self, base_dsn: str) -> None:
        self.base_dsn = base_dsn
        # The run's anchor: its session says the run is alive, so no sweep takes what it made.
        self._anchor = psycopg.connect(base_dsn, autocommit=True,
                                       application_name=RUN_APPLICATION.format(run_id=self.run_id))
        try:
            # "16.4 (Debian 16.4-1)" on some builds: the number is the first word.
            self._version = self._anchor.execute("SHOW server_version").fetchone()[0].split()[0]
            self.is_superuser = self._anchor.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        except BaseException:
            self._anchor.close()
            raise

    def __repr__(self) -> str:
        return f"ExistingServer(version={self._version!r})"  # the DSN may hold a password

    @property
    def version(self) -> str:
        return self._version

    @property
    def user(self) -> str:
        return self._anchor.info.user

    @property
    def target(self) -> str:
        """Where the DSN leads, as libpq resolved it, without the password: host, port, database, user."""
        info = self._anchor.info
        return f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"

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
        """Close the run's sessions; the server belongs to someone else, nothing else to remove."""
        self.close_admin_session()
        self._anchor.close()
