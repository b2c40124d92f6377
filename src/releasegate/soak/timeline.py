"""The soak's timeline: 1-second intervals folded into fixed-width rows of numbers.

Memory stays flat over a 48-hour soak because nothing per second is kept: each interval's
histogram is added into the open row's histogram (an array sum, same shape) and dropped; when
the row closes, its percentiles are read and its histogram is dropped too. A row is a dozen
numbers and a few words. The row width is chosen from the soak's duration so that a soak has
at most ``MAX_ROWS`` rows (48 h of minutes = 2880), and the in-memory rows are capped at that
count whatever happens (a resumed soak that overruns drops its oldest rows from memory; the
file on disk keeps them all).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .guard import US_PER_MS, GuardState, IntervalLike, Tick, empty_like, parts

MAX_ROWS = 2880
#: Widths a row may have, in seconds: the smallest that fits the soak in MAX_ROWS rows.
ROW_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def row_width(duration_s: float, max_rows: int = MAX_ROWS) -> int:
    """The narrowest nice row width that fits ``duration_s`` in ``max_rows`` rows."""
    for width in ROW_WIDTHS:
        if duration_s / width <= max_rows:
            return width
    return math.ceil(duration_s / max_rows)


@dataclass(slots=True)
class Row:
    """One row of the timeline: numbers, the guard's worst word, SLO states, events."""

    index: int
    start: float  # wall clock (epoch seconds) of its first interval's start
    end: float
    elapsed_s: float  # soak time at its end, across resumes
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    users: int
    guard: GuardState
    slo: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "requests": self.requests,
            "failures": self.failures,
            "rps": round(self.rps, 2),
            "p50_ms": _r(self.p50_ms),
            "p95_ms": _r(self.p95_ms),
            "p99_ms": _r(self.p99_ms),
            "error_rate": _r(self.error_rate, 6),
            "users": self.users,
            "guard": self.guard.value,
            "slo": dict(self.slo),
            "events": list(self.events),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        return cls(
            index=int(data["index"]),
            start=float(data["start"]),
            end=float(data["end"]),
            elapsed_s=float(data["elapsed_s"]),
            requests=int(data["requests"]),
            failures=int(data["failures"]),
            rps=float(data["rps"]),
            p50_ms=_f(data.get("p50_ms")),
            p95_ms=_f(data.get("p95_ms")),
            p99_ms=_f(data.get("p99_ms")),
            users=int(data.get("users", 0)),
            guard=GuardState(data.get("guard", "ok")),
            slo={str(k): str(v) for k, v in dict(data.get("slo", {})).items()},
            events=[str(e) for e in data.get("events", [])],
        )


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


class _OpenRow:
    """The row being filled: sums and one merged histogram."""

    __slots__ = (
        "end",
        "events",
        "failures",
        "guard",
        "hist",
        "index",
        "requests",
        "slo",
        "span",
        "start",
        "users",
    )

    def __init__(self, index: int, start: float) -> None:
        self.index = index
        self.start = start
        self.end = start
        self.span = 0.0
        self.requests = 0
        self.failures = 0
        self.users = 0
        self.hist: Any = None
        # The worst word of its ticks: a row of warm-up ticks only says warmup.
        self.guard = GuardState.WARMUP
        self.slo: dict[str, str] = {}
        self.events: list[str] = []

    def close(self, elapsed_s: float) -> Row:
        def pct(q: float) -> float | None:
            if self.hist is None or self.hist.get_total_count() == 0:
                return None
            return float(self.hist.get_value_at_percentile(q)) / US_PER_MS

        row = Row(
            index=self.index,
            start=self.start,
            end=self.end,
            elapsed_s=elapsed_s,
            requests=self.requests,
            failures=self.failures,
            rps=self.requests / self.span if self.span > 0 else 0.0,
            p50_ms=pct(50.0),
            p95_ms=pct(95.0),
            p99_ms=pct(99.0),
            users=self.users,
            guard=self.guard,
            slo=dict(self.slo),
            events=list(self.events),
        )
        self.hist = None  # the histogram goes with the open row
        return row


class Timeline:
    """Folds intervals into rows of ``row_s`` seconds of soak time; keeps at most
    ``max_rows`` closed rows in memory."""

    def __init__(self, row_s: float, *, max_rows: int = MAX_ROWS) -> None:
        self.row_s = row_s
        self.rows: deque[Row] = deque(maxlen=max_rows)
        self._open: _OpenRow | None = None
        self._last_elapsed = 0.0

    def add(self, interval: IntervalLike, elapsed_end: float, tick: Tick | None) -> Row | None:
        """Fold one interval ending at soak time ``elapsed_end``; return the row it closed."""
        index = max(int((elapsed_end - 1e-9) // self.row_s), 0)
        closed: Row | None = None
        if self._open is not None and index != self._open.index:
            closed = self.close()
        if self._open is None:
            self._open = _OpenRow(index, interval.start)
        row = self._open
        requests, failures, hists = parts(interval)
        row.end = interval.end
        row.span += max(interval.end - interval.start, 0.0)
        row.requests += requests
        row.failures += failures
        row.users = max(row.users, int(interval.users))
        for hist in hists:
            if row.hist is None:
                row.hist = empty_like(hist)
            row.hist.add(hist)
        if tick is not None and tick.state.rank > row.guard.rank:
            row.guard = tick.state
        self._last_elapsed = elapsed_end
        return closed

    def note_slo(self, name: str, status: str) -> None:
        """An SLO check's state in the open row (the worst the row saw is kept)."""
        if self._open is None:
            return
        from ..model import Status

        old = self._open.slo.get(name)
        if old is None or Status(status).rank < Status(old).rank:
            self._open.slo[name] = status

    def mark(self, event: str) -> None:
        """An event (breach, rollback, full gate, resume) in the open row, or the last row."""
        if self._open is not None:
            self._open.events.append(event)
        elif self.rows:
            self.rows[-1].events.append(event)

    def close(self) -> Row | None:
        """Close the open row (at a row boundary, or when the soak ends)."""
        if self._open is None:
            return None
        row = self._open.close(self._last_elapsed)
        self._open = None
        self.rows.append(row)
        return row
