"""Fixtures of the extension's contract tests.

Every test gets a database of its own, cloned from the template with pggit
installed (``db_connection_string``); these fixtures only add connections to
it (``make_role``, login roles removed again whatever the test did, comes
from the plugin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest


def pytest_collection_modifyitems(items) -> None:
    """Mark every test of this folder ``contract``, so a run over several folders can select them by marker."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.contract)


@pytest.fixture
def connect(db_connection_string: str) -> Iterator[Callable[..., psycopg.Connection]]:
    """Factory of further connections to the test's database (``autocommit``, ``user``), closed after the test."""
    opened: list[psycopg.Connection] = []

    def factory(autocommit: bool = True, user: str | None = None, dsn: str | None = None) -> psycopg.Connection:
        params = {"user": user} if user else {}
        connection = psycopg.connect(dsn or db_connection_string, autocommit=autocommit, **params)
        opened.append(connection)
        return connection

    yield factory
    for connection in opened:
        connection.close()


@pytest.fixture
def conn(connect: Callable[..., psycopg.Connection]) -> psycopg.Connection:
    """A superuser connection to the test's database, in autocommit mode."""
    return connect()
