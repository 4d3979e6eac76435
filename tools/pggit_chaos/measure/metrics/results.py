"""Where the measured results live: their import from ``_build/metrics`` into ``docs/_data/metrics``, and their loading."""

from __future__ import annotations

import json

from pggit_chaos.measure.metrics.measured import Measured
from pggit_chaos.measure.suite_run import COMMITTED_METRICS_DIR, METRICS_DIR

# Where the measuring commands write; uncommitted, and partial runs land here too.
BUILD_DIR = METRICS_DIR
# What the page is made from: committed, so the site builds without measuring anything.
DATA_DIR = COMMITTED_METRICS_DIR
RESULT_FILES = ("mutation-smoke.json", "mutation-full.json", "stability.json", "bench-describe.json", "hollow.json",
                "bench-history.json", "bench-ddl.json", "suite-timing.json", "suite-cpu.json")
REQUIRED_FILES = ("mutation-smoke.json", "mutation-full.json", "failure-modes.json")


def _slim(name: str, data: dict) -> dict:
    """Drop what the page never shows (long output tails), keep everything it does."""
    if name.startswith("mutation-"):
        for mutant in data["mutants"]:
            mutant.pop("output_tail", None)
    elif name == "stability.json":
        for run in data["runs"]:
            run.pop("output_tail", None)
    return data


def import_results() -> list[str]:
    """Copy complete results from _build/metrics into docs/_data/metrics; returns the names copied."""
    copied = []
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        source = BUILD_DIR / name
        if not source.exists():
            continue
        data = json.loads(source.read_text())
        if (name.startswith("mutation-") or name == "hollow.json") and not data.get("complete"):
            continue
        (DATA_DIR / name).write_text(json.dumps(_slim(name, data), indent=1) + "\n")
        copied.append(name)
    from pggit_chaos.measure.metrics.generated import FILES

    # The fast runs: a sample is imported too (the page names its size), a run cut short is not.
    for name in FILES:
        source = BUILD_DIR / name
        if source.exists():
            data = json.loads(source.read_text())
            if isinstance(data, dict) and data.get("only"):
                continue
            if isinstance(data, dict) and "mutants" in data and name != "generated-mutants.json":
                for mutant in data["mutants"]:
                    mutant.pop("output_tail", None)
            (DATA_DIR / name).write_text(json.dumps(data, indent=1) + "\n")
            copied.append(name)
    return copied


def load_fast_results() -> dict[str, dict | list | None]:
    """The generated-mutants section's files in docs/_data/metrics, each None when not measured."""
    from pggit_chaos.measure.metrics.generated import FILES

    return {n: json.loads((DATA_DIR / n).read_text()) if (DATA_DIR / n).exists() else None for n in FILES}


def load_results() -> Measured:
    """The results in docs/_data/metrics; the stability runs, the benchmark and the hollow run may be missing."""
    missing = [n for n in REQUIRED_FILES if not (DATA_DIR / n).exists()]
    if missing:
        raise SystemExit(f"missing results in {DATA_DIR}: {', '.join(missing)}; run make metrics")

    def load(name: str) -> dict | None:
        path = DATA_DIR / name
        return json.loads(path.read_text()) if path.exists() else None

    return Measured(load("mutation-smoke.json"), load("mutation-full.json"), load("stability.json"),
                    load("failure-modes.json"), load("bench-describe.json"), load("hollow.json"),
                    load("bench-history.json"))
