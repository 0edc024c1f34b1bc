"""SIGTERM during a reserving populate lands only where it can be handled cleanly."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dj_flows import termination

pytestmark = pytest.mark.timeout(30)


def sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


def test_sigterm_between_keys_exits_at_once():
    with termination.sigterm_as_exit(True), pytest.raises(SystemExit, match="SIGTERM received"):
        sigterm_self()


def test_sigterm_during_bookkeeping_waits_for_its_end():
    reached = []
    with termination.sigterm_as_exit(True):
        with termination.deferred():
            sigterm_self()
            reached.append("bookkeeping finished")
        with pytest.raises(SystemExit):
            termination.check()
    assert reached == ["bookkeeping finished"]


def test_a_noted_sigterm_interrupts_the_next_make():
    with termination.sigterm_as_exit(True), termination.deferred():
        sigterm_self()
        with pytest.raises(SystemExit), termination.interruptible():
            pytest.fail("make() must not start after a SIGTERM")


def test_sigterm_inside_make_raises_there():
    with termination.sigterm_as_exit(True), termination.deferred():
        with pytest.raises(SystemExit), termination.interruptible():
            sigterm_self()
        termination.check()  # back in bookkeeping: the noted SIGTERM waits again


def test_the_previous_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with termination.sigterm_as_exit(True):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    with termination.sigterm_as_exit(False):
        assert signal.getsignal(signal.SIGTERM) is before
