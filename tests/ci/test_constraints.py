"""Every package constraints.txt pins installs on the oldest Python that pyproject.toml accepts.

A pin is only as good as the interpreters it installs on: a release that
needs a newer patch level of Python (soupsieve 3.0 and later need 3.11.5)
makes ``make install`` fail on a machine whose python3 is an older 3.11,
though CI's newer one passes. The installed distributions' own metadata
says which Pythons each release accepts, so the check needs no network.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def oldest_python(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The lowest version ``requires-python`` admits, e.g. ``>=3.11`` -> ``3.11.0``."""
    spec = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)(?:\.(\d+))?", spec.strip())
    assert floor, f"requires-python {spec!r} is not of the form >=X.Y[.Z]; teach this check the new form"
    return f"{floor[1]}.{floor[2]}.{floor[3] or 0}"


def pins() -> dict[str, str]:
    found = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = PIN.match(line)
            assert match, f"constraints.txt: {line!r} is not a name==version pin"
            found[canonicalize_name(match[1])] = match[2]
    return found


def refused(pinned: dict[str, str], python: str) -> list[str]:
    """The pins whose installed metadata says the release does not run on ``python``."""
    problems = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if pinned.get(name) != dist.version:
            continue
        requires = dist.metadata.get("Requires-Python")
        if requires and python not in SpecifierSet(requires):
            problems.append(f"{name}=={dist.version} requires Python {requires}")
    return problems


def test_every_pin_installs_on_the_oldest_python_the_project_accepts():
    pinned = pins()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    checked = [name for name, version in pinned.items() if installed.get(name) == version]
    # The check reads the virtualenv make built from these pins: most of them must be there to be read.
    assert len(checked) >= 0.9 * len(pinned), f"only {len(checked)} of {len(pinned)} pins are installed here"
    assert refused(pinned, oldest_python()) == []


def test_a_pin_that_needs_a_newer_python_is_refused():
    """Positive control: the installed pytest, checked against a Python older than any it supports."""
    version = metadata.version("pytest")
    assert refused({"pytest": version}, "3.0.0") == [
        f"pytest=={version} requires Python {metadata.metadata('pytest')['Requires-Python']}"]


@pytest.mark.parametrize("spec, oldest", [(">=3.11", "3.11.0"), (">= 3.12.4", "3.12.4")])
def test_the_oldest_python_is_read_from_requires_python(tmp_path, spec, oldest):
    (tmp_path / "pyproject.toml").write_text(f'[project]\nrequires-python = "{spec}"\n')
    assert oldest_python(tmp_path / "pyproject.toml") == oldest
