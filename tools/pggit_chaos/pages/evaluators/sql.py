"""Evaluator for SQL blocks: each runs in a fresh pggit database and fails only where the page says it fails."""

from __future__ import annotations

import re
import types

import psycopg
import pytest

from pggit_chaos.pages.base import new_module
from pggit_chaos.pages.parse import Block

# The database each page's latest SQL block ran in, by page, for a continuation block to reuse.
_SQL_DATABASES = pytest.StashKey[dict]()
_SQL_CLEANUP = pytest.StashKey[bool]()


def module_for(block: Block) -> types.ModuleType:
    module = new_module(block)

    def test_sql_block_runs_as_shown(request):
        """The block runs in a fresh pggit database and fails only where the page says it fails."""
        dsn = _database_for(block, request)
        expected = block.option("error")
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                conn.execute(block.code)
            except psycopg.Error as exc:
                if expected is None:
                    raise AssertionError(
                        f"SQL block at {block.page.name}:{block.line} failed: "
                        f"{exc.sqlstate} {exc.diag.message_primary}"
                    ) from exc
                assert expected in (exc.sqlstate, _condition_name(exc)), (
                    f"SQL block at {block.page.name}:{block.line} expected error {expected}, "
                    f"got {exc.sqlstate} ({_condition_name(exc)}): {exc.diag.message_primary}"
                )
                return
        assert expected is None, (
            f"SQL block at {block.page.name}:{block.line} should fail with {expected} but succeeded"
        )

    module.test_sql_block_runs_as_shown = test_sql_block_runs_as_shown
    # A page's SQL blocks stay on one xdist worker (with --dist loadgroup), so continuations find their database.
    module.pytestmark = [pytest.mark.xdist_group(f"sql:{block.page}")]
    return module


def _condition_name(exc: psycopg.Error) -> str:
    """psycopg's class name for a SQLSTATE, as PostgreSQL's condition name (UniqueViolation -> unique_violation)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


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
