"""The pytest plugin, registered through the pytest11 entry point: options and server fixtures, then client fixtures.

Installing the package is enough: any project gets ``pg_server``,
``pg_cluster``, ``make_database``, ``db_connection_string``, ``sync_conn``,
``async_conn``, ``chaos_pool``, ``make_role`` and the ``--pg-*`` / ``--dsn`` options with no
conftest of its own.

Here too: ``--dist loadgroup`` runs the tests marked ``xdist_group(name)`` on one
xdist worker, as pytest-xdist documents, on pytest 9 as well. pytest-xdist 3.8
groups a test by renaming it on the worker (``item._nodeid``); from pytest 9 a
node's id lives elsewhere, the rename changes nothing, and every test was
scheduled on its own: a session fixture that a group shares (the built site,
the collected suite) was built on every worker, and a page's SQL continuation
could run on another worker than the block before it. So each worker also
writes the groups it collected to a directory the controller names, and the
controller's loadgroup scheduler reads each test's group from there; node ids
stay as they are. A worker that crashes under loadgroup ends the run, naming
the test it crashed in: pytest-xdist 3.8 can wait for good once it replaces
one, so ``--max-worker-restart`` is 0 there unless given.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["pggit_chaos.plugin.server_fixtures", "pggit_chaos.plugin.client_fixtures", "pggit_chaos.plugin.soak"]

_GROUPS_DIR = pytest.StashKey[Path]()
# The workerinput key naming the directory where each worker writes the xdist groups it collected.
_GROUPS_DIR_KEY = "pggit_chaos_xdist_groups"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads --max-worker-restart
def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", None) == "loadgroup" and not hasattr(config, "workerinput"):
        config.stash[_GROUPS_DIR] = folder = Path(tempfile.mkdtemp(prefix="pggit-chaos-xdist-groups-"))
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
        # pytest-xdist 3.8 hangs a loadgroup run for good once it replaces a crashed worker (its issues
        # 1323, 1327, 1378): a crash ends the run instead, naming the test it crashed in.
        if config.option.maxworkerrestart is None:
            config.option.maxworkerrestart = "0"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """On the xdist controller, for each worker: the directory where it writes its groups."""
    if _GROUPS_DIR in node.config.stash:
        node.workerinput[_GROUPS_DIR_KEY] = str(node.config.stash[_GROUPS_DIR])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: each grouped test's group, named as xdist names it (several marks joined by ``_``)."""
    folder = getattr(config, "workerinput", {}).get(_GROUPS_DIR_KEY)
    if folder is None:
        return
    groups = {}
    for item in items:
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        if names:
            groups[item.nodeid] = "_".join(sorted(names))
    worker = config.workerinput["workerid"]
    partial = Path(folder) / f"{worker}.json.partial"
    partial.write_text(json.dumps(groups))
    os.replace(partial, Path(folder) / f"{worker}.json")  # complete before the worker reports its collection


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's own loadgroup scheduler, reading each test's group from what the workers collected."""
    if _GROUPS_DIR not in config.stash:
        return None
    scheduler = config.pluginmanager.get_plugin("dsession").pytest_xdist_make_scheduler(config=config, log=log)
    folder, groups, by_nodeid = config.stash[_GROUPS_DIR], {}, scheduler._split_scope

    def split_scope(nodeid: str) -> str:
        # First called once every worker has reported its collection: every worker's file is there.
        if not groups:
            groups[None] = None  # read once, even when no test is grouped
            for path in sorted(folder.glob("*.json")):
                groups.update(json.loads(path.read_text()))
        return f"xdist_group:{groups[nodeid]}" if nodeid in groups else by_nodeid(nodeid)

    scheduler._split_scope = split_scope
    return scheduler
