"""A measuring command ends its pytest runs, and their servers, however it is itself ended.

The measuring commands (``mutate-fast``, ``mutate``, ``hollow``, ``stability``)
start pytest runs in sessions of their own, so a signal sent to the command
never reaches them on its own. A real measuring process here starts a real
pytest run whose test holds a real cluster, and is then ended: by one signal,
by a second signal while it is stopping the run, or by SIGKILL. The run's
server and directory must be gone each time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pggit_chaos import paths, server

from tests.forked_pytest import signals_as_in_a_terminal
from tests.toolkit.test_pgcluster import INNER_TEST, _postgres_processes_under, _settled

# The measuring process: one pytest run of the inner test under run_parallel, as mutate-fast runs its workers.
# "stubborn": the run ignores SIGTERM and SIGINT (inherited) and the measurer stops it by itself once it is
# ready, so only the escalation to SIGKILL and the sweep after it can end the run and its server.
MEASURER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from pggit_chaos.measure.suite_run import run_parallel, run_pytest

    test_file, workdir, stubborn = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "stubborn"
    argv = [sys.executable, "-m", "pytest", test_file, "-q", "-p", "no:cacheprovider",
            "-p", "pggit_chaos.plugin.server_fixtures", "-c", os.devnull, "--rootdir", str(workdir)]
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def run(stop):
        return run_pytest(argv, workdir, "inner", 600, stop, grace=2)

    def watch(futures):
        while not all(f.done() for f in futures):
            if stubborn and Path(os.environ["REPORT"] + ".ready").exists():
                raise KeyboardInterrupt
            time.sleep(0.1)

    results, interrupted = run_parallel([run], watch)
    print("interrupted" if interrupted else "finished", results[0].exitstatus, flush=True)
    sys.exit(130 if interrupted else 0)
    """
)


def _measure(tmp_path: Path, mode: str = "obedient") -> tuple[subprocess.Popen, Path]:
    """Start the measuring process; return once its run's test holds its server."""
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    report = tmp_path / "report-interrupt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "LINGER"))}
    env.update(MODE="interrupt", REPORT=str(report), PYTHONPATH=str(paths.REPO))
    proc = subprocess.Popen([sys.executable, "-c", MEASURER, str(tmp_path / "test_inner.py"), str(tmp_path), mode],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=signals_as_in_a_terminal)
    deadline = time.monotonic() + 90
    while not Path(f"{report}.ready").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the inner run never got going"
        time.sleep(0.05)
    return proc, report


def _inner_runs(tmp_path: Path) -> list[str]:
    """The pytest processes still running the inner test."""
    found = subprocess.run(["pgrep", "-f", f"{tmp_path}/test_inner.py"], capture_output=True, text=True)
    return found.stdout.split()


def _assert_nothing_survived(tmp_path: Path, report: Path, output: str) -> None:
    root, postmaster, _ = report.read_text().split()
    assert server.wait_gone([int(postmaster)], 30), f"the run's server (pid {postmaster}) survived:\n{output}"
    assert _settled(lambda: Path(root).exists(), timeout=30) is False, f"{root} survived:\n{output}"
    assert _settled(lambda: _postgres_processes_under(root)) == []
    assert _settled(lambda: _inner_runs(tmp_path), timeout=30) == [], f"the inner pytest run survived:\n{output}"


@pytest.mark.slow
# Each case's first signal is the one that stops the run; a lone signal is the same path without the second.
@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM),
                                     (signal.SIGHUP, signal.SIGTERM)],
                         ids=["ctrl-c-twice", "sigterm-twice", "sighup-then-sigterm"])
def test_a_signalled_measuring_process_stops_its_runs_before_it_exits(tmp_path, signals):
    proc, report = _measure(tmp_path)
    for sig in signals:  # a second one comes while the run is being stopped: it must not end the measurer first
        proc.send_signal(sig)
        time.sleep(0.2)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert output.splitlines()[-1].startswith("interrupted"), output
    _assert_nothing_survived(tmp_path, report, output)


@pytest.mark.slow
def test_a_run_deaf_to_the_stop_is_killed_and_its_server_swept(tmp_path):
    proc, report = _measure(tmp_path, "stubborn")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert output.splitlines()[-1] == f"interrupted {-2}", output  # run_pytest's mark of a run it stopped
    _assert_nothing_survived(tmp_path, report, output)


@pytest.mark.slow
def test_a_killed_measuring_process_takes_its_runs_with_it(tmp_path):
    proc, report = _measure(tmp_path)
    proc.kill()  # SIGKILL: no handler of the measurer runs; the kernel tells its runs (PR_SET_PDEATHSIG)
    output, _ = proc.communicate(timeout=30)
    _assert_nothing_survived(tmp_path, report, output)
