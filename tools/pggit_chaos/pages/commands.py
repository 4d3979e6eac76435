"""The commands of a shell block, and what they hand to pytest and make."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from pggit_chaos.pages.parse import Block


@dataclass
class Command:
    line: int
    argv: list[str]


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block: prompts stripped, continuations joined, comments dropped."""
    commands: list[Command] = []
    pending, start = "", block.first_code_line
    for offset, raw in enumerate(block.code.splitlines()):
        line = raw.strip()
        if not pending:
            start = block.first_code_line + offset
            if block.lang == "console" and not line.startswith("$"):
                continue  # console output, not a command
            line = line.removeprefix("$").strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full or full.startswith("#"):
            continue
        argv = shlex.split(full, comments=True)
        if argv:
            commands.append(Command(start, argv))
    return commands


PYTEST_LAUNCHERS = (["pytest"], [".venv/bin/pytest"], ["python", "-m", "pytest"],
                    ["python3", "-m", "pytest"], [".venv/bin/python", "-m", "pytest"])


def pytest_args(argv: list[str]) -> list[str] | None:
    """The arguments after the pytest launcher, or None if this is not a pytest call."""
    for launcher in PYTEST_LAUNCHERS:
        if argv[: len(launcher)] == launcher:
            return argv[len(launcher):]
    # make test PYTEST_ARGS="..." passes arguments through to pytest.
    if argv[:1] == ["make"]:
        for arg in argv[1:]:
            if arg.startswith("PYTEST_ARGS="):
                return shlex.split(arg.split("=", 1)[1])
    return None


def makefile_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile.read_text(), flags=re.M))
