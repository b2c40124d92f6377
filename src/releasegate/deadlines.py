"""How long a check may take, read by everything that waits on a check's behalf.

A check runs under a deadline: its spec ``timeout`` (or the ``releasegate`` marker's
``timeout=``), else the default of its kind (``DEFAULT_TIMEOUT_S``). The deadline is a
``time.monotonic()`` value held in a context variable while the check runs, so that HTTP
requests, SQL statements and retries started on the check's behalf never wait past it.

Threads started by a check do not inherit the variable (``threading.Thread`` does not copy
the context); such code passes ``current()`` along itself.

Code that waits cooperatively stops at the deadline; ``Alarm`` is the backstop for code that
does not (a Python check in ``time.sleep``, a probe stuck in a C call that returns eventually):
a ``SIGALRM`` a short grace after the deadline raises ``CheckDeadline`` in the main thread.
"""

from __future__ import annotations

import contextvars
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from .errors import CheckDeadline

# Seconds a check of each kind may take when its spec does not say. Generous on purpose: the
# deadline is a bound against hangs, not a performance expectation.
DEFAULT_TIMEOUT_S: dict[str, float] = {
    "smoke": 60.0,
    "db": 120.0,
    "slo": 600.0,
    "canary": 900.0,
    "load": 1800.0,
    "chaos": 1800.0,
}

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "releasegate_check_deadline", default=None
)


def default_timeout_s(kind: str) -> float:
    """The deadline of a check of ``kind`` whose spec gives none."""
    return DEFAULT_TIMEOUT_S.get(kind, DEFAULT_TIMEOUT_S["smoke"])


def current() -> float | None:
    """The running check's deadline (a ``time.monotonic()`` value), or None outside a check."""
    return _deadline.get()


def earliest(deadline: float | None) -> float | None:
    """The earlier of ``deadline`` and the running check's, either may be None."""
    check = _deadline.get()
    if check is None:
        return deadline
    if deadline is None:
        return check
    return min(check, deadline)


@contextmanager
def within(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[float]:
    """Run the block under a deadline ``seconds`` from now (never later than an outer one)."""
    until = clock() + seconds
    outer = _deadline.get()
    token = _deadline.set(until if outer is None else min(until, outer))
    try:
        yield until
    finally:
        _deadline.reset(token)


@dataclass(frozen=True, slots=True)
class Timeout:
    """How long one check may take, and where that figure comes from (for its reason)."""

    seconds: float
    source: str = "timeout"

    @classmethod
    def of(cls, seconds: float | None, kind: str) -> Timeout:
        """The check's own ``timeout`` if it gives one, else the default of its kind."""
        if seconds is not None:
            return cls(float(seconds), "timeout")
        return cls(default_timeout_s(kind), f"the default for {kind} checks")

    @property
    def exceeded(self) -> str:
        """The reason of a check that ran past this deadline."""
        return f"exceeded its deadline of {self.seconds:g}s ({self.source})"

    @property
    def grace_s(self) -> float:
        """How long after the deadline the backstop fires: long enough for a probe that honours
        the deadline itself to end first with its own evidence, short against a hang."""
        return min(1.0, max(0.25, self.seconds / 10))


def _is_ours(handler: Any) -> bool:
    return isinstance(getattr(handler, "__self__", None), Alarm)


class Alarm:
    """Raise ``CheckDeadline(message)`` in the main thread ``seconds`` after entering, unless the
    block has ended by then.

    A ``SIGALRM`` timer (``setitimer(ITIMER_REAL)``), armed only when it is free: in the main
    thread, on a platform that has it, with no other ``SIGALRM`` handler installed (such as
    pytest-timeout's) and no timer running. ``armed`` says whether it was; when it was not, the
    block runs under the context deadline only.
    """

    def __init__(self, seconds: float, message: str) -> None:
        self.seconds = seconds
        self.message = message
        self.armed = False
        self._live = False
        self._previous: Any = signal.SIG_DFL

    @staticmethod
    def available() -> bool:
        """Whether ``SIGALRM`` is free for the backstop here and now."""
        if not hasattr(signal, "setitimer"):
            return False  # Windows
        if threading.current_thread() is not threading.main_thread():
            return False
        handler = signal.getsignal(signal.SIGALRM)
        if handler not in (signal.SIG_DFL, None) and not _is_ours(handler):
            return False
        return signal.getitimer(signal.ITIMER_REAL)[0] == 0

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True  # pytest shows where the check was, not this handler
        if self._live:
            self._live = False
            raise CheckDeadline(self.message)

    def __enter__(self) -> Alarm:
        if self.seconds > 0 and self.available():
            previous = signal.signal(signal.SIGALRM, self._on_alarm)
            # A handler of ours left behind (an alarm that fired while its block was ending)
            # is nobody's to restore.
            self._previous = signal.SIG_DFL if _is_ours(previous) else previous
            self._live = self.armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.armed:
            return
        try:
            self._live = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
