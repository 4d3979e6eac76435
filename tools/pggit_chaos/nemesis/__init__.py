"""Every fault the chaos suite injects, in one place (Jepsen's nemesis)."""

from pggit_chaos.nemesis.faults import (
    FaultyProxy,
    await_setting,
    connections_exhausted,
    crash_postmaster,
    cut_connection,
    memory_capped,
    temp_disk_capped,
    terminate_backend,
)
from pggit_chaos.nemesis.injector import ChaosInjector, FailureInjection

__all__ = [
    "ChaosInjector",
    "FailureInjection",
    "FaultyProxy",
    "await_setting",
    "connections_exhausted",
    "crash_postmaster",
    "cut_connection",
    "memory_capped",
    "temp_disk_capped",
    "terminate_backend",
]
