"""Root conftest: the handbook's guides are executable pages.

The server and client fixtures come from the installed package's pytest
plugin (entry point ``pggit_chaos``); the page collector is the handbook's
own, so it is registered here rather than for every project that installs
the package.
"""

from pathlib import Path

import pytest

from pggit_chaos.paths import PACKAGE

pytest_plugins = ["pggit_chaos.pages.integration"]


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Docstring examples run from the package's modules only, as ``testpaths`` in pyproject.toml says.

    pytest-markdown-docs would otherwise import and read every docstring of
    every test module too (there are none to run there): about half of what
    collecting the suite costs, paid again by every xdist worker.
    """
    collectors = yield
    if file_path.suffix != ".py" or file_path.resolve().is_relative_to(PACKAGE):
        return collectors
    return [c for c in collectors if type(c).__name__ != "MarkdownDocstringCodeModule"]
