"""What a run makes and must remove: cluster directories (a killed run's swept by the next) and the pggit template database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

import psycopg

from pggit_chaos.server.base import TEMP_PREFIX, ClusterError, Server
from pggit_chaos.server.processes import pid_alive, release_shared_memory

TEMPLATE_DATABASE = "pggit_template"


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


# --------------------------------------------------------------------------
# The template database: pggit installed once, cloned for every test
# --------------------------------------------------------------------------


def template_name(server: Server) -> str:
    """The template's name: a server shared with other runs gets one per process, so none drops another's."""
    return TEMPLATE_DATABASE if server.can_control else f"{TEMPLATE_DATABASE}_{os.getpid()}"


def create_template(server: Server) -> str:
    """(Re)create the template database with CREATE EXTENSION pggit; returns its name.

    A failed CREATE EXTENSION drops the half-made template and raises
    ClusterError naming the server's version.
    """
    name = template_name(server)
    server.drop_database(name)  # left by an earlier run that was killed
    server.create_database(name)
    try:
        with server.connect(name) as conn:
            conn.execute("CREATE EXTENSION pggit")
    except psycopg.Error as exc:
        server.drop_database(name)
        raise ClusterError(f"CREATE EXTENSION pggit failed on PostgreSQL {server.version}: {exc}") from exc
    return name


def drop_template(server: Server, name: str) -> None:
    """Drop the template at the end of the run; a server that is gone or refuses is left alone."""
    with contextlib.suppress(psycopg.Error):
        server.drop_database(name)
