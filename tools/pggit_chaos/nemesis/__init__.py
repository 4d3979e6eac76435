"""Every fault the chaos suite injects, one concept per module (Jepsen's nemesis).

``server`` (crash, replication stalled, failover, terminate), ``network`` (a cut link, ``FaultyProxy``),
``resources`` (connections, memory, temporary files, a full disk),
``settings`` (the server or a session reconfigured), ``tracking`` (pggit's
event triggers silenced) and ``injector`` (``ChaosInjector``: random delays,
connections broken at random, and the retry that survives them). Every fault
(the delays and the retry are not faults) takes an optional ``history`` and
records itself there as a ``"fault"`` operation, so a checker can see when
it struck.
"""

from pggit_chaos.nemesis.injector import ChaosInjector, FailureInjection
from pggit_chaos.nemesis.network import cut_connection
from pggit_chaos.nemesis.proxy import FaultyProxy
from pggit_chaos.nemesis.resources import (
    FaultUnavailable,
    connections_exhausted,
    disk_full,
    memory_capped,
    temp_disk_capped,
)
from pggit_chaos.nemesis.server import crash_postmaster, fail_over, replication_stalled, terminate_backend
from pggit_chaos.nemesis.settings import await_setting, server_configured, session_configured
from pggit_chaos.nemesis.tracking import event_triggers, tracking_paused

__all__ = [
    "ChaosInjector",
    "FailureInjection",
    "FaultUnavailable",
    "FaultyProxy",
    "await_setting",
    "connections_exhausted",
    "crash_postmaster",
    "cut_connection",
    "disk_full",
    "event_triggers",
    "fail_over",
    "memory_capped",
    "replication_stalled",
    "server_configured",
    "session_configured",
    "temp_disk_capped",
    "terminate_backend",
    "tracking_paused",
]
