"""SLO sparklines: the steps of a window check's evidence, drawn small.

A window check's evidence (``releasegate.slo.WindowVerdict.evidence``) keeps its steps in
``details.steps`` as ``[index, t, value, ok]`` (at most 500 of them, values in the spec's unit)
and its limit in ``limits``. The record holds what a target answered and may have been edited
since, so it is read defensively: an entry that is not such a list is skipped, a value that is
not a finite number is a missing step (a gap, never a zero), more than ``MAX_DRAWN`` steps are
thinned to the worst step of each bucket, and text only reaches templates, which escape it.

Coordinates are worked out here, in SVG user units of the sparkline's viewBox; the templates
only lay them out (``_charts.html.j2``, macro ``sparkline``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..slo.units import format_duration, format_number

#: At most this many steps are drawn; more are thinned to the worst of each bucket.
MAX_DRAWN = 500
#: At most this many entries of ``details.steps`` are read (a window has at most 100,000).
MAX_READ = 100_000
#: Step indices at or above this are not a window's.
MAX_INDEX = 1_000_000
#: Series of an ``aggregate: each`` check drawn in the scorecard; the rest are counted.
MAX_SERIES = 6
#: Characters of the Unicode sparkline in the Markdown summary.
TEXT_WIDTH = 40
LABEL_CHARS = 80
BLOCKS = "▁▂▃▄▅▆▇█"
NO_DATA = "·"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_OP_TEXT = {"<=": "≤", ">=": "≥"}
_STATUS_CSS = frozenset({"passed", "failed", "error", "no_data", "not_run", "skipped"})
# Room right of the plot for the value labels (threshold, highest, lowest).
_LABELS_W = 58.0
_PAD = 4.0


@dataclass(frozen=True, slots=True)
class Step:
    """One step as drawn: ``value`` None is a missing step; ``breach`` that it broke the limit."""

    index: int
    value: float | None
    breach: bool


@dataclass(frozen=True, slots=True)
class Trace:
    """What one evidence says about its window, validated: the steps to draw (sorted, at most
    ``MAX_DRAWN``), the window's counts and the limit (op, value, unit)."""

    label: str
    status: str
    steps: tuple[Step, ...]
    total: int
    with_data: int
    breach_count: int
    worst: float | None
    op: str | None
    limit: float | None
    unit: str
    over: str
    thinned_from: int = 0

    def badness(self, value: float) -> float:
        """How far ``value`` is on the bad side of the limit (the higher, the worse)."""
        if self.limit is None or self.op is None:
            return value
        if self.op in ("<", "<="):
            return value - self.limit
        if self.op in (">", ">="):
            return self.limit - value
        return abs(value - self.limit)


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    title: str = ""


@dataclass(frozen=True, slots=True)
class Span:
    """A run of missing steps: a light band across the plot, where no line is drawn."""

    x: float
    width: float


@dataclass(frozen=True, slots=True)
class Label:
    y: float
    text: str
    css: str = "m"


@dataclass(frozen=True, slots=True)
class Sparkline:
    """One window drawn: ``lines`` are polylines (one per run of steps with data), ``points``
    lone steps between two gaps, ``breaches`` the steps that broke the limit, ``gaps`` the
    missing steps; ``threshold_y`` is the limit on the same scale as the values. ``text`` is
    the Unicode line of the Markdown summary; ``series`` how many series the check drew;
    ``trace`` what was drawn, to draw it again at another size."""

    label: str
    caption: str
    description: str
    css: str
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    lines: tuple[str, ...]
    points: tuple[Dot, ...]
    breaches: tuple[Dot, ...]
    gaps: tuple[Span, ...]
    threshold_y: float | None
    labels: tuple[Label, ...]
    text: str
    breach_count: int
    series: int
    trace: Trace


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (text, booleans, NaN, ±Inf, huge integers)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _count(value: Any, high: int) -> int | None:
    number = _number(value)
    if number is None or number != int(number) or not 0 <= number < high:
        return None
    return int(number)


def _text(value: Any, limit: int = LABEL_CHARS) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _limit(item: dict[str, Any], details: dict[str, Any]) -> tuple[str | None, float | None, str]:
    """The limit the worst value is held to: the ``limits`` entry for ``worst`` (or the first),
    else the condition's text (``<= 1%``)."""
    unit = _text(details.get("unit") or "", 12)
    raw = item.get("limits")
    entries = [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    entries.sort(key=lambda e: e.get("field") != "worst")
    for entry in entries:
        op, value = entry.get("op"), _number(entry.get("value"))
        if isinstance(op, str) and op in _OPS and value is not None:
            return op, value, _text(entry.get("unit") or unit, 12)
    condition = details.get("condition")
    if isinstance(condition, str):
        text = condition.strip()[:64]
        for op in ("<=", ">=", "==", "<", ">"):
            if text.startswith(op):
                number, rest = _leading_number(text[len(op) :].strip())
                if number is not None:
                    return op, number, _text(rest or unit, 12)
                break
    return None, None, unit


def _leading_number(text: str) -> tuple[float | None, str]:
    end = 0
    while end < len(text) and (text[end].isdigit() or text[end] in "+-.eE"):
        end += 1
    while end > 0:
        try:
            number = float(text[:end])
        except ValueError:
            end -= 1
            continue
        return (number if math.isfinite(number) else None), text[end:].strip()
    return None, text


def _over(window: Any) -> str:
    """``10m``, or ``10m (10s at time scale 60)`` for a scaled window; "" if it says nothing."""
    if not isinstance(window, dict):
        return ""
    duration = _number(window.get("duration_s"))
    if duration is None or not 0 < duration <= 1e9:
        return ""
    text = format_duration(duration)
    scale = _number(window.get("time_scale"))
    scaled = _number(window.get("scaled_duration_s"))
    if scale is not None and scale > 0 and scale != 1 and scaled is not None and 0 < scaled <= 1e9:
        text += f" ({format_duration(scaled)} at time scale {format_number(scale)})"
    return text


def _read_steps(raw: list[Any], op: str | None, limit: float | None) -> list[Step]:
    held = _OPS[op] if op is not None and limit is not None else None
    seen: dict[int, Step] = {}
    for entry in raw[:MAX_READ]:
        if not isinstance(entry, (list, tuple)) or len(entry) < 3:
            continue
        index = entry[0]
        if type(index) is not int or not 0 <= index < MAX_INDEX:  # the fast path first
            index = _count(index, MAX_INDEX)
        if index is None or index in seen:
            continue
        value = entry[2]
        if type(value) is not float or not math.isfinite(value):
            value = _number(value)
        ok = entry[3] if len(entry) > 3 and isinstance(entry[3], bool) else None
        if value is None:
            breach = False
        elif ok is not None:
            breach = not ok  # the probe's own judgement, made before the value was rounded
        else:
            breach = held is not None and limit is not None and not held(value, limit)
        seen[index] = Step(index, value, breach)
    steps = list(seen.values())
    if any(a.index > b.index for a, b in itertools.pairwise(steps)):
        steps.sort(key=lambda s: s.index)
    return steps


def _thin(steps: list[Step], count: int, trace: Trace) -> list[Step]:
    """At most ``count`` steps: the worst of each bucket (a breach first, then data, the
    furthest past the limit), so that a stretch of the window with a breach still shows one."""
    n = len(steps)

    def rank(s: Step) -> tuple[bool, bool, float]:
        return (
            s.breach,
            s.value is not None,
            -math.inf if s.value is None else trace.badness(s.value),
        )

    return [max(steps[b * n // count : (b + 1) * n // count], key=rank) for b in range(count)]


def read_trace(item: dict[str, Any], label: str = "") -> Trace | None:
    """The window of one evidence, or None when it has fewer than two readable steps (an
    instant check, a log check, anything else)."""
    details = item.get("details")
    if not isinstance(details, dict):
        return None
    raw = details.get("steps")
    if not isinstance(raw, list) or len(raw) < 2:
        return None
    op, limit, unit = _limit(item, details)
    steps = _read_steps(raw, op, limit)
    if len(steps) < 2:
        return None
    given_total = _count(details.get("total_steps"), MAX_INDEX + 1)
    total = max(given_total or 0, steps[-1].index + 1)
    valid = [s.value for s in steps if s.value is not None]
    with_data = _count(details.get("steps_with_data"), total + 1)
    breaches = _count(details.get("breach_count"), total + 1)
    value = item.get("value")
    worst = _number(value.get("worst")) if isinstance(value, dict) else None
    if worst is None:
        worst = _number(details.get("worst"))
    status = str(details.get("status") or "")
    trace = Trace(
        label=_text(label or details.get("subject") or item.get("measured") or "value"),
        status=status if status in _STATUS_CSS else "error",
        steps=tuple(steps),
        total=total,
        with_data=with_data if with_data is not None else len(valid),
        breach_count=breaches if breaches is not None else sum(s.breach for s in steps),
        worst=worst,
        op=op,
        limit=limit,
        unit=unit,
        over=_over(details.get("window")),
    )
    if trace.worst is None and valid:
        trace = dataclasses.replace(trace, worst=max(valid, key=trace.badness))
    if len(steps) > MAX_DRAWN:
        thinned = tuple(_thin(steps, MAX_DRAWN, trace))
        trace = dataclasses.replace(trace, steps=thinned, thinned_from=len(steps))
    return trace


def quantity(value: float, unit: str) -> str:
    """``412 ms``, ``0.42%``, ``24/hr``, ``7``."""
    if not unit:
        return format_number(value)
    space = "" if unit[0] in "%/" else " "
    return f"{format_number(value)}{space}{unit}"


def limit_text(trace: Trace) -> str:
    if trace.op is None or trace.limit is None:
        return ""
    return f"{_OP_TEXT.get(trace.op, trace.op)} {quantity(trace.limit, trace.unit)}"


def caption(trace: Trace, window: bool = True) -> str:
    """``p95 over 10m (10s at time scale 60), 58/60 steps, worst 412 ms vs < 300 ms``;
    without ``window`` (a series among several, which share it) ``{route="/a"}, 58/60 ...``."""
    text = trace.label + (f" over {trace.over}" if trace.over and window else "")
    text += f", {trace.with_data}/{trace.total} steps"
    if trace.worst is not None:
        text += f", worst {quantity(trace.worst, trace.unit)}"
        limit = limit_text(trace)
        if limit:
            text += f" vs {limit}"
    if trace.breach_count:
        text += f", breached at {trace.breach_count} step{'s' if trace.breach_count != 1 else ''}"
    return text


def describe(trace: Trace) -> str:
    """The sparkline in words, for its ``<title>`` and ``aria-label``."""
    over = f" over {trace.over}" if trace.over else ""
    missing = max(0, trace.total - trace.with_data)
    parts = [f"{trace.label}{over}: {trace.total} steps, {trace.with_data} with data"]
    parts[0] += f", {missing} missing" if missing else ""
    values = [s.value for s in trace.steps if s.value is not None]
    if values:
        low, high = quantity(min(values), trace.unit), quantity(max(values), trace.unit)
        parts.append(f"values from {low} to {high}" if low != high else f"every value {low}")
    limit = limit_text(trace)
    if limit:
        broke = trace.breach_count
        parts.append(
            f"limit {limit}, broken at {broke} step{'s' if broke != 1 else ''}"
            if broke
            else f"limit {limit}, never broken"
        )
    if trace.worst is not None:
        parts.append(f"worst {quantity(trace.worst, trace.unit)}")
    if trace.thinned_from:
        parts.append(f"{MAX_DRAWN} of {trace.thinned_from} recorded steps drawn")
    return "; ".join(parts)


def _scale(low: float, high: float, top: float, bottom: float) -> Callable[[float], float]:
    """Value to y: ``high`` at ``top``, ``low`` at ``bottom``; halves keep huge values finite."""
    span = high / 2 - low / 2
    if not span > 0:
        middle = (top + bottom) / 2
        return lambda _v: middle
    factor = (bottom - top) / span
    half = high / 2
    return lambda v: top + (half - v / 2) * factor


def draw(trace: Trace, width: float = 480.0, height: float = 60.0, series: int = 1) -> Sparkline:
    """The sparkline of ``trace`` in a ``width`` by ``height`` viewBox: the values over the
    window, the limit as a dashed line on the same scale, breaches as red dots, missing steps
    as gaps; the value range always includes the limit."""
    left, right, top, bottom = 1.0, width - _LABELS_W, 3.0, height - 3.0
    values = [s.value for s in trace.steps if s.value is not None]
    bounds = values + ([trace.limit] if trace.limit is not None else [])
    y = _scale(min(bounds), max(bounds), top + _PAD, bottom - _PAD) if bounds else None
    # Indices run from 0 to total - 1 (``read_trace`` makes total cover every index).
    step_w = (right - left) / max(1, trace.total - 1)
    lines: list[str] = []
    points: list[Dot] = []
    breaches: list[Dot] = []
    gaps: list[Span] = []
    run: list[tuple[float, float]] = []
    previous_missing = -2

    def close_run() -> None:
        if len(run) > 1:
            lines.append(" ".join([f"{a:.1f},{b:.1f}" for a, b in run]))
        elif run:
            points.append(Dot(round(run[0][0], 1), round(run[0][1], 1)))
        run.clear()

    for step in trace.steps:
        x = left + step_w * step.index
        if step.value is None or y is None:
            close_run()
            start, end = max(left, x - step_w / 2), min(right, x + step_w / 2)
            if gaps and previous_missing == step.index - 1:
                gaps[-1] = Span(gaps[-1].x, round(max(end - gaps[-1].x, 1.0), 1))
            else:
                gaps.append(Span(round(start, 1), round(max(end - start, 1.0), 1)))
            previous_missing = step.index
            continue
        at = y(step.value)
        run.append((x, at))
        if step.breach:
            shown = quantity(step.value, trace.unit)
            title = f"step {step.index}: {shown} breaks {limit_text(trace)}"
            breaches.append(Dot(round(x, 1), round(at, 1), title))
    close_run()
    threshold_y = round(y(trace.limit), 1) if y is not None and trace.limit is not None else None
    labels: list[Label] = []
    if threshold_y is not None:
        labels.append(Label(threshold_y, limit_text(trace), "lim-t"))
    if y is not None and values:
        for value in (max(values), min(values)):
            at = round(y(value), 1)
            if all(abs(at - other.y) >= 10 for other in labels):
                labels.append(Label(at, quantity(value, trace.unit)))
    return Sparkline(
        label=trace.label,
        caption=caption(trace, window=series == 1),
        description=describe(trace),
        css=trace.status,
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        lines=tuple(lines),
        points=tuple(points),
        breaches=tuple(breaches),
        gaps=tuple(gaps),
        threshold_y=threshold_y,
        labels=tuple(labels),
        text=text_sparkline(trace),
        breach_count=trace.breach_count,
        series=series,
        trace=trace,
    )


def text_sparkline(trace: Trace, width: int = TEXT_WIDTH) -> str:
    """The window in ``width`` characters at most (``▁▂▃▄▅▆▇█``, ``·`` where no step has data):
    each character the worst step of its share of the window, on a scale that includes the
    limit, as the drawn sparkline's."""
    cells = min(width, trace.total)
    worst: list[float | None] = [None] * cells
    for step in trace.steps:
        if step.value is None:
            continue
        cell = min(cells - 1, step.index * cells // trace.total)
        held = worst[cell]
        if held is None or trace.badness(step.value) > trace.badness(held):
            worst[cell] = step.value
    values = [v for v in worst if v is not None]
    if not values:
        return NO_DATA * cells
    bounds = values + ([trace.limit] if trace.limit is not None else [])
    level = _scale(min(bounds), max(bounds), len(BLOCKS) - 1, 0)
    return "".join(
        NO_DATA if v is None else BLOCKS[min(len(BLOCKS) - 1, max(0, round(level(v))))]
        for v in worst
    )


def sparklines(
    check: str, evidence: Sequence[dict[str, Any]], series_width: float = 240.0
) -> tuple[tuple[Sparkline, ...], int]:
    """The sparklines of one check's evidence (worst first, as the record keeps them), at most
    ``MAX_SERIES``, and how many more series have one. One evidence draws wide; several (an
    ``aggregate: each`` check) draw small, each labelled by its series."""
    candidates = [e for e in evidence if _has_steps(e)]
    if not candidates:
        return (), 0
    if len(candidates) == 1:
        trace = read_trace(candidates[0])
        return ((draw(trace),), 0) if trace is not None else ((), 0)
    traces = [t for t in (read_trace(e, _series_label(check, e)) for e in candidates) if t]
    count = len(traces)
    drawn = tuple(draw(t, series_width, 44.0, count) for t in traces[:MAX_SERIES])
    return drawn, count - len(drawn)


def _has_steps(item: dict[str, Any]) -> bool:
    details = item.get("details")
    if not isinstance(details, dict):
        return False
    steps = details.get("steps")
    return isinstance(steps, list) and len(steps) >= 2


def _series_label(check: str, item: dict[str, Any]) -> str:
    """The series' labels (``{code="500"}``): the subject less the check's name, else the
    end of what was measured."""
    details = item.get("details")
    subject = str(details.get("subject") or "") if isinstance(details, dict) else ""
    if check and subject.startswith(check + " "):
        return subject[len(check) + 1 :]
    measured = str(item.get("measured") or "")
    at = measured.rfind(" {")
    if at >= 0 and measured.endswith("}"):
        return measured[at + 1 :]
    return subject or measured
