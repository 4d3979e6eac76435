"""Evaluator for quoted symptoms: an error message a page quotes must be reproduced by a test in its section.

Also a pytest plugin: the ``quoted_symptom`` fixture such a test asks for.
"""

from __future__ import annotations

import re
import types

import pytest

from pggit_chaos.pages.base import BLOCK_KEY, BlockModule, new_module
from pggit_chaos.pages.parse import Block, read_blocks, test_parameters


def module_for(block: Block) -> types.ModuleType:
    module = new_module(block)

    def test_symptom_is_reproduced_by_a_test():
        """A quoted error message needs a test in its section that reproduces it."""
        reproducers = symptom_reproducers(block, read_blocks(block.page))
        assert reproducers, (
            f"{block.page.name}:{block.line}: the symptom quoted in section {block.section!r} "
            f"has no test block after it in that section that asks for the quoted_symptom fixture"
        )

    module.test_symptom_is_reproduced_by_a_test = test_symptom_is_reproduced_by_a_test
    return module


def symptom_matches(quoted: str, actual: str) -> bool:
    """Does a real error message match the one quoted on the page?

    Whitespace runs compare equal; ``...`` in the quote stands for any text
    (ids, timings and pids differ from run to run).
    """
    def norm(s: str) -> str:
        return " ".join(s.split())

    pattern = ".*?".join(re.escape(part) for part in norm(quoted).split("..."))
    return re.fullmatch(pattern, norm(actual), flags=re.DOTALL) is not None


def symptom_for(block: Block, blocks: list[Block]) -> Block | None:
    """The symptom quoted in the same section as ``block``, before it."""
    found = None
    for other in blocks:
        if other.line >= block.line:
            break
        if other.kind == "symptom" and other.section_index == block.section_index:
            found = other
    return found


def symptom_reproducers(symptom: Block, blocks: list[Block]) -> list[Block]:
    """Test blocks after the symptom, in its section, that ask for ``quoted_symptom``."""
    return [
        b for b in blocks
        if b.line > symptom.line and b.section_index == symptom.section_index
        and b.kind == "tests" and "quoted_symptom" in test_parameters(b.code)
    ]


class QuotedSymptom:
    """The error message a page quotes, for a test that reproduces the real one."""

    def __init__(self, block: Block):
        self.block = block
        self.text = block.code.strip()

    def assert_matches(self, actual: str) -> None:
        assert symptom_matches(self.text, actual), (
            f"the message quoted at {self.block.page.name}:{self.block.line} no longer matches the real one.\n"
            f"quoted: {self.text}\nreal:   {actual}"
        )


@pytest.fixture
def quoted_symptom(request) -> QuotedSymptom:
    """The symptom quoted above the requesting test block, in the same section of its page."""
    module_node = request.node.getparent(BlockModule)
    block = module_node.stash.get(BLOCK_KEY, None) if module_node else None
    if block is None:
        pytest.fail("quoted_symptom is only for test blocks inside a guide page")
    symptom = symptom_for(block, read_blocks(block.page))
    if symptom is None:
        pytest.fail(f"{block.page.name}:{block.line}: no ```text symptom block above this test in its section")
    return QuotedSymptom(symptom)
