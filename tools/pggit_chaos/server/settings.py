"""The run's server settings, resolved in one place: each command-line option first, then its environment variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

# Each setting: its command-line option, and the environment variable read when the option is not given.
SOURCES: dict[str, tuple[str, str | None]] = {
    "pg_version": ("--pg-version", "PGGIT_PG_VERSION"),
    "pg_bindir": ("--pg-bindir", "PGGIT_PG_BINDIR"),
    "pg_config": ("--pg-config", "PG_CONFIG"),
    "dsn": ("--dsn", "PGGIT_TEST_DSN"),
    "pggit_sql": ("--pggit-sql", None),
}


class SettingsError(ValueError):
    """A setting's value cannot be used; the message names the option (or variable) and the value."""


@dataclass(frozen=True)
class ServerSettings:
    """Which server a run uses: an existing one (``dsn``), or binaries to start a throwaway cluster from."""

    pg_version: int | None = None
    pg_bindir: str | None = None
    pg_config: str | None = None
    dsn: str | None = None
    pggit_sql: str | None = None
    # Where the DSN came from (--dsn or PGGIT_TEST_DSN), for messages about it.
    dsn_source: str | None = field(default=None, compare=False)

    @classmethod
    def resolve(cls, options: Mapping[str, object], environ: Mapping[str, str]) -> ServerSettings:
        """Read and check each setting: ``options[name]`` unless it is None, else its environment variable.

        ``options`` is keyed by field name (``pg_version``, ...). With a DSN the
        run starts no server, so the settings for starting one are not read:
        a stray ``PG_CONFIG`` in the environment cannot stop a ``--dsn`` run,
        but such a setting given as an option would be silently ignored, and
        is refused.
        """
        raw = {}
        for name, (option, variable) in SOURCES.items():
            if options.get(name) is not None:
                raw[name] = (option, options[name])
            # An empty variable counts as unset, so `PGGIT_TEST_DSN= make test` starts a cluster.
            elif variable and environ.get(variable):
                raw[name] = (variable, environ[variable])
        if "dsn" in raw:
            source = raw["dsn"][0]
            for name in ("pggit_sql", "pg_version", "pg_bindir", "pg_config"):
                if options.get(name) is not None:
                    option = SOURCES[name][0]
                    raise SettingsError(
                        f"{source} and {option} cannot be used together: {option} sets up the server a run "
                        f"starts, and with {source} the run starts none (install pggit on that server instead)")
            return cls(dsn=_connection_string(*raw["dsn"]), dsn_source=source)
        checks = {"pg_version": _major_version, "pg_bindir": _directory,
                  "pg_config": _program, "pggit_sql": _script}
        return cls(**{name: checks[name](source, value) for name, (source, value) in raw.items()})


def _major_version(source: str, value: object) -> int:
    if not re.fullmatch(r"[1-9][0-9]*", str(value).strip()):
        raise SettingsError(f"{source} must be a PostgreSQL major version number, got {str(value)!r}")
    return int(str(value).strip())


def _directory(source: str, value: object) -> str:
    if not Path(str(value)).is_dir():
        raise SettingsError(f"{source} must be the bin directory of a PostgreSQL install, "
                            f"got {str(value)!r}: no such directory")
    return str(value)


def _program(source: str, value: object) -> str:
    if not Path(str(value)).is_file():
        raise SettingsError(f"{source} must be the path of a PostgreSQL install's pg_config, "
                            f"got {str(value)!r}: no such file")
    return str(value)


def _script(source: str, value: object) -> str:
    if not Path(str(value)).is_file():
        raise SettingsError(f"{source} must be an SQL script to install as pggit, got {str(value)!r}: no such file")
    return str(value)


def _connection_string(source: str, value: object) -> str:
    try:
        psycopg.conninfo.conninfo_to_dict(str(value))
    except psycopg.ProgrammingError as exc:
        raise SettingsError(f"{source} must be a PostgreSQL connection string, got {str(value)!r}: "
                            f"{str(exc).strip()}") from None
    return str(value)
