"""The page results file survives overlapping runs and a corrupt predecessor, and holds only the repository's pages.

The merge is exercised from several real processes at once; the pytest side
by real pytest runs in subprocesses on scratch pages under docs/, each
pointed at its own results file with ``--doc-results``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from pggit_chaos.pages.results import CorruptResults, read_results, update_results

from tests import forked_pytest

REPO = Path(__file__).resolve().parents[2]

# A page no server is needed for: an illustration (compiled only) and the page's own checks.
PAGE = """
    # Page

    ```python illustration
    answer = 42
    ```
    """

WRITER = """
import sys
from pathlib import Path
from pggit_chaos.pages.results import update_results

path, root, name, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for i in range(count):
    block = {"outcome": "passed", "duration": 0.001, "tests": 1}
    update_results(path, {f"{name}-{i}.md": {"sha256": None, "blocks": {"3": block}}}, ["16.0"], root=root)
"""


def _pytest(*args: str) -> subprocess.Popen:
    return forked_pytest.popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.fixture
def scratch_pages():
    """Make scratch pages under docs/ (inside the repository), removed afterwards."""
    folders: list[Path] = []

    def make(markdown: str = PAGE) -> str:
        folder = REPO / "docs" / f"_scratch_{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        folders.append(folder)
        (folder / "page.md").write_text(textwrap.dedent(markdown))
        return (folder / "page.md").relative_to(REPO).as_posix()

    yield make
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_missing_results_file_reads_as_empty(tmp_path):
    assert read_results(tmp_path / "doc-results.json") == {"pages": {}}


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"pages": {"docs/a.md": 1}}', b"\x00\x81\xff"])
def test_a_corrupt_results_file_is_started_afresh_with_a_warning(tmp_path, content):
    (tmp_path / "a.md").write_text("# A\n")
    path = tmp_path / "doc-results.json"
    path.write_bytes(content)
    with pytest.raises(CorruptResults, match="doc-results.json"):
        read_results(path)
    warning = update_results(path, {"a.md": {"sha256": None, "blocks": {}}}, ["18.1"], root=tmp_path)
    assert warning and str(path) in warning and "afresh" in warning
    assert read_results(path)["pages"] == {"a.md": {"sha256": None, "blocks": {}}}
    assert update_results(path, {}, [], root=tmp_path) is None  # the file is sound again


def test_overlapping_writers_lose_no_update_and_readers_never_see_half_a_file(tmp_path):
    path = tmp_path / "_build" / "doc-results.json"
    writers, rounds = 6, 12
    for w in range(writers):
        for i in range(rounds):
            (tmp_path / f"w{w}-{i}.md").write_text("# Page\n")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tmp_path), f"w{w}", str(rounds)])
        for w in range(writers)
    ]
    reads = 0
    while any(p.poll() is None for p in procs):
        read_results(path)  # raises CorruptResults if a reader ever caught a write half done
        reads += 1
    assert [p.returncode for p in procs] == [0] * writers
    pages = read_results(path)["pages"]
    assert set(pages) == {f"w{w}-{i}.md" for w in range(writers) for i in range(rounds)}, "an update was lost"
    assert reads > 0
    assert not list(path.parent.glob(".doc-results.json.*.tmp")), "a temporary file was left behind"
    assert (path.parent / "doc-results.json.lock").exists()


def test_a_run_over_a_corrupt_results_file_warns_and_records_its_pages(scratch_pages, tmp_path):
    results = tmp_path / "doc-results.json"
    results.write_text('{"pages": ')  # a write cut short by an older, unlocked writer
    page = scratch_pages()
    run = _pytest(page, "--doc-results", str(results))
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert "ResultsFileWarning" in output and "starting it afresh" in output
    block = json.loads(results.read_text())["pages"][page]["blocks"]["4"]
    assert (block["outcome"], block["tests"]) == ("passed", 1)


def test_overlapping_pytest_runs_all_land_in_one_results_file(scratch_pages, tmp_path):
    results = tmp_path / "doc-results.json"
    pages = [scratch_pages() for _ in range(3)]
    runs = [_pytest(page, "--doc-results", str(results)) for page in pages]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    data = json.loads(results.read_text())
    for page in pages:
        assert data["pages"][page]["blocks"]["4"]["outcome"] == "passed"
        assert data["pages"][page]["sha256"]


def test_pages_outside_the_repository_are_not_recorded(tmp_path):
    (tmp_path / "page.md").write_text(textwrap.dedent(PAGE))
    results = tmp_path / "doc-results.json"
    # Outside the checkout the root conftest does not apply, so the plugin is named explicitly.
    run = _pytest(str(tmp_path / "page.md"), "-p", "pggit_chaos.pages.integration", "--markdown-docs",
                  "--doc-results", str(results))
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert "PASSED" in output and "::line-4::test_illustration_is_valid_code" in output
    assert not results.exists() or read_results(results)["pages"] == {}


def test_built_files_of_pages_that_no_longer_exist_are_pruned_and_the_others_kept(tmp_path):
    """A scratch or renamed page's built folder goes; a real page's stays (positive control)."""
    from pggit_chaos.pages.evaluators.tests import prune_orphans

    orphan = tmp_path / "docs" / "_scratch_gone.md"
    real = tmp_path / "docs" / "testing" / "PATTERNS.md"
    for folder in (orphan, real):
        (folder / "block").mkdir(parents=True)
        (folder / "block" / "test_x.py").write_text("")
    prune_orphans(tmp_path)
    assert not orphan.exists()
    assert (real / "block" / "test_x.py").exists()
