"""One run of the chaos suite in a pytest subprocess: the tiers, the command line, the result, the machine.

The mutation runner and the stability runs both start pytest this way: in a
process group of its own (so a timeout kills the whole run, servers
included), with the recorder plugin (``recorder.py``) writing each test's
result to a JSON file the parent then reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pggit_chaos.measure import recorder
from pggit_chaos.paths import REPO

# Where every measuring command writes its results; ``pggit-chaos metrics`` imports them from here.
METRICS_DIR = REPO / "_build" / "metrics"

# The tiers, as the Makefile's smoke and full targets define them.
TIERS = {
    "smoke": "chaos and not slow and not destructive and not soak",
    "full": "chaos and not soak",
}
# The Makefile's tiers as make runs them, over every test path (not only the chaos suite's): what the
# wall-time benchmark and the stability runs of the whole suite measure.
MAKE_TIERS = {"test": "not soak", **TIERS}
# The chaos suite: its own folder, the examples and the guides' chaos tests.
CHAOS_PATHS = ["tests/chaos", "examples", "docs"]
# The contract tests: reported beside the chaos suite's score, never part of it.
CONTRACT_PATHS = ["tests/extension"]
CONTRACT_MARKERS = "not soak"


@dataclass
class RunResult:
    """One pytest subprocess: its exit status, wall time and per-test results."""

    exitstatus: int
    seconds: float
    tests: dict[str, dict] = field(default_factory=dict)
    pg_version: str | None = None
    output_tail: str = ""
    quick: bool = False  # only the mutant's previous killers ran

    @property
    def failed(self) -> list[str]:
        """The tests that failed or errored, sorted."""
        return sorted(n for n, t in self.tests.items() if t["outcome"] in ("failed", "error"))

    def count(self, outcome: str) -> int:
        """How many tests ended with ``outcome`` (passed, skipped, xfailed, failed, error)."""
        return sum(1 for t in self.tests.values() if t["outcome"] == outcome)


def chaos_command(sql: Path, paths: list[str], markexpr: str, test_timeout: int, extra: list[str] = ()) -> list[str]:
    """The pytest command line of one recorded run of ``paths`` against the extension SQL in ``sql``."""
    return [
        sys.executable, "-m", "pytest", *paths,
        f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        "-m", markexpr, "-q", "-p", "no:cacheprovider", "-p", "no:pggit-doc-results",
        "-p", recorder.__name__,
        f"--pggit-sql={sql}", f"--timeout={test_timeout}", "--hypothesis-show-statistics",
        *extra,
    ]


def make_command(markexpr: str, workers: str, test_timeout: int, extra: list[str] = ()) -> list[str]:
    """The pytest command line of one recorded run of a tier as ``make`` runs it: every test path, pytest-xdist."""
    return [
        sys.executable, "-m", "pytest", f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        "-n", workers, "--dist", "loadgroup", "-m", markexpr, "-q", "-p", recorder.__name__,
        f"--timeout={test_timeout}", *extra,
    ]


def current_user() -> str:
    """Who runs the suite, as the results record it: root (the servers then run as nobody) or ordinary."""
    return "root" if os.geteuid() == 0 else "ordinary"


def run_pytest(argv: list[str], workdir: Path, label: str, run_timeout: float,
               stop: threading.Event | None = None, env_extra: dict[str, str] | None = None,
               write_bytecode: bool = False) -> RunResult:
    """Run one pytest subprocess in its own process group; kill the group on timeout or stop.

    ``write_bytecode`` keeps Python's bytecode cache (pytest's rewritten test
    modules among it), as a developer's ``make`` has it: a run that measures
    wall time wants it, since without it every worker rewrites every test
    module's asserts again; the mutation runs leave it off.
    """
    record = workdir / f"{label}.record.json"
    junit = workdir / f"{label}.junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PGGIT_TEST_DSN", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env[recorder.RECORD_ENV] = str(record)
    # A fresh example database per run: a failure found on one mutant must not replay on the next.
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(workdir / f"{label}.hypothesis")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra or {})
    log = workdir / f"{label}.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([*argv, f"--junitxml={junit}"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        exitstatus = None
        while exitstatus is None:
            try:
                exitstatus = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if (stop is not None and stop.is_set()) or time.monotonic() - started > run_timeout:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        exitstatus = proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        exitstatus = proc.wait()
                    exitstatus = -1 if not (stop is not None and stop.is_set()) else -2
    seconds = time.monotonic() - started
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    result = RunResult(exitstatus, round(seconds, 3), output_tail=tail)
    if record.exists():
        data = json.loads(record.read_text())
        result.tests, result.pg_version = data["tests"], data["pg_version"]
    return result


def machine() -> dict:
    """The machine and the versions the results were measured with."""
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pytest": version("pytest"),
        "hypothesis": version("hypothesis"),
    }


def write_results(output: Path, data: dict) -> None:
    """Write a measuring tool's results as JSON, making the folder if needed (the Metrics page imports them)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=1) + "\n")
