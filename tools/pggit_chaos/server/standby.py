"""A streaming standby of a throwaway cluster, from the same binaries: made, watched, promoted, removed.

``start_pair`` starts a primary (``start_cluster`` with ``REPLICATION_SETTINGS``)
and ``start_standby`` a standby of it: ``pg_basebackup`` of the running
primary through a physical replication slot, then a ``postgres`` that
streams from it (``primary_conninfo``, ``primary_slot_name``,
``standby.signal``). The standby lives inside the primary's cluster
directory (``<root>/standby*``) and runs the primary's own ``postgres``
copy, so a killed run's sweep (``janitor.py``) stops it and removes it with
the primary.

Replication logs in as a role of its own (``REPLICATION_ROLE``) with a
random password, by SCRAM, from a passfile the server account alone can
read (0600): the password is in no command line, no conninfo and no log.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from pggit_chaos.server.base import BinariesNotFound, ClusterError, scram_verifier
from pggit_chaos.server.binaries import PgInstall
from pggit_chaos.server.cluster import Cluster, start_cluster
from pggit_chaos.server.janitor import STANDBY_PREFIX
from pggit_chaos.server.processes import server_account, write_private

# What a primary needs on top of the base settings (most are PostgreSQL's defaults, said here on purpose).
REPLICATION_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "4",
    "max_replication_slots": "4",
    "hot_standby": "on",
    # A standby that stopped answering must not block the primary's shutdown for long.
    "wal_sender_timeout": "10s",
}
REPLICATION_ROLE = "pggit_chaos_replication"
# Seconds a standby may take to connect, catch up, change its mode or be promoted: only a hang fails.
WAIT_SECONDS = 60.0


def basebackup_binary(install: PgInstall) -> Path:
    """The installation's ``pg_basebackup``; ``BinariesNotFound`` naming the directory when it has none."""
    binary = install.binary("pg_basebackup")
    if not binary.is_file():
        raise BinariesNotFound(f"pg_basebackup is missing from {install.bindir} (PostgreSQL {install.version}): "
                               "a streaming standby cannot be made from these binaries")
    return binary


def _conf_value(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass
class Standby(Cluster):
    """A hot standby streaming from ``primary``; every control of a ``Cluster`` works, and ``promote()``."""

    primary: Cluster | None = None
    name: str = STANDBY_PREFIX
    # The port it streams from: the primary's, or a proxy's in front of it (None: the primary's).
    upstream_port: int | None = None

    @property
    def slot(self) -> str:
        """The physical replication slot on the primary that keeps the WAL this standby still needs."""
        return f"pggit_chaos_{self.name}"

    @property
    def replication_passfile(self) -> Path:
        """The walreceiver's passfile (0600, the server account's): the replication role's password."""
        return self.root / "replication.pgpass"

    def primary_conninfo(self, port: int | None = None) -> str:
        """How the standby reaches the primary: loopback, ``port`` (else ``upstream_port``, else the primary's),
        the replication role, its passfile, its own name."""
        port = port or self.upstream_port or self.primary.port
        parts = {"host": "127.0.0.1", "port": str(port), "user": REPLICATION_ROLE,
                 "passfile": str(self.replication_passfile), "application_name": self.name}
        if self.install.major >= 16:
            parts["require_auth"] = "scram-sha-256"
        return psycopg.conninfo.make_conninfo(**parts)

    def create(self) -> Standby:
        """Copy the running primary with ``pg_basebackup`` (creating the slot) and make the copy a standby."""
        if not re.fullmatch(STANDBY_PREFIX + r"[a-z0-9_]*", self.name):
            raise ValueError(f"standby name {self.name!r}: must be {STANDBY_PREFIX!r} followed by [a-z0-9_]")
        if self.primary is None or not self.primary.is_running():
            raise ClusterError(f"standby {self.name!r}: its primary is not running")
        basebackup = basebackup_binary(self.install)
        self.root = self.primary.root / self.name
        self.root.mkdir(mode=0o711)
        self.root.chmod(0o711)
        self.postgres_binary, self.password = self.primary.postgres_binary, self.primary.password
        account = server_account()
        for private in (self.socket_dir, self.datadir):
            private.mkdir(mode=0o700)
            if account:
                os.chown(private, account.pw_uid, account.pw_gid)
        write_private(self.passfile, f"127.0.0.1:*:*:*:{self.password}\n")
        replication_password = secrets.token_urlsafe(32)
        write_private(self.replication_passfile, f"127.0.0.1:*:*:{REPLICATION_ROLE}:{replication_password}\n",
                      account)
        allow_replication(self.primary, replication_password)
        self._run([str(basebackup), "-D", str(self.datadir), f"--dbname={self.primary_conninfo(self.primary.port)}",
                   "--wal-method=stream", "--checkpoint=fast", "--no-sync", "--no-password",
                   "--create-slot", f"--slot={self.slot}"], "pg_basebackup")
        # The primary's ALTER SYSTEM settings (synchronous_standby_names above all) are not the standby's:
        # a promoted server that waited for a synchronous standby of its own would hang every commit.
        (self.datadir / "postgresql.auto.conf").write_text(
            "# The standby's own ALTER SYSTEM settings; the primary's were not copied.\n")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"\n# Streaming standby {self.name} of the throwaway primary\n"
                       f"primary_conninfo = {_conf_value(self.primary_conninfo())}\n"
                       f"primary_slot_name = {_conf_value(self.slot)}\n"
                       # A stream that broke is taken up again at once, not after the default 5 s.
                       "wal_retrieve_retry_interval = '100ms'\n")
        write_private(self.datadir / "standby.signal", "", account)
        return self

    def in_recovery(self) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]

    def wait_streaming(self, timeout: float = WAIT_SECONDS) -> None:
        """Return once the primary streams to this standby and it has replayed all the primary has written."""
        deadline = time.monotonic() + timeout
        with self.primary.connect() as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            while True:
                state = primary.execute("SELECT state FROM pg_stat_replication WHERE application_name = %s",
                                        (self.name,)).fetchone()
                if state == ("streaming",):
                    with self.connect() as standby:
                        if standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                           (target,)).fetchone()[0]:
                            return
                if time.monotonic() > deadline:
                    raise ClusterError(f"standby {self.name!r} did not catch up within {timeout:g} s "
                                       f"(replication state {state}); log tail:\n{self.log_tail()}")
                time.sleep(0.02)

    def promote(self, timeout: float = WAIT_SECONDS) -> Standby:
        """``pg_promote()``: end recovery and accept writes; ClusterError if it has not within ``timeout``."""
        with self.connect() as conn:
            promoted = conn.execute("SELECT pg_promote(true, %s)", (max(1, round(timeout)),)).fetchone()[0]
        if not promoted:
            raise ClusterError(f"standby {self.name!r} was not promoted within {timeout:g} s; "
                               f"log tail:\n{self.log_tail()}")
        return self


def allow_replication(primary: Cluster, password: str) -> None:
    """Give ``primary`` the replication role (SCRAM, ``password``) and a pg_hba rule letting it in over loopback.

    ``initdb --auth=scram-sha-256`` already writes ``host replication all
    127.0.0.1/32``; a rule is added (and the configuration reloaded) only
    when none lets replication in from 127.0.0.1.
    """
    with primary.connect() as conn:
        verifier = scram_verifier(password, primary.scram_rounds)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATION_ROLE,)).fetchone()
        statement = "ALTER ROLE {} WITH REPLICATION LOGIN PASSWORD {}" if exists else \
            "CREATE ROLE {} WITH REPLICATION LOGIN PASSWORD {}"
        conn.execute(sql.SQL(statement).format(sql.Identifier(REPLICATION_ROLE), sql.Literal(verifier)))
        allowed = conn.execute(
            "SELECT 1 FROM pg_hba_file_rules WHERE type = 'host' AND 'replication' = ANY(database) "
            "AND ('all' = ANY(user_name) OR %s = ANY(user_name)) AND address = '127.0.0.1' "
            "AND netmask = '255.255.255.255' AND auth_method = 'scram-sha-256' AND error IS NULL",
            (REPLICATION_ROLE,)).fetchone()
        if not allowed:
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
            with open(hba, "a") as rules:
                rules.write(f"host replication {REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")


@dataclass
class Pair:
    """A throwaway primary and a streaming standby of it, and the failover between them."""

    primary: Cluster
    standby: Standby
    database: str = "postgres"  # what ``dsn()`` names unless told otherwise
    promoted: bool = field(default=False)
    # What the standby streams through when not straight from the primary (the fixture's FaultyProxy).
    link: object | None = None

    def dsn(self, dbname: str | None = None, **params: str) -> str:
        """One connection string naming both servers (``target_session_attrs=read-write``), as clients fail over.

        libpq tries the primary, then the standby, and takes the first that
        accepts writes: after a failover, the same string reaches the promoted standby.
        """
        return psycopg.conninfo.make_conninfo(
            self.primary.dsn(dbname or self.database), host="127.0.0.1,127.0.0.1",
            port=f"{self.primary.port},{self.standby.port}", target_session_attrs="read-write", **params)

    def replicate(self, synchronous: bool, timeout: float = WAIT_SECONDS) -> None:
        """Make the standby synchronous (``synchronous_standby_names`` naming it, ``synchronous_commit = on``)
        or asynchronous, and return once the primary reports it so (``pg_stat_replication.sync_state``)."""
        names = f'"{self.standby.name}"' if synchronous else ""
        self.primary.set_config(synchronous_standby_names=names, synchronous_commit="on")
        wanted = "sync" if synchronous else "async"
        deadline = time.monotonic() + timeout
        with self.primary.connect() as conn:
            while True:
                row = conn.execute("SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                                   (self.standby.name,)).fetchone()
                if row == (wanted,):
                    return
                if time.monotonic() > deadline:
                    raise ClusterError(f"standby {self.standby.name!r} is {row} after {timeout:g} s, not {wanted}")
                time.sleep(0.02)

    def fail_over(self) -> None:
        """SIGKILL the primary and every process of it, promote the standby, and return once it takes a write."""
        self.primary.crash()
        self.standby.promote()
        self.promoted = True
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                with self.standby.connect() as conn:
                    conn.execute("SELECT pg_current_xact_id()")  # needs a server out of recovery
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def former_primary(self, query: str, params=None) -> list[tuple]:
        """What the killed primary had committed: start it alone once more (crash recovery), run ``query``
        in ``database``, stop it again.

        Only after ``fail_over()`` and once clients are done: while it runs, a
        ``dsn()`` client could reach it instead of the promoted standby.
        """
        if not self.promoted:
            raise ClusterError("former_primary(): there is no former primary before fail_over()")
        self.primary.start()
        try:
            with self.primary.connect(self.database) as conn:
                return conn.execute(query, params).fetchall()
        finally:
            self.primary.stop("immediate")

    def destroy(self) -> None:
        """Stop and remove the standby, then the primary (whose directory holds the standby's)."""
        try:
            self.standby.destroy()
        finally:
            self.primary.destroy()


def start_standby(primary: Cluster, name: str = STANDBY_PREFIX, upstream_port: int | None = None) -> Standby:
    """Make and start a streaming standby of the running ``primary`` (streaming from ``upstream_port``, a
    proxy in front of the primary, when given); ``destroy()`` it before the primary."""
    standby = Standby(install=primary.install, primary=primary, name=name, upstream_port=upstream_port)
    try:
        standby.create().start()
        standby.wait_streaming()
    except BaseException:
        standby.destroy()
        if standby.root is not None:
            _drop_slot(primary, standby.slot)
        raise
    return standby


def _drop_slot(primary: Cluster, slot: str) -> None:
    try:
        with primary.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND NOT active", (slot,))
    except psycopg.Error:
        pass  # a primary that is gone keeps no slot to drop


def start_pair(install: PgInstall, pggit_sql: str | Path | None = None,
               through: Callable[[int], int] | None = None, **settings: str) -> Pair:
    """Start a throwaway primary with ``REPLICATION_SETTINGS`` (and ``settings``) and a standby of it.

    ``through(primary_port)``, when given, returns the port the standby
    streams from instead (a proxy in front of the primary). The caller must
    ``destroy()`` the pair. ``BinariesNotFound`` when the binaries have no
    ``pg_basebackup`` (before anything is started).
    """
    basebackup_binary(install)
    primary = start_cluster(install, pggit_sql, **{**REPLICATION_SETTINGS, **settings})
    try:
        upstream = through(primary.port) if through else None
        return Pair(primary, start_standby(primary, upstream_port=upstream))
    except BaseException:
        primary.destroy()
        raise
