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

Python drops an exception raised inside a finalizer (a ``__del__`` the
garbage collector runs, a weakref callback) and reports it to
``sys.unraisablehook``: a signal acted on there would leave the run ending
but deaf to every further signal. While handlers are installed, that hook
sees such a loss, and the signal is sent again a moment later.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
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
_delivered: int | None = None  # the signal whose exception was raised last: sent again if a finalizer dropped it
_unraisable_before = None  # sys.unraisablehook as it was before ours
# How long after a dropped exception its signal comes again: time for the collector to finish its round.
RESEND_SECONDS = 0.01


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
    global _delivered
    _delivered = signum
    if _forward:
        from pggit_chaos.server.processes import children_of

        for child in children_of(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(child, signum)
    previous = _installed.get(signum)
    if callable(previous):
        previous(signum, frame)  # Python's SIGINT handler raises KeyboardInterrupt itself
    raise Interrupted(f"{signal.Signals(signum).name} received: stopping the test run's servers")


def _unraisable(unraisable) -> None:
    """``sys.unraisablehook`` while handlers are installed: a signal's exception that a finalizer dropped is
    raised again, from the same signal sent a moment later (by then the collector is likely out of finalizers;
    one that drops it again brings it here again). It is this module's own, so it is not reported on; any
    other goes to the hook that was there before."""
    if _ending and _delivered is not None and isinstance(unraisable.exc_value, KeyboardInterrupt):
        resend = threading.Timer(RESEND_SECONDS, _resend, (_delivered,))
        resend.daemon = True
        resend.start()
        return
    (_unraisable_before or sys.__unraisablehook__)(unraisable)


def _resend(signum: int) -> None:
    global _ending
    _ending = False  # the run is not ending after all: the exception that was to end it is gone
    # To the main thread itself: a signal sent to the process may be taken by any thread that does not block it,
    # and only the main thread runs Python's handlers: asleep (time.sleep, a select), it would not wake for it.
    signal.pthread_kill(threading.main_thread().ident, signum)


def acquire(forward_to_children: bool = False) -> None:
    """A server (or, with ``forward_to_children``, an xdist controller's workers) is up: guard the run's end."""
    global _owners, _forward, _unraisable_before
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
    if _installed and sys.unraisablehook is not _unraisable:
        _unraisable_before, sys.unraisablehook = sys.unraisablehook, _unraisable


def release() -> None:
    """A holder is down; after the last one the handlers are restored and a held signal is acted on."""
    global _owners, _ending, _forward, _delivered
    _owners = max(0, _owners - 1)
    pending = _held[:1] if not _ending else []
    if _owners == 0:
        if _in_main_thread():
            for signum, previous in _installed.items():
                if signal.getsignal(signum) is _handle:
                    signal.signal(signum, previous)
            restored = dict(_installed)
            _installed.clear()
            if sys.unraisablehook is _unraisable:
                sys.unraisablehook = _unraisable_before
        else:
            restored = {}
        _ending, _forward, _delivered = False, False, None
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
