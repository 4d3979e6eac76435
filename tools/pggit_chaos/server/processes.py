"""Operating-system plumbing of a server: its account, a free port, its processes and its shared memory.

A process or a shared memory segment is taken for a cluster's only when it
provably is: a process runs a binary from the cluster's own directory with
the cluster's data directory as its working directory; a System V segment
carries the key PostgreSQL derives from the data directory's inode, was
created by the data directory's owner, and no process is attached to it.
A PID or segment id read from a file is never enough.
"""

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


def write_private(path: Path, text: str, account: pwd.struct_passwd | None = None) -> None:
    """Write ``text`` to a new file that only its owner (``account``, else this process's) can read."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    if account:
        os.chown(path, account.pw_uid, account.pw_gid)


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


def _resolved_link(path: str) -> str | None:
    try:
        return os.path.realpath(os.readlink(path))
    except OSError:
        return None


def cluster_processes(install_dir: Path, datadir: Path) -> list[int]:
    """Live processes that provably belong to one cluster: its own ``postgres`` binary, run in its data directory.

    The overlay's ``postgres`` is a private copy inside the cluster's
    directory, and every server process (postmaster and backends) works in
    the data directory; a process of another account whose links cannot be
    read is never counted.
    """
    binaries = os.path.realpath(install_dir) + os.sep
    data = os.path.realpath(datadir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        exe = _resolved_link(f"{entry}/exe")
        if exe and exe.startswith(binaries) and _resolved_link(f"{entry}/cwd") == data:
            found.append(int(entry.name))
    return found


def sysv_segment_id(datadir: Path) -> int | None:
    """The System V shared memory id the server of ``datadir`` wrote into postmaster.pid (7th line)."""
    key_and_id = _postmaster_pid_segment(datadir)
    return key_and_id[1] if key_and_id else None


def _postmaster_pid_segment(datadir: Path) -> tuple[int, int] | None:
    """The (key, id) pair on the 7th line of ``datadir``'s postmaster.pid."""
    try:
        key, shmid = (datadir / "postmaster.pid").read_text().splitlines()[6].split()[:2]
        return int(key), int(shmid)
    except (OSError, ValueError, IndexError):
        return None


def _segments() -> dict[int, dict[str, int]]:
    """Every System V shared memory segment of this IPC namespace, by id: key, nattch, cuid, ..."""
    try:
        header, *rows = Path("/proc/sysvipc/shm").read_text().splitlines()
    except OSError:
        return {}
    names = header.split()
    table = {}
    for row in rows:
        values = dict(zip(names, (int(v) for v in row.split()[:len(names)])))
        table[values["shmid"]] = values
    return table


def cluster_segment(datadir: Path) -> int | None:
    """The id of the System V segment a dead server of ``datadir`` left, when it provably is that server's.

    PostgreSQL asks for the key equal to the data directory's inode number
    (the next free one on a collision) and records key and id in
    postmaster.pid; the segment must carry that key, have been created by
    the account that owns the data directory, and have nobody attached.
    """
    recorded = _postmaster_pid_segment(datadir)
    if recorded is None:
        return None
    key, shmid = recorded
    segment = _segments().get(shmid)
    try:
        owner = datadir.stat()
    except OSError:
        return None
    if (segment is None or segment["key"] != key or (key - owner.st_ino) % 2**32 >= 64
            or segment["cuid"] != owner.st_uid or segment["nattch"] != 0):
        return None
    return shmid


def release_shared_memory(datadir: Path) -> bool:
    """Remove the System V segment of a server that was killed (SIGKILL) and not restarted.

    A server stopped cleanly removes it itself, and a restart in the same
    directory reuses it; a killed one leaves it behind, named on the 7th line of
    ``postmaster.pid``. Only a segment that ``cluster_segment`` proves to be
    that server's is removed.
    """
    shmid = cluster_segment(datadir)
    if shmid is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.shmctl(shmid, IPC_RMID, None) == 0
