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


def test_markdown_is_lint_clean():
    result = subprocess.run(
        [sys.executable, "-m", "pymarkdown", "scan", *map(str, MARKDOWN)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, f"pymarkdown found problems:\n{result.stdout}{result.stderr}"
