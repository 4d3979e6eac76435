"""Evaluator for shell blocks: commands checked without running them (pytest options and markers, make targets, pip extras, paths).

Also a pytest plugin: the ``suite_markers`` fixture, and the hook that keeps
the run's option parser.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import types
import weakref
from dataclasses import dataclass, field

import pytest

# commands is imported whole: a function named pytest_* in this plugin's namespace would read as a hook.
from pggit_chaos.pages import collected, commands, markexpr
from pggit_chaos.pages.base import REPO, new_module
from pggit_chaos.pages.parse import Block

# The option parser of each run, by plugin manager: pytest hands it to pytest_addoption only.
_PARSERS: weakref.WeakKeyDictionary[pytest.PytestPluginManager, pytest.Parser] = weakref.WeakKeyDictionary()


@dataclass
class PageProblems:
    """Everything static that is wrong with a block, for one readable failure."""

    problems: list[str] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.problems.append(f"line {line}: {message}")


def module_for(block: Block) -> types.ModuleType:
    module = new_module(block)

    def test_shell_commands_are_valid(request, suite_markers):
        """Each command names options, markers, targets, extras and paths that exist."""
        problems = PageProblems()
        subprocess.run(["bash", "-n"], input=block.code if block.lang != "console" else "", text=True, check=True)
        for command in commands.shell_commands(block):
            _check_command(command, request.config, suite_markers, problems)
        assert not problems.problems, (
            f"{block.page.name}, shell block at line {block.line}:\n" + "\n".join(problems.problems)
        )

    module.test_shell_commands_are_valid = test_shell_commands_are_valid
    return module


def _check_command(command: commands.Command, config: pytest.Config, suite_markers, problems: PageProblems) -> None:
    argv = command.argv
    args = commands.pytest_args(argv)
    if argv[0] == "make":
        targets = commands.makefile_targets(REPO / "Makefile")
        for target in (a for a in argv[1:] if "=" not in a and not a.startswith("-")):
            if target not in targets:
                problems.add(command.line, f"make target {target!r} does not exist in the Makefile")
    if argv[:2] in (["pip", "install"], ["uv", "pip"]) or argv[:4] == ["python", "-m", "pip", "install"]:
        _check_pip_extras(command, problems)
    if args is None:
        return
    _check_pytest_args(command, args, config, suite_markers, problems)


def _check_pip_extras(command: commands.Command, problems: PageProblems) -> None:
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for arg in command.argv:
        match = re.fullmatch(r"\.?\[([\w,-]+)\]", arg.removeprefix("-e").strip("\"'")) or re.search(r"^\.\[([\w,-]+)\]$", arg)
        if match:
            for extra in match.group(1).split(","):
                if extra not in declared:
                    problems.add(command.line, f"pip extra {extra!r} is not declared in pyproject.toml")


def _check_pytest_args(command, args, config, suite_markers, problems) -> None:
    # The run's own parser knows every option of pytest and of every plugin loaded.
    try:
        namespace, unknown = _PARSERS[config.pluginmanager].parse_known_and_unknown_args(args)
    except pytest.UsageError as exc:
        problems.add(command.line, f"pytest refuses the arguments: {exc}")
        return
    for arg in unknown:
        if arg.startswith("-"):
            problems.add(command.line, f"pytest has no option {arg.split('=')[0]!r}")
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    if namespace.markexpr:
        _check_marker_expression(command, namespace.markexpr, registered, suite_markers, problems)
    for target in getattr(namespace, "file_or_dir", None) or []:
        path = target.split("::")[0]
        if not (REPO / path).exists():
            problems.add(command.line, f"pytest path {path!r} does not exist")


def _check_marker_expression(command, expression, registered, suite_markers, problems) -> None:
    try:
        parsed = markexpr.parse(expression)
    except markexpr.MarkerExpressionError as exc:
        problems.add(command.line, f"pytest would refuse the marker expression: {exc}")
        return
    unknown = parsed.names - registered
    if unknown:
        problems.add(command.line, f"-m {expression!r} uses unregistered markers: {sorted(unknown)}")
        return
    if not any(parsed.matches(marks) for marks in suite_markers):
        problems.add(command.line, f"-m {expression!r} selects no test in the suite")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    _PARSERS[pluginmanager] = parser


@pytest.fixture(scope="session")
def suite_markers() -> list[set[str]]:
    """The marker names of every test in the whole suite (one collection, shared by all shell checks and kept
    on disk until a source changes: ``pggit_chaos.pages.collected``)."""
    return [set(marks) for marks in collected.collected_markers().values()]
