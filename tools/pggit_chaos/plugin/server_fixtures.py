"""pytest plugin, server half: the options, hooks and server fixtures; the server room (pggit_chaos.server) does the work.

Server fixtures live here, apart from the client fixtures in
``tools/pggit_chaos/plugin/client_fixtures.py`` (the split pytest-postgresql uses): this module
knows how to get a server; the client fixtures only need a connection string.

Options (each also read from an environment variable, so CI and make can set them):

--pg-version N     PostgreSQL major version (PGGIT_PG_VERSION); default: the
                   oldest the wheel ships (16), or 15/14/17 from /usr/lib/postgresql
--pg-bindir DIR    a local install's bin directory (PGGIT_PG_BINDIR)
--pg-config PATH   a local install's pg_config (PG_CONFIG)
--dsn DSN          an existing server with pggit's files installed (PGGIT_TEST_DSN);
                   tests that restart, crash or reconfigure the server skip, and so
                   do tests that need a superuser when the DSN's role is not one;
                   the report header names the server (never the password)
--pggit-sql PATH   install this script instead of extension/pggit--<version>.sql

A run ended by SIGINT, SIGTERM or SIGHUP stops its servers first
(``pggit_chaos.server.signals``); under xdist the controller passes the
signal on to its workers, which own the servers.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pggit_chaos import server
from pggit_chaos.nemesis.proxy import FaultyProxy
from pggit_chaos.server import initdb_cache, janitor, signals
from pggit_chaos.server.settings import SOURCES
from pggit_chaos.server.sweep import describe

SETTINGS = pytest.StashKey[server.ServerSettings]()
CLUSTER_START_SECONDS = pytest.StashKey[float]()
SUPERUSER_ROLE = pytest.StashKey[tuple[str, bool]]()
HEADER = pytest.StashKey[str]()
# Why a test that needs control of the server skips: the end of each skip message.
EXISTING = "--dsn/PGGIT_TEST_DSN points at an existing one"
# Fixtures that install pggit, whose control file says superuser = true (event triggers need one).
INSTALLS_PGGIT = ("pggit_template", "db_connection_string")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pggit", "pggit test server")
    # Checked by ServerSettings, not argparse, so a bad option and a bad variable get the same message.
    group.addoption("--pg-version", default=None,
                    help="PostgreSQL major version to run (env PGGIT_PG_VERSION)")
    group.addoption("--pg-bindir", default=None, help="bin directory of a local PostgreSQL (env PGGIT_PG_BINDIR)")
    group.addoption("--pg-config", default=None, help="pg_config of a local PostgreSQL (env PG_CONFIG)")
    group.addoption("--dsn", default=None,
                    help="use this running server instead of starting one (env PGGIT_TEST_DSN)")
    group.addoption("--pggit-sql", default=None,
                    help="install this SQL script as pggit instead of the one in extension/")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_control: needs a server this run started (skipped with --dsn)")
    config.addinivalue_line("markers", "needs_superuser: needs a superuser role (skipped when the --dsn role "
                                       "is not one); given to every test that installs pggit")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Check a --dsn server once, before any test: an unreachable one ends the run with one message.

    And an xdist controller owns no server, its workers do: a signal it gets goes on to them, and it makes
    the initdb cache they share (one initdb for the run, not one a worker).
    """
    config = session.config
    dsn_given = config.getoption("--dsn") or os.environ.get(SOURCES["dsn"][1])
    if dsn_given:
        settings = server_settings(config)
        with _existing_server(settings) as existing:
            role = "a superuser" if existing.is_superuser else "not a superuser: tests marked needs_superuser skip"
            config.stash[SUPERUSER_ROLE] = (existing.user, existing.is_superuser)
            config.stash[HEADER] = (f"pggit server: existing server ({settings.dsn_source}) {existing.target}, "
                                    f"PostgreSQL {existing.version}, role {role}")
    if config.pluginmanager.has_plugin("dsession"):
        signals.acquire(forward_to_children=True)
        config.add_cleanup(signals.release)
        if not dsn_given:
            initdb_cache.share()  # before xdist's own sessionstart (trylast) starts the workers


def pytest_report_header(config: pytest.Config) -> list[str]:
    """With --dsn: which server the run uses (host, port, database, user, version; never the password)."""
    return [config.stash[HEADER]] if HEADER in config.stash else []


@contextlib.contextmanager
def _existing_server(settings: server.ServerSettings) -> Iterator[server.ExistingServer]:
    """The --dsn server, or the end of the run with one message naming the option and the reason."""
    try:
        existing = server.ExistingServer(settings.dsn)
    except psycopg.Error as exc:
        pytest.exit(f"{settings.dsn_source} {describe(settings.dsn)}: cannot connect: {' '.join(str(exc).split())}",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    try:
        yield existing
    finally:
        existing.destroy()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in INSTALLS_PGGIT):
            item.add_marker(pytest.mark.needs_superuser)


def _superuser_refusal(config: pytest.Config) -> str | None:
    """Why a test that needs a superuser cannot run on the --dsn server, or None when it can."""
    settings = server_settings(config)
    if not settings.dsn:
        return None
    if SUPERUSER_ROLE not in config.stash:
        with _existing_server(settings) as existing:
            config.stash[SUPERUSER_ROLE] = (existing.user, existing.is_superuser)
    user, superuser = config.stash[SUPERUSER_ROLE]
    return None if superuser else (f"needs a superuser (pggit's control file says superuser = true); "
                                   f"the role {user!r} of {settings.dsn_source} is not one")


def server_settings(config: pytest.Config) -> server.ServerSettings:
    """The run's server settings, resolved once; a bad value ends the run with its message, not a traceback.

    Resolved on first use rather than at start-up: the plugin is loaded into
    every pytest run where the package is installed, and a run that needs no
    server must not stop over a stray PG_CONFIG.
    """
    if SETTINGS not in config.stash:
        options = {name: config.getoption(option) for name, (option, _) in SOURCES.items()}
        try:
            config.stash[SETTINGS] = server.ServerSettings.resolve(options, os.environ)
        except server.SettingsError as exc:
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    return config.stash[SETTINGS]


@contextlib.contextmanager
def _skip_when_not_controllable() -> Iterator[None]:
    """A control refused by an existing server (--dsn) skips the test, saying why."""
    try:
        yield
    except server.ServerNotControllable as exc:
        pytest.skip(f"{exc.control} needs a server this test run started; {EXISTING}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    if item.get_closest_marker("needs_control") and server_settings(item.config).dsn:
        pytest.skip(f"needs a server this test run started (to restart, crash or reconfigure it); {EXISTING}")
    if item.get_closest_marker("needs_superuser") and (refusal := _superuser_refusal(item.config)):
        pytest.skip(refusal)
    # Fixtures run in the setup phase: one that reconfigures the server skips the test too.
    with _skip_when_not_controllable():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _skip_when_not_controllable():
        return (yield)


# --------------------------------------------------------------------------
# Server fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[server.Server]:
    """The run's server, started once (per xdist worker) and removed at the end."""
    settings = server_settings(request.config)
    if settings.dsn:
        with _existing_server(settings) as existing:
            yield existing
        return
    try:
        install = server.find_install(
            pg_bindir=settings.pg_bindir, pg_config=settings.pg_config, pg_version=settings.pg_version
        )
    except server.BinariesNotFound as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    started = time.monotonic()
    cluster = server.start_cluster(install, pggit_sql=settings.pggit_sql)
    request.config.stash[CLUSTER_START_SECONDS] = time.monotonic() - started
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_cluster(pg_server: server.Server) -> Iterator[server.Server]:
    """Control handle of the run's server: restart, crash, terminate, reconfigure.

    After the test the server is running again and back to its own settings,
    whatever the test did to it.
    """
    yield pg_server
    pg_server.restore()


@pytest.fixture(scope="session")
def pggit_template(pg_server: server.Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with pggit installed, cloned for every test (about 10 ms a clone).

    A pggit that does not install fails each test that needs it with one
    line naming the script (--pggit-sql) and PostgreSQL's reason, no traceback.
    """
    if (refusal := _superuser_refusal(request.config)) is not None:
        pytest.skip(refusal)
    pggit_sql = server_settings(request.config).pggit_sql
    try:
        name = janitor.create_template(pg_server, pggit_sql)
    except server.ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield name
    janitor.drop_template(pg_server, name)


@pytest.fixture
def make_database(pg_server: server.Server, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory: ``make_database(pggit=True)`` returns the DSN of a new database.

    With ``pggit=False`` the database is bare (for install and drop tests).
    Every database made is dropped after the test.
    """
    made: list[str] = []

    def factory(pggit: bool = True, prefix: str = "test") -> str:
        name = pg_server.next_database_name(prefix)
        # The template is made on first use, so bare databases work without pggit.
        template = request.getfixturevalue("pggit_template") if pggit else "template0"
        pg_server.create_database(name, template)
        made.append(name)
        return pg_server.dsn(name)

    yield factory
    for name in made:
        if pg_server.is_running():
            pg_server.drop_database(name)


@pytest.fixture
def db_connection_string(make_database) -> str:
    """Connection string of a database of this test's own, pggit installed."""
    return make_database()


@pytest.fixture
def standby_pair(request: pytest.FixtureRequest) -> Iterator[server.Pair]:
    """A primary and a streaming standby of it, both throwaway and this test's own, for a failover.

    The primary runs with ``wal_level = replica`` and a database with pggit
    installed (``pair.database``; ``pair.dsn()`` reaches whichever of the two
    takes writes); the standby streams from it through a replication slot,
    asynchronously until ``pair.replicate(synchronous=True)``, and through a
    ``FaultyProxy`` (``pair.link``) that ``nemesis.replication_stalled``
    silences. Both servers are removed after the test. Skips with --dsn, and
    where the binaries have no ``pg_basebackup``, saying so.
    """
    settings = server_settings(request.config)
    if settings.dsn:
        pytest.skip(f"a primary and its standby are servers this test run starts; {EXISTING}")
    try:
        install = server.find_install(
            pg_bindir=settings.pg_bindir, pg_config=settings.pg_config, pg_version=settings.pg_version)
    except server.BinariesNotFound as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    links: list[FaultyProxy] = []

    def through(primary_port: int) -> int:
        links.append(FaultyProxy("127.0.0.1", primary_port))
        return links[-1].port

    try:
        try:
            pair = server.start_pair(install, pggit_sql=settings.pggit_sql, through=through)
        except server.BinariesNotFound as exc:
            pytest.skip(str(exc))
        try:
            pair.link = links[0]
            try:
                template = janitor.create_template(pair.primary, settings.pggit_sql)
            except server.ClusterError as exc:
                pytest.fail(str(exc), pytrace=False)
            pair.database = pair.primary.create_database(pair.primary.next_database_name("failover"), template)
            pair.standby.wait_streaming()
            yield pair
        finally:
            pair.destroy()
    finally:
        for link in links:
            link.close()


@pytest.fixture
def start_own_cluster(pg_server: server.Server) -> Iterator[Callable[[], server.Server]]:
    """Factory of throwaway servers of this test's own: same binaries, same pggit script, removed after the test.

    For what the run's server must not go through: an OID counter moved
    (``cluster.set_next_oid``), an environment only this server may see (set
    it before the call). ``start_own_cluster()`` returns the running server;
    pggit is available but not created. Needs a server the run started: mark
    the test ``needs_control``.
    """
    started: list[server.Server] = []

    def start() -> server.Server:
        started.append(server.start_cluster(pg_server.install, pggit_sql=pg_server.pggit_sql))
        return started[-1]

    try:
        yield start
    finally:
        for cluster in started:
            cluster.destroy()


@pytest.fixture(scope="session")
def fresh_database(pg_server: server.Server, request: pytest.FixtureRequest
                   ) -> Iterator[Callable[..., contextlib.AbstractContextManager[str]]]:
    """Factory of databases that live for one block: ``with fresh_database() as dsn:``, for one Hypothesis example.

    Each block gets a clone of the run's pggit template (about 10 ms; with
    ``pggit=False`` a bare database), named and marked like every database of
    the run, and dropped ``WITH (FORCE)`` when the block ends, however it
    ends: an example that fails mid-transaction or leaves sessions open
    leaks nothing into the next one, and a replay while shrinking starts
    from the same empty state as the original.

    Session-scoped on purpose: a ``@given`` test may take it without
    Hypothesis's function_scoped_fixture health check, because what it hands
    out is per example, not per test.

    ```python
    import psycopg
    from hypothesis import given, settings
    from hypothesis import strategies as st


    @settings(max_examples=5)
    @given(n=st.integers(0, 3))
    def test_each_example_starts_empty(fresh_database, n):
        with fresh_database() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pggit.commits").fetchone() == (0,)
            for i in range(n):
                conn.execute("SELECT pggit.commit_changes('main', %s)", (str(i),))
    ```
    """
    live: set[str] = set()

    @contextlib.contextmanager
    def clone(prefix: str = "example", pggit: bool = True) -> Iterator[str]:
        name = pg_server.next_database_name(prefix)
        # The template is made on first use, so bare databases work without pggit.
        template = request.getfixturevalue("pggit_template") if pggit else "template0"
        pg_server.create_database(name, template)
        live.add(name)
        try:
            yield pg_server.dsn(name)
        finally:
            live.discard(name)
            if pg_server.is_running():
                pg_server.drop_database(name)

    yield clone
    for name in sorted(live):  # a block that never ended (a generator left unclosed)
        if pg_server.is_running():
            pg_server.drop_database(name)
