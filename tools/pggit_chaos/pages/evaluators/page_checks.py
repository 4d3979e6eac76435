"""The page's own checks: every repository path it names exists, and every block option is one the collector knows."""

from __future__ import annotations

import re
import types
from pathlib import Path

from pggit_chaos.pages.base import REPO, new_module
from pggit_chaos.pages.named_paths import named_paths, path_exists
from pggit_chaos.pages.parse import OWN_OPTIONS, PYTHON, Block

# Options pytest-markdown-docs reads on the python blocks it runs.
MARKDOWN_DOCS_OPTIONS = {"fixture", "notest", "retry"}


def module_for(page: Path, blocks: list[Block]) -> types.ModuleType:
    module = new_module(None, page)

    def test_named_paths_exist():
        """Every repository path the page names exists."""
        missing = [f"line {p.line}: {p.text}" for p in named_paths(page) if not path_exists(REPO, p.text)]
        assert not missing, f"{page.name} names paths that do not exist:\n" + "\n".join(missing)

    def test_block_options_are_known():
        """Options in info strings are ones the collector understands (a typo would silently do nothing)."""
        bad = []
        for block in blocks:
            for opt in block.options:
                name = re.split(r"[=:]", opt, maxsplit=1)[0]
                allowed = OWN_OPTIONS | {"error"} | (MARKDOWN_DOCS_OPTIONS if block.lang in PYTHON else set())
                if name not in allowed:
                    bad.append(f"line {block.line}: ```{block.lang} option {opt!r}")
        assert not bad, f"{page.name} has unknown block options:\n" + "\n".join(bad)

    module.test_named_paths_exist = test_named_paths_exist
    module.test_block_options_are_known = test_block_options_are_known
    return module
