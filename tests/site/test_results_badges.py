"""The results badges: right after an incremental build, and only from runs of the project's own pggit on its own server.

A one-page project with the handbook's Sphinx extension is built twice into
one output directory, each time from a results file this test writes
(``-D doc_results_file``): the second, incremental build must show the
second file's results on a page whose text did not change. (The whole site's
build is test_site.py's; building it here again cost 12 CPU-seconds.) The
writer side runs real pytest sessions on a scratch page, one with a pggit
script that is not the project's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pggit_chaos.pages import parse
from pggit_chaos.pages.results import (EXISTING_SERVER, OWN_SERVER, RESULTS_FILE, foreign_reason, own_pggit_sha256,
                                       read_results, run_source)

from tests import forked_pytest

REPO = Path(__file__).resolve().parents[2]
PAGE = "docs/index.md"  # the one page of the project the incremental builds build
# The handbook's extension (badges) and parser, nothing else: what the badges need, at a fraction of the site's cost.
CONF = 'extensions = ["myst_parser", "pggit_chaos.pages.sphinx"]\nroot_doc = "docs/index"\n'
PAGE_TEXT = """# One page

A block that ran:

```python fixture:sync_conn
assert sync_conn.execute("SELECT 1").fetchone() == (1,)
```
"""
# No xdist group: these tests build into directories of their own and share nothing with the built site of
# test_site.py, so another worker runs them while one builds that.


def _project(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "conf.py").write_text(CONF)
    (root / PAGE).write_text(PAGE_TEXT)
    return root


def _write_results(project: Path, path: Path, outcome: str, *, server: str = OWN_SERVER,
                   pggit_sha256: str | None = None) -> None:
    page = project / PAGE
    [line] = [b.line for b in parse.read_blocks(page) if b.kind == "script"]
    path.write_text(json.dumps({"pages": {PAGE: {
        "sha256": hashlib.sha256(page.read_bytes()).hexdigest(),
        "blocks": {str(line): {"outcome": outcome, "duration": 0.25, "tests": 1}},
        "pggit_sha256": pggit_sha256 or own_pggit_sha256(), "server": server,
        "finished": "2026-01-02 03:04:05 UTC", "pg_versions": ["16.9"],
    }}}))


def _build(project: Path, out: Path, results: Path) -> str:
    """Build ``project`` into ``out``; return what Sphinx said it read (the pages it rebuilt)."""
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-b", "html",
         "-d", str(out / ".doctrees"), "-D", f"doc_results_file={results}", str(project), str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _badges(out: Path) -> list[str]:
    html = (out / PAGE.replace(".md", ".html")).read_text(encoding="utf-8")
    return re.findall(r'<div class="block-result ([\w-]+) docutils container">\s*<p>([^<]*)</p>', html)


def test_an_incremental_build_shows_the_new_results(tmp_path):
    project, out, results = _project(tmp_path / "project"), tmp_path / "html", tmp_path / "doc-results.json"
    _write_results(project, results, "passed")
    assert "1 added, 0 changed, 0 removed" in _build(project, out, results)
    assert _badges(out) == [("block-result-passed",
                             "✔ passed · ran · 0.25 s · PostgreSQL 16.9 · run 2026-01-02 03:04:05 UTC")]

    # The page's text is unchanged; only its results are new. The second build is incremental: the environment
    # is kept (nothing added), and the page is read again because its badges changed.
    _write_results(project, results, "failed")
    assert "0 added, 1 changed, 0 removed" in _build(project, out, results)
    assert _badges(out) == [("block-result-failed",
                             "✘ failed · ran · 0.25 s · PostgreSQL 16.9 · run 2026-01-02 03:04:05 UTC")]

    # Results from an existing server (--dsn) are not the site's: the block shows as not run.
    _write_results(project, results, "passed", server=EXISTING_SERVER)
    _build(project, out, results)
    assert _badges(out) == [("block-result-not-run", "Not run in the latest verified run")]

    # Results that ran against another pggit than extension/ holds now are stale.
    _write_results(project, results, "passed", pggit_sha256="0" * 64)
    _build(project, out, results)
    [(css, text)] = _badges(out)
    assert css == "block-result-stale" and text.startswith("STALE (pggit changed since this run) · ✔ passed")


def test_every_kind_of_block_says_how_it_was_verified(tmp_path):
    """Ran, checked or compiled, by the kind of block (the extension's own function, on real pages)."""
    from pggit_chaos.pages.sphinx import page_badges

    page = REPO / "docs" / "contributing" / "writing-pages.md"
    blocks = parse.read_blocks(page)
    relative = page.relative_to(REPO).as_posix()
    entry = {"outcome": "passed", "duration": 0.5, "tests": 1}
    results = {"pages": {relative: {
        "sha256": hashlib.sha256(page.read_bytes()).hexdigest(), "blocks": {str(b.line): entry for b in blocks},
        "pggit_sha256": own_pggit_sha256(), "server": OWN_SERVER, "finished": "now", "pg_versions": ["18.1"],
    }}}
    how = {line: text.split(" · ")[1] for line, _, text, _ in page_badges(page, relative, results, own_pggit_sha256())}
    kinds = {b.line: b.kind for b in blocks}
    by_kind = {kinds[line]: text for line, text in how.items()}
    assert by_kind == {
        "tests": "ran", "script": "ran", "sql": "ran", "shell": "checked, not run",
        "symptom": "checked: a test below reproduces the quoted message", "illustration": "compiled, never run",
    }
    assert all(kinds[line] != "output" for line in how), "an output block has no badge of its own"


# ---------------------------------------------------------------------------
# The writer: only the project's own pggit, on a server the run starts
# ---------------------------------------------------------------------------


@pytest.fixture
def scratch_page():
    """A page under docs/ that needs no server: one illustration (compiled only) and the page's own checks."""
    folder = REPO / "docs" / f"_scratch_{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "page.md").write_text("# Page\n\n```python illustration\nanswer = 42\n```\n")
    yield (folder / "page.md").relative_to(REPO).as_posix()
    shutil.rmtree(folder, ignore_errors=True)


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return forked_pytest.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_run_of_another_pggit_build_never_writes_the_sites_results(scratch_page, tmp_path):
    mutant = tmp_path / "pggit--1.0.0.sql"
    mutant.write_text((REPO / "extension" / "pggit--1.0.0.sql").read_text() + "\n-- another build\n")
    run = _pytest(scratch_page, "--pggit-sql", str(mutant))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "page results not recorded for the site" in run.stdout
    assert "another pggit build" in run.stdout
    assert scratch_page not in read_results(RESULTS_FILE)["pages"]

    # Asked for a results file of its own, the same run records what it ran against.
    elsewhere = tmp_path / "mutant-results.json"
    run = _pytest(scratch_page, "--pggit-sql", str(mutant), "--doc-results", str(elsewhere))
    assert run.returncode == 0, run.stdout + run.stderr
    page = read_results(elsewhere)["pages"][scratch_page]
    assert page["pggit_sha256"] == hashlib.sha256(mutant.read_bytes()).hexdigest() != own_pggit_sha256()
    assert page["server"] == OWN_SERVER and page["finished"]
    assert foreign_reason(page, own_pggit_sha256()) is not None


def test_a_run_of_the_projects_own_pggit_writes_the_sites_results(scratch_page):
    run = _pytest(scratch_page)
    assert run.returncode == 0, run.stdout + run.stderr
    page = read_results(RESULTS_FILE)["pages"][scratch_page]
    assert (page["server"], page["pggit_sha256"]) == (OWN_SERVER, own_pggit_sha256())
    assert foreign_reason(page, own_pggit_sha256()) is None
    assert page["blocks"]["3"]["outcome"] == "passed"


def test_the_run_source_names_the_server_and_the_script(tmp_path):
    own = run_source({}, {})
    assert own == {"pggit_sha256": own_pggit_sha256(), "server": OWN_SERVER}
    existing = run_source({}, {"PGGIT_TEST_DSN": "postgresql://someone@db.example/app"})
    assert existing == {"pggit_sha256": None, "server": EXISTING_SERVER}
    assert "existing server" in foreign_reason(existing, own_pggit_sha256())
    assert run_source({"pggit_sql": str(tmp_path / "missing.sql")}, {}) is None  # refused: the run stops
