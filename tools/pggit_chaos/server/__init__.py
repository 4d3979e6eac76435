"""The PostgreSQL server a run talks to: binaries, the throwaway cluster, an existing server, one Server protocol.

The modules, each importing only those above it:

- ``base``: the ``Server`` protocol, its errors and shared names;
- ``settings``: the run's server settings, options first, then the environment;
- ``processes``: the server's account, ports, processes and shared memory;
- ``signals``: a signal that ends the run stops its servers first;
- ``binaries``: finding an installation, and the overlay that adds pggit;
- ``janitor``: cluster directories and the pggit template database;
- ``cluster``: the throwaway cluster; ``existing``: a server someone else runs;
- ``standby``: a streaming standby of a throwaway cluster, and the failover to it;
- ``sweep``: ``pggit-chaos sweep``, what interrupted runs left on an existing server.
"""

from pggit_chaos.server.base import (
    SUPERUSER,
    TEMP_PREFIX,
    BinariesNotFound,
    ClusterError,
    ForeignObjectError,
    Server,
    ServerNotControllable,
    scram_verifier,
)
from pggit_chaos.server.settings import ServerSettings, SettingsError
from pggit_chaos.server.processes import (
    children_of,
    cluster_processes,
    cluster_segment,
    free_port,
    pid_alive,
    release_shared_memory,
    server_account,
    sysv_segment_id,
    wait_gone,
)
from pggit_chaos.server.binaries import (
    NO_BINARIES_HELP,
    PgInstall,
    build_overlay,
    find_install,
    install_from_bindir,
    install_from_pg_config,
    pggit_files,
    wheel_installs,
)
from pggit_chaos.server.janitor import (
    TEMPLATE_DATABASE,
    cluster_base_dir,
    create_template,
    drop_template,
    remove_stale_directories,
)
from pggit_chaos.server.cluster import BASE_SETTINGS, Cluster, start_cluster
from pggit_chaos.server.existing import ExistingServer
from pggit_chaos.server.standby import REPLICATION_SETTINGS, Pair, Standby, start_pair, start_standby

__all__ = [
    "BASE_SETTINGS",
    "NO_BINARIES_HELP",
    "REPLICATION_SETTINGS",
    "SUPERUSER",
    "TEMPLATE_DATABASE",
    "TEMP_PREFIX",
    "BinariesNotFound",
    "Cluster",
    "ClusterError",
    "ExistingServer",
    "ForeignObjectError",
    "Pair",
    "PgInstall",
    "Server",
    "ServerNotControllable",
    "ServerSettings",
    "SettingsError",
    "Standby",
    "build_overlay",
    "children_of",
    "cluster_processes",
    "cluster_segment",
    "cluster_base_dir",
    "create_template",
    "drop_template",
    "find_install",
    "free_port",
    "install_from_bindir",
    "install_from_pg_config",
    "pggit_files",
    "pid_alive",
    "release_shared_memory",
    "remove_stale_directories",
    "scram_verifier",
    "server_account",
    "start_cluster",
    "start_pair",
    "start_standby",
    "sysv_segment_id",
    "wait_gone",
    "wheel_installs",
]
