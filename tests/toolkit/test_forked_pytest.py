"""The forked inner runs look like a new ``python -m pytest`` to the run, and leave their parent alone."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pggit_chaos import paths

from tests import forked_pytest

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-c", os.devnull]

# What the inner test sees of its process, written where the outer test reads it.
INSPECT = '''
import json, os, signal, sys
from pathlib import Path

from pggit_chaos import paths


def test_inspect():
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the listing's own descriptor, closed by now
    Path(os.environ["SEEN"]).write_text(json.dumps({
        "cwd": os.getcwd(),
        "argv": sys.argv[1:],
        "path0": sys.path[0],
        "marker": os.environ.get("MARKER"),
        "parent_only_variable": os.environ.get("PARENT_ONLY"),
        "parent_mark": hasattr(paths, "set_by_the_parent"),
        "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "sigint_python": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "sigusr2_ignored": signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN,
        "fds": fds,
    }))
'''


WAIT = """
import time
from pathlib import Path


def test_wait():
    Path({ready!r}).write_text("")
    time.sleep(60)
"""


def _start_waiting(tmp_path: Path, **kwargs) -> forked_pytest.PytestProcess:
    """test_wait.py's run, once its test is running."""
    proc = forked_pytest.popen([*PYTEST, "--rootdir", str(tmp_path), "test_wait.py"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the inner test never started"
        time.sleep(0.02)
    return proc


def _inspect(tmp_path: Path, preexec_fn=None, **env: str) -> dict:
    (tmp_path / "test_inspect.py").write_text(INSPECT)
    seen = tmp_path / "seen.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "PARENT_ONLY"}
    environment.update(SEEN=str(seen), **env)
    proc = forked_pytest.popen([*PYTEST, "-s", "--rootdir", str(tmp_path), "test_inspect.py"], cwd=tmp_path,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=preexec_fn)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "1 passed" in output, output
    return json.loads(seen.read_text())


def test_the_run_has_its_own_environment_directory_arguments_and_streams(tmp_path, monkeypatch):
    monkeypatch.setenv("PARENT_ONLY", "1")  # in this process's environment, not in the one given to the run
    parent_only = tmp_path / "parent-only"
    with open(parent_only, "w"):
        seen = _inspect(tmp_path, MARKER="inner", preexec_fn=forked_pytest.signals_as_in_a_terminal)
    assert seen["cwd"] == str(tmp_path) and seen["path0"] == str(tmp_path)
    assert seen["argv"][-1] == "test_inspect.py" and "--rootdir" in seen["argv"]
    assert seen["marker"] == "inner" and "MARKER" not in os.environ
    assert seen["parent_only_variable"] is None and os.environ["PARENT_ONLY"] == "1"
    # A descriptor the parent held open is closed in the child; its standard streams are its own pipes.
    assert str(parent_only) not in seen["fds"].values(), seen["fds"]
    assert seen["fds"]["0"] == os.devnull and seen["fds"]["1"].startswith("pipe:"), seen["fds"]
    assert seen["sigterm_default"] and seen["sigint_python"]


def test_the_checkouts_modules_are_imported_afresh(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "set_by_the_parent", True, raising=False)
    assert hasattr(paths, "set_by_the_parent")  # positive control: the parent's module has the mark
    assert _inspect(tmp_path)["parent_mark"] is False


def test_the_parents_exit_handlers_never_run_in_the_child(tmp_path):
    trace = tmp_path / "parent-handler-ran"
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")

    def parent_handler(*_):
        trace.write_text(f"pid {os.getpid()}")

    atexit.register(parent_handler)
    try:
        done = forked_pytest.run([*PYTEST, "--rootdir", str(tmp_path), "test_ok.py"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=120)
    finally:
        atexit.unregister(parent_handler)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
    assert not trace.exists(), trace.read_text()
    parent_handler()  # positive control: run here, the handler leaves its trace
    assert trace.exists()


def test_the_parents_signal_handlers_never_run_in_the_child(tmp_path):
    trace = tmp_path / "parent-handler-ran"
    (tmp_path / "test_wait.py").write_text(WAIT.format(ready=str(tmp_path / "ready")))

    def parent_handler(*_):
        trace.write_text(f"pid {os.getpid()}")

    previous = signal.signal(signal.SIGTERM, parent_handler)
    try:
        proc = _start_waiting(tmp_path)
        proc.terminate()
        proc.communicate(timeout=60)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert proc.returncode == -signal.SIGTERM  # SIGTERM's default action, as in a new interpreter
    assert not trace.exists(), trace.read_text()
    parent_handler()  # positive control
    assert trace.exists()


def test_a_signal_the_parent_ignores_stays_ignored_as_across_exec(tmp_path):
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        ignored = _inspect(tmp_path)["sigusr2_ignored"]
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert ignored
    assert _inspect(tmp_path)["sigusr2_ignored"] is False  # positive control: not ignored here, not there


def test_ctrl_c_interrupts_the_run_as_pytest_reports_it(tmp_path):
    (tmp_path / "test_wait.py").write_text(WAIT.format(ready=str(tmp_path / "ready")))
    proc = _start_waiting(tmp_path, preexec_fn=forked_pytest.signals_as_in_a_terminal)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output


def test_a_run_past_its_timeout_is_killed_and_reported(tmp_path):
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        forked_pytest.run([*PYTEST, "--rootdir", str(tmp_path), "test_slow.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=1)
    assert time.monotonic() - started < 30


def test_only_a_pytest_command_of_this_interpreter_is_accepted():
    with pytest.raises(ValueError, match="not a pytest command of this interpreter: .*'/usr/bin/python3'"):
        forked_pytest.run(["/usr/bin/python3", "-m", "pytest"])
    with pytest.raises(ValueError, match="stdout=-2 is not supported"):
        forked_pytest.popen([*PYTEST], stdout=subprocess.STDOUT)
