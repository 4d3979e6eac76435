"""Root conftest: the fixtures every test needs, wherever it lives.

Guides under docs/, tests/ and examples/ all use the same server and client
fixtures, so they are registered here once rather than per folder.
"""

pytest_plugins = ["tools.pytest_pggit", "tools.pytest_guides", "tests.chaos.fixtures"]
