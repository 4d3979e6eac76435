"""What the page evaluators and the pytest integration share: the repository, stash keys, and the block module node."""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from pggit_chaos.pages.parse import Block
from pggit_chaos.paths import REPO

__all__ = ["BLOCK_KEY", "PAGE_BLOCKS_KEY", "REPO", "BlockModule", "Evaluator", "new_module"]

# The block a BlockModule was made from (read by fixtures such as quoted_symptom).
BLOCK_KEY = pytest.StashKey[Block]()
# Every block of a page, on its GuidePage node.
PAGE_BLOCKS_KEY = pytest.StashKey[list[Block]]()

# An evaluator turns one block of its kind into the module of tests that check it.
Evaluator = Callable[[Block], types.ModuleType]


def new_module(block: Block | None, page: Path | None = None) -> types.ModuleType:
    """An empty module for a block's tests (or, without a block, for the page's own checks)."""
    page = block.page if block else page
    stem = re.sub(r"\W", "_", page.stem)
    module = types.ModuleType(f"guide_{stem}_{block.line if block else 'page'}")
    # Blocks read their own page through __file__, as a test module reads itself.
    module.__file__ = str(page)
    return module


class BlockModule(pytest.Module):
    """The tests made from one code block (or the page's own checks): a module an evaluator builds, not a file pytest imports."""

    def __init__(self, *, block: Block | None, build: Callable[[], types.ModuleType], **kwargs):
        super().__init__(**kwargs)
        self.block = block
        self._build = build
        if block is not None:
            self.stash[BLOCK_KEY] = block
        # Until collect() builds the real module, a blank one stands in, so nothing tries to import the page.
        self.obj = types.ModuleType(f"{self.name}_unbuilt")

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        # Built here, not in __init__, so a block that fails to build is its own collection error.
        self._adopt(self._build())
        return super().collect()

    def _adopt(self, module: types.ModuleType) -> None:
        """Take the module as this node's object, with its module-level marks, as pytest does for an imported one."""
        self.obj = module
        marks = getattr(module, "pytestmark", [])
        for mark in marks if isinstance(marks, list) else [marks]:
            mark = getattr(mark, "mark", mark)  # a MarkDecorator carries its Mark
            if not isinstance(mark, pytest.Mark):
                raise TypeError(f"{self.nodeid}: pytestmark holds {mark!r}, not a pytest mark")
            self.own_markers.append(mark)
            self.keywords[mark.name] = mark
