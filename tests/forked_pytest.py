"""Inner pytest runs for the suite's own tests: a fork of this process, not a new interpreter.

Many of the toolkit's tests run pytest on a small project of their own (the
plugin's teardown, its options, a page's results). A new interpreter spends
about a second of CPU importing pytest, Hypothesis, psycopg and the plugins
before its run starts; a fork of the worker has them already. The child is
made to look like a new ``python -m pytest`` everywhere its run could tell:

- its own environment, working directory, ``sys.argv`` and ``sys.path``
  (the working directory, then ``PYTHONPATH``, then the interpreter's own);
- its own standard streams; every other descriptor it inherited is closed;
- signals as exec and a new interpreter leave them (the parent's handlers
  gone, what it ignores still ignored), no exit handlers of the parent's,
  no assertion-rewriting hook of the parent's run;
- every module of this checkout (the toolkit, conftest files, tests) dropped,
  so the run imports them afresh and reads its environment as a new process
  does; only third-party libraries are shared, as the parent imported them.

What the parent holds is kept alive and out of the collector's reach in the
child (``gc.freeze``), so no finalizer of the parent's (a connection, a
cluster) ever runs there. Tests that need a new interpreter still start one:
another virtualenv, what a run imports (the libraries are loaded already),
a process found by its command line (a fork keeps its parent's).

``run`` mirrors ``subprocess.run`` and ``popen`` ``subprocess.Popen``, for the
arguments the suite uses; both take ``[sys.executable, "-m", "pytest", *args]``
so that a call reads as the command it stands for.
"""

from __future__ import annotations

import atexit
import faulthandler
import gc
import io
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path

import _pytest.assertion.rewrite
import pytest

REPO = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest"]


@cache
def _interpreter_path() -> tuple[str, ...]:
    """``sys.path`` of a new interpreter, without its first entry (the script's or working directory)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.path[1:]))"],
                         env=env, capture_output=True, text=True, check=True).stdout
    return tuple(out.splitlines())


def _checkout_modules() -> list[str]:
    """Names of the loaded modules whose file lies in this checkout (a virtualenv inside it aside)."""
    venv = Path(sys.prefix).resolve()
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and (path := Path(file).resolve()).is_relative_to(REPO) and not path.is_relative_to(venv):
            names.append(name)
    return names


def _signals_as_after_exec() -> None:
    """Dispositions as exec and then a new interpreter leave them.

    Exec drops a handler the parent set (SIG_DFL) and keeps an ignored
    signal ignored (a background job's SIGINT, say); the interpreter then
    makes SIGINT raise KeyboardInterrupt unless it is ignored, and ignores
    SIGPIPE and SIGXFSZ. Nothing is blocked or woken any more.
    """
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in signal.valid_signals():
        if callable(signal.getsignal(sig)):
            signal.signal(sig, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def signals_as_in_a_terminal() -> None:
    """A ``preexec_fn``: the run starts as one typed at a terminal would, whatever started this one.

    A shell starts a background job with SIGINT ignored, and a child inherits that:
    the inner run would then rightly leave Ctrl-C ignored, and a test that sends it would wait in vain.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _child(args: list[str], cwd: str | None, env: Mapping[str, str], fds: tuple[int, int, int],
           preexec_fn: Callable[[], None] | None) -> None:
    """In the forked child: become a new ``python -m pytest`` and run it; never returns."""
    code = 70
    try:
        gc.freeze()  # the parent's objects: never collected here, so none of their finalizers runs
        faulthandler.disable()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        if cwd is not None:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        atexit._clear()  # the parent's exit handlers (its servers' cleanup) are not this run's
        if preexec_fn is not None:
            preexec_fn()  # as subprocess runs it: before exec, so what it ignores stays ignored
        _signals_as_after_exec()
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True,
                                                       errors="backslashreplace")
        sys.meta_path[:] = [f for f in sys.meta_path
                            if not isinstance(f, _pytest.assertion.rewrite.AssertionRewritingHook)]
        # Dropped but still referenced: a module freed here could finalize what the parent's module held.
        _kept = [sys.modules.pop(name) for name in _checkout_modules()]  # noqa: F841
        python_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.getcwd(), *python_path, *_interpreter_path()]
        sys.argv = [pytest.__file__.replace("__init__.py", "__main__.py"), *args]
        try:
            code = pytest.console_main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            # As CPython ends on an uncaught KeyboardInterrupt: killed by SIGINT.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        code = 1
    finally:
        os._exit(int(code))


class PytestProcess:
    """A forked pytest run, with the part of ``subprocess.Popen`` the suite uses."""

    def __init__(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None, stdout: int | None = None, stderr: int | None = None,
                 text: bool = False, preexec_fn: Callable[[], None] | None = None) -> None:
        command = [str(a) for a in argv]
        if command[:3] != PYTEST:
            raise ValueError(f"not a pytest command of this interpreter: {command[:3]!r} (expected {PYTEST!r})")
        for name, value in (("stdout", stdout), ("stderr", stderr)):
            if value not in (None, subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT) or (
                    value == subprocess.STDOUT and name == "stdout"):
                raise ValueError(f"{name}={value!r} is not supported")
        self.args, self.returncode, self.text = command, None, text
        opened, ours = [], {}

        def child_end(value: int | None, default: int) -> int:
            if value == subprocess.PIPE:
                read, write = os.pipe()
                opened.append(write)
                ours[default] = read
                return write
            if value == subprocess.DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR)
                opened.append(fd)
                return fd
            return default

        stdin_fd = os.open(os.devnull, os.O_RDONLY)
        opened.append(stdin_fd)
        out_fd = child_end(stdout, 1)
        err_fd = out_fd if stderr == subprocess.STDOUT else child_end(stderr, 2)
        environment = dict(os.environ if env is None else env)
        cwd = None if cwd is None else os.fspath(cwd)
        _interpreter_path()  # found here, once: not in every child
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            # Python 3.12 warns of fork in a process with threads (xdist's): the child takes no lock of
            # theirs, as its streams, handlers and the checkout's modules are its own.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:
            _child(command[3:], cwd, environment, (stdin_fd, out_fd, err_fd), preexec_fn)
        for fd in opened:
            os.close(fd)
        self.stdout = self._reader(ours.get(1))
        self.stderr = self._reader(ours.get(2))
        self._readers: dict[str, tuple[threading.Thread, list]] = {}  # by stream: its reader, what it read

    def _reader(self, fd: int | None):
        if fd is None:
            return None
        if self.text:
            return open(fd, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by communicate or close
        return open(fd, "rb")  # noqa: SIM115

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple:
        """Both streams to their end, then the exit; a timeout leaves the readers going for a later call."""
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None and name not in self._readers:
                box: list = []
                reader = threading.Thread(target=lambda s=stream, b=box: b.append(s.read()), daemon=True)
                reader.start()
                self._readers[name] = (reader, box)
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        for reader, _ in self._readers.values():
            reader.join(left())
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(left())
        results = []
        for name in ("stdout", "stderr"):
            if name in self._readers:
                getattr(self, name).close()
                results.append(self._readers[name][1][0])
            else:
                results.append(None)
        return tuple(results)

    def __enter__(self) -> "PytestProcess":
        return self

    def __exit__(self, *exc) -> None:
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


def popen(argv: Sequence[str | os.PathLike], **kwargs) -> PytestProcess:
    """``subprocess.Popen`` for a pytest run, forked."""
    return PytestProcess(argv, **kwargs)


def run(argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None, capture_output: bool = False, text: bool = False,
        timeout: float | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a pytest run, forked: on a timeout the run is killed, as there."""
    pipe = subprocess.PIPE if capture_output else None
    proc = PytestProcess(argv, cwd=cwd, env=env, stdout=pipe, stderr=pipe, text=text)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        done.check_returncode()
    return done
