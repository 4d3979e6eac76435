"""Client fixtures of the chaos toolkit, and the Hypothesis profiles.

They need only ``db_connection_string`` (from ``tools/pggit_chaos/plugin/server_fixtures.py``):
a fresh database with pggit installed, owned by one test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Verbosity, settings
from psycopg import sql
from psycopg_pool import ConnectionPool

# Hypothesis profiles: pick one with --hypothesis-profile or HYPOTHESIS_PROFILE.
# Tests reuse one database across examples, which the function-scoped
# fixture health check would flag; each test keeps its examples independent.
_COMMON = dict(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=50, derandomize=False, print_blob=True, **_COMMON)
# The merge gate: the dev profile's size with a seed fixed per test, so no seed nobody chose blocks a merge.
settings.register_profile("gate", max_examples=25, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=500, verbosity=Verbosity.normal, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def sync_conn(db_connection_string: str) -> Iterator[psycopg.Connection]:
    """A connection to the test's database, autocommit off (set ``.autocommit = True`` to change)."""
    conn = psycopg.connect(db_connection_string, autocommit=False)
    try:
        yield conn
    finally:
        conn.close()


@pytest_asyncio.fixture
async def async_conn(db_connection_string: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """An asyncio connection to the test's database, autocommit off."""
    conn = await psycopg.AsyncConnection.connect(db_connection_string, autocommit=False)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def isolated_schema(sync_conn: psycopg.Connection) -> str:
    """A schema of the test's own, first on ``sync_conn``'s search_path (for the session)."""
    name = f"chaos_{uuid.uuid4().hex[:12]}"
    sync_conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    sync_conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(name)))
    sync_conn.commit()
    return name


@pytest.fixture
def make_role(pg_server, make_database) -> Iterator[Callable[..., str]]:
    """Factory of login roles with unique names; each is dropped after the test.

    ``pg_server.create_role`` marks each role as this run's and gives it the
    run's password; ``drop_role`` runs ``DROP OWNED BY`` in every database
    where the role owns or was granted something, then ``DROP ROLE``, and
    drops only roles this run created. Depending on ``make_database`` makes
    this run before the test's databases are dropped.
    """
    made: list[str] = []

    def factory(prefix: str = "pggit_role") -> str:
        name = pg_server.create_role(prefix)
        made.append(name)
        return name

    yield factory
    for name in made:
        pg_server.drop_role(name)


@pytest.fixture
def chaos_pool(db_connection_string: str) -> Iterator[ConnectionPool]:
    """A psycopg_pool pool on the test's database: 2 to 10 connections, 5 s to get one."""
    pool = ConnectionPool(
        db_connection_string, min_size=2, max_size=10, timeout=5.0, open=False,
        name="chaos_pool", kwargs={"autocommit": True},
    )
    pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        pool.close()
