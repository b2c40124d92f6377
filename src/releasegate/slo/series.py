"""Several series held to one condition: a query that returns one series per label set.

``aggregate`` says how they combine:

- none: exactly one series is expected; more than one is an ERROR that lists them (at most
  10) and asks for an aggregate — a silent pick would hold the wrong series;
- ``max``, ``min``, ``sum``, ``avg``: at each step, the series that have data there are combined
  (as PromQL's aggregations combine the series present at an instant) and the combined series
  is held to the condition; a step where no series has data is missing;
- ``each``: every series is held to the condition on its own and the worst status wins
  (FAILED, then NOT_RUN, ERROR, NO_DATA, ...: ``Status.rank``); each series' verdict is kept.

Zero series is NO_DATA ("the query returned no series"). Labels are a sorted tuple of
``(name, value)`` pairs (``as_labels``), shown PromQL-style: ``{code="500", job="api"}``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Evidence, Status
from .condition import Condition
from .window import Point, Window, WindowVerdict, judge_steps, step_values

Labels = tuple[tuple[str, str], ...]
_SHOWN = 10


def as_labels(labels: Mapping[str, str] | Labels) -> Labels:
    """A label set in its canonical, hashable form: sorted ``(name, value)`` pairs."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


def format_labels(labels: Labels) -> str:
    """``{code="500", job="api"}``."""
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Aggregate(str, enum.Enum):
    """How several series are combined before (or instead of) being held to a condition."""

    MAX = "max"
    MIN = "min"
    SUM = "sum"
    AVG = "avg"
    EACH = "each"


_COMBINE: dict[Aggregate, Callable[[Sequence[float]], float]] = {
    Aggregate.MAX: max,
    Aggregate.MIN: min,
    Aggregate.SUM: lambda vs: float(sum(vs)),
    Aggregate.AVG: lambda vs: float(sum(vs)) / len(vs),
}


@dataclass(frozen=True, slots=True)
class SeriesVerdict:
    """The verdict on a set of series.

    ``combined`` is the verdict on the aggregated series (``max``/``min``/``sum``/``avg``, or
    the only series); ``per_series`` holds each series' own verdict for ``each``.
    """

    status: Status
    reason: str
    aggregate: Aggregate | None
    series: tuple[Labels, ...]
    combined: WindowVerdict | None = None
    per_series: tuple[tuple[Labels, WindowVerdict], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "aggregate": self.aggregate.value if self.aggregate else None,
            "series_count": len(self.series),
            "series": [format_labels(s) for s in self.series[:100]],
            "combined": self.combined.to_dict() if self.combined else None,
            "per_series": [
                {"labels": format_labels(labels), **verdict.to_dict()}
                for labels, verdict in self.per_series
            ],
        }

    def evidence(self, measured: str) -> tuple[Evidence, ...]:
        """One evidence for the combined series, or one per series for ``each`` (worst first);
        an ERROR or a query without series gives one evidence with the reason alone."""
        if self.combined is not None:
            item = self.combined.evidence(measured)
            details = {**item.details, "series_count": len(self.series)}
            if self.aggregate is not None:
                details["aggregate"] = self.aggregate.value
            return (
                Evidence(
                    item.measured, item.value, item.threshold, self.reason, details, item.limits
                ),
            )
        if self.per_series:
            ordered = sorted(self.per_series, key=lambda lv: lv[1].status.rank)
            return tuple(v.evidence(f"{measured} {format_labels(labels)}") for labels, v in ordered)
        return (Evidence(measured, None, None, self.reason, self.to_dict()),)


def evaluate_series(
    series: Mapping[Labels, Sequence[Point]],
    condition: Condition,
    window: Window,
    now: float,
    aggregate: Aggregate | str | None = None,
    subject: str = "value",
) -> SeriesVerdict:
    """Hold ``condition`` over ``window`` to the series of one query (see the module doc)."""
    agg = Aggregate(aggregate) if aggregate is not None else None
    keys = tuple(sorted(series))
    if not keys:
        return SeriesVerdict(Status.NO_DATA, f"{subject}: the query returned no series", agg, ())
    if agg is None and len(keys) > 1:
        shown = ", ".join(format_labels(k) for k in keys[:_SHOWN])
        if len(keys) > _SHOWN:
            shown += f" and {len(keys) - _SHOWN} more"
        reason = (
            f"{subject}: the query returned {len(keys)} series ({shown}); set aggregate to one "
            f"of max, min, sum, avg or each, or narrow the query to one series"
        )
        return SeriesVerdict(Status.ERROR, reason, agg, keys)
    if agg is None:
        verdict = _evaluate(series[keys[0]], condition, window, now, subject)
        return SeriesVerdict(verdict.status, verdict.reason, agg, keys, combined=verdict)
    if agg is Aggregate.EACH:
        return _each(series, keys, condition, window, now, subject)
    per_step = [step_values(series[k], condition, window, now) for k in keys]
    combine = _COMBINE[agg]
    combined: list[float | None] = []
    for at_step in zip(*per_step, strict=True):
        present = [v for v in at_step if v is not None]
        combined.append(combine(present) if present else None)
    name = f"{agg.value} of {subject}" if len(keys) > 1 else subject
    verdict = judge_steps(combined, condition, window, now, name)
    reason = verdict.reason
    if len(keys) > 1:
        reason += f" ({agg.value} over {len(keys)} series)"
    return SeriesVerdict(verdict.status, reason, agg, keys, combined=verdict)


def _evaluate(
    points: Sequence[Point], condition: Condition, window: Window, now: float, subject: str
) -> WindowVerdict:
    return judge_steps(step_values(points, condition, window, now), condition, window, now, subject)


def _each(
    series: Mapping[Labels, Sequence[Point]],
    keys: tuple[Labels, ...],
    condition: Condition,
    window: Window,
    now: float,
    subject: str,
) -> SeriesVerdict:
    verdicts = tuple(
        (k, _evaluate(series[k], condition, window, now, f"{subject} {format_labels(k)}"))
        for k in keys
    )
    worst = min(verdicts, key=lambda kv: kv[1].status.rank)[1]
    counts: dict[Status, int] = {}
    for _, v in verdicts:
        counts[v.status] = counts.get(v.status, 0) + 1
    tally = ", ".join(f"{counts[s]} {s.label}" for s in sorted(counts, key=lambda s: s.rank))
    reason = f"{len(keys)} series ({tally}); worst: {worst.reason}"
    return SeriesVerdict(worst.status, reason, Aggregate.EACH, keys, per_series=verdicts)
