"""pytest plugin: one PostgreSQL with pggit per test run, a fresh database per test.

Server fixtures live here, apart from the client fixtures in
``tools/pggit_chaos/plugin/client_fixtures.py`` (the split pytest-postgresql uses): this module
knows how to get a server; the client fixtures only need a connection string.

Options (each also read from an environment variable, so CI and make can set them):

--pg-version N     PostgreSQL major version (PGGIT_PG_VERSION); default: the
                   oldest the wheel ships (16), or 15/14/17 from /usr/lib/postgresql
--pg-bindir DIR    a local install's bin directory (PGGIT_PG_BINDIR)
--pg-config PATH   a local install's pg_config (PG_CONFIG)
--dsn DSN          an existing server with pggit's files installed (PGGIT_TEST_DSN);
                   tests that restart, crash or reconfigure the server skip
--pggit-sql PATH   install this script instead of extension/pggit--<version>.sql
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from pggit_chaos.server import cluster as pgcluster

TEMPLATE_DATABASE = "pggit_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pggit", "pggit test server")
    group.addoption("--pg-version", type=int, default=None,
                    help="PostgreSQL major version to run (env PGGIT_PG_VERSION)")
    group.addoption("--pg-bindir", default=None, help="bin directory of a local PostgreSQL (env PGGIT_PG_BINDIR)")
    group.addoption("--pg-config", default=None, help="pg_config of a local PostgreSQL (env PG_CONFIG)")
    group.addoption("--dsn", default=None,
                    help="use this running server instead of starting one (env PGGIT_TEST_DSN)")
    group.addoption("--pggit-sql", default=None,
                    help="install this SQL script as pggit instead of the one in extension/")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_control: needs a server this run started (skipped with --dsn)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_control") and _option(item.config, "--dsn", "PGGIT_TEST_DSN"):
        pytest.skip("needs a server this test run started (to restart, crash or reconfigure it); "
                    "--dsn/PGGIT_TEST_DSN points at an existing one")


def _option(config: pytest.Config, name: str, env: str) -> str | None:
    value = config.getoption(name)
    return value if value is not None else os.environ.get(env) or None


# --------------------------------------------------------------------------
# An existing server: same interface as Cluster, minus the controls
# --------------------------------------------------------------------------


@dataclass
class ExistingServer:
    """A server this run did not start: databases yes, restarts and crashes no."""

    base_dsn: str
    _database_counter: int = 0
    can_control = False
    version: str = field(init=False)

    def __post_init__(self) -> None:
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            self.version = conn.execute("SHOW server_version").fetchone()[0].split()[0]

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        return psycopg.conninfo.make_conninfo(self.base_dsn, dbname=dbname, **params)

    def connect(self, dbname: str = "postgres", autocommit: bool = True, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    def _refuse(self, what: str) -> None:
        pytest.skip(f"{what} needs a server this test run started; --dsn/PGGIT_TEST_DSN points at an existing one")

    def restart(self, *args, **kwargs):
        self._refuse("restart()")

    def stop(self, *args, **kwargs):
        self._refuse("stop()")

    def start(self, *args, **kwargs):
        self._refuse("start()")

    def crash(self, *args, **kwargs):
        self._refuse("crash()")

    def set_config(self, **settings):
        self._refuse("set_config()")

    def configured(self, **settings):
        self._refuse("configured()")

    def is_running(self) -> bool:
        return True

    def terminate_backends(self, dbname: str | None = None, application_name: str | None = None) -> int:
        query = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND (%(db)s::text IS NULL OR datname = %(db)s) "
            "AND (%(app)s::text IS NULL OR application_name = %(app)s)"
        )
        with self.connect() as conn:
            return conn.execute(query, {"db": dbname, "app": application_name}).fetchone()[0]

    def setting(self, name: str) -> str:
        with self.connect() as conn:
            return conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]

    create_database = pgcluster.Cluster.create_database
    drop_database = pgcluster.Cluster.drop_database
    next_database_name = pgcluster.Cluster.next_database_name

    def destroy(self) -> None:
        """Nothing to remove: the server belongs to someone else."""


# --------------------------------------------------------------------------
# Server fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[pgcluster.Cluster | ExistingServer]:
    """The run's server, started once (per xdist worker) and removed at the end."""
    config = request.config
    dsn = _option(config, "--dsn", "PGGIT_TEST_DSN")
    if dsn:
        yield ExistingServer(dsn)
        return
    version = _option(config, "--pg-version", "PGGIT_PG_VERSION")
    try:
        install = pgcluster.find_install(
            pg_bindir=_option(config, "--pg-bindir", "PGGIT_PG_BINDIR"),
            pg_config=_option(config, "--pg-config", "PG_CONFIG"),
            pg_version=int(version) if version else None,
        )
    except pgcluster.BinariesNotFound as exc:
        pytest.exit(str(exc), returncode=4)
    started = time.monotonic()
    cluster = pgcluster.start_cluster(install, pggit_sql=config.getoption("--pggit-sql"))
    config.stash[CLUSTER_START_SECONDS] = time.monotonic() - started
    try:
        yield cluster
    finally:
        cluster.destroy()


CLUSTER_START_SECONDS = pytest.StashKey[float]()


@pytest.fixture
def pg_cluster(pg_server, request: pytest.FixtureRequest):
    """Control handle of the run's server: restart, crash, terminate, reconfigure.

    After the test the server is running again and back to its own settings,
    whatever the test did to it.
    """
    yield pg_server
    if pg_server.can_control:
        if not pg_server.is_running():
            pg_server.start()
        if pg_server._changed_needs_restart or _has_auto_conf_settings(pg_server):
            pg_server.reset_config()


def _has_auto_conf_settings(server: pgcluster.Cluster) -> bool:
    auto_conf = server.datadir / "postgresql.auto.conf"
    try:
        return any(line.strip() and not line.startswith("#") for line in auto_conf.read_text().splitlines())
    except OSError:
        return False


@pytest.fixture(scope="session")
def pggit_template(pg_server) -> str:
    """A database with pggit installed, cloned for every test (about 10 ms a clone)."""
    name = TEMPLATE_DATABASE if pg_server.can_control else f"{TEMPLATE_DATABASE}_{os.getpid()}"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    try:
        with pg_server.connect(name) as conn:
            conn.execute("CREATE EXTENSION pggit")
    except psycopg.Error as exc:
        pg_server.drop_database(name)
        raise pgcluster.ClusterError(
            f"CREATE EXTENSION pggit failed on PostgreSQL {pg_server.version}: {exc}"
        ) from exc
    yield name
    with contextlib.suppress(psycopg.Error):
        pg_server.drop_database(name)


@pytest.fixture
def make_database(pg_server, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
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

