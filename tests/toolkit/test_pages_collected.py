"""The suite's collected markers are kept on disk, named by a fingerprint of every source that can change them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pggit_chaos.pages import collected


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A repository of a few files, as the fingerprint sees it, and a cache folder of its own."""
    for name in ("pyproject.toml", "conftest.py", "tests/test_a.py", "docs/page.md", "tools/pkg/mod.py",
                 ".github/workflows/main.yml", "_build/html/page.md", ".venv/lib/site.py", ".git/index"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    monkeypatch.setattr(collected, "REPO", tmp_path)
    monkeypatch.setattr(collected, "CACHE_DIR", tmp_path / "_build" / "collected")
    return tmp_path


def _touch(path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))  # a later time, whatever the clock's grain


@pytest.mark.parametrize("changed", ["tests/test_a.py", "docs/page.md", "pyproject.toml", "tools/pkg/new.py",
                                     "docs/new/page.md", ".github/workflows/main.yml", "docs/recovery/fix.sql"])
def test_a_change_to_a_source_changes_the_fingerprint(tree, changed):
    before = collected.fingerprint()
    assert collected.fingerprint() == before  # the positive control: nothing changed, nothing moves
    _touch(tree / changed, "changed")
    assert collected.fingerprint() != before, changed


@pytest.mark.parametrize("unrelated", ["_build/html/page.md", ".venv/lib/site.py", ".git/index",
                                       "docs/_scratch_1a2b/page.md", "tests/__pycache__/test_a.cpython-311.pyc"])
def test_builds_caches_git_and_scratch_pages_leave_it_alone(tree, unrelated):
    before = collected.fingerprint()
    _touch(tree / unrelated, "changed")
    assert collected.fingerprint() == before, unrelated


def test_a_kept_collection_is_read_without_running_pytest(tree, monkeypatch):
    kept = collected.CACHE_DIR / f"{collected.fingerprint()}.json"
    kept.parent.mkdir(parents=True)
    kept.write_text('{"tests/test_a.py::test_x": ["chaos", "slow"]}')
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a) or subprocess.CompletedProcess(a, 1, "", ""))
    assert collected.collected_markers() == {"tests/test_a.py::test_x": ["chaos", "slow"]}
    assert not ran

    # The positive control: once a source changes, that file is not the suite's any more, and pytest runs.
    _touch(tree / "tests/test_a.py", "changed")
    with pytest.raises(RuntimeError, match="collecting the suite failed"):
        collected.collected_markers()
    assert len(ran) == 1 and "--collect-only" in ran[0][0]


def test_the_real_suite_is_collected_with_every_test_and_its_markers():
    """The shell checks and the workflow checks read this: soak tests too, each with its markers' names."""
    markers = collected.collected_markers()
    assert len(markers) > 1000
    assert "soak" in markers["tests/chaos/test_isolation_levels.py::test_every_operation_against_every_other"
                             "[add_column-read_committed-interleaved]"]
    assert "chaos" in markers["examples/test_example_crash.py::test_acknowledged_commits_survive_a_crash"]
    assert not list(collected.CACHE_DIR.glob("*.partial"))


def test_scratch_pages_other_tests_write_meanwhile_are_not_collected(tmp_path, monkeypatch):
    """A page a test writes under docs/_scratch_* for a moment is neither the suite's nor able to break its
    collection, whatever it holds and however briefly it exists."""
    files = {"pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests", "docs"]\n',
             "tests/test_a.py": "def test_a():\n    pass\n",
             "docs/_scratch_1a2b/test_broken.py": "def test_broken(:\n",
             "docs/kept/test_b.py": "def test_b():\n    pass\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(collected, "REPO", tmp_path)
    monkeypatch.setattr(collected, "CACHE_DIR", tmp_path / "_build" / "collected")
    # The positive control: pytest itself fails on the broken scratch file when nothing leaves it out.
    plain = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                            "-p", "no:xdist"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "test_broken.py" in plain.stdout, plain.stdout
    assert set(collected.collected_markers()) == {"tests/test_a.py::test_a", "docs/kept/test_b.py::test_b"}


def test_a_package_installed_or_removed_changes_it(tree, tmp_path_factory, monkeypatch):
    site = tmp_path_factory.mktemp("site-packages")
    monkeypatch.setattr(collected.sysconfig, "get_paths", lambda: {"purelib": str(site)})
    before = collected.fingerprint()
    (site / "newpkg-1.0.dist-info").mkdir()
    os.utime(site, ns=(1, site.stat().st_mtime_ns + 1_000_000))
    assert collected.fingerprint() != before
