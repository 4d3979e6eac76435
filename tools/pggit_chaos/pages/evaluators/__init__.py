"""What each kind of block becomes: the evaluator registry, one module per kind, and the page's own checks."""

from __future__ import annotations

from pggit_chaos.pages.base import Evaluator
from pggit_chaos.pages.evaluators import illustrations, page_checks, shell, sql, symptoms, tests

# Block kind (parse.Block.kind) -> the evaluator that makes the block's tests. Kinds not here:
# "script" blocks are left to pytest-markdown-docs, which runs them (with their fixture: options);
# "text" blocks are prose and run nowhere.
EVALUATORS: dict[str, Evaluator] = {
    "tests": tests.module_for,
    "illustration": illustrations.module_for,
    "sql": sql.module_for,
    "shell": shell.module_for,
    "symptom": symptoms.module_for,
}

# Every page also gets its own checks, made from all its blocks at once.
PAGE_CHECKS = page_checks.module_for

# Evaluators that bring fixtures or hooks: the pytest integration registers them as plugins.
PLUGINS = [shell.__name__, symptoms.__name__]
