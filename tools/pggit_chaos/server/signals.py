"""Ending a run by a signal: SIGTERM and SIGHUP end it as Ctrl-C does, and no signal cuts a server's teardown short.

A throwaway server runs in a session of its own, so a signal meant for the
test run never reaches it: the run must stop it. While this process owns a
server, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (a
KeyboardInterrupt, after any handler installed before ours has run), so
pytest's normal teardown stops the server. Once one signal is ending the
run, and during every teardown, further signals are held back until the
servers are down; a signal held during an ordinary teardown is acted on
right after it. A signal that was ignored (``nohup``) stays ignored.
Only SIGKILL escapes this; the next run's sweep (``janitor.py``) handles that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was ended by a signal; raised like Ctrl-C's KeyboardInterrupt so every teardown runs."""


_owners = 0  # holders (servers this process started, an xdist controller's workers) still up
_installed: dict[int, object] = {}  # signal number -> the handler ours replaced
_forward = False  # pass a signal on to this process's children (an xdist controller's workers)
_ending = False  # a signal is ending the run: later ones wait until every holder is released
_teardowns = 0  # teardowns in progress
_held: list[int] = []


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handle(signum: int, frame) -> None:
    global _ending
    if _ending or _teardowns:
        _held.append(signum)
        return
    _ending = True
    _deliver(signum, frame)


def _deliver(signum: int, frame) -> None:
    if _forward:
        from pggit_chaos.server.processes import children_of

        for child in children_of(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(child, signum)
    previous = _installed.get(signum)
    if callable(previous):
        previous(signum, frame)  # Python's SIGINT handler raises KeyboardInterrupt itself
    raise Interrupted(f"{signal.Signals(signum).name} received: stopping the test run's servers")


def acquire(forward_to_children: bool = False) -> None:
    """A server (or, with ``forward_to_children``, an xdist controller's workers) is up: guard the run's end."""
    global _owners, _forward
    _owners += 1
    _forward |= forward_to_children
    if _installed or not _in_main_thread():
        return
    for signum in SIGNALS:
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN or previous is None:
            continue  # ignored on purpose (nohup, a background job), or set outside Python: left alone
        _installed[signum] = previous
        signal.signal(signum, _handle)


def release() -> None:
    """A holder is down; after the last one the handlers are restored and a held signal is acted on."""
    global _owners, _ending, _forward
    _owners = max(0, _owners - 1)
    pending = _held[:1] if not _ending else []
    if _owners == 0:
        if _in_main_thread():
            for signum, previous in _installed.items():
                if signal.getsignal(signum) is _handle:
                    signal.signal(signum, previous)
            restored = dict(_installed)
            _installed.clear()
        else:
            restored = {}
        _ending, _forward = False, False
        _held.clear()
        if pending:
            previous = restored.get(pending[0])
            if callable(previous):
                previous(pending[0], None)
            raise Interrupted(f"{signal.Signals(pending[0]).name} received: stopping the test run")
    elif pending and not _teardowns:
        _held.clear()
        _ending = True
        _deliver(pending[0], None)


@contextlib.contextmanager
def holding() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back for the block: a teardown (or a start) is never cut in half."""
    global _teardowns, _ending
    _teardowns += 1
    try:
        yield
    finally:
        _teardowns -= 1
        if _held and not _teardowns and not _ending and _owners:
            signum = _held.pop(0)
            _held.clear()
            _ending = True
            _deliver(signum, None)
