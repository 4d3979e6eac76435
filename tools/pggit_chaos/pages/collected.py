"""Every test of the suite with its markers: one ``pytest --collect-only`` of the repository, kept on disk.

Two checks ask whether a marker expression selects any test: a page's shell
block (``pytest -m ...`` in a guide) and a workflow job's selection
(``tests/ci``). Collecting the whole suite costs about 3 CPU-seconds, which
every xdist worker and every inner pytest run that meets such a check would
pay again. The result is kept in ``_build/collected/``, in a file named by a
fingerprint of everything that can change what pytest collects: every file
of the repository by path, size and modification time (test modules, pages,
configuration, and the data some tests are parametrized from: workflows,
recovery scripts, pggit's script), but for the builds, caches and git's own
files, and for the pages tests write for a moment (``docs/_scratch_*``,
which the collection leaves out too);
and the interpreter and the packages installed beside it. A change to any
of them collects again; concurrent processes collect once, under a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pggit_chaos.paths import REPO

CACHE_DIR = REPO / "_build" / "collected"
# The collection's dump: set, the run that collects writes every test's markers to this file.
DUMP_ENV = "PGGIT_DUMP_COLLECTED"
SKIPPED_DIRS = {".git", ".venv", "_build", "__pycache__", "node_modules", ".pytest_cache", ".hypothesis"}
# Folders of the pages tests write under docs/ for a moment: neither fingerprinted nor collected.
SCRATCH_PREFIX = "_scratch_"


def _sources() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(SCRATCH_PREFIX))
        found += [Path(folder) / name for name in files]
    return sorted(found)


def fingerprint() -> str:
    """A digest of what the suite's collection depends on (see the module's text)."""
    # Installing, upgrading or removing a package renames an entry of site-packages: its modification time moves.
    packages = os.stat(sysconfig.get_paths()["purelib"]).st_mtime_ns
    digest = hashlib.sha256(f"{sys.executable}\0{packages}\n".encode())
    for path in _sources():
        with contextlib.suppress(FileNotFoundError):  # a file a test removed meanwhile
            stat = path.stat()
            digest.update(f"{path.relative_to(REPO)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def collected_markers() -> dict[str, list[str]]:
    """Every test of the suite (soak tests too) and the names of its markers, by node id."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    kept = CACHE_DIR / f"{fingerprint()}.json"
    with contextlib.suppress(FileNotFoundError):
        return json.loads(kept.read_text())
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first process collects; the others wait, then read its file
        with contextlib.suppress(FileNotFoundError):
            return json.loads(kept.read_text())
        partial = kept.with_suffix(f".{os.getpid()}.partial")
        env = {**os.environ, DUMP_ENV: str(partial)}
        env.pop("PYTEST_XDIST_WORKER", None)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
             # Not the suite's: pages other tests write and remove while this collects.
             "--ignore-glob", str(REPO / "docs" / f"{SCRATCH_PREFIX}*"), "-p", __name__],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0 or not partial.exists():
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"collecting the suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        markers = json.loads(partial.read_text())
        for old in CACHE_DIR.glob("*.json"):  # collections of sources since changed
            old.unlink(missing_ok=True)
        partial.replace(kept)
    return markers

def pytest_collection_finish(session: pytest.Session) -> None:
    """In the collection ``collected_markers`` starts: write every test's marker names where it asked."""
    target = os.environ.get(DUMP_ENV)
    if target and not hasattr(session.config, "workerinput"):
        Path(target).write_text(json.dumps({item.nodeid: sorted({m.name for m in item.iter_markers()})
                                            for item in session.items}))
