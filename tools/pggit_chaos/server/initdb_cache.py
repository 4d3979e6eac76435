"""initdb once per run: every throwaway cluster of a run starts from a copy of one initdb'd data directory.

initdb costs about 0.3 CPU-seconds, most of what starting a cluster costs,
and ``make test`` starts some 70 clusters: its workers', its tests', and
those of the pytest runs its tests start. The first process of a run that
starts a cluster, or an xdist controller before it starts its workers
(``share``), makes a cache directory beside the clusters
(``pggit-chaos-initdb-*``, its ``owner.pid`` locked like a cluster's, so the
janitor removes it once that process is gone however it ended); initdb runs
there once per PostgreSQL install, and the directory is named in
``PGGIT_INITDB_CACHE`` for the processes it starts. A cluster copies the
data directory (``cp -a``, as the server's account) and keeps the cached
superuser password only until its first start, when it sets a random one of
its own (``Cluster.start``). The directory goes when its process exits. A
named directory that is not this account's own is ignored, and a copy that
fails falls back to initdb.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from pggit_chaos.server.base import SUPERUSER, TEMP_PREFIX, ClusterError, scram_verifier
from pggit_chaos.server.binaries import PgInstall
from pggit_chaos.server.janitor import claim, cluster_base_dir
from pggit_chaos.server.processes import server_account, write_private

CACHE_ENV = "PGGIT_INITDB_CACHE"
CACHE_PREFIX = TEMP_PREFIX + "initdb-"
_made_here: list[Path] = []  # the cache this process made, if any (it removes it at exit)
_making = threading.Lock()

Run = Callable[[list[str], str], None]  # Cluster._run: a command as the server's account, in the cluster's folder


def initdb(install: PgInstall, datadir: Path, password: str, scram_rounds: int, run: Run) -> None:
    """Run initdb into ``datadir`` (which exists, the server account's, 0700) with ``password`` for the superuser."""
    pwfile = datadir.parent / f"initdb-{secrets.token_hex(4)}.pw"
    write_private(pwfile, scram_verifier(password, scram_rounds) + "\n", server_account())
    try:
        run([str(install.binary("initdb")), "-D", str(datadir), "-U", SUPERUSER, "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C", "--no-sync",
             # initdb runs from the original install: point it at the real share dir.
             "-L", str(install.sharedir)], "initdb")
    finally:
        pwfile.unlink(missing_ok=True)


def populate(install: PgInstall, datadir: Path, password: str, scram_rounds: int, run: Run) -> str:
    """Fill ``datadir`` with an initdb'd data directory; return the superuser password it was made with
    (``password`` itself when initdb ran for it alone)."""
    cache = _cache()
    if cache is not None:
        with contextlib.suppress(ClusterError, OSError):
            entry, cached_password = _entry(cache, install, scram_rounds, run)
            run(["cp", "-a", f"{entry}/.", str(datadir)], "copying the run's initdb'd data directory")
            return cached_password
        for leftover in list(datadir.iterdir()):  # a copy cut short: start again from an empty directory
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    initdb(install, datadir, password, scram_rounds, run)
    return password


def _entry(cache: Path, install: PgInstall, scram_rounds: int, run: Run) -> tuple[Path, str]:
    """The cached data directory of ``install`` and its password, made under the cache's lock if not there yet."""
    account = server_account()
    key = hashlib.sha256(f"{install.bindir}\0{install.sharedir}\0{install.version}\0{scram_rounds}\0"
                         f"{account.pw_uid if account else os.geteuid()}".encode()).hexdigest()[:16]
    folder = cache / key
    with open(cache / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one initdb per install, whoever asks first; the others wait for it
        if not (folder / "data").is_dir():
            shutil.rmtree(folder, ignore_errors=True)  # an attempt that failed part-way
            folder.mkdir(mode=0o711)
            made = folder / "data.partial"
            made.mkdir(mode=0o700)
            if account:
                os.chown(made, account.pw_uid, account.pw_gid)
            password = secrets.token_urlsafe(32)
            initdb(install, made, password, scram_rounds, run)
            write_private(folder / "password", password)
            made.rename(folder / "data")  # last: once "data" is there, its password is too
    return folder / "data", (folder / "password").read_text()


def share() -> None:
    """Make the run's cache now and name it in the environment, before this process starts others.

    pytest-xdist's controller starts no cluster itself: without this, each of
    its workers would make a cache of its own and run initdb once each.
    """
    _cache()


def _cache() -> Path | None:
    """The run's cache directory: the one named in ``PGGIT_INITDB_CACHE`` if it is this account's, else a new one."""
    named = os.environ.get(CACHE_ENV)
    if named and _ours(Path(named)):
        return Path(named)
    with _making:
        if not _made_here:
            try:
                folder = Path(tempfile.mkdtemp(prefix=CACHE_PREFIX, dir=cluster_base_dir()))
            except OSError:
                return None  # no room to cache: every cluster runs initdb, as it did
            owner = claim(folder)
            folder.chmod(0o711)  # the server account copies from it
            atexit.register(_remove, folder, owner)
            _made_here.append(folder)
        os.environ[CACHE_ENV] = str(_made_here[0])
        return _made_here[0]


def _ours(folder: Path) -> bool:
    with contextlib.suppress(OSError):
        st = folder.lstat()
        return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
                and folder.name.startswith(CACHE_PREFIX))
    return False


def _remove(folder: Path, owner) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    owner.close()
    if os.environ.get(CACHE_ENV) == str(folder):
        del os.environ[CACHE_ENV]
