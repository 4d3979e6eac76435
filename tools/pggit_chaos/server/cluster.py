"""The throwaway PostgreSQL cluster of one test run, and the controls a chaos test needs.

The cluster lives in a private temporary directory (see ``janitor.py``): its
own data directory (a copy of the run's one initdb, ``initdb_cache.py``),
socket directory and a free loopback port, and runs the
``postgres`` of a pggit overlay (see ``binaries.py``). A server this run did
not start is an ``ExistingServer`` (``existing.py``) instead; both are a
``Server`` (``base.py``).

Only the run can reach it: a socket directory for the server account alone,
and SCRAM with a random password kept in the run's passfile (0600), named in
every DSN. A signal that ends the test run stops it first (``signals.py``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from pggit_chaos.server import initdb_cache, signals
from pggit_chaos.server.base import SUPERUSER, TEMP_PREFIX, ClusterError, Server, scram_verifier
from pggit_chaos.server.binaries import PgInstall, build_overlay, pggit_files
from pggit_chaos.server.janitor import claim, cluster_base_dir, remove_stale_directories
from pggit_chaos.server.processes import (
    children_of,
    free_port,
    kill_and_wait,
    release_shared_memory,
    server_account,
    write_private,
)

# Settings every throwaway cluster starts with, and why.
BASE_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Room for the 100+ connection tests plus the harness's own.
    "max_connections": "200",
    # Throwaway data: flushing to disk only guards against an OS crash, which no test makes. A killed server
    # still recovers every acknowledged commit, because synchronous_commit stays on (WAL is written before the
    # ack). The crash tests switch fsync on anyway, through set_config().
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    # Segments in the data directory go with it; POSIX ones in /dev/shm outlive a SIGKILLed server.
    "dynamic_shared_memory_type": "mmap",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] %d ",
    "lc_messages": "C",
    # The socket directory is the server account's alone (0700); the socket file likewise.
    "unix_socket_permissions": "0700",
    "password_encryption": "scram-sha-256",
    "deadlock_timeout": "200ms",
}


@dataclass
class Cluster(Server):
    """One throwaway PostgreSQL cluster, started by this process: every control works."""

    install: PgInstall
    pggit_sql: str | Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    port: int | None = None
    process: subprocess.Popen | None = None
    postgres_binary: Path | None = None
    password: str | None = field(default=None, repr=False)
    _changed_needs_restart: bool = False
    _owner_lock: object = field(default=None, repr=False)  # held while the cluster lives (janitor.claim)
    _initdb_password: str | None = field(default=None, repr=False)  # the superuser's until the first start
    scram_rounds = 1  # rounds slow guessing a memorable password; ours is random, they would cost 2 ms a connection

    can_control = True

    # ---- paths and addresses ------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    @property
    def passfile(self) -> Path:
        """The run's own passfile (0600): the password stays out of DSNs, logs and command lines."""
        return self.root / "pgpass"

    @property
    def version(self) -> str:
        return self.install.version

    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": SUPERUSER, "dbname": dbname,
                 "passfile": str(self.passfile)}
        if psycopg.pq.version() >= 160000:
            # Never hand the password to whatever answers on the port but a SCRAM exchange.
            parts["require_auth"] = "scram-sha-256"
        parts.update(params)
        return psycopg.conninfo.make_conninfo(**parts)

    # ---- life cycle ----------------------------------------------------------

    def create(self) -> "Cluster":
        """initdb into a fresh private directory and build the pggit overlay."""
        remove_stale_directories()
        self.root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=cluster_base_dir()))
        self._owner_lock = claim(self.root)
        signals.acquire()  # from here on, a signal ending the run stops this cluster first
        # The server may run as another account: it must reach its files, and nobody else needs to list them.
        self.root.chmod(0o711)
        self.postgres_binary = build_overlay(
            self.install, self.root / "install", pggit_files(self.pggit_sql)
        )
        account = server_account()
        for private in (self.socket_dir, self.datadir):
            private.mkdir(mode=0o700)
            if account:
                os.chown(private, account.pw_uid, account.pw_gid)
        self.password = secrets.token_urlsafe(32)
        # A copy of the run's one initdb (initdb_cache.py) has the cache's password until the first start.
        self._initdb_password = initdb_cache.populate(self.install, self.datadir, self.password, self.scram_rounds,
                                                      self._run)
        write_private(self.passfile, f"127.0.0.1:*:*:*:{self._initdb_password}\n")
        settings = {**BASE_SETTINGS, **self.settings}
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# Throwaway cluster of the pggit chaos suite\n")
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        return self

    def _role_password(self) -> str | None:
        return self.password

    def _run(self, argv: list[str], what: str) -> None:
        account = server_account()
        result = subprocess.run(argv, capture_output=True, text=True, user=account.pw_uid if account else None,
                                group=account.pw_gid if account else None, extra_groups=[] if account else None,
                                cwd=self.root, env=self._server_env(), timeout=120)
        if result.returncode != 0:
            raise ClusterError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def set_next_oid(self, oid: int) -> None:
        """Restart the server with its OID counter at ``oid``, as after a wraparound (``pg_resetwal -o``): the
        next object made gets ``oid`` if no object of its own catalog has it."""
        self.stop()
        self._run([str(self.install.binary("pg_resetwal")), "-o", str(oid), "-D", str(self.datadir)], "pg_resetwal")
        self.start()

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # A copied binary with an $ORIGIN-relative library path still finds its libraries.
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(self.install.libdir), env.get("LD_LIBRARY_PATH")])
        )
        return env

    def start(self, timeout: float = 60.0) -> "Cluster":
        if self.process and self.process.poll() is None:
            return self
        for attempt in range(5):
            self.port = self.port if attempt == 0 and self.port else free_port()
            # Only the address goes on the command line: -c flags would outrank ALTER SYSTEM.
            argv = [str(self.postgres_binary), "-D", str(self.datadir), "-p", str(self.port),
                    "-k", str(self.socket_dir)]
            account = server_account()
            log = open(os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")  # noqa: SIM115
            try:
                # A signal between the fork and the assignment would lose the server: hold it until it is recorded.
                with signals.holding():
                    self.process = subprocess.Popen(
                        argv,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        user=account.pw_uid if account else None,
                        group=account.pw_gid if account else None,
                        extra_groups=[] if account else None,
                        cwd=self.root,
                        env=self._server_env(),
                        # Own process group: Ctrl-C reaches the test run, which then stops
                        # the server in order, instead of reaching the server directly.
                        start_new_session=True,
                    )
            finally:
                log.close()
            if self._wait_ready(timeout):
                if self._initdb_password not in (None, self.password):
                    self._take_own_password()
                return self
            if "could not bind" not in self.log_tail() and "could not create" not in self.log_tail():
                break
        raise ClusterError(f"PostgreSQL did not start; log tail:\n{self.log_tail()}")

    def _take_own_password(self) -> None:
        """Set this cluster's own random password in place of the one its copy of the run's initdb came with."""
        with psycopg.connect(self.dsn()) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(scram_verifier(self.password, self.scram_rounds))))
        fresh = self.passfile.with_suffix(".new")
        write_private(fresh, f"127.0.0.1:*:*:*:{self.password}\n")
        fresh.replace(self.passfile)
        self._initdb_password = self.password

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.process.kill()
        self.process.wait()
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def postmaster_pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def is_running(self) -> bool:
        return self.postmaster_pid is not None

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server: ``smart``, ``fast`` (default) or ``immediate``."""
        self.close_admin_session()  # a smart stop would wait for it
        if not self.is_running():
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        children = children_of(self.process.pid)
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        kill_and_wait(children)

    def restart(self, mode: str = "fast") -> "Cluster":
        self.stop(mode)
        return self.start()

    def crash(self) -> None:
        """Kill the postmaster and every server process with SIGKILL, as a power cut would.

        The next ``start()`` runs crash recovery from the WAL.
        """
        if not self.is_running():
            raise ClusterError("crash(): the server is not running")
        children = children_of(self.process.pid)
        self.process.kill()
        self.process.wait()
        # Orphaned backends notice the postmaster's death only at their next wait;
        # a real crash takes them down at the same moment, so do that too.
        kill_and_wait(children)

    def destroy(self) -> None:
        """Stop the server (if running) and remove every file of the cluster; no signal cuts this short."""
        with signals.holding():
            try:
                if self.is_running():
                    self.stop("immediate", timeout=15)
            finally:
                if self.root and self.root.exists():
                    release_shared_memory(self.datadir)  # left by a crash() not followed by start()
                    shutil.rmtree(self.root, ignore_errors=True)
                if self._owner_lock:
                    self._owner_lock.close()
                    self._owner_lock = None
                    signals.release()  # a signal held meanwhile is acted on now, with the server gone

    # ---- settings ------------------------------------------------------------

    def set_config(self, **settings: str | int) -> str:
        """Change server settings with ALTER SYSTEM; reloads, or restarts when one needs it.

        Returns ``"reload"`` or ``"restart"``: what it took.
        """
        needs_restart = False
        with self.connect() as conn:
            for name, value in settings.items():
                row = conn.execute("SELECT context FROM pg_settings WHERE name = %s", (name,)).fetchone()
                if row is None:
                    raise ValueError(f"unknown PostgreSQL setting {name!r}")
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(str(value)))
                )
                needs_restart |= row[0] == "postmaster"
            self._changed_needs_restart |= needs_restart
            if not needs_restart:
                conn.execute("SELECT pg_reload_conf()")
        if needs_restart:
            self.restart()
            return "restart"
        self._wait_for_reload(settings)
        return "reload"

    def _wait_for_reload(self, settings: dict, timeout: float = 10.0) -> None:
        """Return once a new session runs with the new values.

        A reload reaches each process asynchronously. Sessions opened after
        this returns see the new values; a session that was already open
        picks them up between two of its statements (tools/pggit_chaos/nemesis/faults.py
        has await_setting for that).
        """
        with self.connect() as conn:
            expected = {}
            for name, value in settings.items():
                # set_config() normalises the value the way SHOW prints it ("1024kB" -> "1MB");
                # settings a session may not change (fsync, ...) are compared as given.
                try:
                    with conn.transaction(force_rollback=True):
                        expected[name] = conn.execute(
                            "SELECT set_config(%s, %s, true)", (name, str(value))).fetchone()[0]
                except psycopg.Error:
                    expected[name] = str(value)
        deadline = time.monotonic() + timeout
        while True:
            with self.connect() as conn:
                current = {n: conn.execute("SELECT current_setting(%s)", (n,)).fetchone()[0] for n in expected}
            if current == expected or time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def reset_config(self) -> None:
        """Undo every set_config(): back to the settings the cluster started with."""
        if not self.is_running():
            self.start()
        with self.connect() as conn:
            conn.execute("ALTER SYSTEM RESET ALL")
            if not self._changed_needs_restart:
                conn.execute("SELECT pg_reload_conf()")
        if self._changed_needs_restart:
            self.restart()
        self._changed_needs_restart = False

    @contextlib.contextmanager
    def configured(self, **settings):
        """Apply settings for the length of a ``with`` block, then restore the defaults."""
        self.set_config(**settings)
        try:
            yield self
        finally:
            self.reset_config()

    def restore(self) -> None:
        """Back to how the cluster started, whatever a test did to it: running, its own settings."""
        if not self.is_running():
            self.start()
        if self._changed_needs_restart or self._has_auto_conf_settings():
            self.reset_config()

    def _has_auto_conf_settings(self) -> bool:
        """Whether ALTER SYSTEM left settings behind, also ones a test made with its own SQL."""
        auto_conf = self.datadir / "postgresql.auto.conf"
        try:
            return any(line.strip() and not line.startswith("#") for line in auto_conf.read_text().splitlines())
        except OSError:
            return False


def start_cluster(install: PgInstall, pggit_sql: str | Path | None = None, **settings: str) -> Cluster:
    """Create and start a throwaway cluster; the caller must ``destroy()`` it."""
    cluster = Cluster(install=install, pggit_sql=pggit_sql, settings=dict(settings))
    try:
        cluster.create().start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
