"""Evaluator for SQL blocks: each runs in a fresh pggit database, prints what the page shows, and fails only where the page says it fails."""

from __future__ import annotations

import types

import pytest

from pggit_chaos.pages import sql_output
from pggit_chaos.pages.base import new_module
from pggit_chaos.pages.parse import Block

# The database each page's latest SQL block ran in, by page, for a continuation block to reuse.
_SQL_DATABASES = pytest.StashKey[dict]()
_SQL_CLEANUP = pytest.StashKey[bool]()


def module_for(block: Block) -> types.ModuleType:
    module = new_module(block)
    where = f"{block.page.name}:{block.line}"

    def test_sql_block_runs_as_shown(request):
        """The block runs in a fresh pggit database, fails only where the page says, and prints what the page shows."""
        dsn = _database_for(block, request)
        expected = block.option("error")
        result = sql_output.run(dsn, block.code)
        error = result.error
        if error is not None and expected is None:
            raise AssertionError(f"SQL block at {where} failed: {error.sqlstate} {error.message}")
        if error is not None:
            assert expected in (error.sqlstate, error.condition), (
                f"SQL block at {where} expected error {expected}, "
                f"got {error.sqlstate} ({error.condition}): {error.message}"
            )
        assert error is not None or expected is None, f"SQL block at {where} should fail with {expected} but succeeded"
        shown = block.output  # as collected: the page is not read again while the run goes on
        if shown is None:
            # The page's own checks say the same, but a run may leave them out (they start no server).
            assert block.has("setup"), (
                f"SQL block at {where} has no ```text output block directly below it; its real output:\n"
                f"{result.output}")
            return
        difference = sql_output.compare(shown.code, result.output, shown.first_code_line)
        assert difference is None, sql_output.mismatch_message(where, shown.line, shown.code, result.output, difference)

    # A page's SQL blocks stay on one xdist worker (with --dist loadgroup), so continuations find their database.
    # The mark goes on the function: a BlockModule's own module-level pytestmark is never read.
    module.test_sql_block_runs_as_shown = pytest.mark.xdist_group(f"sql:{block.page}")(test_sql_block_runs_as_shown)
    return module


def _database_for(block: Block, request) -> str:
    """A fresh pggit database for the block, or the previous SQL block's for a ``continuation``.

    These databases belong to the page, not to one test, so a continuation
    finds its predecessor's; each is dropped when the page moves on, and the
    last one when the run ends.
    """
    server = request.getfixturevalue("pg_server")
    store = request.config.stash.setdefault(_SQL_DATABASES, {})
    if block.has("continuation"):
        if block.page not in store:
            pytest.fail(f"{block.page.name}:{block.line}: a continuation block needs the SQL block before it "
                        "to have run first, in the same process (run the whole page)")
        return server.dsn(store[block.page])
    if block.page in store:
        _drop_quietly(server, store.pop(block.page))
    name = server.next_database_name("page")
    server.create_database(name, request.getfixturevalue("pggit_template"))
    store[block.page] = name
    if not request.config.stash.get(_SQL_CLEANUP, False):
        request.config.stash[_SQL_CLEANUP] = True
        request.config.add_cleanup(lambda: [_drop_quietly(server, n) for n in store.values()])
    return server.dsn(name)


def _drop_quietly(server, name: str) -> None:
    # At the end of a run the throwaway server may already be gone, and its files with it.
    try:
        server.drop_database(name)
    except Exception:  # noqa: BLE001
        pass
