"""The requests of the last minute, summarised as the metrics JSON of runbook 002.

``GET /metrics.json`` answers what a JSON-metrics SLO source reads: request count, 5xx error
rate and latency percentiles over a sliding window, overall, per variant (the version that
served) and per route. Memory is bounded: at most ``max_samples`` requests are kept, and when
more arrive within the window the oldest go first and the answer says ``"truncated": true``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

DEFAULT_WINDOW_S = 60.0
MAX_SAMPLES = 100_000  # 1,600 requests a second for a minute, a few MB at most


@dataclass(frozen=True, slots=True)
class Sample:
    """One answered request."""

    at: float  # monotonic seconds
    variant: str
    route: str  # "GET /api/products/<int:product_id>": the method and the URL rule
    duration_ms: float
    error: bool  # answered 5xx


def _percentile(ordered: list[float], fraction: float) -> float:
    # Nearest rank: a value that was measured, never one interpolated between two.
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarise(samples: Iterable[Sample]) -> dict[str, Any]:
    """``requests``, ``errors``, ``error_rate`` (0..1), ``error_rate_percent`` and p50/p95/p99
    in ms; with no requests the rate and percentiles are ``null``: no data, not a clean bill."""
    durations = []
    errors = 0
    for sample in samples:
        durations.append(sample.duration_ms)
        errors += sample.error
    count = len(durations)
    if not count:
        return {
            "requests": 0,
            "errors": 0,
            "error_rate": None,
            "error_rate_percent": None,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
        }
    durations.sort()
    return {
        "requests": count,
        "errors": errors,
        "error_rate": round(errors / count, 6),
        "error_rate_percent": round(100 * errors / count, 4),
        "p50_ms": round(_percentile(durations, 0.50), 3),
        "p95_ms": round(_percentile(durations, 0.95), 3),
        "p99_ms": round(_percentile(durations, 0.99), 3),
    }


class RequestWindow:
    """The answered requests of the last ``window_s`` seconds. Thread-safe."""

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        max_samples: int = MAX_SAMPLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[Sample] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self._truncated_at: float | None = None  # when a sample last fell out before its time

    def add(self, variant: str, route: str, duration_s: float, error: bool) -> None:
        now = self._clock()
        with self._lock:
            samples = self._samples
            if len(samples) == samples.maxlen and now - samples[0].at < self.window_s:
                self._truncated_at = now
            samples.append(Sample(now, variant, route, duration_s * 1000, error))

    def _recent(self) -> tuple[list[Sample], bool]:
        now = self._clock()
        with self._lock:
            while self._samples and now - self._samples[0].at > self.window_s:
                self._samples.popleft()
            truncated = self._truncated_at is not None and now - self._truncated_at < self.window_s
            return list(self._samples), truncated

    def snapshot(self) -> dict[str, Any]:
        """The JSON answer: the summary overall, then per ``variants`` and per ``routes``."""
        samples, truncated = self._recent()
        variants: dict[str, list[Sample]] = {}
        routes: dict[str, list[Sample]] = {}
        for sample in samples:
            variants.setdefault(sample.variant, []).append(sample)
            routes.setdefault(sample.route, []).append(sample)
        moment = datetime.now(timezone.utc)
        return {
            "window_s": self.window_s,
            "generated_at": moment.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{moment.microsecond // 1000:03d}Z",
            **summarise(samples),
            "variants": {name: summarise(group) for name, group in sorted(variants.items())},
            "routes": {name: summarise(group) for name, group in sorted(routes.items())},
            "truncated": truncated,
        }
