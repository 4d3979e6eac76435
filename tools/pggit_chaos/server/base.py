"""What every server of a run is: the Server protocol, its errors and the names the other server modules share.

Two servers implement it: the throwaway ``Cluster`` this process starts
(``cluster.py``) and an ``ExistingServer`` someone else runs (``existing.py``).
Databases, connections and sessions work the same on both and are written
once here; the controls (restart, crash, reconfigure, ...) are each server's
own, and a server that cannot be controlled raises ``ServerNotControllable``.

Every database and role a server object creates gets a random run id in its
name, is recorded in memory and is marked with ``COMMENT ... 'created by
pggit_chaos run <run id> ...'``; on a server the run did not start, only
what was recorded is dropped (``ForeignObjectError`` otherwise), and the
marks let ``pggit-chaos sweep`` (``sweep.py``) find what a killed run left.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

# Cluster directories start with this, so a later run can find and sweep a killed run's.
TEMP_PREFIX = "pggit-chaos-"
SUPERUSER = "postgres"
# The mark on every database and role a run creates, and the application_name of a run's anchor session.
MARK = "created by pggit_chaos run {run_id}"
MARK_PATTERN = re.compile(r"^created by pggit_chaos run ([0-9a-f]{16})\b")
RUN_APPLICATION = "pggit_chaos run {run_id}"


def scram_verifier(password: str, rounds: int) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, RFC 7677), with ``rounds`` rounds.

    Given as a role's password, it is stored as is: the password itself
    never reaches the server or its log.

    ```python
    from pggit_chaos.server import scram_verifier

    assert scram_verifier("secret", 4096).startswith("SCRAM-SHA-256$4096:")
    ```
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${rounds}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped."""


class BinariesNotFound(RuntimeError):
    """No usable PostgreSQL installation was found."""


class ServerNotControllable(RuntimeError):
    """A control (restart, crash, reconfigure, ...) was asked of a server this process did not start."""

    def __init__(self, control: str) -> None:
        super().__init__(f"{control} needs a server this process started; this one is an existing server")
        self.control = control


def drop_owned_everywhere(admin: psycopg.Connection, connect: Callable[[str], psycopg.Connection], role: str) -> None:
    """DROP OWNED BY ``role`` in every database where it owns or was granted something (pg_shdepend says where).

    Roles are cluster-wide: before DROP ROLE, each such database must be
    visited; ``connect(dbname)`` opens an autocommit connection to one.
    """
    databases = [row[0] for row in admin.execute(
        "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE s.refclassid = 'pg_authid'::regclass "
        "AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)", (role,))]
    for database in databases:
        try:
            with connect(database) as db:
                db.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        except psycopg.OperationalError:
            pass  # a database that went meanwhile


class ForeignObjectError(RuntimeError):
    """A run was asked to drop a database or role on a shared server that it did not create."""


class Server(abc.ABC):
    """One PostgreSQL server: its databases and sessions, and the controls a chaos test needs."""

    # False for a server this process did not start: its controls raise ServerNotControllable.
    can_control: bool
    # Numbers the databases made through this server object; the first increment makes it per instance.
    _database_counter = 0
    # The rounds of the verifier of a role the run creates: PostgreSQL's own default, on a server not ours.
    scram_rounds = 4096

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

    @contextlib.contextmanager
    def _admin(self) -> Iterator[psycopg.Connection]:
        """This server object's own autocommit session on ``postgres``, kept from one call to the next.

        A new session for each database made and dropped would cost two
        connections a test. One the server ended meanwhile (a restart, a
        crash test) fails the round trip that checks it and is replaced.
        """
        with self.__dict__.setdefault("_admin_lock", threading.RLock()):
            conn = self.__dict__.get("_admin_session")
            if conn is not None:
                try:
                    conn.execute("SELECT")
                except psycopg.Error:
                    conn.close()
                    conn = None
            if conn is None:
                conn = self.__dict__["_admin_session"] = self.connect()
            yield conn

    def close_admin_session(self) -> None:
        """Close the session ``_admin`` keeps (before the server stops, or when the run ends)."""
        with self.__dict__.setdefault("_admin_lock", threading.RLock()):
            if (conn := self.__dict__.pop("_admin_session", None)) is not None:
                conn.close()

    # ---- what this run created ------------------------------------------------

    @property
    def run_id(self) -> str:
        """Random, per server object: names and marks of what this run creates (pids coincide across containers)."""
        if "_run_id" not in self.__dict__:
            self._run_id = secrets.token_hex(8)
        return self._run_id

    def _created(self, kind: str) -> set[str]:
        return self.__dict__.setdefault(f"_created_{kind}", set())

    def _mark(self, conn: psycopg.Connection, kind: sql.SQL, name: str) -> None:
        mark = (f"{MARK.format(run_id=self.run_id)} (pid {os.getpid()} on {socket.gethostname()}, "
                f"backend {conn.info.backend_pid})")
        conn.execute(sql.SQL("COMMENT ON {} {} IS {}").format(kind, sql.Identifier(name), sql.Literal(mark)))

    def _refuse_foreign(self, kind: str, name: str) -> None:
        if not self.can_control and name not in self._created(kind):
            raise ForeignObjectError(f"refusing to drop {kind} {name!r}: this run "
                                     f"({RUN_APPLICATION.format(run_id=self.run_id)}) did not create it")

    # ---- databases and sessions -----------------------------------------------

    def create_database(self, name: str, template: str = "template0") -> str:
        # FILE_COPY clones a small template in milliseconds; the default WAL_LOG (15+) copies block by block.
        # FILE_COPY also forces a checkpoint: only on the run's own server.
        file_copy = self.can_control and self.major >= 15 and template != "template0"
        strategy = sql.SQL(" STRATEGY FILE_COPY") if file_copy else sql.SQL("")
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
                + strategy
            )
            self._created("database").add(name)
            self._mark(conn, sql.SQL("DATABASE"), name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database; on a server the run did not start, only one this server object created."""
        self._refuse_foreign("database", name)
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def next_database_name(self, prefix: str = "test") -> str:
        """A database name no other run and no other process of this run uses: the random run id, a counter."""
        self._database_counter += 1
        return f"{prefix}_{self.run_id}_{self._database_counter}"

    def _role_password(self) -> str | None:
        """The password a role this run creates logs in with: the run's own (None: the server needs none)."""
        return psycopg.conninfo.conninfo_to_dict(self.dsn()).get("password")

    def create_role(self, prefix: str = "pggit_role") -> str:
        """A new login role of this run (its password the run's own); ``drop_role`` removes it."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        password = self._role_password()
        with self.connect() as conn:
            login = sql.SQL("")
            if password:
                login = sql.SQL(" PASSWORD {}").format(sql.Literal(scram_verifier(password, self.scram_rounds)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)) + login)
            self._created("role").add(name)
            self._mark(conn, sql.SQL("ROLE"), name)
        return name

    def drop_role(self, name: str) -> None:
        """End the role's sessions, drop what it owns or was granted in every database, then the role."""
        self._refuse_foreign("role", name)
        with self.connect() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            drop_owned_everywhere(admin, self.connect, name)
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def terminate_backends(self, dbname: str | None = None, application_name: str | None = None) -> int:
        """pg_terminate_backend every client backend (of one database or app); returns the count.

        On a server the run did not start, only sessions of a database this
        run created: other people's sessions are not the run's to end.
        """
        if not self.can_control and (dbname is None or dbname not in self._created("database")):
            raise ServerNotControllable("terminate_backends() outside a database of this run")
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

