"""What a run makes and must remove: cluster directories (a killed run's swept by the next) and the pggit template database.

A cluster directory is the run's while the run lives: its ``owner.pid``
stays locked (flock) by the run's process, and the kernel drops the lock
when that process ends, however it ends. The sweep removes a directory
only when it belongs to the account sweeping, nobody holds its lock and
the recorded owner is dead; it stops only processes and frees only shared
memory that provably belong to that cluster (``processes.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

import psycopg

from pggit_chaos.server.base import TEMP_PREFIX, ClusterError, Server
from pggit_chaos.server.processes import cluster_processes, kill_and_wait, pid_alive, release_shared_memory

TEMPLATE_DATABASE = "pggit_template"
# A streaming standby of a cluster lives in the cluster's directory, in a folder named so (``standby.py``).
STANDBY_PREFIX = "standby"


# --------------------------------------------------------------------------
# Cluster directories
# --------------------------------------------------------------------------


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


def claim(root: Path) -> BinaryIO:
    """Mark ``root`` as this process's: ``owner.pid``, locked until the returned file is closed or the process ends."""
    lock = open(root / "owner.pid", "wb")  # noqa: SIM115 - held for the cluster's life
    fcntl.flock(lock, fcntl.LOCK_EX)
    lock.write(str(os.getpid()).encode())
    lock.flush()
    return lock


def _stale(candidate: Path) -> BinaryIO | None:
    """The locked ``owner.pid`` of a directory that is the sweeping account's and whose run is over, else None."""
    try:
        st = candidate.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return None  # another account's (or a link planted there): never ours to touch
        lock = open(os.open(candidate / "owner.pid", os.O_RDONLY | os.O_NOFOLLOW), "rb")  # noqa: SIM115
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        owner = int(lock.read().decode() or "0")
        if os.fstat(lock.fileno()).st_uid == os.geteuid() and owner > 0 and not pid_alive(owner):
            return lock
    except (OSError, ValueError):
        pass  # locked: its run is alive, here or in another PID namespace sharing the directory
    lock.close()
    return None


def remove_stale_directories(base: Path | None = None) -> list[Path]:
    """Remove cluster directories left by runs whose process no longer exists.

    A normal run removes its own directory; this catches a run that was
    killed outright (SIGKILL), which no teardown survives. Its server is
    stopped (only processes running the directory's own ``postgres`` in its
    data directory) and its System V segment freed (only one proven to be
    that data directory's). Its standbys (``standby*/data``, which run the
    same ``postgres``) go the same way, before the primary.
    """
    removed = []
    for candidate in (base or cluster_base_dir()).glob(TEMP_PREFIX + "*"):
        lock = _stale(candidate)
        if lock is None:
            continue
        with lock:
            for datadir in [*sorted(candidate.glob(STANDBY_PREFIX + "*/data")), candidate / "data"]:
                with contextlib.suppress(ClusterError):
                    kill_and_wait(cluster_processes(candidate / "install", datadir))
                release_shared_memory(datadir)
            shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


# --------------------------------------------------------------------------
# The template database: pggit installed once, cloned for every test
# --------------------------------------------------------------------------


def template_name(server: Server) -> str:
    """The template's name: on a server shared with other runs, one of this run's own (its random run id)."""
    return TEMPLATE_DATABASE if server.can_control else f"{TEMPLATE_DATABASE}_{server.run_id}"


def create_template(server: Server, pggit_sql: str | Path | None = None) -> str:
    """Create the template database with CREATE EXTENSION pggit; returns its name.

    A failed CREATE EXTENSION drops the half-made template and raises
    ClusterError naming the script (``pggit_sql``, when one was given) and the
    server's version.
    """
    name = template_name(server)
    if server.can_control:
        server.drop_database(name)  # the run's own server: a template can only be left by an earlier attempt
    server.create_database(name)
    try:
        with server.connect(name) as conn:
            conn.execute("CREATE EXTENSION pggit")
    except psycopg.Error as exc:
        server.drop_database(name)
        source = f"--pggit-sql {pggit_sql}: " if pggit_sql else ""
        reason = " ".join(str(exc).split())
        raise ClusterError(f"{source}CREATE EXTENSION pggit failed on PostgreSQL {server.version}: {reason}") from exc
    return name


def drop_template(server: Server, name: str) -> None:
    """Drop the template at the end of the run; a server that is gone or refuses is left alone."""
    with contextlib.suppress(psycopg.Error):
        server.drop_database(name)
