"""SIGTERM during a reserving populate: stop the worker without leaving a job half-recorded.

DataJoint turns SIGTERM into SystemExit wherever it lands. Here it lands only where it can be
handled cleanly: inside make() (the transaction rolls back and the key is recorded as an error) or
between keys (nothing is held). While the worker is reserving a key, or recording what happened to
one, the signal is only noted, and it takes effect as soon as that bookkeeping is done, so no key
is left reserved by a worker that is gone. Signal handlers run in the main thread, so only the main
thread's populate is affected; populate in other threads ignores SIGTERM, as the process decides.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("dj_flows.populate")
MESSAGE = "SIGTERM received"


class _State:
    installed = False
    requested = False
    deferred = 0  # > 0: bookkeeping in progress, the signal waits


_state = _State()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handler(signum: int, frame: Any) -> None:
    logger.info("populate terminated by SIGTERM")
    _state.requested = True
    if not _state.deferred:
        raise SystemExit(MESSAGE)


def _immediate(signum: int, frame: Any) -> None:
    logger.info("populate terminated by SIGTERM")
    raise SystemExit(MESSAGE)


@contextlib.contextmanager
def sigterm_as_exit(enabled: bool, *, immediate: bool = False) -> Iterator[None]:
    """While reserving jobs, SIGTERM raises SystemExit (at once with `immediate`, else only where
    it can be handled cleanly: see the module docstring)."""
    if not enabled or not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _immediate if immediate else _handler)
    saved = (_state.installed, _state.requested, _state.deferred)
    _state.installed, _state.requested, _state.deferred = not immediate, False, 0
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _state.installed, _state.requested, _state.deferred = saved


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Bookkeeping (reserve, record an error, give a key back): a SIGTERM now waits for its end."""
    if not _main_thread():
        yield
        return
    _state.deferred += 1
    try:
        yield
    finally:
        _state.deferred -= 1


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """make() and its transaction: a SIGTERM (also one noted just before) raises SystemExit here."""
    if not _main_thread() or not _state.installed:
        yield
        return
    saved, _state.deferred = _state.deferred, 0
    try:
        check()
        yield
    finally:
        _state.deferred = saved


def check() -> None:
    """Raise SystemExit if a SIGTERM was noted and nothing defers it."""
    if _main_thread() and _state.installed and _state.requested and not _state.deferred:
        raise SystemExit(MESSAGE)
