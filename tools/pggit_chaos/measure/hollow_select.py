"""The pytest plugin of the hollow run: it leaves out the tests that start no PostgreSQL, and so cannot call pggit.

A guide's page checks (named paths exist, shell commands parse) and other
tests without the ``pg_server`` fixture in their closure (a guide's SQL
block excepted: it asks for the server as it runs) pass against any pggit,
hollow or not; they are deselected, and the run counts only the rest.
"""

from __future__ import annotations

import pytest


def reaches_a_server(item: pytest.Item) -> bool:
    """Whether the test's fixtures start (or reach) the run's PostgreSQL; a guide's SQL block asks for it as it runs."""
    block = getattr(item.parent, "block", None)
    return "pg_server" in getattr(item, "fixturenames", ()) or getattr(block, "kind", None) == "sql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = [item for item in items if reaches_a_server(item)]
    deselected = [item for item in items if not reaches_a_server(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
