"""Keeping a gate run's end in our hands: signals, the whole-run deadline, ``os._exit``.

A gate run must always end with a record. SIGTERM (a cancelled CI job) and SIGINT become an
orderly interruption that the round records INCONCLUSIVE; the whole-run deadline does the same,
and if the run does not wind down within a grace period an emergency callback records it from
the timer thread and the process exits 12. A check that calls ``os._exit`` in the process that
runs it ends as NOT_RUN instead of ending the run (forked children exit as usual).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

REAL_EXIT = os._exit
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CheckExited(BaseException):
    """A check called ``os._exit``: caught so the run can record that the check never said."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the check called os._exit({code}), which would have ended the gate run")
        self.code = code


_guard_pid: int | None = None


def _guarded_exit(code: int) -> None:  # replaces os._exit in the checks' process
    if os.getpid() == _guard_pid:
        raise CheckExited(code)
    REAL_EXIT(code)  # a forked child of a check: exit as asked


def guard_exit() -> None:
    """Turn ``os._exit`` in this process into ``CheckExited`` (children are not affected)."""
    global _guard_pid
    _guard_pid = os.getpid()
    os._exit = _guarded_exit  # type: ignore[assignment]


def unguard_exit() -> None:
    global _guard_pid
    _guard_pid = None
    os._exit = REAL_EXIT


class Interrupts:
    """SIGTERM/SIGINT handlers and the deadline timer of one gate run (controller only).

    ``reason`` is set by the first signal or by the deadline. While ``hold()`` is in effect
    (the round is writing the record and running hooks) a signal is noted, not raised: the
    round is bounded by its hooks' timeouts and must not be cut in half.
    """

    def __init__(self, deadline_s: float, emergency: Callable[[str], int], grace_s: float = 30.0):
        self.deadline_s = deadline_s
        self.grace_s = grace_s
        self.emergency = emergency
        self.reason: str | None = None
        self._holding = False
        self._held_signals = 0
        self._previous: dict[int, Any] = {}
        self._timers: list[threading.Timer] = []
        self._done = threading.Event()

    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in INTERRUPT_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        timer = threading.Timer(self.deadline_s, self._deadline)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is None:
            self.reason = f"{signal.Signals(signum).name} received"
        if not self._holding:
            raise KeyboardInterrupt(self.reason)
        self._held_signals += 1
        if self._held_signals >= 2:
            # Asked twice while the run winds down: the person means it.
            raise KeyboardInterrupt(f"{self.reason}; stopped while winding down")

    def _deadline(self) -> None:
        if self._done.is_set():
            return
        if self._holding:
            # Deciding or winding down (teardown): not interrupted, but still bounded.
            self._start_grace()
            return
        if self.reason is None:
            self.reason = f"the run's deadline of {self.deadline_s:g}s was reached"
        self._start_grace()
        os.kill(os.getpid(), signal.SIGTERM)

    def _start_grace(self) -> None:
        grace = threading.Timer(self.grace_s, self._hard_stop)
        grace.daemon = True
        grace.start()
        self._timers.append(grace)

    def _hard_stop(self) -> None:
        if self._done.is_set():
            return
        # The main thread did not wind down (a check stuck where no signal reaches it):
        # record from here, then end the process.
        reason = (
            f"{self.reason or 'the deadline'}; the run did not stop within {self.grace_s:g}s more"
        )
        code = 12
        try:
            code = self.emergency(reason)
        finally:
            REAL_EXIT(code)

    def hold(self) -> None:
        """From now on (the round, then pytest's teardown) a signal is noted, not raised;
        a second one raises all the same."""
        self._holding = True

    def stop(self) -> None:
        """At the very end (``pytest_unconfigure``): cancel the timers, restore the handlers."""
        self._done.set()
        for timer in self._timers:
            timer.cancel()
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
        self._previous.clear()
