"""Canary comparisons in the reports: a canary check's judgement read into value objects, and
each latency metric's two ECDFs (canary and baseline) drawn small.

A canary check's first evidence keeps the judge's ``Judgement.to_dict()`` in ``details``
(``releasegate.canary.model``): the overall verdict, and per metric its test, p-values,
effect, interval, each side's summary, the data it still needs and, for latencies, ``shape``:
both sides' ECDFs at common points (at most ~60). The record may have been edited since a gate
wrote it, so none of it is trusted: text must be text, a number a finite number, a shape two
runs of fractions that never fall, as long as its strictly increasing points. Whatever is not
becomes nothing (an empty field, no chart), never an exception; text only reaches templates,
which escape it.

Coordinates are worked out here, in SVG user units of the chart's viewBox; the templates only
lay them out (``_charts.html.j2``, macro ``ecdf``). Pure: no I/O, no numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..slo.units import format_number

#: Metrics of one canary check shown; the rest are counted (a check judges two or three).
MAX_METRICS = 8
#: The most points of a shape drawn. The judge writes at most ~60 per side; a longer shape is
#: not one it wrote, so it is not drawn (thinning it would trust points that may be anything).
MAX_POINTS = 240
#: Points beyond this magnitude (in the record's unit) are no latency or rate anyone measured;
#: bounding them keeps every coordinate and tick finite.
MAX_MAGNITUDE = 1e15
TEXT_CHARS = 300
NAME_CHARS = 80

WIDTH = 300.0
HEIGHT = 150.0
# The plot inside the viewBox: room on the left for the share labels, below for the x ticks
# and the axis caption, on the right for half the last tick's label.
LEFT, RIGHT, TOP, BOTTOM = 34.0, 284.0, 8.0, 116.0
_LEGEND_X = RIGHT - 74.0
_LINE_W = 16.0
# Fractions may carry rounding error from the division that made them.
_SLACK = 1e-9

VERDICT_LABELS = {
    "passed": "passed",
    "failed": "failed",
    "marginal": "marginal",
    "no_data": "no data",
}


@dataclass(frozen=True, slots=True)
class Unit:
    """How a metric's values are shown: times ``scale``, followed by ``suffix``; a difference
    of two values is followed by ``diff_suffix`` (a difference of rates is in points)."""

    scale: float
    suffix: str
    diff_suffix: str
    axis: str

    def show(self, value: float, signed: bool = False) -> str:
        shown = value * self.scale
        text = format_number(shown)
        if signed and shown > 0:
            text = "+" + text
        return text + (self.diff_suffix if signed else self.suffix)


# The canary probe measures latency in seconds (per-request timings and Prometheus histogram
# buckets alike) and rates as fractions; people read milliseconds and percentages.
SECONDS = Unit(1000.0, " ms", " ms", "ms")
FRACTION = Unit(100.0, "%", " pp", "%")
PLAIN = Unit(1.0, "", "", "")
_UNITS = {"samples": SECONDS, "histogram": SECONDS, "rate": FRACTION}


@dataclass(frozen=True, slots=True)
class Ecdfs:
    """A validated shape: strictly increasing points ``x`` (record's unit) and each side's
    share of values at or below each point (0 to 1, never falling)."""

    x: tuple[float, ...]
    canary: tuple[float, ...]
    baseline: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class LegendEntry:
    """A short line in the series' style (``css``) from ``x1`` to ``x2`` at ``y``, then its
    name at ``text_x``."""

    css: str
    label: str
    x1: float
    x2: float
    y: float
    text_x: float


@dataclass(frozen=True, slots=True)
class Box:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class EcdfChart:
    """Two ECDFs overlaid as step lines in a ``width`` by ``height`` viewBox: ``canary`` and
    ``baseline`` are SVG polyline points; the plot spans ``left``-``right``, ``top``-``bottom``
    (a share of 1 at the top). ``description`` says in words what the chart shows."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    canary: str
    baseline: str
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[LegendEntry, ...]
    #: Behind the legend, so that a line running under it does not cross its text.
    legend_box: Box
    axis: str
    axis_x: float
    axis_y: float
    description: str


@dataclass(frozen=True, slots=True)
class RateRow:
    """One side of a rate: events out of total, and the rate, as text ("-" when unknown)."""

    side: str
    events: str
    total: str
    rate: str


@dataclass(frozen=True, slots=True)
class MetricView:
    """One metric's judgement as the reports show it; every text field may be empty.

    ``index`` is its place in the record's ``metrics``; ``line`` the one-line summary of the
    Markdown summary and the executive report (verdict, effect, p-value)."""

    index: int
    metric: str
    kind: str
    verdict: str
    label: str
    css: str
    critical: bool
    reason: str
    test: str
    effect: str
    interval: str
    need: str
    chart: EcdfChart | None
    rates: tuple[RateRow, ...]
    line: str


@dataclass(frozen=True, slots=True)
class CanaryView:
    """A canary check's judgement: the overall verdict and reason, the metrics (at most
    ``MAX_METRICS``; ``more`` not shown) and where a stored baseline came from."""

    verdict: str
    label: str
    reason: str
    correction: str
    baseline: str
    stale: bool
    metrics: tuple[MetricView, ...]
    more: int = 0

    @property
    def drawn(self) -> frozenset[int]:
        """Indices (in the record's ``metrics``) of the metrics drawn as a chart."""
        return frozenset(m.index for m in self.metrics if m.chart is not None)


# ----------------------------------------------------------------------------- reading


def _number(value: Any) -> float | None:
    """A finite float, or None (a boolean, text, NaN, an infinity or a huge integer)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _count(value: Any) -> int | None:
    number = _number(value)
    if number is None or number < 0 or number != int(number) or number > MAX_MAGNITUDE:
        return None
    return int(number)


def _fraction(value: Any) -> float | None:
    number = _number(value)
    if number is None or not -_SLACK <= number <= 1 + _SLACK:
        return None
    return min(1.0, max(0.0, number))


def _text(value: Any, limit: int = TEXT_CHARS) -> str:
    """Text on one line, at most ``limit`` characters; "" for anything that is not text."""
    if not isinstance(value, str):
        return ""
    text = " ".join(value[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_shape(raw: Any) -> Ecdfs | None:
    """The shape of one metric, or None when it is missing or not a pair of ECDFs."""
    if not isinstance(raw, dict) or raw.get("kind", "ecdf") != "ecdf":
        return None
    xs, cs, bs = raw.get("x"), raw.get("canary"), raw.get("baseline")
    if not (isinstance(xs, list) and isinstance(cs, list) and isinstance(bs, list)):
        return None
    if not 2 <= len(xs) <= MAX_POINTS or len(cs) != len(xs) or len(bs) != len(xs):
        return None
    x = [_number(v) for v in xs]
    canary = [_fraction(v) for v in cs]
    baseline = [_fraction(v) for v in bs]
    if any(v is None or abs(v) > MAX_MAGNITUDE for v in x):
        return None
    if any(v is None for v in canary) or any(v is None for v in baseline):
        return None
    points = [v for v in x if v is not None]
    if any(b <= a for a, b in itertools.pairwise(points)):
        return None
    sides = ([v for v in canary if v is not None], [v for v in baseline if v is not None])
    for side in sides:
        if any(b < a - _SLACK for a, b in itertools.pairwise(side)):
            return None  # an ECDF never falls
    return Ecdfs(tuple(points), tuple(sides[0]), tuple(sides[1]))


# ----------------------------------------------------------------------------- drawing


def nice_ticks(low: float, high: float, count: int = 4) -> tuple[float, ...]:
    """Round values (1, 2 or 5 times a power of ten apart) from ``low`` to ``high``, about
    ``count`` of them; () when the range is empty or too narrow to step through."""
    span = high - low
    if not (math.isfinite(span) and span > 0):
        return ()
    raw = span / count
    try:
        size = 10.0 ** math.floor(math.log10(raw))
        step = next(m * size for m in (1.0, 2.0, 5.0, 10.0) if m * size >= raw)
        first = math.ceil(low / step)
    except (OverflowError, ValueError):
        return ()
    if not step > 0:
        return ()
    ticks = []
    for k in range(first, first + count * 3):
        value = k * step
        if value > high + step * 1e-9:
            break
        ticks.append(0.0 if value == 0 else value)
    return tuple(ticks)


def _x_scale(low: float, high: float) -> Callable[[float], float]:
    width = RIGHT - LEFT
    return lambda v: LEFT + (v - low) / (high - low) * width


def _y(share: float) -> float:
    return BOTTOM - share * (BOTTOM - TOP)


def step_points(xs: Sequence[float], shares: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """An ECDF as a step line through pixel coordinates: level from each point to the next,
    then up to the next point's share (an ECDF holds its value until the next point). A step
    of no height adds no point."""
    points = [(round(xs[0], 1), round(_y(shares[0]), 1))]
    for i in range(1, len(xs)):
        x = round(xs[i], 1)
        for at in ((x, round(_y(shares[i - 1]), 1)), (x, round(_y(shares[i]), 1))):
            if at != points[-1]:
                points.append(at)
    return tuple(points)


def _polyline(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _reach(x: Sequence[float], shares: Sequence[float], share: float) -> float | None:
    """The first point at which ``share`` of the values lie at or below it; None if beyond."""
    return next((v for v, f in zip(x, shares, strict=True) if f >= share - _SLACK), None)


def describe(name: str, ecdfs: Ecdfs, unit: Unit, counts: tuple[int | None, int | None]) -> str:
    """The chart in words, for its ``<title>`` and ``aria-label``."""
    sides = []
    for side, dash, count in zip(("canary", "baseline"), ("solid", "dashed"), counts, strict=True):
        sides.append(f"{side} ({dash}" + (f", {count:,} values)" if count is not None else ")"))
    low, high = unit.show(ecdfs.x[0]), unit.show(ecdfs.x[-1])
    parts = [f"{name}: distributions of {sides[0]} and {sides[1]} from {low} to {high}"]
    for share, words in ((0.5, "half"), (0.95, "95%")):
        at = [_reach(ecdfs.x, ecdfs.canary, share), _reach(ecdfs.x, ecdfs.baseline, share)]
        shown = [f"at most {unit.show(v)}" if v is not None else f"above {high}" for v in at]
        parts.append(f"{words} of the canary's values {shown[0]}, of the baseline's {shown[1]}")
    gaps = [abs(c - b) for c, b in zip(ecdfs.canary, ecdfs.baseline, strict=True)]
    widest = max(range(len(gaps)), key=gaps.__getitem__)
    if gaps[widest] > _SLACK:
        behind = "canary" if ecdfs.canary[widest] < ecdfs.baseline[widest] else "baseline"
        parts.append(
            f"widest gap {format_number(gaps[widest] * 100)} percentage points at"
            f" {unit.show(ecdfs.x[widest])} ({behind} below)"
        )
    else:
        parts.append("the two lines coincide")
    return "; ".join(parts)


def draw(
    name: str, ecdfs: Ecdfs, unit: Unit, counts: tuple[int | None, int | None] = (None, None)
) -> EcdfChart:
    """Both ECDFs of ``ecdfs`` on one linear axis from its first point to its last (values
    shown in ``unit``), share 0 to 1 upwards; the canary solid, the baseline dashed."""
    low, high = ecdfs.x[0], ecdfs.x[-1]
    x = _x_scale(low, high)
    xs = [x(v) for v in ecdfs.x]
    ticks = tuple(
        Tick(round(x(v / unit.scale), 1), format_number(v))
        for v in nice_ticks(low * unit.scale, high * unit.scale)
    )
    legend = tuple(
        LegendEntry(css, label, _LEGEND_X, _LEGEND_X + _LINE_W, y, _LEGEND_X + _LINE_W + 4)
        for css, label, y in (("ec-c", "canary", BOTTOM - 20.0), ("ec-b", "baseline", BOTTOM - 8.0))
    )
    axis = f"{name} ({unit.axis})" if unit.axis else name
    return EcdfChart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=RIGHT,
        top=TOP,
        bottom=BOTTOM,
        canary=_polyline(step_points(xs, ecdfs.canary)),
        baseline=_polyline(step_points(xs, ecdfs.baseline)),
        x_ticks=ticks,
        y_ticks=tuple(Tick(round(_y(s), 1), f"{s:.0%}") for s in (0.0, 0.5, 1.0)),
        legend=legend,
        legend_box=Box(_LEGEND_X - 4, BOTTOM - 27.0, RIGHT - _LEGEND_X + 2, 25.0),
        axis=axis,
        axis_x=round((LEFT + RIGHT) / 2, 1),
        axis_y=HEIGHT - 4.0,
        description=describe(name, ecdfs, unit, counts),
    )


# ---------------------------------------------------------------------------- the text


def p_text(p: float) -> str:
    """A p-value as a person reads it: ``< 0.0001``, ``0.0023``, ``0.41``."""
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def p_equals(p: float) -> str:
    """``p = 0.0023``, or ``p < 0.0001``."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _p(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and 0 <= number <= 1 else None


def _test_text(metric: dict[str, Any], correction: str) -> str:
    """``Brunner-Munzel: p = 0.0001, adjusted 0.0002 (Benjamini-Hochberg)``."""
    test = _text(metric.get("test"), NAME_CHARS)
    p, adjusted = _p(metric.get("p_value")), _p(metric.get("p_adjusted"))
    parts = []
    if p is not None:
        parts.append(p_equals(p))
    if adjusted is not None:
        parts.append(f"adjusted {p_text(adjusted)}" + (f" ({correction})" if correction else ""))
    text = ", ".join(parts)
    if test:
        return f"{test}: {text}" if text else test
    return text


def _interval_text(metric: dict[str, Any], unit: Unit) -> str:
    """``98% interval of canary - baseline: +12 ms to +18 ms``; "" when it says nothing."""
    raw = metric.get("interval")
    if not isinstance(raw, list) or len(raw) != 2:
        return ""
    low, high = _number(raw[0]), _number(raw[1])
    if low is not None and high is not None and low > high:
        return ""
    level = _number(metric.get("interval_level"))
    named = f"{format_number(level * 100)}% interval" if level and 0 < level < 1 else "interval"
    if low is not None and high is not None:
        span = f"{unit.show(low, True)} to {unit.show(high, True)}"
    elif low is not None:
        span = f"{unit.show(low, True)} or more"
    elif high is not None:
        span = f"at most {unit.show(high, True)}"
    else:
        return ""
    return f"{named} of canary - baseline: {span}"


def _quantile_name(metric: dict[str, Any]) -> str:
    q = _number(_dict(metric.get("policy")).get("quantile"))
    return f"p{format_number(q * 100)}" if q is not None and 0 < q < 1 else "quantile"


def _relative(effect: dict[str, Any]) -> str:
    rel = _number(effect.get("relative"))
    return "" if rel is None else f" ({rel:+.1%})"  # as the judge's own descriptions put it


def _short_effect(metric: dict[str, Any], unit: Unit) -> str:
    """The effect in a few words: ``p95 160 ms vs 140 ms (+14.3%)``, ``0.5% vs 0.1% (+400%)``;
    the judge's own description (shortened) when the sides' summaries say nothing usable."""
    effect = _dict(metric.get("effect"))
    canary, baseline = _dict(metric.get("canary")), _dict(metric.get("baseline"))
    if metric.get("kind") == "rate":
        key, prefix = "rate", ""
    else:
        key, prefix = "quantile", _quantile_name(metric) + " "
    sides = _number(canary.get(key)), _number(baseline.get(key))
    if sides[0] is not None and sides[1] is not None:
        return f"{prefix}{unit.show(sides[0])} vs {unit.show(sides[1])}{_relative(effect)}"
    return _text(effect.get("description"), 120)


def _rate_rows(metric: dict[str, Any]) -> tuple[RateRow, ...]:
    """Events, total and rate per side; () when neither side has events or a rate."""
    rows = []
    found = False
    for side in ("canary", "baseline"):
        summary = _dict(metric.get(side))
        events, total = _count(summary.get("events")), _count(summary.get("count"))
        rate = _fraction(summary.get("rate"))
        if rate is None and events is not None and total and events <= total:
            rate = events / total
        found = found or events is not None or rate is not None
        rows.append(
            RateRow(
                side,
                f"{events:,}" if events is not None else "-",
                f"{total:,}" if total is not None else "-",
                FRACTION.show(rate) if rate is not None else "-",
            )
        )
    return tuple(rows) if found else ()


def read_metric(raw: dict[str, Any], index: int, correction: str) -> MetricView:
    """One entry of the judgement's ``metrics``."""
    kind = _text(raw.get("kind"), NAME_CHARS)
    unit = _UNITS.get(kind, PLAIN)
    name = _text(raw.get("metric"), NAME_CHARS) or f"metric {index + 1}"
    given = raw.get("verdict")
    verdict = given if isinstance(given, str) and given in VERDICT_LABELS else "unknown"
    label = VERDICT_LABELS.get(verdict, "unknown")
    critical = raw.get("critical") is True
    shape = read_shape(raw.get("shape"))
    chart = None
    if shape is not None:
        counts = (
            _count(_dict(raw.get("canary")).get("count")),
            _count(_dict(raw.get("baseline")).get("count")),
        )
        chart = draw(name, shape, unit, counts)
    need = _text(_dict(raw.get("need")).get("sentence"))
    test = _test_text(raw, correction)
    short = _short_effect(raw, unit)
    adjusted = _p(raw.get("p_adjusted"))
    plain = _p(raw.get("p_value"))
    parts = [short] if short else []
    if adjusted is not None:
        parts.append(f"{p_equals(adjusted)} adjusted")
    elif plain is not None:
        parts.append(p_equals(plain))
    if need and verdict == "no_data":
        parts.append(need)
    line = f"{name} {label}" + (" (critical)" if critical and verdict == "failed" else "")
    return MetricView(
        index=index,
        metric=name,
        kind=kind,
        verdict=verdict,
        label=label,
        # Badge classes are the statuses' (a verdict's name is its status's); an unknown
        # verdict looks like an error, as an unknown status does.
        css=verdict if verdict in VERDICT_LABELS else "error",
        critical=critical,
        reason=_text(raw.get("reason")),
        test=test,
        effect=_text(_dict(raw.get("effect")).get("description")),
        interval=_interval_text(raw, unit),
        need=need,
        chart=chart,
        rates=_rate_rows(raw) if chart is None else (),
        line=line + (": " + "; ".join(parts) if parts else ""),
    )


def _baseline_text(details: dict[str, Any], metrics: Sequence[Any]) -> tuple[str, bool]:
    """Where a stored baseline came from (a metric's ``source``, else the probe's ``golden``)
    and whether it is stale; ("", False) for a live baseline."""
    for raw in metrics:
        source = _dict(raw.get("source")) if isinstance(raw, dict) else {}
        text = _text(source.get("text"))
        if text:
            return text, source.get("stale") is True
    golden = _dict(details.get("golden"))
    version = _text(golden.get("version"), NAME_CHARS)
    if not version:
        return "", False
    captured = _text(golden.get("captured_at"), NAME_CHARS)
    text = f"the golden baseline of {version}" + (f" captured {captured}" if captured else "")
    return text, False


def read_canary(evidence: Sequence[dict[str, Any]]) -> CanaryView | None:
    """The judgement in a canary check's first evidence, or None when there is none to show
    (the check could not measure, or the record holds something else)."""
    if not evidence:
        return None
    details = evidence[0].get("details")
    if not isinstance(details, dict):
        return None
    raw = details.get("metrics")
    if not isinstance(raw, list):
        return None
    correction = _text(details.get("correction"), NAME_CHARS)
    shown = raw[:MAX_METRICS]
    metrics = tuple(
        read_metric(m, i, correction) for i, m in enumerate(shown) if isinstance(m, dict)
    )
    if not metrics:
        return None
    given = details.get("verdict")
    verdict = given if isinstance(given, str) and given in VERDICT_LABELS else "unknown"
    baseline, stale = _baseline_text(details, shown)
    return CanaryView(
        verdict=verdict,
        label=VERDICT_LABELS.get(verdict, "unknown"),
        reason=_text(details.get("reason")),
        correction=correction,
        baseline=baseline,
        stale=stale,
        metrics=metrics,
        more=len(raw) - len(shown),
    )
