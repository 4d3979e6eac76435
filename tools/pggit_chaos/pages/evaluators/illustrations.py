"""Evaluator for illustrations: fragments and anti-patterns shown on purpose, checked to parse, never run."""

from __future__ import annotations

import subprocess
import types

from pggit_chaos.pages.base import new_module
from pggit_chaos.pages.parse import PYTHON, SHELL, SQL, Block


def module_for(block: Block) -> types.ModuleType:
    module = new_module(block)

    def test_illustration_is_valid_code():
        """An illustration is never run, but it must still parse."""
        if block.lang in PYTHON:
            compile(block.padded_code(), str(block.page), "exec")
        elif block.lang in SQL:
            _check_sql_balanced(block)
        elif block.lang in SHELL:
            subprocess.run(["bash", "-n"], input=block.code, text=True, check=True)

    module.test_illustration_is_valid_code = test_illustration_is_valid_code
    return module


def _check_sql_balanced(block: Block) -> None:
    """A lexical check of SQL: balanced quotes and parentheses.

    Illustrations are fragments, and no server is at hand here, so the real
    parser cannot judge them; balance is the useful part that is left.
    """
    depth, quote = 0, None
    for ch in block.code:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
    assert quote is None and depth == 0, f"unbalanced quotes or parentheses in the SQL at line {block.line}"
