"""Root conftest: the handbook's guides are executable pages.

The server and client fixtures come from the installed package's pytest
plugin (entry point ``pggit_chaos``); the page collector is the handbook's
own, so it is registered here rather than for every project that installs
the package.
"""

import gc
import os
from pathlib import Path

import pytest

from pggit_chaos.measure.options import auto_workers
from pggit_chaos.measure.suite_run import TIERS
from pggit_chaos.pages import markexpr
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


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every case of a parametrized test but one is marked ``variant``, which the smoke tier leaves out.

    The smoke tier runs each test once, as it runs each property's few
    examples; ``make test`` and the full tier run every case. The case that
    stands for its test is the first the smoke tier would otherwise run. A
    test that marks some of its cases ``variant`` itself has chosen which
    stand for it (several, spread over its parameters), and is left alone;
    so is one marked ``distinct_cases``, whose every case checks something
    another does not (a damage recipe, a setting that once broke pggit), all
    in smoke.
    """
    smoke = markexpr.parse(TIERS["smoke"])
    families: dict[tuple[str, str], list[pytest.Item]] = {}
    for item in items:
        if getattr(item, "callspec", None) is not None:
            families.setdefault((item.parent.nodeid, item.originalname), []).append(item)
    for cases in families.values():
        if any(case.get_closest_marker("variant") or case.get_closest_marker("distinct_cases") for case in cases):
            continue
        eligible = [case for case in cases if smoke.matches({mark.name for mark in case.iter_markers()})]
        stands = (eligible or cases)[0]
        for case in cases:
            if case is not stands:
                case.add_marker(pytest.mark.variant)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (modules, items, strategies) is kept to the end: out of the collector's sight.

    Each full pass of the garbage collector walked all of it again, including the two pytest makes at the
    end of a run to find unraisable exceptions (1.4 s together in one profiled process here). Objects made
    later are collected as before.
    """
    gc.freeze()


@pytest.hookimpl(optionalhook=True)  # a run with -p no:xdist has no such hook
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` starts one worker more than the machine has cores.

    Each worker waits on its own server (locks, lock timeouts, restarts) for
    about a quarter of its time: on 2 cores a third worker used that time
    and cut the wall time of ``make test`` by about a tenth, where a fourth
    only added contention. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides
    when set, and ``-n logical`` is left to pytest-xdist.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or config.option.numprocesses == "logical":
        return None
    return auto_workers()
