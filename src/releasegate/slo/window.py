"""Time semantics: a condition held over a window of samples ("p95 < 300ms for 10m").

The window ending at ``now`` is evaluated on a grid of ``n = duration // step`` steps at
``now - duration + k*step`` for ``k = 1..n``: the last step is ``now``, the window is
``(now - duration, now]``. A sample belongs to the step whose half-open bin
``(t_k - step/2, t_k + step/2]`` holds its time, so a sample up to half a step after ``now``
still counts for the last step, and samples outside the bins are ignored. When several samples
fall in one step the worst of them (the smallest margin to the threshold) stands for it, so a
breach cannot hide between two good samples. A step with no sample, or only samples that are
None, NaN or ±Inf, is a *missing* step.

Verdicts (``for`` semantics: the condition must hold at every step that has data):

- any step with data breaks the condition → FAILED, naming the breach steps and the worst value;
- otherwise coverage (steps with data / steps) below ``min_coverage``, or no step with data at
  all → NO_DATA, naming the missing steps; a window without enough data never passes;
- otherwise PASSED.

Time is a parameter: ``now`` is given, never read from a clock. ``Window.scaled(s)`` divides the
duration and the step by a time scale so that a "for 10m" gate runs in 6 s on the demo at scale
100; the step never goes below a floor (50 ms by default) and the window remembers both the
nominal and the scaled values for the record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..model import Evidence, Status
from .condition import Condition
from .units import format_duration, format_number

#: A window of more steps than this is refused: the step is too small for the duration.
MAX_STEPS = 100_000
#: The record keeps at most this many steps (breaches, extremes and an even spread).
MAX_RECORD_STEPS = 500
#: ``Window.scaled`` never makes a step shorter than this.
DEFAULT_STEP_FLOOR_S = 0.05
_LISTED = 5  # breach steps named in a reason
_RANGES = 8  # runs of missing steps named in a reason


@dataclass(frozen=True, slots=True)
class Point:
    """One sample: ``value`` at time ``t`` (seconds, the same clock as ``now``); None = no data."""

    t: float
    value: float | None


@dataclass(frozen=True, slots=True)
class Window:
    """``duration_s`` evaluated every ``step_s``; fewer than ``min_coverage`` of the steps with
    data is NO_DATA. ``time_scale`` and the nominal values are set by ``scaled``."""

    duration_s: float
    step_s: float
    min_coverage: float = 0.9
    time_scale: float = 1.0
    nominal_duration_s: float | None = None
    nominal_step_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("duration_s", "step_s", "time_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"window {name} must be a positive number of seconds: {value!r}")
        if self.step_s > self.duration_s:
            raise ValueError(
                f"window step {format_duration(self.step_s)} is longer than the window "
                f"{format_duration(self.duration_s)}: use a step no longer than the window"
            )
        if not 0 < self.min_coverage <= 1:
            raise ValueError(f"min_coverage {self.min_coverage!r}: a fraction in (0, 1]")
        if self.steps > MAX_STEPS:
            raise ValueError(
                f"a {format_duration(self.duration_s)} window every {format_duration(self.step_s)}"
                f" is {self.steps} steps, more than {MAX_STEPS}: use a larger step"
            )

    @property
    def steps(self) -> int:
        """How many evaluation steps the window has (at least 1)."""
        return max(1, math.floor(self.duration_s / self.step_s + 1e-9))

    @property
    def nominal_duration(self) -> float:
        return self.nominal_duration_s if self.nominal_duration_s is not None else self.duration_s

    @property
    def nominal_step(self) -> float:
        return self.nominal_step_s if self.nominal_step_s is not None else self.step_s

    def step_time(self, index: int, now: float) -> float:
        """The time of step ``index`` (0-based; the last step is ``now``)."""
        return now - self.duration_s + (index + 1) * self.step_s

    def scaled(self, time_scale: float, step_floor_s: float = DEFAULT_STEP_FLOOR_S) -> Window:
        """This window run ``time_scale`` times faster: duration and step divided by it, the step
        kept at or above ``step_floor_s`` (but never longer than the window). Scaling a scaled
        window composes: the nominal values stay those of the spec."""
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"time scale must be a positive number: {time_scale!r}")
        total = self.time_scale * time_scale
        duration = self.nominal_duration / total
        step = min(max(self.nominal_step / total, step_floor_s), duration)
        return Window(
            duration, step, self.min_coverage, total, self.nominal_duration, self.nominal_step
        )

    def describe(self) -> str:
        """``10m`` or, scaled, ``10m (6s at time scale 100)``."""
        text = format_duration(self.nominal_duration)
        if self.time_scale != 1:
            scale = format_number(self.time_scale)
            text += f" ({format_duration(self.duration_s)} at time scale {scale})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.nominal_duration,
            "step_s": self.nominal_step,
            "time_scale": self.time_scale,
            "scaled_duration_s": self.duration_s,
            "scaled_step_s": self.step_s,
            "steps": self.steps,
            "min_coverage": self.min_coverage,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One evaluation step for the record: its index, time, value (canonical unit; None when
    missing) and whether the condition held there (None when missing)."""

    index: int
    t: float
    value: float | None
    ok: bool | None


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """What a window (or one instant) says about a condition, with the evidence behind it.

    ``breaches`` and ``missing`` are step indices (0-based); ``steps`` is the record's sample of
    the steps, at most ``MAX_RECORD_STEPS``, always keeping breaches (up to half the cap), the
    extremes, and the first and last step. ``worst`` is in the canonical unit.
    """

    status: Status
    reason: str
    condition: Condition
    subject: str
    now: float
    window: Window | None
    total_steps: int
    steps_with_data: int
    worst: float | None
    worst_index: int | None
    breaches: tuple[int, ...]
    missing: tuple[int, ...]
    steps: tuple[Step, ...]

    @property
    def coverage(self) -> float:
        return self.steps_with_data / self.total_steps if self.total_steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly; values in the spec's unit (``unit``), breaches capped at 100."""
        show = self.condition.display
        return {
            "status": self.status.value,
            "subject": self.subject,
            "condition": self.condition.text,
            "unit": self.condition.display_unit.symbol,
            "window": self.window.to_dict() if self.window else None,
            "coverage": round(self.coverage, 4),
            "steps_with_data": self.steps_with_data,
            "total_steps": self.total_steps,
            "worst": None if self.worst is None else show(self.worst),
            "worst_step": self.worst_index,
            "breach_count": len(self.breaches),
            "breach_steps": list(self.breaches[:100]),
            "missing_count": len(self.missing),
            "steps": [
                [s.index, round(s.t, 6), None if s.value is None else show(s.value), s.ok]
                for s in self.steps
            ],
        }

    def evidence(self, measured: str) -> Evidence:
        """The record's evidence: the worst value in the spec's unit held to the condition's
        ``Limit`` (``value["worst"]``), the threshold with its window, every step detail."""
        value = {
            "worst": None if self.worst is None else self.condition.display(self.worst),
            "coverage": round(self.coverage, 4),
        }
        threshold = str(self.condition)
        if self.window is not None:
            threshold += f" at every step over {self.window.describe()}"
        limit = self.condition.limit(self.subject, key="worst")
        return Evidence(measured, value, threshold, self.reason, self.to_dict(), (limit,))


def _valid(value: float | None) -> TypeGuard[float]:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def step_values(
    points: Iterable[Point], condition: Condition, window: Window, now: float
) -> list[float | None]:
    """Each step's value (``window.steps`` of them, oldest first): the worst valid sample in the
    step's bin, or None when the step is missing."""
    n = window.steps
    start = now - window.duration_s
    found: list[list[float]] = [[] for _ in range(n)]
    for point in points:
        value = point.value
        if not _valid(value) or not math.isfinite(point.t):
            continue
        k = math.ceil((point.t - start) / window.step_s - 0.5)
        if 1 <= k <= n:
            found[k - 1].append(float(value))
    return [condition.worst(values) for values in found]


def evaluate_window(
    points: Iterable[Point],
    condition: Condition,
    window: Window,
    now: float,
    subject: str = "value",
) -> WindowVerdict:
    """Hold ``condition`` at every step of ``window`` ending at ``now`` (see the module doc)."""
    return judge_steps(step_values(points, condition, window, now), condition, window, now, subject)


def judge_steps(
    values: Sequence[float | None],
    condition: Condition,
    window: Window,
    now: float,
    subject: str = "value",
) -> WindowVerdict:
    """The verdict on per-step values already laid on the window's grid (``step_values``)."""
    n = window.steps
    if len(values) != n:
        raise ValueError(f"{len(values)} step values for a window of {n} steps")
    valid = [(i, v) for i, v in enumerate(values) if _valid(v)]
    missing = tuple(i for i, v in enumerate(values) if not _valid(v))
    breaches = tuple(i for i, v in valid if not condition.holds(v))
    worst_index, worst = min(valid, key=lambda iv: condition.margin(iv[1]), default=(None, None))
    coverage = len(valid) / n
    if breaches:
        status = Status.FAILED
    elif not valid or coverage < window.min_coverage:
        status = Status.NO_DATA
    else:
        status = Status.PASSED
    clean = [v if _valid(v) else None for v in values]
    return WindowVerdict(
        status=status,
        reason=_reason(status, clean, condition, window, subject, breaches, worst_index),
        condition=condition,
        subject=subject,
        now=now,
        window=window,
        total_steps=n,
        steps_with_data=len(valid),
        worst=worst,
        worst_index=worst_index,
        breaches=breaches,
        missing=missing,
        steps=_record_steps(clean, condition, window, now, breaches, worst_index),
    )


def evaluate_instant(
    value: float | None, condition: Condition, subject: str = "value", now: float = 0.0
) -> WindowVerdict:
    """Hold ``condition`` to one value: None, NaN or ±Inf is NO_DATA."""
    if value is None or not _valid(value):
        shown = "no value" if value is None else f"a value of {format_number(float(value))}"
        verdict = WindowVerdict(
            Status.NO_DATA,
            f"{subject}: {shown}, nothing to hold to {condition}",
            condition,
            subject,
            now,
            None,
            1,
            0,
            None,
            None,
            (),
            (0,),
            (Step(0, now, None, None),),
        )
        return verdict
    value = float(value)
    ok = condition.holds(value)
    status = Status.PASSED if ok else Status.FAILED
    word = "meets" if ok else "breaks"
    reason = f"{subject} is {condition.describe(value)}: {word} {condition}"
    breaches = () if ok else (0,)
    return WindowVerdict(
        status,
        reason,
        condition,
        subject,
        now,
        None,
        1,
        1,
        value,
        0,
        breaches,
        (),
        (Step(0, now, value, ok),),
    )


def _record_steps(
    values: Sequence[float | None],
    condition: Condition,
    window: Window,
    now: float,
    breaches: Sequence[int],
    worst_index: int | None,
) -> tuple[Step, ...]:
    n = len(values)
    if n <= MAX_RECORD_STEPS:
        keep: Iterable[int] = range(n)
    else:
        chosen = {0, n - 1}
        if worst_index is not None:
            chosen.add(worst_index)
        valid = [(v, i) for i, v in enumerate(values) if v is not None]
        if valid:
            chosen.add(max(valid)[1])
            chosen.add(min(valid)[1])
        chosen.update(_spread(breaches, MAX_RECORD_STEPS // 2))
        chosen.update(_spread(range(n), MAX_RECORD_STEPS - len(chosen)))
        keep = sorted(chosen)[:MAX_RECORD_STEPS]
    steps = []
    for i in keep:
        v = values[i]
        ok = None if v is None else condition.holds(v)
        steps.append(Step(i, window.step_time(i, now), v, ok))
    return tuple(steps)


def _spread(indices: Sequence[int], count: int) -> list[int]:
    """At most ``count`` of ``indices``, evenly spread, first and last included."""
    if count <= 0 or not indices:
        return []
    if len(indices) <= count:
        return list(indices)
    if count == 1:
        return [indices[0]]
    stride = (len(indices) - 1) / (count - 1)
    return [indices[round(j * stride)] for j in range(count)]


def _ago(window: Window, index: int) -> str:
    offset = round((window.steps - 1 - index) * window.step_s, 3)
    return "now" if offset == 0 else f"now-{format_duration(offset)}"


def _percent(fraction: float) -> str:
    return f"{format_number(round(fraction * 100, 1))}%"


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _missing_text(window: Window, missing: Sequence[int]) -> str:
    parts = []
    runs = _runs(missing)
    for first, last in runs[:_RANGES]:
        if first == last:
            parts.append(f"{first} ({_ago(window, first)})")
        else:
            parts.append(f"{first}-{last} ({_ago(window, first)} to {_ago(window, last)})")
    if len(runs) > _RANGES:
        parts.append(f"and {len(runs) - _RANGES} more runs")
    return ", ".join(parts)


def _reason(
    status: Status,
    values: Sequence[float | None],
    cond: Condition,
    window: Window,
    subject: str,
    breaches: Sequence[int],
    worst_index: int | None,
) -> str:
    n = len(values)
    k = sum(v is not None for v in values)
    over = window.describe()
    coverage = f"{_percent(k / n)} coverage"
    worst_value = None if worst_index is None else values[worst_index]
    worst = "" if worst_value is None else cond.describe(worst_value)
    if status is Status.FAILED:
        listed = [
            f"step {i} ({_ago(window, i)}) {cond.describe(values[i] or 0.0)}"
            for i in breaches[:_LISTED]
        ]
        if len(breaches) > _LISTED:
            listed.append(f"and {len(breaches) - _LISTED} more")
        at = f" at step {worst_index} ({_ago(window, worst_index or 0)})"
        return (
            f"{subject} broke {cond} over {over} at {len(breaches)} of {k} steps with data"
            f" ({coverage}): {', '.join(listed)}; worst {worst}{at}"
        )
    if k == 0:
        return f"{subject}: no data over {over} at any of {n} steps"
    if status is Status.NO_DATA:
        floor = _percent(window.min_coverage)
        missing = [i for i, v in enumerate(values) if v is None]
        return (
            f"{subject}: over {over}, data at {k} of {n} steps ({coverage}, below the {floor}"
            f" floor); missing steps {_missing_text(window, missing)}"
        )
    return f"{subject} held {cond} over {over} at {k} of {n} steps ({coverage}); worst {worst}"
