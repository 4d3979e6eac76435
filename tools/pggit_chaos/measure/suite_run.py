"""One run of the chaos suite in a pytest subprocess: the tiers, the command line, the result, the machine.

The mutation runner and the stability runs both start pytest this way: in a
process group of its own (so a timeout kills the whole run, servers
included), with the recorder plugin (``recorder.py``) writing each test's
result to a JSON file the parent then reads. However the measuring process
ends, no run outlives it: a signal stops every run it started before it
exits (``run_parallel``), and if it is killed outright the kernel sends its
runs SIGTERM (``_end_with_parent``), whose own teardown stops their servers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pggit_chaos.measure import recorder
from pggit_chaos.paths import REPO

# Where every measuring command writes its results; ``pggit-chaos metrics`` imports them from here.
METRICS_DIR = REPO / "_build" / "metrics"
# Where the results the Metrics page is made from are committed.
COMMITTED_METRICS_DIR = REPO / "docs" / "_data" / "metrics"

# The tiers, as the Makefile's smoke and full targets define them.
TIERS = {
    "smoke": "chaos and not slow and not destructive and not soak and not variant",
    "full": "chaos and not soak",
}
# The Makefile's tiers as make runs them (make_command): what the wall-time benchmark, the CPU benchmark
# and the stability runs measure. make test-all collects every test path, make test pggit's tests.
MAKE_TIERS = {"test": "not soak", "test-all": "not soak", **TIERS}
# The chaos suite: its own folder, the examples and the guides' chaos tests. No chaos test lives elsewhere
# (tests/ci/test_tiers.py), so the chaos tiers collect only these (the Makefile's CHAOS_PATHS).
CHAOS_PATHS = ["tests/chaos", "examples", "docs"]
# The contract tests: reported beside the chaos suite's score, never part of it.
CONTRACT_PATHS = ["tests/extension"]
CONTRACT_MARKERS = "not soak"
# What make test collects: pggit's tests, without the harness's own (the Makefile's PGGIT_PATHS).
PGGIT_PATHS = [*CHAOS_PATHS, *CONTRACT_PATHS]
# The paths each make tier collects when it is given none (-o testpaths); make test-all: every test path.
MAKE_PATHS = {"test": PGGIT_PATHS, "test-all": None, **{tier: CHAOS_PATHS for tier in TIERS}}


def tier_selection(tier: str, contract: bool) -> tuple[list[str], str]:
    """The paths and marker expression of a mutation run of ``tier``; with ``contract``, the contract tests too."""
    if not contract:
        return CHAOS_PATHS, TIERS[tier]
    return [*CHAOS_PATHS, *CONTRACT_PATHS], f"({TIERS[tier]}) or (contract and {CONTRACT_MARKERS})"


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


def make_command(tier: str, workers: str, test_timeout: int, extra: list[str] = ()) -> list[str]:
    """The pytest command line of one recorded run of ``tier`` as ``make`` runs it, with pytest-xdist.

    ``make test-all`` collects every test path; ``make test`` pggit's tests and
    the chaos tiers the chaos suite's (the Makefile's ``-o testpaths``), unless
    ``extra`` names paths.
    """
    testpaths = ["-o", f"testpaths={' '.join(MAKE_PATHS[tier])}"] if MAKE_PATHS[tier] else []
    return [
        sys.executable, "-m", "pytest", f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"), *testpaths,
        "-n", workers, "--dist", "loadgroup", "-m", MAKE_TIERS[tier], "-q", "-p", recorder.__name__,
        f"--timeout={test_timeout}", *extra,
    ]


def current_user() -> str:
    """Who runs the suite, as the results record it: root (the servers then run as nobody) or ordinary."""
    return "root" if os.geteuid() == 0 else "ordinary"


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the thread that started it ends
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) if sys.platform == "linux" else None


def _end_with_parent() -> None:
    """In the pytest child, before exec: SIGTERM it when the measuring thread that started it ends, however.

    Its run is in a session of its own (so a timeout can kill the whole group),
    which also keeps a signal sent to the measuring process from reaching it:
    without this a SIGKILLed measuring process would leave it running for hours.
    """
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def run_pytest(argv: list[str], workdir: Path, label: str, run_timeout: float,
               stop: threading.Event | None = None, env_extra: dict[str, str] | None = None,
               write_bytecode: bool = False, grace: float = 30, fresh_examples: bool = True) -> RunResult:
    """Run one pytest subprocess in its own process group; end the group on timeout or stop.

    Ending is SIGTERM (the run's teardown stops its servers), then SIGKILL
    after ``grace`` seconds, and then the sweep stops the servers of the
    killed run, which no teardown did.

    ``write_bytecode`` keeps Python's bytecode cache (pytest's rewritten test
    modules among it), as a developer's ``make`` has it: a run that measures
    wall time wants it, since without it every worker rewrites every test
    module's asserts again; the mutation runs leave it off.

    ``fresh_examples`` gives the run a Hypothesis directory of its own, so
    that a failure found on one mutant never replays on the next; without
    it the run uses the checkout's ``.hypothesis`` as ``make`` does, whose
    cache of the constants in the project's modules spares each worker
    parsing them again (0.2 to 0.4 CPU-seconds a process).
    """
    record = workdir / f"{label}.record.json"
    junit = workdir / f"{label}.junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PGGIT_TEST_DSN", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env[recorder.RECORD_ENV] = str(record)
    if fresh_examples:
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(workdir / f"{label}.hypothesis")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra or {})
    log = workdir / f"{label}.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([*argv, f"--junitxml={junit}"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_end_with_parent)
        exitstatus = None
        while exitstatus is None:
            try:
                exitstatus = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if (stop is not None and stop.is_set()) or time.monotonic() - started > run_timeout:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        exitstatus = proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        exitstatus = proc.wait()
                        # No teardown ran: stop the servers of the run just killed (their directory says so).
                        from pggit_chaos.server import remove_stale_directories

                        remove_stale_directories()
                    exitstatus = -1 if not (stop is not None and stop.is_set()) else -2
    seconds = time.monotonic() - started
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    result = RunResult(exitstatus, round(seconds, 3), output_tail=tail)
    if record.exists():
        data = json.loads(record.read_text())
        result.tests, result.pg_version = data["tests"], data["pg_version"]
    return result


@contextlib.contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set ``stop``; the first also raises KeyboardInterrupt, later ones only say so.

    So a second Ctrl-C, or a timeout's SIGTERM, while the runs are being
    stopped cannot end this process before them. A signal ignored on purpose
    (``nohup``) stays ignored.
    """
    def handle(signum, frame):
        first = not stop.is_set()
        stop.set()
        if first:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        print(f"{signal.Signals(signum).name} received: still stopping the runs", flush=True)

    installed = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                installed[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


def run_parallel(runs: list[Callable[[threading.Event], RunResult]],
                 watch: Callable[[list[concurrent.futures.Future]], None]) -> tuple[list[RunResult], bool]:
    """Call each of ``runs`` (a pytest run given the stop event) in a thread of its own, and ``watch`` the futures.

    The results in order, and whether a signal stopped them. On a signal the
    runs are stopped (``run_pytest`` ends each run's process group) and this
    waits for every one of them, whatever further signals arrive.
    """
    stop = threading.Event()
    interrupted = False
    with _signals_stop(stop), concurrent.futures.ThreadPoolExecutor(max_workers=len(runs) or 1) as pool:
        futures = [pool.submit(run, stop) for run in runs]
        try:
            watch(futures)
        except KeyboardInterrupt:
            stop.set()
            interrupted = True
            print("interrupted: stopping the runs; the results reached so far are kept", flush=True)
        results = []
        for future in futures:
            while True:
                try:  # a signal raised here once stop is set is only reported by the handler
                    results.append(future.result())
                    break
                except KeyboardInterrupt:
                    interrupted = True
    return results, interrupted


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


def reference_seconds() -> float:
    """CPU-seconds of a fixed task, the least of 3 tries: how fast this machine is now.

    The same code measured 30 to 45 % slower within an hour on a shared
    machine; figures measured on different days compare only through this.
    The task is a pure-Python loop and 200,000 rounds of PBKDF2-SHA256 (C),
    as the suite's time is its Python's and its servers'.
    """
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i * i
        hashlib.pbkdf2_hmac("sha256", b"pggit", b"chaos", 200_000)
        best = min(best, time.process_time() - start)
    return round(best, 3)


def system_reference_seconds() -> float:
    """CPU-seconds of a fixed task for the kernel, the least of 3 tries: how fast this machine's
    processes and files are now.

    ``reference_seconds`` says nothing of them, and in a profile of
    ``make smoke`` half of PostgreSQL's samples were in the kernel: two
    machines whose Python task took 0.10 s measured ``make test`` at 247 and
    292 CPU-seconds, the second on later code. The task is what the servers
    make the kernel do: 40 processes forked, each writing 4 MB of memory
    and exiting (a backend's start and end), and 300 files of 32 KB written
    and removed where the clusters live (a database made and dropped).
    Counted: this process's and its children's user and system time.
    """
    from pggit_chaos.server.janitor import cluster_base_dir  # the RAM disk the clusters use, if there is one

    block = b"\1" * 32768
    best = float("inf")
    for _ in range(3):
        start = sum(os.times()[:4])
        prefix = f"pggit-chaos-reference-{os.getpid()}-"
        with tempfile.TemporaryDirectory(prefix=prefix, dir=cluster_base_dir()) as folder:
            for _ in range(40):
                pid = os.fork()
                if pid == 0:  # the child: touch its memory, then leave without Python's clean-up
                    bytearray(block) * 128
                    os._exit(0)
                os.waitpid(pid, 0)
            for i in range(300):
                Path(folder, str(i)).write_bytes(block)
            for i in range(300):
                os.unlink(Path(folder, str(i)))
        best = min(best, sum(os.times()[:4]) - start)
    return round(best, 3)


def benchmark_record(started_at: str, pg_version: str, load_at_start: list[float]) -> dict:
    """What every benchmark's result starts with: when, on which PostgreSQL and machine, and under what load."""
    return {
        "started": started_at,
        "pg_version": pg_version,
        "machine": machine(),
        # Other work on the machine slows every step: the 1, 5 and 15 minute load averages, before and after.
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(output: Path, data: dict) -> None:
    """Write a measuring tool's results as JSON, making the folder if needed (the Metrics page imports them)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=1) + "\n")
