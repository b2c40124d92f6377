"""The ``http`` source: the same requests to both sides, on a schedule, each timed."""

from __future__ import annotations

import contextvars
import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ... import deadlines
from ...errors import ProbeError, TargetRefused
from ...target import TargetClient
from ..base import ProbeContext
from .common import _client, _scale

#: Requests in flight per side at most. The schedule is open-loop (a request leaves when it is
#: due, not when the one before it has answered), so that a slow side stretches the comparison
#: less: 300 requests at 100 a second take 3 s when a side answers in 5 ms, 12 s (not 45 s)
#: when it answers in 150 ms. Past this many unanswered requests the schedule waits: the
#: comparison measures the two sides, it must not load them into queueing (a load check does).
MAX_IN_FLIGHT = 4

#: One answer: (side, latency in seconds or None without an answer, an error?).
_Answer = tuple[str, float | None, bool]


def _send(side: str, client: TargetClient, method: str, path: str) -> _Answer:
    try:
        timed = client.request(method, path, lean=True)
    except (ProbeError, TargetRefused):
        return side, None, True  # no answer: an error, and no latency to count
    return side, timed.elapsed_ms / 1000.0, timed.response.status_code >= 500


def measure_http(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """The same request to each side at ``rps`` per side, up to ``requests`` per side, within
    the window (``for``) and the check's deadline: latencies (s) and error counts per side.

    Both sides' requests of a round leave together (alternating which is submitted first), on
    a schedule kept by this thread; at most ``MAX_IN_FLIGHT`` per side are unanswered at once.
    Every request carries its own total deadline and the check's, so the wait for the last
    answers is bounded too."""
    from ...canary import RateData, SampleData

    clients = {side: _client(check, ctx, side) for side in sides}
    if any(c is None for c in clients.values()):
        return {}
    limit = check.hold_for / _scale(ctx) if check.hold_for is not None else math.inf
    until = deadlines.current()
    budget = min(limit, (until - time.monotonic() - 1.0) if until is not None else math.inf)
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    errors = dict.fromkeys(sides, 0)
    sent = dict.fromkeys(sides, 0)
    interval = 1.0 / check.rps
    pending: set[Future[_Answer]] = set()

    def take(done: set[Future[_Answer]]) -> None:
        for future in done:
            side, latency, error = future.result()
            errors[side] += error
            if latency is not None:
                latencies[side].append(latency)

    started = time.monotonic()
    workers = MAX_IN_FLIGHT * len(sides)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rg-canary") as pool:
        for i in range(check.requests):
            due = started + i * interval
            while len(pending) > workers - len(sides):  # room for this round's requests
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                take(done)
            now = time.monotonic()
            if now - started >= budget:
                break
            if due > now:
                done, pending = wait(pending, timeout=due - now)
                take(done)
                time.sleep(max(0.0, due - time.monotonic()))
            for side in sides if i % 2 == 0 else sides[::-1]:
                client = clients[side]
                assert client is not None
                sent[side] += 1
                # The check's deadline lives in a context variable: each request takes a copy.
                context = contextvars.copy_context()
                pending.add(pool.submit(context.run, _send, side, client, check.method, check.path))
        done, pending = wait(pending)
        take(done)
    minutes = (time.monotonic() - started) / 60.0
    return {
        side: {
            "errors": RateData(errors[side], sent[side], minutes * _scale(ctx)),
            "latency": SampleData(latencies[side], minutes * _scale(ctx)),
        }
        for side in sides
    }
