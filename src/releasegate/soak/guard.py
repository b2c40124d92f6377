"""The soak's fast guard, pure: live stats in, a breach out once a threshold has been breached
for its whole grace period. No I/O and no clock of its own: the caller passes each interval,
so that tests replay any timeline exactly.

The thresholds are judged by the load checks' own ``AbortMonitor`` (``load.thresholds``): each
over its trailing window (extended back until it holds the minimum samples), a breach starting
with the first failing window, reset by a passing one, neither started nor reset by NO_DATA,
and confirmed once it has lasted the threshold's grace. Around it the guard adds what a soak
needs:

* a warm-up (users still spawning): intervals before it are not judged;
* the phase's SLO checks: FAILED results of one that aborts (critical, or with ``on_fail``)
  held across consecutive results for ``slo_grace_s`` are a breach: one bad round (an SLO
  check's ``for:`` fails on a single bad step) never ends a soak unless the grace is 0;
* its word on each tick (``GuardState``) and, for the display, the live rps, p95 and error
  rate over a short window (references to its intervals' histograms, merged on reading).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..load.thresholds import AbortMonitor, Threshold, Verdict
from ..model import Status

#: The histograms' unit (the load channel records microseconds).
US_PER_MS = 1000.0


class StatsLike(Protocol):
    """What the guard reads of one request name's stats in one interval (load.channel)."""

    @property
    def requests(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def histogram(self) -> Any: ...


class IntervalLike(Protocol):
    """One interval of live stats (load.channel.Interval)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def users(self) -> int: ...
    @property
    def by_name(self) -> Mapping[str, Any]: ...


class GuardState(str, enum.Enum):
    """The guard's word on the last tick, worst last."""

    WARMUP = "warmup"
    OK = "ok"
    NO_DATA = "no_data"
    BREACHING = "breaching"
    BREACHED = "breached"

    @property
    def rank(self) -> int:
        return list(GuardState).index(self)


def empty_like(histogram: Any) -> Any:
    """A new empty HDR histogram shaped like ``histogram``, so that ``add`` is an array sum."""
    from hdrh.histogram import HdrHistogram

    from ..load.channel import acyclic

    return acyclic(
        HdrHistogram(
            histogram.lowest_trackable_value,
            histogram.highest_trackable_value,
            histogram.significant_figures,
        )
    )


def parts(interval: IntervalLike) -> tuple[int, int, tuple[Any, ...]]:
    """An interval's total without merging: requests, failures and its names' histograms.

    ``Interval.total()`` would allocate a merged histogram per call; summing the parts where
    they are used keeps a soak from allocating histograms every second."""
    requests = failures = 0
    hists = []
    for stats in interval.by_name.values():
        requests += int(stats.requests)
        failures += int(stats.failures)
        if stats.histogram is not None and stats.requests:
            hists.append(stats.histogram)
    return requests, failures, tuple(hists)


@dataclass(slots=True)
class _Slot:
    start: float
    end: float
    users: int
    #: per rule's request name (None: all of them): requests, failures, histograms
    stats: dict[str | None, tuple[int, int, tuple[Any, ...]]]


class Window:
    """The last ``window_s`` seconds of intervals, for the rules' request names only.

    It holds references to the intervals' own histograms (at most one slot per interval of the
    window) and merges them on reading, for the display and the breach's evidence."""

    def __init__(self, window_s: float, names: Iterable[str | None]) -> None:
        self.window_s = window_s
        self.names = tuple(dict.fromkeys([None, *names]))
        self._slots: deque[_Slot] = deque()

    def push(self, interval: IntervalLike) -> None:
        stats: dict[str | None, tuple[int, int, tuple[Any, ...]]] = {}
        for name in self.names:
            if name is None:
                stats[None] = parts(interval)
                continue
            part = interval.by_name.get(name)
            if part is not None:
                hist = (part.histogram,) if part.histogram is not None and part.requests else ()
                stats[name] = (int(part.requests), int(part.failures), hist)
        self._slots.append(_Slot(interval.start, interval.end, interval.users, stats))
        while self._slots and self._slots[-1].end - self._slots[0].start > self.window_s + 1e-9:
            self._slots.popleft()

    @property
    def users(self) -> int:
        """Users running at the last interval."""
        return self._slots[-1].users if self._slots else 0

    @property
    def span_s(self) -> float:
        return sum(max(s.end - s.start, 0.0) for s in self._slots)

    def counts(self, name: str | None) -> tuple[int, int]:
        requests = failures = 0
        for slot in self._slots:
            got = slot.stats.get(name)
            if got is not None:
                requests += got[0]
                failures += got[1]
        return requests, failures

    def percentile_ms(self, name: str | None, q: float) -> float | None:
        # A fresh histogram per reading: allocating one (0.2 ms) is faster than hdrh's
        # reset(), a Python loop over every counter.
        merged: Any = None
        for slot in self._slots:
            got = slot.stats.get(name)
            for hist in got[2] if got is not None else ():
                if merged is None:
                    merged = empty_like(hist)
                merged.add(hist)
        if merged is None or merged.get_total_count() == 0:
            return None
        return float(merged.get_value_at_percentile(q)) / US_PER_MS


@dataclass(frozen=True, slots=True)
class Measurement:
    """One rule on one tick."""

    rule: str
    status: Status
    measured: float | None
    requests: int
    reason: str
    breaching_since: float | None = None


@dataclass(frozen=True, slots=True)
class Breach:
    """A sustained breach: what ends the soak, with its interval and the evidence."""

    source: str  # "load" or "slo"
    check: str
    rule: str
    onset: float  # when the breach began (first breaking measurement)
    confirmed_at: float  # when it had lasted its grace (or the SLO check failed)
    measured: float | None
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "check": self.check,
            "rule": self.rule,
            "onset": self.onset,
            "confirmed_at": self.confirmed_at,
            "onset_utc": _utc(self.onset),
            "confirmed_utc": _utc(self.confirmed_at),
            "held_s": round(self.confirmed_at - self.onset, 3),
            "measured": self.measured,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


def _utc(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Tick:
    """The guard's word on one interval."""

    at: float
    state: GuardState
    measurements: tuple[Measurement, ...]
    breach: Breach | None = None


class Guard:
    """Thresholds held for their grace (``AbortMonitor``) plus the SLO checks' latest word."""

    def __init__(
        self,
        thresholds: Iterable[Threshold],
        *,
        window_s: float = 5.0,
        warmup_until: float = float("-inf"),
        check_name: str = "soak-load",
        slo_grace_s: float = 0.0,
    ) -> None:
        self.thresholds = tuple(thresholds)
        self.slo_grace_s = slo_grace_s
        self._slo_since: dict[str, float] = {}
        self.monitor = AbortMonitor(self.thresholds)
        self.window = Window(window_s, (t.name for t in self.thresholds))
        self.warmup_until = warmup_until
        self.check_name = check_name
        self.slo: dict[str, tuple[Status, str, float]] = {}
        self.breach: Breach | None = None
        self.ticks = 0
        self.worst: GuardState = GuardState.OK
        #: per threshold: how many ticks judged it (one never judged is NO_DATA at the end)
        self.measured: dict[str, int] = {t.label: 0 for t in self.thresholds}
        self.last: dict[str, Measurement] = {}
        #: per threshold: the tick time it was last judged on data (not NO_DATA)
        self.measured_at: dict[str, float] = {}
        #: the time of the latest tick
        self.now: float | None = None

    def observe(self, interval: IntervalLike) -> Tick:
        """Fold in one interval and judge; the first sustained breach is kept in ``breach``."""
        self.window.push(interval)
        now = interval.end
        self.now = now
        self.ticks += 1
        # Judged from the start, so that the windows hold data once the warm-up ends; but a
        # breach cannot begin while users are still spawning.
        found = self.monitor.observe(interval)  # type: ignore[arg-type]
        if interval.end <= self.warmup_until:
            self.worst = max(self.worst, GuardState.WARMUP, key=lambda s: s.rank)
            return Tick(now, GuardState.WARMUP, ())
        if found is not None:
            onset = max(found.since, self.warmup_until)
            if found.at - onset + 1e-9 < found.threshold.grace_s:
                found = None
        state = GuardState.OK
        measurements = []
        for watch, verdict in zip(self.monitor.watches, self.monitor.state(), strict=True):
            if verdict is None:
                continue
            m = _measurement(verdict, watch.since, self.window)
            if verdict.status is not Status.NO_DATA:
                self.measured[m.rule] = self.measured.get(m.rule, 0) + 1
                self.measured_at[m.rule] = now
            if verdict.status is Status.FAILED:
                state = max(state, GuardState.BREACHING, key=lambda s: s.rank)
            elif verdict.status is Status.NO_DATA and state is GuardState.OK:
                state = GuardState.NO_DATA
            self.last[m.rule] = m
            measurements.append(m)
        breach: Breach | None = None
        if found is not None:
            breach = Breach(
                source="load",
                check=self.check_name,
                rule=found.threshold.label,
                onset=max(found.since, self.warmup_until),
                confirmed_at=found.at,
                measured=_shown(found.threshold, found.value, self.window),
                reason=found.reason,
                evidence=found.to_dict(),
            )
            state = GuardState.BREACHED
            if self.breach is None:
                self.breach = breach
        self.worst = max(self.worst, state, key=lambda s: s.rank)
        return Tick(now, state, tuple(measurements), breach)

    def note_slo(
        self, name: str, status: Status, reason: str, at: float, *, aborts: bool
    ) -> Breach | None:
        """An SLO check's latest result. FAILED results of one that ``aborts``, held across
        consecutive results for ``slo_grace_s`` (from the first), are a breach; a PASSED result
        resets it, an unknown one (ERROR, NO_DATA) neither starts nor resets it. Returns the
        breach, kept in ``breach`` too."""
        self.slo[name] = (status, reason, at)
        if status is Status.PASSED:
            self._slo_since.pop(name, None)
            return None
        if status is not Status.FAILED or not aborts:
            return None
        since = self._slo_since.setdefault(name, at)
        if at - since + 1e-9 < self.slo_grace_s:
            return None
        found = Breach(
            source="slo",
            check=name,
            rule=name,
            onset=since,
            confirmed_at=at,
            measured=None,
            reason=f"{reason} (FAILED since {at - since:.0f}s, grace {self.slo_grace_s:g}s)",
        )
        if self.breach is None:
            self.breach = found
        self.worst = GuardState.BREACHED
        return found


def _shown(t: Threshold, value: float | None, window: Window) -> float | None:
    """A threshold's value in its own unit; a percentile judged by counting (no value) is read
    from the guard's window of merged histograms instead (in ms)."""
    if value is not None:
        return t.condition.display(value)
    if t.quantile is not None:
        return window.percentile_ms(t.name, t.quantile)
    return None


def _measurement(verdict: Verdict, since: float | None, window: Window) -> Measurement:
    t = verdict.threshold
    return Measurement(
        rule=t.label,
        status=verdict.status,
        measured=_shown(t, verdict.value, window) if verdict.status is not Status.NO_DATA else None,
        requests=verdict.samples,
        reason=f"{t.label}: {verdict.reason}",
        breaching_since=since if verdict.status is Status.FAILED else None,
    )


#: A threshold last judged on data longer ago than this when the soak ends was not measured at
#: its end (the target stopped answering): the soak's load outcome is NO DATA. A live window
#: reaches back up to a minute for samples, so a healthy end is always within it.
UNMEASURED_END_S = 90.0


def unmeasured_at_end(guard: Guard) -> list[str]:
    """The thresholds judged on data at some point, but not in the soak's last
    ``UNMEASURED_END_S`` seconds."""
    if guard.now is None:
        return []
    return [rule for rule, at in guard.measured_at.items() if guard.now - at > UNMEASURED_END_S]
