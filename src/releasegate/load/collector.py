"""The recorder's data side, pure (no locust, no gevent): what each locust process records and
how the master (or the single process) merges and writes it to the channel.

``Recorder``: one process's requests, an HDR histogram per request name per interval.
``Collector``: every process's histograms merged by interval and written to the channel one
interval at a time, then the final line. ``locust_main`` wires both to locust's events; the
tests drive them directly with a fake clock.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

from .channel import FinalStats, Interval, NameStats, decode_histogram, new_histogram, to_us

#: The key of our histograms in a worker's report to the master.
REPORT_KEY = "releasegate_hdr"
#: How often the master looks for intervals to write, at most (seconds).
TICK_S = 0.1
#: How long after an interval ends a local run writes it (its requests are recorded on
#: completion, so only the greenlet switch is waited for).
LOCAL_LATENESS_S = 0.05
#: Beyond one worker report period, how long the master waits for an interval's reports.
MASTER_SLACK_S = 0.75
#: Request names kept apart at most; the rest are counted together under ``OTHER_NAMES``
#: (a locustfile naming requests by URL, one name per product id, would otherwise hold a
#: histogram per URL in memory).
MAX_NAMES = 100
OTHER_NAMES = "(other names)"


class _Names:
    """The first ``MAX_NAMES`` names seen keep their own; later ones share ``OTHER_NAMES``."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self.seen:
            return name
        if len(self.seen) < MAX_NAMES:
            self.seen.add(name)
            return name
        return OTHER_NAMES


class _Acc:
    """Counts and a histogram being filled (mutable, unlike ``NameStats``)."""

    __slots__ = ("failures", "histogram", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.histogram = new_histogram()

    def add(self, requests: int, failures: int, histogram: Any) -> None:
        self.requests += requests
        self.failures += failures
        self.histogram.add(histogram)

    def frozen(self) -> NameStats:
        return NameStats(self.requests, self.failures, self.histogram)


class Recorder:
    """One process's requests, by interval index (``floor(time / interval)``) and name."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.time) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.pending: dict[int, dict[str, _Acc]] = {}
        self.names = _Names()

    def record(self, name: str, response_time_ms: float | None, failed: bool) -> None:
        name = self.names(name)
        index = math.floor(self.clock() / self.interval_s)
        slot = self.pending.setdefault(index, {})
        acc = slot.get(name)
        if acc is None:
            acc = slot[name] = _Acc()
        acc.requests += 1
        if failed:
            acc.failures += 1
        if response_time_ms is not None:
            acc.histogram.record_value(to_us(response_time_ms))

    def drain(self) -> dict[int, dict[str, _Acc]]:
        taken, self.pending = self.pending, {}
        return taken

    def encoded(self) -> dict[str, dict[str, list[Any]]]:
        """What a worker sends: ``{index: {name: [requests, failures, hdr]}}`` (msgpack-able)."""
        return {
            str(index): {
                name: [acc.requests, acc.failures, acc.histogram.encode().decode("ascii")]
                for name, acc in names.items()
            }
            for index, names in self.drain().items()
        }


class Collector:
    """The master's (or the local process's) merge of every process's histograms, written to
    the channel one interval at a time, consecutive and without gaps (an interval without
    requests is written empty: time passing without traffic is itself a measurement)."""

    def __init__(
        self,
        path: str,
        interval_s: float,
        lateness_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.lateness_s = lateness_s
        self.clock = clock
        self.open: dict[int, dict[str, _Acc]] = {}
        self.totals: dict[str, _Acc] = {}
        self.next_index: int | None = None
        #: when the test started: the first interval starts there, not at its aligned start
        self.started: float | None = None
        self.written = 0
        self.late = 0
        self._late_in: dict[int, int] = {}
        self._users: dict[int, int] = {}
        self.foreign_reports = 0
        self.names = _Names()
        self.finished = False
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def start(self) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        if self.next_index is None:
            self.next_index = math.floor(now / self.interval_s)

    def add(self, index: int, name: str, requests: int, failures: int, histogram: Any) -> None:
        name = self.names(name)
        if self.next_index is None:
            self.next_index = index
        late = index < self.next_index
        if late:
            # Its interval is written already: count it in the next one, so totals stay exact.
            self.late += requests
            index = self.next_index
        slot = self.open.setdefault(index, {})
        acc = slot.get(name)
        if acc is None:
            acc = slot[name] = _Acc()
        acc.add(requests, failures, histogram)
        total = self.totals.get(name)
        if total is None:
            total = self.totals[name] = _Acc()
        total.add(requests, failures, histogram)
        if late:
            self._late_in[index] = self._late_in.get(index, 0) + requests

    def take_local(self, recorder: Recorder) -> None:
        for index, names in recorder.drain().items():
            for name, acc in names.items():
                self.add(index, name, acc.requests, acc.failures, acc.histogram)

    def take_report(self, data: dict[str, Any]) -> None:
        payload = data.get(REPORT_KEY)
        if payload is None:
            if data.get("stats"):
                self.foreign_reports += 1  # a worker without our plugin: plain locust
            return

        for index, names in payload.items():
            for name, (requests, failures, encoded) in names.items():
                histogram = decode_histogram(encoded.encode("ascii"))
                self.add(int(index), str(name), int(requests), int(failures), histogram)

    def note_users(self, users: int) -> None:
        """Remember the users running now: an interval shows the most it saw."""
        index = math.floor(self.clock() / self.interval_s)
        self._users[index] = max(users, self._users.get(index, 0))

    def emit_due(self, users: int) -> None:
        """Write every interval that ended at least ``lateness_s`` ago."""
        if self.next_index is None:
            return
        self.note_users(users)
        due = math.floor((self.clock() - self.lateness_s) / self.interval_s) - 1
        while self.next_index <= due:
            self._write_interval(self.next_index, users, end=None)

    def finish(self, users: int, locust: dict[str, Any]) -> None:
        """Write what is left (the last, partial interval too), then the final line."""
        if self.finished:
            return
        self.finished = True
        now = self.clock()
        if self.next_index is not None:
            last = max([math.floor(now / self.interval_s), *self.open])
            while self.next_index <= last:
                self._write_interval(self.next_index, users, end=now)
        final = FinalStats(
            end=now,
            intervals=self.written,
            by_name={name: acc.frozen() for name, acc in self.totals.items()},
            locust={**locust, "late_requests": self.late, "foreign_reports": self.foreign_reports},
        )
        self._write(final.to_json())
        os.close(self._fd)

    def _write_interval(self, index: int, users: int, end: float | None) -> None:
        start = index * self.interval_s
        stop = start + self.interval_s
        if self.started is not None and self.started > start:
            start = min(self.started, stop)
        if end is not None:
            stop = max(start, min(stop, end))
        names = self.open.pop(index, {})
        interval = Interval(
            start=start,
            end=stop,
            users=self._users.pop(index, users),
            by_name={name: acc.frozen() for name, acc in names.items()},
            index=index,
            late=self._late_in.pop(index, 0),
        )
        self._write(interval.to_json())
        self.written += 1
        self.next_index = index + 1

    def _write(self, data: dict[str, Any]) -> None:
        line = (json.dumps(data, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:  # one line, written whole before the next (the reader waits for "\n")
            written = os.write(self._fd, view)
            view = view[written:]


def locust_numbers(stats: Any) -> dict[str, Any]:
    """Locust's own figures (rounded percentiles, rps) per name and in total, for evidence."""

    def one(entry: Any) -> dict[str, Any]:
        requests = int(entry.num_requests)
        return {
            "requests": requests,
            "failures": int(entry.num_failures),
            "rps": float(entry.total_rps),
            "avg_ms": float(entry.avg_response_time),
            "max_ms": float(entry.max_response_time or 0),
            "p50_ms": float(entry.get_response_time_percentile(0.5) or 0) if requests else None,
            "p95_ms": float(entry.get_response_time_percentile(0.95) or 0) if requests else None,
            "p99_ms": float(entry.get_response_time_percentile(0.99) or 0) if requests else None,
        }

    return {
        "total": one(stats.total),
        "by_name": {f"{e.method} {e.name}": one(e) for e in stats.entries.values()},
    }
