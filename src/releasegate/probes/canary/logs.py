"""The ``logs`` source: each side's new log lines over the window."""

from __future__ import annotations

import contextlib
import random
import re
import time
from pathlib import Path
from typing import Any

from ... import deadlines
from ...errors import ProbeError
from ..base import ProbeContext
from .common import LATENCY_SCALE, _scale


def log_path(name: str, ctx: ProbeContext) -> Path:
    path = Path(name)
    if not path.is_absolute() and ctx.spec_dir is not None:
        path = ctx.spec_dir / path
    return path


class _SideLines:
    """One side's tally of log lines: all, errors, and the durations read off them, at most
    ``keep`` of them: past it a uniform random sample (a seeded reservoir), so that memory
    stays bounded however busy the log and the sample stays representative of the window."""

    def __init__(self, match: str | None, keep: int) -> None:
        self.match = re.compile(match) if match is not None else None
        self.lines = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.seen = 0
        self._keep = keep
        self._rng = random.Random(0)

    def took(self, seconds: float) -> None:
        self.seen += 1
        if len(self.latencies) < self._keep:
            self.latencies.append(seconds)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self._keep:
            self.latencies[slot] = seconds


def _tally(
    lines: list[str],
    sides: list[_SideLines],
    bad: list[re.Pattern[str]],
    latency: re.Pattern[str] | None,
    scale: float,
) -> None:
    for line in lines:
        mine = [s for s in sides if s.match is None or s.match.search(line)]
        if not mine:
            continue
        is_bad = any(b.search(line) for b in bad)
        took = None
        if latency is not None and (found := latency.search(line)) is not None:
            group = "latency" if "latency" in latency.groupindex else 1
            with contextlib.suppress(TypeError, ValueError):  # the group did not take part
                took = float(found.group(group)) * scale
        for side in mine:
            side.lines += 1
            side.errors += is_bad
            if took is not None:
                side.took(took)


def measure_logs(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """The lines each side's log gets over the window (``for``, scaled), read as they come:
    error lines (any ``patterns.bad``) out of all the side's lines, and the durations that
    ``latency_pattern`` reads off them. One file for both sides is read once and its lines
    go to each side whose ``match`` they match."""
    from ...canary import RateData, SampleData
    from ..logs import DEADLINE_MARGIN_S, FILE_READ_BYTES, FileTail, LineSplitter

    duration = check.hold_for / _scale(ctx)
    tallies = {side: _SideLines(getattr(check, side).match, check.max_samples) for side in sides}
    by_file: dict[Path, list[_SideLines]] = {}
    for side in sides:
        path = log_path(getattr(check, side).file or check.file, ctx)
        by_file.setdefault(path, []).append(tallies[side])
    tails = [
        (
            FileTail(
                path,
                LineSplitter(check.max_line_bytes, check.max_read_bytes),
                from_start=False,
                sleep=ctx.sleep,
            ),
            readers,
        )
        for path, readers in by_file.items()
    ]
    bad = [re.compile(p) for p in check.patterns.bad]
    latency = re.compile(check.latency_pattern) if check.latency_pattern else None
    scale = LATENCY_SCALE[check.latency_unit]
    deadline = deadlines.current()
    with contextlib.ExitStack() as stack:
        for tail, _ in tails:
            tail.open()
            stack.callback(tail.close)
        started = ctx.clock()
        margin = 0.0
        if deadline is not None:
            margin = min(DEADLINE_MARGIN_S, max(deadline - time.monotonic(), 0.0) / 10)
        poll = min(max(duration / 20, 0.05), 1.0)

        def read(tail: FileTail, readers: list[_SideLines]) -> int:
            """One look at ``tail``: its new lines tallied; the bytes it read."""
            before = tail.split.bytes_read
            _tally(tail.lines(), readers, bad, latency, scale)
            if tail.split.capped:
                raise ProbeError(
                    f"read max_read_bytes ({tail.split.max_bytes:,} bytes) of {tail.path}"
                    f" after {ctx.clock() - started:.2f}s of {duration:.2f}s: the rest of"
                    " the window was not read. Fix: raise max_read_bytes or shorten for:"
                )
            return tail.split.bytes_read - before

        while True:
            left = started + duration - ctx.clock()
            if left <= 0:
                # The window is over: take the backlog it wrote that is still unread (a look
                # reads at most FILE_READ_BYTES); a short read means the end was reached.
                for tail, readers in tails:
                    while read(tail, readers) >= FILE_READ_BYTES:
                        pass
                break
            for tail, readers in tails:
                read(tail, readers)
            if deadline is not None:
                room = deadline - margin - time.monotonic()
                if room <= 0:
                    raise ProbeError(
                        f"the check's deadline ended the window after"
                        f" {ctx.clock() - started:.2f}s of {duration:.2f}s: give it a timeout"
                        " longer than for:"
                    )
                left = min(left, room)
            ctx.sleep(min(poll, left))
        minutes = max(ctx.clock() - started, 1e-9) * _scale(ctx) / 60.0
    return {
        side: {
            "errors": RateData(t.errors, t.lines, minutes),
            "latency": SampleData(t.latencies, minutes),
        }
        for side, t in tallies.items()
    }
