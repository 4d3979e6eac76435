"""The ``pggit-chaos`` command line: every command and option explained by --help, every bad value refused by name."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from pggit_chaos import cli

# The installed console script, next to the interpreter running the tests (the project's virtualenv).
PROGRAM = Path(sys.executable).with_name("pggit-chaos")
COMMANDS = [tool.COMMAND for tool in cli.TOOLS]


def _run(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, run for real."""
    assert PROGRAM.exists(), f"{PROGRAM} is missing: reinstall the package (pip install -e '.[dev]')"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([str(PROGRAM), *args], capture_output=True, text=True, timeout=120, env=env, check=False)


def _main(*args: str) -> subprocess.CompletedProcess:
    """The script's own entry point, ``cli.main``, in this process: what it prints and the exit status.

    The script is run for real once (the program's --help, above); the many --help and bad-value
    checks call its function directly, each saving a Python start-up. The width is the one a script
    run without a terminal gets.
    """
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": "80"}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(args))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["pggit-chaos", *args], status, out.getvalue(), err.getvalue())


def _subparser(command: str) -> argparse.ArgumentParser:
    (commands,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[command]


def _squeezed(text: str) -> str:
    """Text without whitespace: argparse wraps help lines, at spaces and after hyphens."""
    return "".join(text.split())


def test_the_program_lists_every_command_with_what_it_does():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: pggit-chaos")
    for tool in cli.TOOLS:
        assert tool.COMMAND in result.stdout
        assert _squeezed(tool.DESCRIPTION) in _squeezed(result.stdout), f"{tool.COMMAND} is not explained"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_is_explained_in_a_sentence(command):
    result = _main(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: pggit-chaos {command}")
    options = [a for a in _subparser(command)._actions if a.option_strings and a.dest != "help"]
    assert options, f"{command} has no options"
    for action in options:
        option = action.option_strings[-1]
        assert option in result.stdout, f"{option} missing from pggit-chaos {command} --help"
        explained = (action.help or "") % {**vars(action), "prog": f"pggit-chaos {command}"}
        assert len(explained.split()) >= 5 and explained.endswith("."), f"{option}: {explained!r} is not a sentence"
        assert _squeezed(explained) in _squeezed(result.stdout), f"{option}'s explanation is not in the help"


@pytest.mark.parametrize("argv, option, value, reason", [
    (["nightly"], "COMMAND", "nightly", "invalid choice"),
    (["mutate", "--tier", "nightly"], "--tier", "nightly", "invalid choice"),
    (["mutate", "--tier", "smoke", "--jobs", "many"], "--jobs", "many", "not a whole number"),
    (["mutate", "--tier", "smoke", "--run-timeout", "0"], "--run-timeout", "0", "must be more than 0"),
    (["stability", "--runs", "0"], "--runs", "0", "must be 1 or more"),
    (["stability", "--full-runs", "-1"], "--full-runs", "-1", "must be 0 or more"),
    (["stability", "--workers", "lots"], "--workers", "lots", "expected auto, logical or a number"),
    (["bench-describe", "--repeat", "none"], "--repeat", "none", "not a whole number"),
    (["bench-cluster", "--pg-version", "eighteen"], "--pg-version", "eighteen", "invalid int value"),
    (["metrics", "--no-such-option"], "--no-such-option", "--no-such-option", "unrecognized arguments"),
])
def test_a_bad_value_is_one_error_naming_the_option_and_the_value(argv, option, value, reason):
    result = _main(*argv)
    assert result.returncode == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    (error,) = errors
    prog = " ".join(["pggit-chaos", *argv[:1]]) if argv[0] in COMMANDS else "pggit-chaos"
    assert error.startswith(f"{prog}: error: "), error
    assert option in error and value in error and reason in error, error
    assert result.stderr.startswith(f"usage: {prog}"), "the usage comes first, the error last"
