"""The soak tier's options and fixtures: how long the sustained soak runs, how many crash cycles, where histories go.

--soak-minutes M    minutes of sustained work under scheduled faults (PGGIT_SOAK_MINUTES;
                    default 2, so make weekly finishes on a laptop; the weekly workflow passes its
                    SOAK_MINUTES: the soak-minutes input, else the value .github/workflows/weekly.yml
                    falls back to)
--crash-cycles N    crash-and-recover cycles under load (PGGIT_CRASH_CYCLES; default 50)
--soak-history DIR  where each soak test writes its history, one JSON line per operation and
                    fault (PGGIT_SOAK_HISTORY; default _build/soak), kept when the test fails
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

OPTIONS = {
    "soak_minutes": ("--soak-minutes", "PGGIT_SOAK_MINUTES", "2"),
    "crash_cycles": ("--crash-cycles", "PGGIT_CRASH_CYCLES", "50"),
    "soak_history": ("--soak-history", "PGGIT_SOAK_HISTORY", "_build/soak"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pggit-soak", "pggit soak tier")
    group.addoption("--soak-minutes", default=None,
                    help="minutes of the sustained soak under scheduled faults (env PGGIT_SOAK_MINUTES; default 2)")
    group.addoption("--crash-cycles", default=None,
                    help="crash-and-recover cycles under load (env PGGIT_CRASH_CYCLES; default 50)")
    group.addoption("--soak-history", default=None,
                    help="directory for the soak tests' histories (env PGGIT_SOAK_HISTORY; default _build/soak)")


def _value(config: pytest.Config, name: str) -> str:
    option, env, default = OPTIONS[name]
    return config.getoption(option) or os.environ.get(env) or default


def _number(config: pytest.Config, name: str, kind: type) -> int | float:
    text = _value(config, name)
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if not value > 0:
        option, env, _ = OPTIONS[name]
        raise pytest.UsageError(f"{option} (or {env}) must be a number above 0, got {text!r}")
    return value


@pytest.fixture(scope="session")
def soak_minutes(pytestconfig: pytest.Config) -> float:
    """Minutes the sustained soak runs (``--soak-minutes``)."""
    return _number(pytestconfig, "soak_minutes", float)


@pytest.fixture(scope="session")
def crash_cycles(pytestconfig: pytest.Config) -> int:
    """How many times the crash soak kills and restarts the server (``--crash-cycles``)."""
    return _number(pytestconfig, "crash_cycles", int)


@pytest.fixture
def soak_history(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``soak_history(text)`` writes a history to ``--soak-history``/<test name>.jsonl and returns the path."""
    directory = Path(_value(pytestconfig, "soak_history"))
    if not directory.is_absolute():
        directory = pytestconfig.rootpath / directory

    def write(text: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
        path = directory / f"{name}.jsonl"
        path.write_text(text + "\n")
        return path

    return write
