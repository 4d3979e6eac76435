"""The pytest plugin, registered through the pytest11 entry point: options and server fixtures, then client fixtures.

Installing the package is enough: any project gets ``pg_server``,
``pg_cluster``, ``make_database``, ``db_connection_string``, ``sync_conn``,
``async_conn``, ``chaos_pool``, ``make_role`` and the ``--pg-*`` / ``--dsn`` options with no
conftest of its own.
"""

pytest_plugins = ["pggit_chaos.plugin.server_fixtures", "pggit_chaos.plugin.client_fixtures", "pggit_chaos.plugin.soak"]
