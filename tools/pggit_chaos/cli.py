"""``pggit-chaos``: the one command line of the measuring tools and the sweep, a subcommand each (mutate, mutants-generate, reach, mutate-fast, hollow, stability, benchmarks, metrics, sweep, and CI's progression and junit-summary)."""

from __future__ import annotations

import argparse
import sys

from pggit_chaos.measure import (
    bench_cluster,
    bench_cpu,
    bench_ddl,
    bench_describe,
    bench_history,
    bench_suite,
    fast_runner,
    hollow,
    junit,
    mutagen_check,
    progression,
    runner,
    selection,
    stability,
)
from pggit_chaos.measure.metrics import page
from pggit_chaos.server import sweep

# In the order --help lists them: measuring first, the page that shows the results, CI's rule and report,
# then housekeeping.
TOOLS = (runner, mutagen_check, selection, fast_runner, hollow, stability, bench_suite, bench_cpu, bench_describe, bench_history, bench_ddl, bench_cluster, page, progression, junit, sweep)


def build_parser() -> argparse.ArgumentParser:
    """The ``pggit-chaos`` parser: each tool's options, as the tool itself defines them, under its command."""
    parser = argparse.ArgumentParser(
        prog="pggit-chaos",
        description="Measure the pggit chaos suite: how many realistic bugs it catches, how stable and how fast it "
                    "is, and write the Metrics page from the results.",
        epilog="Run 'pggit-chaos COMMAND --help' for a command's options.")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for tool in TOOLS:
        sub = commands.add_parser(tool.COMMAND, help=tool.DESCRIPTION, description=tool.DESCRIPTION)
        tool.add_arguments(sub)
        sub.set_defaults(run=tool.run, command_parser=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        # Refused by the command's own parser, so the error shows that command's usage, not the program's.
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
