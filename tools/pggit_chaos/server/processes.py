"""Operating-system plumbing of a server: its account, a free port, its processes and its shared memory."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import time
from pathlib import Path

from pggit_chaos.server.base import ClusterError

# The unprivileged account the server runs as when the test run is root.
SERVER_ACCOUNT = "nobody"
IPC_RMID = 0  # from <sys/ipc.h>


def server_account() -> pwd.struct_passwd | None:
    """The account to run the server as: none (ourselves) unless we are root, which initdb refuses."""
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


def kill_and_wait(pids: list[int], timeout: float = 10) -> None:
    """SIGKILL ``pids`` and wait until they are gone; ClusterError if any survives."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not wait_gone(pids, timeout):
        raise ClusterError(f"server processes survived SIGKILL: {pids}")


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
