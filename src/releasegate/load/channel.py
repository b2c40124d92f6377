"""The structured channel our locust plugin writes: one JSON line per interval, then a final line.

Locust's own statistics round response times into buckets of about two significant digits,
good for a dashboard and not for a gate on ``p(99) < 800ms``. Our plugin (``locust_main``)
records every response time in an HDR histogram instead (microseconds, 3 significant digits:
any percentile within 0.1%), one histogram per request name per interval, merges the workers'
histograms on the master and writes them here, compact (hdrh's ``encode()``: zlib + base64).

Line shapes (``"t"`` tells them apart)::

    {"t": "interval", "i": 1764745200, "start": ..., "end": ..., "users": 10, "late": 0,
     "by_name": {"GET /api/products": {"requests": 412, "failures": 0, "hdr": "HISTFAAAA..."}}}
    {"t": "final", "end": ..., "intervals": 5, "by_name": {...the whole run, same shape...},
     "locust": {...locust's own numbers...}}

This module is pure (no locust, no gevent): the pytest process and the soak runner read the
channel with ``ChannelReader``, which tails the file in bounded memory.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

#: Response times are recorded in microseconds, from 1 µs to one hour, to 3 significant digits
#: (every percentile within 0.1% of the exact value).
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3

#: The name of the all-requests aggregate in evidence (never a locust request name: those
#: carry their method first, ``GET /api/products``).
TOTAL = "Total"

#: A line longer than this is not ours (or is broken): the reader refuses to buffer it.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Bytes read per ``read_new`` call at most: a reader far behind catches up over several calls.
READ_CHUNK_BYTES = 8 * 1024 * 1024


class ChannelError(ValueError):
    """A channel line that cannot be ours: malformed JSON, a wrong shape, a broken histogram."""


def acyclic(histogram: HdrHistogram) -> HdrHistogram:
    """``histogram`` without its reference cycle (it holds its encoder, which holds it back).

    With the cycle, a histogram no longer used is freed only by a full garbage collection,
    which allocations of a few large count arrays (about 190 KB each) rarely trigger: a soak
    that decodes a few histograms a second grew by about 180 MB an hour. The encoder keeps a
    weak reference instead, and reference counting frees the pair at once."""
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


def new_histogram() -> HdrHistogram:
    """An empty histogram with the channel's range and precision (freed by reference counting,
    see ``acyclic``)."""
    return acyclic(HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS))


def decode_histogram(encoded: bytes) -> HdrHistogram:
    """A histogram from hdrh's ``encode()`` form (freed by reference counting, see ``acyclic``)."""
    return acyclic(HdrHistogram.decode(encoded))


def to_us(response_time_ms: float) -> int:
    """A locust response time (milliseconds, a float) as the histogram's clamped microseconds."""
    micros = round(response_time_ms * 1000)
    return min(max(micros, HDR_LOWEST_US), HDR_HIGHEST_US)


@dataclass(frozen=True)
class NameStats:
    """One request name (locust's method and name, ``GET /api/products``) or the total.

    ``histogram`` holds every response time in microseconds; treat it as read-only (``merge``
    makes a new one).
    """

    requests: int
    failures: int
    histogram: HdrHistogram = field(repr=False, compare=False)

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-th percentile (``q`` in 0..100) in milliseconds; None when no requests.

        HDR's value at a percentile is the highest value equivalent to the recorded one, so
        the figure is never below the true one and at most 0.1% above it.
        """
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q!r}: must be within 0..100")
        if self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_value_at_percentile(q)) / 1000.0

    @property
    def samples(self) -> int:
        """How many response times the histogram holds (successes and failures alike)."""
        return int(self.histogram.get_total_count())

    @property
    def error_rate(self) -> float | None:
        """Failures over requests; None when there were none."""
        return self.failures / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "hdr": self.histogram.encode().decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Any) -> NameStats:
        if not isinstance(data, Mapping):
            raise ChannelError(f"name stats must be an object, not {type(data).__name__}")
        try:
            requests, failures = int(data["requests"]), int(data["failures"])
            encoded = data["hdr"]
            histogram = decode_histogram(encoded.encode("ascii")) if encoded else None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ChannelError(f"name stats {str(data)[:120]!r}: {err}") from err
        except Exception as err:  # hdrh raises its own errors (or zlib's) on a broken payload
            raise ChannelError(f"broken histogram: {type(err).__name__}: {err}") from err
        if histogram is None:
            histogram = new_histogram()
        if requests < 0 or failures < 0 or failures > requests:
            raise ChannelError(f"impossible counts: {requests} requests, {failures} failures")
        return cls(requests, failures, histogram)


def merge(stats: Iterable[NameStats]) -> NameStats:
    """One ``NameStats`` holding all of ``stats`` (counts summed, histograms added)."""
    histogram = new_histogram()
    requests = failures = 0
    for one in stats:
        requests += one.requests
        failures += one.failures
        histogram.add(one.histogram)
    return NameStats(requests, failures, histogram)


def empty() -> NameStats:
    return NameStats(0, 0, new_histogram())


@dataclass(frozen=True)
class Interval:
    """One interval of the run (``end - start`` is the run's interval, 1 s by default) with
    every worker's requests merged; ``users`` is the users running when it was written and
    ``late`` how many requests arrived after their own interval had been written (they are
    counted here instead, so totals stay exact)."""

    start: float
    end: float
    users: int
    by_name: dict[str, NameStats]
    #: ``floor(start / interval)``: consecutive intervals have consecutive indexes
    index: int = 0
    late: int = 0

    def total(self) -> NameStats:
        return merge(self.by_name.values())

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "interval",
            "i": self.index,
            "start": self.start,
            "end": self.end,
            "users": self.users,
            "late": self.late,
            "by_name": {name: stats.to_json() for name, stats in self.by_name.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Interval:
        try:
            return cls(
                index=int(data["i"]),
                start=float(data["start"]),
                end=float(data["end"]),
                users=int(data.get("users", 0)),
                late=int(data.get("late", 0)),
                by_name=_by_name(data.get("by_name")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ChannelError(f"interval line: {err}") from err


@dataclass(frozen=True)
class FinalStats:
    """The final line: the whole run's histograms per name (exact, ours) and locust's own
    numbers (its rounded percentiles, its rps) for the evidence."""

    end: float
    intervals: int
    by_name: dict[str, NameStats]
    locust: dict[str, Any]

    def total(self) -> NameStats:
        return merge(self.by_name.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "final",
            "end": self.end,
            "intervals": self.intervals,
            "by_name": {name: stats.to_json() for name, stats in self.by_name.items()},
            "locust": self.locust,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FinalStats:
        locust = data.get("locust")
        try:
            return cls(
                end=float(data["end"]),
                intervals=int(data.get("intervals", 0)),
                by_name=_by_name(data.get("by_name")),
                locust=dict(locust) if isinstance(locust, Mapping) else {},
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ChannelError(f"final line: {err}") from err


def _by_name(data: Any) -> dict[str, NameStats]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ChannelError(f"by_name must be an object, not {type(data).__name__}")
    return {str(name): NameStats.from_json(stats) for name, stats in data.items()}


def parse_line(raw: bytes | str) -> Interval | FinalStats:
    """One channel line as an ``Interval`` or the ``FinalStats``; ``ChannelError`` otherwise."""
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise ChannelError(f"not JSON: {err}") from err
    if not isinstance(data, dict):
        raise ChannelError("a channel line is a JSON object")
    kind = data.get("t")
    if kind == "interval":
        return Interval.from_json(data)
    if kind == "final":
        return FinalStats.from_json(data)
    raise ChannelError(f"unknown line type {kind!r}")


class ChannelReader:
    """Tail the channel file: each ``read_new()`` returns the complete intervals written since
    the last call. A partial last line (the writer is mid-write) waits for the next call; the
    file not existing yet is no interval yet. Memory is bounded: at most ``READ_CHUNK_BYTES``
    are read per call and nothing is kept between calls but a partial line (itself refused
    past ``MAX_LINE_BYTES``). Bad lines are counted in ``bad_lines`` with the last problem in
    ``last_problem``, never raised: a gate decides on what it could read.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.final: FinalStats | None = None
        self.bad_lines = 0
        self.last_problem: str | None = None
        self.intervals_read = 0
        self._offset = 0
        self._partial = bytearray()
        self._skipping = False  # inside an over-long line: drop bytes up to its end

    def read_new(self) -> list[Interval]:
        """New complete intervals since the last call, in file order."""
        try:
            with open(self.path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size < self._offset:
                    self._note("the channel file shrank: read again from its start")
                    self._offset = 0
                    self._partial.clear()
                handle.seek(self._offset)
                chunk = handle.read(READ_CHUNK_BYTES)
        except FileNotFoundError:
            return []
        except OSError as err:
            self._note(f"cannot read {self.path}: {err.strerror or err}")
            return []
        self._offset += len(chunk)
        found: list[Interval] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._keep_partial(chunk[start:])
                break
            piece = chunk[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
                continue
            line = bytes(self._partial) + piece if self._partial else piece
            self._partial.clear()
            if line.strip():
                self._take(line, found)
        return found

    def _keep_partial(self, rest: bytes) -> None:
        if self._skipping:
            return
        self._partial += rest
        if len(self._partial) > MAX_LINE_BYTES:
            self._note(f"a line over {MAX_LINE_BYTES} bytes: skipped")
            self._partial.clear()
            self._skipping = True

    def _take(self, line: bytes, found: list[Interval]) -> None:
        try:
            item = parse_line(line)
        except ChannelError as err:
            self._note(str(err))
            return
        if isinstance(item, FinalStats):
            self.final = item
        else:
            self.intervals_read += 1
            found.append(item)

    def _note(self, problem: str) -> None:
        self.bad_lines += 1
        self.last_problem = problem
