"""The pytest plugin of ``bench-cpu``'s run: the CPU-seconds the whole machine spent during each test, as JSON.

``bench-cpu`` starts pytest with ``-p pggit_chaos.measure.cpu_recorder``,
``PGGIT_CPU_RECORD=FILE`` and a single xdist worker, so one test runs at a
time: what the machine spends between a test's start and its end (its
PostgreSQL backends, the pytest runs, Sphinx builds and browsers it starts,
and its own Python) is that test's. The first test of the run also pays for
the worker's PostgreSQL cluster. The worker writes FILE at the end of the
session. Linux only: it reads ``/proc/stat``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pggit_chaos.measure.recorder import SeesPgVersion

RECORD_ENV = "PGGIT_CPU_RECORD"
PROC_STAT = Path("/proc/stat")


def busy_cpu_seconds() -> float:
    """CPU-seconds the machine has spent busy since it booted: every state of /proc/stat's cpu line but idle and
    waiting for I/O."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in PROC_STAT.read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuRecorder(SeesPgVersion):
    """Each test's busy CPU-seconds and wall seconds, set-up and teardown included, and the PostgreSQL they ran on."""

    def __init__(self, path: Path):
        self.path = path
        self.tests: dict[str, dict[str, float]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        cpu, wall = busy_cpu_seconds(), time.monotonic()
        try:
            return (yield)
        finally:
            self.tests[item.nodeid] = {"cpu_seconds": round(busy_cpu_seconds() - cpu, 3),
                                       "wall_seconds": round(time.monotonic() - wall, 3)}

    def pytest_sessionfinish(self, session) -> None:
        self.path.write_text(json.dumps({"pg_version": self.pg_version, "tests": self.tests}, indent=1,
                                        sort_keys=True))


def pytest_configure(config) -> None:
    path = os.environ.get(RECORD_ENV)
    # Only where tests run: in the worker, or in a run without xdist (an xdist controller runs none).
    distributing = config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") != "no"
    if path and (hasattr(config, "workerinput") or not distributing):
        config.pluginmanager.register(CpuRecorder(Path(path)), "pggit-cpu-recorder")
