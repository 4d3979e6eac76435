"""The site's Markdown sources: lint-clean, and every external link a well-formed https URL.

They read the sources, not the built site, so they are not in the ``site`` xdist group: another worker
runs them while one builds the site.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# docs/_scratch_* are pages that tests of the page machinery make for a few seconds: not the site's, and
# perhaps gone by the time the lint runs on another worker.
MARKDOWN = sorted(p for p in (REPO / "docs").rglob("*.md") if not p.relative_to(REPO / "docs").parts[0].startswith(
    "_scratch_")) + [REPO / name for name in ("README.md", "extension/README.md", "CONTRIBUTING.md", "CHANGELOG.md")]


def test_external_urls_are_well_formed():
    """External links are checked online by Sphinx's linkcheck in CI; offline, each must at least be a real URL."""
    bad = []
    for page in MARKDOWN:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            for url in re.findall(r"https?://[^\s)>\]`\"']+", line):
                parts = urllib.parse.urlsplit(url)
                if parts.scheme != "https" or "." not in parts.hostname or " " in url or ".." in parts.hostname:
                    bad.append(f"{page.relative_to(REPO)}:{number}: {url}")
    assert not bad, "malformed or non-https external URLs:\n" + "\n".join(bad)


def lint(*paths: Path) -> subprocess.CompletedProcess:
    """rumdl (markdownlint's rules) over ``paths``, with the project's configuration in pyproject.toml."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("rumdl")), "check", "--no-cache", "--config", str(REPO / "pyproject.toml"),
         *map(str, paths)], capture_output=True, text=True, cwd=REPO, timeout=300,
    )


def test_markdown_is_lint_clean():
    result = lint(*MARKDOWN)
    assert result.returncode == 0, f"rumdl found problems:\n{result.stdout}{result.stderr}"


def test_the_lint_flags_a_page_that_breaks_its_rules_and_reads_myst_directives(tmp_path):
    """The positive control: the lint fails a broken page, naming each rule on its line, and a MyST directive's
    fence is not taken for code that lacks its language."""
    page = tmp_path / "broken.md"
    page.write_text("# Title\n\n#Missing space\n\n```\nno language\n```\n\n```{toctree}\n:maxdepth: 1\n```\n",
                    encoding="utf-8")
    result = lint(page)
    assert result.returncode != 0, f"rumdl passed a broken page:\n{result.stdout}{result.stderr}"
    assert re.search(r"broken\.md:3:\d+: \[MD018\]", result.stdout), result.stdout
    assert re.search(r"broken\.md:5:\d+: \[MD040\]", result.stdout), result.stdout
    assert "broken.md:9:" not in result.stdout, f"the {{toctree}} directive was flagged:\n{result.stdout}"
