"""A quick manual check: ``python -m pggit_chaos.server [MAJOR]`` starts a throwaway cluster, prints it, removes it."""

from __future__ import annotations

import sys

from pggit_chaos.server.binaries import find_install
from pggit_chaos.server.cluster import start_cluster

if __name__ == "__main__":  # pragma: no cover - run by hand
    cluster = start_cluster(find_install(pg_version=int(sys.argv[1]) if len(sys.argv) > 1 else None))
    try:
        print(cluster.version, cluster.dsn())
    finally:
        cluster.destroy()
