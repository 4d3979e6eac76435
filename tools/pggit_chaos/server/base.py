"""What every server of a run is: the Server protocol, its errors and the names the other server modules share.

Two servers implement it: the throwaway ``Cluster`` this process starts
(``cluster.py``) and an ``ExistingServer`` someone else runs (``existing.py``).
Databases, connections and sessions work the same on both and are written
once here; the controls (restart, crash, reconfigure, ...) are each server's
own, and a server that cannot be controlled raises ``ServerNotControllable``.
"""

from __future__ import annotations

import abc
import os
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

# Cluster directories start with this, so a later run can find and sweep a killed run's.
TEMP_PREFIX = "pggit-chaos-"
SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped."""


class BinariesNotFound(RuntimeError):
    """No usable PostgreSQL installation was found."""


class ServerNotControllable(RuntimeError):
    """A control (restart, crash, reconfigure, ...) was asked of a server this process did not start."""

    def __init__(self, control: str) -> None:
        super().__init__(f"{control} needs a server this process started; this one is an existing server")
        self.control = control


class Server(abc.ABC):
    """One PostgreSQL server: its databases and sessions, and the controls a chaos test needs."""

    # False for a server this process did not start: its controls raise ServerNotControllable.
    can_control: bool
    # Numbers the databases made through this server object; the first increment makes it per instance.
    _database_counter = 0

    # ---- addresses ------------------------------------------------------------

    @property
    @abc.abstractmethod
    def version(self) -> str:
        """The server's version, e.g. ``"16.14"``."""

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @abc.abstractmethod
    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        """A connection string for ``dbname`` as the superuser, ``params`` added."""

    def connect(self, dbname: str = "postgres", autocommit: bool = True, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    # ---- databases and sessions -----------------------------------------------

    def create_database(self, name: str, template: str = "template0") -> str:
        # FILE_COPY clones a small template in milliseconds; the default WAL_LOG (15+) copies block by block.
        strategy = sql.SQL(" STRATEGY FILE_COPY") if self.major >= 15 and template != "template0" else sql.SQL("")
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
                + strategy
            )
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def next_database_name(self, prefix: str = "test") -> str:
        """A database name no other process of the run uses: the pid keeps xdist workers apart."""
        self._database_counter += 1
        return f"{prefix}_{os.getpid()}_{self._database_counter}"

    def terminate_backends(self, dbname: str | None = None, application_name: str | None = None) -> int:
        """pg_terminate_backend every client backend (of one database or app); returns the count."""
        query = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND (%(db)s::text IS NULL OR datname = %(db)s) "
            "AND (%(app)s::text IS NULL OR application_name = %(app)s)"
        )
        with self.connect() as conn:
            return conn.execute(query, {"db": dbname, "app": application_name}).fetchone()[0]

    def setting(self, name: str) -> str:
        with self.connect() as conn:
            return conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]

    # ---- controls: each server's own -------------------------------------------

    @abc.abstractmethod
    def is_running(self) -> bool: ...

    @abc.abstractmethod
    def start(self, timeout: float = 60.0) -> Server: ...

    @abc.abstractmethod
    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server: ``smart``, ``fast`` (default) or ``immediate``."""

    @abc.abstractmethod
    def restart(self, mode: str = "fast") -> Server: ...

    @abc.abstractmethod
    def crash(self) -> None:
        """Kill the postmaster and every server process with SIGKILL, as a power cut would."""

    @abc.abstractmethod
    def set_config(self, **settings: str | int) -> str:
        """Change server settings; returns ``"reload"`` or ``"restart"``: what it took."""

    @abc.abstractmethod
    def reset_config(self) -> None:
        """Undo every set_config(): back to the settings the server started with."""

    @abc.abstractmethod
    def configured(self, **settings: str | int) -> AbstractContextManager[Server]:
        """Apply settings for the length of a ``with`` block, then restore the defaults."""

    @abc.abstractmethod
    def restore(self) -> None:
        """Back to how the server started, whatever a test did to it: running, its own settings."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Stop the server and remove what this process made of it."""

