"""The ``http`` source: requests to both sides in turn, each timed."""

from __future__ import annotations

import math
import time
from typing import Any

from ... import deadlines
from ...errors import ProbeError, TargetRefused
from ..base import ProbeContext
from .common import _client, _scale


def measure_http(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """Requests to each side in turn (alternating which goes first) at ``rps`` per side, up to
    ``requests`` per side, within the window (``for``) and the check's deadline: latencies (s)
    and error counts per side."""
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
    started = time.monotonic()
    for i in range(check.requests):
        due = started + i * interval
        now = time.monotonic()
        if now - started >= budget:
            break
        if due > now:
            time.sleep(due - now)
        # Each side goes first in every other round: the first request after the pause pays
        # for waking up (scheduler, sockets), which would otherwise always fall on one side.
        for side in sides if i % 2 == 0 else sides[::-1]:
            client = clients[side]
            assert client is not None
            sent[side] += 1
            try:
                timed = client.request(check.method, check.path)
            except (ProbeError, TargetRefused):
                errors[side] += 1  # no answer: an error, and no latency to count
                continue
            if timed.response.status_code >= 500:
                errors[side] += 1
            latencies[side].append(timed.elapsed_ms / 1000.0)
    minutes = (time.monotonic() - started) / 60.0
    return {
        side: {
            "errors": RateData(errors[side], sent[side], minutes * _scale(ctx)),
            "latency": SampleData(latencies[side], minutes * _scale(ctx)),
        }
        for side in sides
    }
