"""Fixtures of the extension's contract tests.

Every test gets a database of its own, cloned from the template with pggit
installed (``db_connection_string``); these fixtures only add connections to
it and roles that are removed again, whatever the test did.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql


@pytest.fixture
def conn(db_connection_string: str) -> Iterator[psycopg.Connection]:
    """A superuser connection to the test's database, in autocommit mode."""
    connection = psycopg.connect(db_connection_string, autocommit=True)
    try:
        yield connection
    finally:
        connection.close()


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
def make_role(pg_server, make_database) -> Iterator[Callable[..., str]]:
    """Factory of login roles with unique names; each is dropped after the test.

    Roles are cluster-wide, so teardown runs ``DROP OWNED BY`` in every
    database where the role owns or was granted something (pg_shdepend says
    where), then ``DROP ROLE``. Depending on ``make_database`` makes this run
    before the test's databases are dropped.
    """
    made: list[str] = []

    def factory(prefix: str = "pggit_role") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with pg_server.connect() as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        made.append(name)
        return name

    yield factory
    for name in made:
        with pg_server.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
            )
            databases = [
                row[0]
                for row in admin.execute(
                    """
                    SELECT DISTINCT d.datname
                      FROM pg_shdepend s
                      JOIN pg_database d ON d.oid = s.dbid
                     WHERE s.refclassid = 'pg_authid'::regclass
                       AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)
                    """,
                    (name,),
                )
            ]
        for database in databases:
            with contextlib.suppress(psycopg.OperationalError), pg_server.connect(database) as db:
                db.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
        with pg_server.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
