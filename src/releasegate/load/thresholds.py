"""k6-style load thresholds, judged on exact (HDR) numbers: pure, no I/O, no clock.

A threshold is ``<metric> <comparison>`` as k6 users write it: ``p(95) < 300ms``,
``p(99.9) <= 1.2s``, ``avg < 150ms``, ``max < 2s``, ``error_rate < 0.5%``, ``rps > 200``
(``/s`` is implied), ``requests >= 1000``, ``failures == 0``. The comparison is the house's
condition syntax (``slo.condition``), so units and error messages are the SLO checks' own. A
threshold holds for one request name (``GET /api/products``) or, by default, all requests.

**Minimum samples.** A percentile from too few samples is noise: ``p(99)`` of 50 requests is
the second-slowest request. The rule: ``p(q)`` needs at least ``ceil(10 / (1 - q/100))``
samples, i.e. about ten samples beyond the percentile (p50: 20, p90: 100, p95: 200, p99: 1000,
p99.9: 10000); ``error_rate < x`` needs ``ceil(1 / x)`` requests, the fewest in which one
failure is a rate of ``x`` (0.5%: 200). With fewer the threshold is NO_DATA, saying how many
it needs; ``min_samples`` overrides the rule for one threshold.

**Live abort.** With ``abort_on_fail`` the ``AbortMonitor`` judges each new interval over a
trailing window (``window``, extended back until it holds the minimum samples, at most
``MAX_WINDOW_S``): a breach starts with the first failing window and ends the run once it has
lasted ``grace`` (k6's ``abortOnFail`` with ``delayAbortEval``). A window keeps a few numbers
per interval, never a histogram: ``p(q) < T`` holds exactly when at least ``k`` samples are
below ``T`` (``k`` the rank HDR uses for ``q``), so counting samples below ``T`` per interval
is enough, and the verdict is the one the merged histogram would give.
"""

from __future__ import annotations

import enum
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Status
from ..slo.condition import Condition, parse_condition
from ..slo.units import UNITS, UnitKind, format_duration, format_number
from .channel import TOTAL, Interval, NameStats

#: How far back a live window may reach for enough samples.
MAX_WINDOW_S = 60.0
#: The live window when a threshold gives none.
DEFAULT_WINDOW_S = 5.0
#: Samples expected beyond a percentile (the minimum-sample rule).
TAIL_SAMPLES = 10


class Metric(str, enum.Enum):
    """What a threshold measures."""

    PERCENTILE = "p"
    AVG = "avg"
    MAX = "max"
    ERROR_RATE = "error_rate"
    RPS = "rps"
    REQUESTS = "requests"
    FAILURES = "failures"

    @property
    def unit_kind(self) -> UnitKind:
        return _KIND[self]


_KIND = {
    Metric.PERCENTILE: UnitKind.DURATION,
    Metric.AVG: UnitKind.DURATION,
    Metric.MAX: UnitKind.DURATION,
    Metric.ERROR_RATE: UnitKind.RATIO,
    Metric.RPS: UnitKind.RATE,
    Metric.REQUESTS: UnitKind.NUMBER,
    Metric.FAILURES: UnitKind.NUMBER,
}
_EXPR = re.compile(
    r"^\s*(?:p\(\s*(?P<q>\d+(?:\.\d+)?)\s*\)|(?P<word>[a-z_]+))\s*(?P<cond>(?:<|>|=|!|≤|≥).*)$",
    re.IGNORECASE,
)
_WORDS = {
    "avg": Metric.AVG,
    "max": Metric.MAX,
    "error_rate": Metric.ERROR_RATE,
    "rps": Metric.RPS,
    "requests": Metric.REQUESTS,
    "failures": Metric.FAILURES,
}
_ALIASES = {
    "med": "p(50)",
    "median": "p(50)",
    "http_req_failed": "error_rate",
    "errors": "error_rate",
    "failure_rate": "error_rate",
    "rate": "rps",
    "count": "requests",
}
EXAMPLES = "'p(95) < 300ms', 'error_rate < 0.5%', 'rps > 200', 'requests >= 1000'"


@dataclass(frozen=True, slots=True)
class Threshold:
    """One threshold: ``metric`` (with ``quantile`` for percentiles) held to ``condition``,
    over ``name`` (None: all requests)."""

    metric: Metric
    condition: Condition
    text: str
    quantile: float | None = None
    name: str | None = None
    abort_on_fail: bool = False
    grace_s: float = 0.0
    window_s: float = DEFAULT_WINDOW_S
    min_samples: int | None = None

    @property
    def subject(self) -> str:
        """``p(95)``, ``error_rate``..."""
        if self.metric is Metric.PERCENTILE:
            return f"p({format_number(self.quantile or 0)})"
        return str(self.metric.value)

    @property
    def label(self) -> str:
        """The threshold as shown: ``p(95) < 300 ms`` or ``p(95) of GET /x < 300 ms``."""
        where = f" of {self.name}" if self.name else ""
        return f"{self.subject}{where} {self.condition}"

    @property
    def target(self) -> str:
        return self.name or TOTAL

    def needed_samples(self) -> int:
        """The fewest samples (requests) this threshold can be judged on (module docstring)."""
        if self.min_samples is not None:
            return self.min_samples
        if self.metric is Metric.PERCENTILE:
            q = (self.quantile or 0) / 100
            return math.ceil(round(TAIL_SAMPLES / (1 - q), 6))
        if self.metric is Metric.ERROR_RATE and self.condition.threshold > 0:
            return math.ceil(round(1 / self.condition.threshold, 6))
        return 1

    def evaluate(self, stats: NameStats | None, seconds: float) -> Verdict:
        """The verdict on ``stats`` (the whole run, or a window) measured over ``seconds``."""
        needed = self.needed_samples()
        if stats is None or stats.requests == 0:
            where = f"no request named {self.name!r}" if self.name else "no requests"
            return Verdict(self, Status.NO_DATA, None, 0, needed, f"{where}: nothing measured")
        samples = _samples_for(self.metric, stats)
        value = measure(self, stats, seconds)
        if self.metric is Metric.PERCENTILE:
            held = percentile_held(
                self.condition,
                self.quantile or 0,
                samples,
                count_meeting(stats, self.condition),
                needed,
            )
        elif self.metric is Metric.ERROR_RATE:
            held = rate_held(self.condition, stats.failures, samples, needed)
        elif self.metric in (Metric.REQUESTS, Metric.FAILURES):
            held = None if value is None else self.condition.holds(value)
        elif samples < needed or value is None:
            held = None
        else:
            held = self.condition.holds(value)
        return self._verdict(held, value, samples, needed, "")

    def _verdict(
        self, held: bool | None, value: float | None, samples: int, needed: int, where: str
    ) -> Verdict:
        shown = "nothing" if value is None else self.condition.describe(value)
        if held is None:
            return Verdict(
                self,
                Status.NO_DATA,
                value,
                samples,
                needed,
                f"{self.subject}{where} from {samples} {_noun(self.metric)}: needs at least"
                f" {needed} ({needed - samples} more) to be judged",
            )
        early = (
            f" (decided from {samples} of the {needed} {_noun(self.metric)} needed: no"
            " outcome of the others could change it)"
            if samples < needed and self.metric not in (Metric.REQUESTS, Metric.FAILURES)
            else ""
        )
        reason = (
            f"{self.subject}{where} {shown} {'meets' if held else 'breaks'} {self.condition}{early}"
        )
        status = Status.PASSED if held else Status.FAILED
        return Verdict(self, status, value, samples, needed, reason)


def percentile_held(
    condition: Condition, q: float, samples: int, meeting: int, needed: int
) -> bool | None:
    """Whether ``p(q) <op> T`` holds, from ``meeting`` (``count_meeting``) of ``samples``; None
    when too few samples, unless the verdict is already decided: had the missing
    ``needed - samples`` samples been any values at all, it would be the same."""
    if samples <= 0:
        return None
    size = max(samples, needed)
    rank = target_rank(q, size)
    low, high = meeting, meeting + (size - samples)
    if condition.op in ("<", "<="):  # holds iff at least `rank` samples are below T
        return True if low >= rank else False if high < rank else None
    # ">", ">=": holds iff fewer than `rank` samples are at or below T
    return True if high < rank else False if low >= rank else None


def rate_held(condition: Condition, failures: int, requests: int, needed: int) -> bool | None:
    """Whether ``error_rate <op> x`` holds for ``failures`` of ``requests``; with fewer than
    ``needed`` requests, only if the missing ones could not change it."""
    if requests <= 0:
        return None
    size = max(requests, needed)
    best, worst = (
        condition.holds(failures / size),
        condition.holds((failures + size - requests) / size),
    )
    if requests >= needed:
        return condition.holds(failures / requests)
    return best if best == worst else None


def _samples_for(metric: Metric, stats: NameStats) -> int:
    if metric in (Metric.PERCENTILE, Metric.AVG, Metric.MAX):
        return stats.samples
    return stats.requests


def _noun(metric: Metric) -> str:
    return "samples" if metric in (Metric.PERCENTILE, Metric.AVG, Metric.MAX) else "requests"


def measure(threshold: Threshold, stats: NameStats, seconds: float) -> float | None:
    """The measured value in the condition's canonical unit (seconds, a fraction, per second)."""
    metric = threshold.metric
    if metric is Metric.PERCENTILE:
        ms = stats.percentile_ms(threshold.quantile or 0)
        return None if ms is None else ms / 1000
    if metric is Metric.AVG:
        return stats.histogram.get_mean_value() / 1e6 if stats.samples else None
    if metric is Metric.MAX:
        return stats.histogram.get_max_value() / 1e6 if stats.samples else None
    if metric is Metric.ERROR_RATE:
        return stats.error_rate
    if metric is Metric.RPS:
        return stats.requests / seconds if seconds > 0 else None
    if metric is Metric.REQUESTS:
        return float(stats.requests)
    return float(stats.failures)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One threshold's verdict: PASSED, FAILED or NO_DATA, the value (canonical unit), the
    samples it was judged on and the minimum it needed."""

    threshold: Threshold
    status: Status
    value: float | None
    samples: int
    needed: int
    reason: str

    @property
    def shown(self) -> str | None:
        return None if self.value is None else self.threshold.condition.describe(self.value)

    def to_dict(self) -> dict[str, Any]:
        value = None if self.value is None else self.threshold.condition.display(self.value)
        return {
            "threshold": self.threshold.label,
            "name": self.threshold.target,
            "status": self.status.value,
            "value": value,
            "unit": self.threshold.condition.display_unit.symbol,
            "samples": self.samples,
            "needed": self.needed,
            "reason": self.reason,
        }


def parse_threshold(
    text: str,
    *,
    name: str | None = None,
    abort_on_fail: bool = False,
    grace_s: float = 0.0,
    window_s: float | None = None,
    min_samples: int | None = None,
) -> Threshold:
    """Read ``p(95) < 300ms``-style text; ValueError saying what to write instead."""
    if not isinstance(text, str):
        raise ValueError(f"a threshold is text such as {EXAMPLES}, not {type(text).__name__}")
    shown = text.strip()
    match = _EXPR.match(shown)
    if match is not None and match["word"] is not None and match["word"].lower() in _ALIASES:
        match = _EXPR.match(_ALIASES[match["word"].lower()] + " " + match["cond"])
    if match is None:
        bare = re.match(r"^\s*p(\d+(?:\.\d+)?)\b", shown, re.IGNORECASE)
        hint = f" (write p({bare[1]}), as k6 does)" if bare else ""
        raise ValueError(f"threshold {shown!r}{hint}: write a metric and a comparison: {EXAMPLES}")
    quantile: float | None = None
    if match["q"] is not None:
        metric = Metric.PERCENTILE
        quantile = float(match["q"])
        if not 0 < quantile < 100:
            raise ValueError(
                f"threshold {text.strip()!r}: a percentile is within p(0)..p(100), exclusive"
                " (use max for the slowest request)"
            )
    else:
        word = match["word"].lower()
        if word not in _WORDS:
            import difflib

            close = difflib.get_close_matches(word, [*_WORDS, "p(95)"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"threshold {text.strip()!r}: unknown metric {word!r}{hint}; one of p(N),"
                f" {', '.join(_WORDS)}"
            )
        metric = _WORDS[word]
    condition = parse_condition(match["cond"])
    condition = _fit(condition, metric, text.strip())
    if grace_s < 0 or not math.isfinite(grace_s):
        raise ValueError(f"grace {grace_s!r}: a duration of 0 or more")
    window = DEFAULT_WINDOW_S if window_s is None else window_s
    if not (0 < window <= MAX_WINDOW_S):
        raise ValueError(
            f"window {format_duration(window)}: between 0 and {format_duration(MAX_WINDOW_S)}"
        )
    if min_samples is not None and min_samples < 1:
        raise ValueError(f"min_samples {min_samples}: at least 1")
    return Threshold(
        metric=metric,
        condition=condition,
        text=text.strip(),
        quantile=quantile,
        name=name,
        abort_on_fail=abort_on_fail,
        grace_s=float(grace_s),
        window_s=float(window),
        min_samples=min_samples,
    )


def _fit(condition: Condition, metric: Metric, text: str) -> Condition:
    """The condition in the metric's kind: ``rps > 200`` means 200/s; a latency must carry a
    unit (``< 300`` would silently mean 300 s); ``==`` only for counts and rates of errors."""
    kind = metric.unit_kind
    if condition.op == "==" and metric not in (
        Metric.ERROR_RATE,
        Metric.REQUESTS,
        Metric.FAILURES,
    ):
        raise ValueError(f"threshold {text!r}: '==' is for counts and error_rate; use < or >")
    if metric is Metric.RPS and condition.unit_kind is UnitKind.NUMBER:
        return Condition(
            condition.op, condition.threshold, UnitKind.RATE, condition.text, UNITS["/s"]
        )
    try:
        condition.check_source(
            kind, f"{metric.value if metric is not Metric.PERCENTILE else 'a percentile'}"
        )
    except ValueError as err:
        raise ValueError(f"threshold {text!r}: {err}") from None
    if condition.unit_kind is UnitKind.NUMBER and kind is UnitKind.RATIO:
        return Condition(
            condition.op, condition.threshold, UnitKind.RATIO, condition.text, UNITS["%"]
        )
    if condition.threshold < 0:
        raise ValueError(f"threshold {text!r}: a negative threshold cannot be met or broken")
    return condition


def evaluate_all(
    thresholds: Sequence[Threshold],
    by_name: Mapping[str, NameStats],
    totals: NameStats,
    seconds: float,
) -> list[Verdict]:
    """Every threshold's verdict on a whole run."""
    return [
        t.evaluate(totals if t.name is None else by_name.get(t.name), seconds) for t in thresholds
    ]


def overall(verdicts: Iterable[Verdict]) -> Status:
    """A failed threshold fails the check (a measured breach is definitive); else any NO_DATA
    makes it NO_DATA; else it passed. No verdicts at all is NO_DATA."""
    statuses = [v.status for v in verdicts]
    if not statuses:
        return Status.NO_DATA
    if Status.FAILED in statuses:
        return Status.FAILED
    if Status.NO_DATA in statuses:
        return Status.NO_DATA
    return Status.PASSED


# -- live -----------------------------------------------------------------------------------


def target_rank(q: float, n: int) -> int:
    """The rank HDR reads percentile ``q`` at among ``n`` samples (its own rounding)."""
    return max(int(min(q, 100.0) * n / 100 + 0.5), 1)


def count_meeting(stats: NameStats, condition: Condition) -> int:
    """How many samples' (HDR-equivalent) values compare to the threshold as ``condition``'s
    ``<``/``<=`` would (for ``>``/``>=``: as the negation ``<=``/``<`` would): the count a
    percentile verdict needs (``AbortMonitor``)."""
    histogram = stats.histogram
    if histogram.get_total_count() == 0:
        return 0
    limit_us = condition.threshold * 1e6
    strict = condition.op in ("<", ">=")  # count values < T (else values <= T)
    top = histogram.get_highest_equivalent_value  # a bucket's values all show as this
    probe = min(max(int(limit_us), 1), histogram.highest_trackable_value)
    index = histogram.get_counts_array_index(probe)
    counts = histogram.counts
    below = sum(counts[:index])
    edge = top(histogram.get_value_from_index(index))
    if (edge < limit_us) if strict else (edge <= limit_us):
        # (every bucket past this one starts above the probe, so above the limit)
        below += counts[index]
    return int(below)


@dataclass(slots=True)
class _Slot:
    start: float
    end: float
    samples: int
    meeting: int
    requests: int
    failures: int
    sum_s: float
    max_s: float


@dataclass(frozen=True, slots=True)
class Breach:
    """A threshold breached for its grace: the run is to be stopped."""

    threshold: Threshold
    since: float  # start of the first failing window's last interval (wall clock)
    at: float  # end of the interval that decided the abort
    value: float | None
    samples: int
    window_s: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        cond = self.threshold.condition
        return {
            "threshold": self.threshold.label,
            "since": self.since,
            "at": self.at,
            "breached_for_s": round(self.at - self.since, 3),
            "value": None if self.value is None else cond.display(self.value),
            "unit": cond.display_unit.symbol,
            "samples": self.samples,
            "window_s": round(self.window_s, 3),
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Watch:
    threshold: Threshold
    slots: deque[_Slot] = field(default_factory=deque)
    since: float | None = None
    cumulative_requests: int = 0
    cumulative_failures: int = 0
    last: Verdict | None = None


class AbortMonitor:
    """Watches each new interval for ``abort_on_fail`` thresholds held breached for their grace.

    ``observe(interval)`` returns the first ``Breach`` that has lasted its grace, else None.
    Memory: a few numbers per interval of the trailing ``MAX_WINDOW_S`` per threshold.
    """

    def __init__(self, thresholds: Iterable[Threshold]) -> None:
        self.watches = [_Watch(t) for t in thresholds if t.abort_on_fail]

    def __bool__(self) -> bool:
        return bool(self.watches)

    def observe(self, interval: Interval) -> Breach | None:
        found: Breach | None = None
        for watch in self.watches:
            breach = self._observe(watch, interval)
            if breach is not None and found is None:
                found = breach
        return found

    def state(self) -> list[Verdict | None]:
        """The latest window verdict of each watched threshold (for a live display)."""
        return [w.last for w in self.watches]

    def _observe(self, watch: _Watch, interval: Interval) -> Breach | None:
        t = watch.threshold
        stats = interval.by_name.get(t.name) if t.name else interval.total()
        slot = _slot(t, interval, stats)
        watch.slots.append(slot)
        while watch.slots and interval.end - watch.slots[0].start > MAX_WINDOW_S + 1e-9:
            watch.slots.popleft()
        watch.cumulative_requests += slot.requests
        watch.cumulative_failures += slot.failures
        verdict, window_s = self._judge(watch)
        watch.last = verdict
        if verdict.status is Status.PASSED:
            watch.since = None
            return None
        if verdict.status is not Status.FAILED:
            return None  # too few samples: a breach neither starts nor ends on no data
        if watch.since is None:
            watch.since = interval.start
        if interval.end - watch.since + 1e-9 < t.grace_s:
            return None
        return Breach(
            threshold=t,
            since=watch.since,
            at=interval.end,
            value=verdict.value,
            samples=verdict.samples,
            window_s=window_s,
            reason=f"{verdict.reason}, breached for {format_duration(interval.end - watch.since)}"
            f" (grace {format_duration(t.grace_s)})",
        )

    def _judge(self, watch: _Watch) -> tuple[Verdict, float]:
        t = watch.threshold
        if t.metric in (Metric.REQUESTS, Metric.FAILURES):
            value = float(
                watch.cumulative_requests
                if t.metric is Metric.REQUESTS
                else watch.cumulative_failures
            )
            held = t.condition.holds(value)
            # A count only grows: "requests >= N" not met yet is no verdict until the end.
            if not held and t.condition.op in (">", ">="):
                return Verdict(
                    t, Status.NO_DATA, value, watch.cumulative_requests, 1, "so far"
                ), 0.0
            status = Status.PASSED if held else Status.FAILED
            reason = f"{t.subject} {t.condition.describe(value)} so far"
            return Verdict(t, status, value, watch.cumulative_requests, 1, reason), 0.0
        needed = t.needed_samples()
        chosen: list[_Slot] = []
        end = watch.slots[-1].end
        for slot in reversed(watch.slots):
            chosen.append(slot)
            span = end - slot.start
            if span + 1e-9 >= t.window_s and _count(t.metric, chosen) >= needed:
                break
        span = end - chosen[-1].start
        return _window_verdict(t, chosen, span, needed), span


def _count(metric: Metric, slots: Sequence[_Slot]) -> int:
    if metric in (Metric.PERCENTILE, Metric.AVG, Metric.MAX):
        return sum(s.samples for s in slots)
    return sum(s.requests for s in slots)


def _slot(t: Threshold, interval: Interval, stats: NameStats | None) -> _Slot:
    if stats is None or stats.requests == 0:
        return _Slot(interval.start, interval.end, 0, 0, 0, 0, 0.0, 0.0)
    samples = stats.samples
    meeting = count_meeting(stats, t.condition) if t.metric is Metric.PERCENTILE else 0
    sum_s = stats.histogram.get_mean_value() * samples / 1e6 if t.metric is Metric.AVG else 0.0
    max_s = stats.histogram.get_max_value() / 1e6 if t.metric is Metric.MAX and samples else 0.0
    return _Slot(
        interval.start,
        interval.end,
        samples,
        meeting,
        stats.requests,
        stats.failures,
        sum_s,
        max_s,
    )


def _window_verdict(t: Threshold, slots: Sequence[_Slot], span: float, needed: int) -> Verdict:
    samples = _count(t.metric, slots)
    where = f" over the last {format_duration(span)}"
    cond = t.condition
    value: float | None = None
    if t.metric is Metric.PERCENTILE:
        meeting = sum(s.meeting for s in slots)
        held = percentile_held(cond, t.quantile or 0, samples, meeting, needed)
        verdict = t._verdict(held, None, samples, needed, where)
        if held is None or samples == 0:
            return verdict
        past = samples - meeting if cond.op in ("<", "<=") else meeting
        side = "at or past" if cond.op in ("<", ">=") else "past"
        if cond.op in (">", ">="):
            side = "at or below" if cond.op == ">" else "below"
        reason = (
            f"{t.subject}{where} {'meets' if held else 'breaks'} {cond}:"
            f" {format_number(100 * past / samples)}% of {samples} samples {side}"
            f" {cond.describe(cond.threshold)}"
        )
        return Verdict(t, verdict.status, None, samples, needed, reason)
    failures = sum(s.failures for s in slots)
    if samples > 0:
        if t.metric is Metric.AVG:
            value = sum(s.sum_s for s in slots) / samples
        elif t.metric is Metric.MAX:
            value = max(s.max_s for s in slots)
        elif t.metric is Metric.ERROR_RATE:
            value = failures / samples
        else:  # RPS
            value = samples / span if span > 0 else None
    if t.metric is Metric.ERROR_RATE:
        held = rate_held(cond, failures, samples, needed)
    elif value is None or samples < needed:
        held = None
    else:
        held = cond.holds(value)
    return t._verdict(held, value, samples, needed, where)
