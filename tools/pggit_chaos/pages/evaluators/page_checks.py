"""The page's own checks: every repository path it names exists, every block option is one the collector knows,
and every SQL block shows its output or is setup for a later block that does."""

from __future__ import annotations

import re
import types
from pathlib import Path

from pggit_chaos.pages.base import REPO, new_module
from pggit_chaos.pages.named_paths import named_paths, path_exists
from pggit_chaos.pages.parse import OWN_OPTIONS, PYTHON, Block, output_of

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

    def test_sql_blocks_show_their_output():
        """A SQL block shows its output; a ``setup`` block, shown without one, is continued by a block that does."""
        problems = sql_output_problems(blocks)
        assert not problems, f"{page.name} has SQL blocks that do not show what they print:\n" + "\n".join(problems)

    module.test_named_paths_exist = test_named_paths_exist
    module.test_block_options_are_known = test_block_options_are_known
    module.test_sql_blocks_show_their_output = test_sql_blocks_show_their_output
    return module


def sql_output_problems(blocks: list[Block]) -> list[str]:
    """Where a page breaks the rule of SQL outputs, one line each.

    Every ``sql`` block is followed directly by a ``text output`` block
    showing what it prints, unless it is marked ``setup``: then it shows
    nothing, and one of the ``continuation`` blocks right after it (the
    blocks that run in its database) shows an output, so the effect of the
    setup is checked. An output block belongs directly below a ``sql``
    block that runs.
    """
    problems = []
    sql = [b for b in blocks if b.kind == "sql"]
    outputs = {output_of(b, blocks).line for b in sql if output_of(b, blocks) is not None}
    for i, block in enumerate(sql):
        shown = output_of(block, blocks)
        if shown is not None and block.has("setup"):
            problems.append(f"line {block.line}: a setup block shows no output, but this one has one at line "
                            f"{shown.line}: drop the setup mark or the output")
        elif shown is None and not block.has("setup"):
            problems.append(f"line {block.line}: ```{block.lang} block without a ```text output block directly "
                            "below it (its real output, which the failure of its test prints); only a block "
                            "marked setup, whose effect a continuation block shows, may go without")
        elif shown is None:
            chain = []
            for later in sql[i + 1:]:
                if not later.has("continuation"):
                    break
                chain.append(later)
            if not any(output_of(b, blocks) is not None for b in chain):
                problems.append(f"line {block.line}: a setup block needs a continuation block after it that "
                                "shows an output, so its effect is checked")
    for block in blocks:
        if block.kind == "output" and block.line not in outputs:
            problems.append(f"line {block.line}: a ```text output block must sit directly below the ```sql "
                            "block whose output it shows (only blank lines between)")
    return problems
