"""pytest plugin: the guides' code blocks are tests (``pages/parse.py`` says what each kind becomes).

Each page is a ``GuidePage``: one module per block an evaluator owns
(``pages/evaluators/``) and one for the page's own checks. Script blocks are
left to pytest-markdown-docs; its items for the blocks this plugin owns are
dropped, so no block runs twice. Every page block's result goes into the
results file for the site (``pages/results.py``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from pggit_chaos.pages import evaluators, parse
from pggit_chaos.pages.base import PAGE_BLOCKS_KEY, BlockModule
from pggit_chaos.pages.evaluators import tests as test_blocks
from pggit_chaos.pages.results import RESULTS_FILE, ResultsRecorder

# The evaluators' fixtures and hooks (suite_markers, quoted_symptom, ...).
pytest_plugins = evaluators.PLUGINS


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_markdown_docs_markdown_it():
    """pytest-markdown-docs' parser: one for the run, blocks only (its own is made anew for every docstring)."""
    return parse.block_parser()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--doc-results", metavar="FILE", type=Path, default=RESULTS_FILE,
        help="where page block results are merged for the site (default: _build/doc-results.json)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Declared here too, so runs without xdist (-p no:xdist) accept the grouping marker.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one xdist worker (--dist loadgroup)")
    if not hasattr(config, "workerinput"):  # xdist workers report to the controller
        path = config.getoption("doc_results").resolve()
        config.pluginmanager.register(ResultsRecorder(config, path), "pggit-doc-results")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove built test files of pages that are gone (a collection builds whatever pages it finds)."""
    if not hasattr(session.config, "workerinput"):  # once per run, by the controller
        test_blocks.prune_orphans()


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".md" and parent.config.getoption("markdowndocs", False):
        return GuidePage.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop pytest-markdown-docs' items for blocks this plugin owns."""
    owned: dict[Path, set[int] | None] = {}
    keep = []
    for item in items:
        line = _markdown_docs_fence_line(item)
        if line is not None:
            if item.path not in owned:
                owned[item.path] = _owned_lines(item.path)
            lines = owned[item.path]
            # A page that cannot be read has a collection error of its own; nothing else of it runs.
            if lines is None or line in lines:
                continue
        keep.append(item)
    items[:] = keep


def _markdown_docs_fence_line(item: pytest.Item) -> int | None:
    """The fence line of an item pytest-markdown-docs made from a page, or None for any other item.

    Told apart by public facts: it comes from a Markdown file, no GuidePage
    made it, and its name ends in ``[line:N]``.
    """
    if item.path.suffix != ".md" or item.getparent(GuidePage) is not None:
        return None
    match = re.search(r"\[line:(\d+)\]$", item.name)
    return int(match.group(1)) if match else None


def _owned_lines(page: Path) -> set[int] | None:
    """The fence lines of a page's blocks that an evaluator owns, or None if the page cannot be read."""
    try:
        return {b.line for b in parse.read_blocks(page) if b.kind in evaluators.EVALUATORS}
    except parse.PageError:
        return None


class GuidePage(pytest.File):
    """A page: one module per code block an evaluator owns, and the page's own checks."""

    def collect(self):
        try:
            blocks = parse.read_blocks(self.path)
        except parse.PageError as exc:
            raise self.CollectError(str(exc)) from exc
        self.stash[PAGE_BLOCKS_KEY] = blocks
        for block in blocks:
            evaluator = evaluators.EVALUATORS.get(block.kind)
            if evaluator:
                yield BlockModule.from_parent(
                    self, path=self.path, name=f"line-{block.line}", nodeid=f"{self.nodeid}::line-{block.line}",
                    block=block, build=functools.partial(evaluator, block),
                )
        yield BlockModule.from_parent(
            self, path=self.path, name="page", nodeid=f"{self.nodeid}::page",
            block=None, build=functools.partial(evaluators.PAGE_CHECKS, self.path, blocks),
        )


@pytest.fixture(autouse=True)
def _record_server_version(request):
    """Page tests note the PostgreSQL version they ran on (shown next to each example)."""
    if request.node.path.suffix == ".md" and "pg_server" in request.fixturenames:
        request.node.user_properties.append(("pg_version", request.getfixturevalue("pg_server").version))
    yield
