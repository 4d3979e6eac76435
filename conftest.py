"""Root conftest: the handbook's guides are executable pages.

The server and client fixtures come from the installed package's pytest
plugin (entry point ``pggit_chaos``); the page collector is the handbook's
own, so it is registered here rather than for every project that installs
the package.
"""

pytest_plugins = ["pggit_chaos.pages.integration"]
