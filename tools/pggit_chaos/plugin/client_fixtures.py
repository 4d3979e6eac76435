"""Client fixtures of the chaos toolkit (the Hypothesis profiles they run under are ``pggit_chaos.profiles``).

They need only ``db_connection_string`` (from ``tools/pggit_chaos/plugin/server_fixtures.py``):
a fresh database with pggit installed, owned by one test.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql
from psycopg_pool import ConnectionPool


class _ProfilesAfterHypothesis(importlib.abc.MetaPathFinder):
    """Loads ``pggit_chaos.profiles`` the moment Hypothesis is first imported, before anything can use it.

    A test's ``@settings`` copies the profile loaded when its module is
    imported, so the profiles must be in place by then; importing Hypothesis
    up front for that cost every pytest process about 0.15 CPU-seconds,
    most of them runs (the suite's inner ones) with no property in them.
    """

    def find_spec(self, name, path, target=None):
        if name != "hypothesis":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        # The loader may be shared (pytest's assertion rewriter loads every module of a plugin's
        # distribution, Hypothesis's submodules too): only the package itself is followed by the profiles.
        loader, execute = spec.loader, spec.loader.exec_module

        def exec_module(module) -> None:
            if module.__name__ != name:
                return execute(module)
            try:
                execute(module)
            finally:
                loader.exec_module = execute
            from pggit_chaos import profiles  # noqa: F401 - registers and loads the Hypothesis profiles

        loader.exec_module = exec_module
        return spec


if "hypothesis" in sys.modules:
    from pggit_chaos import profiles  # noqa: F401 - as above, Hypothesis being there already
elif not any(isinstance(finder, _ProfilesAfterHypothesis) for finder in sys.meta_path):
    sys.meta_path.insert(0, _ProfilesAfterHypothesis())


# The function_scoped_fixture health check stays on: an example gets a
# database of its own from fresh_database / fresh_connection (session-scoped
# factories), never one shared through a per-test fixture.
# The @given tests that still take a function-scoped fixture and so share one
# database (or directory) across their examples, by node id prefix, each with
# why; the function_scoped_fixture health check is off for them alone.
SHARED_ACROSS_EXAMPLES = {
    "docs/testing/": "the guides show the shortest form, one sync_conn per test; each example "
                     "reads back only what it wrote",
    "examples/test_example_property.py": "the learning example in the guides' short form",
    "tests/chaos/test_backup_restore.py": "make_database is a factory: each example makes databases of its own",
    "tests/chaos/test_integrity_invariants.py": "make_database is a factory: each example makes a database of its own",
    "tests/chaos/test_isolation_levels.py": "each example races in names of its own (the spaces fixture); "
                                            "not yet on fresh_database",
    "tests/chaos/test_partitions.py": "each example builds its tree in a schema of its own; not yet on fresh_database",
    "tests/chaos/test_privileges_readers.py": "the roles and tables are set up once per test; each example "
                                              "undoes its changes; not yet on fresh_database",
    "tests/chaos/test_security.py": "the roles and planted objects are set up once per test; not yet on "
                                    "fresh_database",
    "tests/chaos/test_session_settings.py": "each example only reads under other settings; not yet on fresh_database",
    "tests/toolkit/test_toolkit_strategies.py": "each example rolls back what it made, or writes under a name of "
                                                "its own in tmp_path",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if "hypothesis" not in sys.modules:  # no module collected uses it: no @given test to adjust
        return
    from hypothesis import HealthCheck, settings

    for item in items:
        if not any(item.nodeid.startswith(prefix) for prefix in SHARED_ACROSS_EXAMPLES):
            continue
        function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        current = getattr(function, "_hypothesis_internal_use_settings", None)
        if current is not None:  # a @given test: the settings Hypothesis reads for this test
            function._hypothesis_internal_use_settings = settings(
                current, suppress_health_check=[*current.suppress_health_check, HealthCheck.function_scoped_fixture])


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


@pytest.fixture(scope="session")
def fresh_connection(fresh_database) -> Callable[..., contextlib.AbstractContextManager[psycopg.Connection]]:
    """Factory of connections to databases of their own: ``with fresh_connection() as conn:``, one per example.

    Each block connects (autocommit off unless ``autocommit=True``) to a new
    clone of the pggit template from ``fresh_database``; at the end of the
    block the connection is closed without committing and the database is
    dropped. Session-scoped, so a ``@given`` test may take it.
    """

    @contextlib.contextmanager
    def connect(autocommit: bool = False, prefix: str = "example") -> Iterator[psycopg.Connection]:
        with fresh_database(prefix) as dsn:
            conn = psycopg.connect(dsn, autocommit=autocommit)
            try:
                yield conn
            finally:
                conn.close()

    return connect


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
