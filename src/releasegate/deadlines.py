"""How long a check may take, read by everything that waits on a check's behalf.

A check runs under a deadline: its spec ``timeout`` (or the ``releasegate`` marker's
``timeout=``), else the default of its kind (``DEFAULT_TIMEOUT_S``). The deadline is a
``time.monotonic()`` value held in a context variable while the check runs, so that HTTP
requests, SQL statements and retries started on the check's behalf never wait past it.

Threads started by a check do not inherit the variable (``threading.Thread`` does not copy
the context); such code passes ``current()`` along itself.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
