"""Chart data for the reports: coordinates and labels as value objects.

The templates draw these as inline SVG (no script, no external file), so a chart opens offline
and prints like the text around it. Every size is in SVG user units of the chart's viewBox;
CSS scales the chart to the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .history import PhaseResult, RunEntry
from .view import VERDICT_CSS, CategoryRow, Comparison

WIDTH = 640.0
ROW = 22.0
BAR = 14.0
LABEL_W = 170.0
VALUE_W = 200.0
TOP = 8.0
AXIS = 18.0
THRESHOLD_ROWS = 12


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    y: float
    width: float
    css: str
    value_text: str
    title: str


@dataclass(frozen=True, slots=True)
class Marker:
    x: float
    y1: float
    y2: float
    label: str


@dataclass(frozen=True, slots=True)
class BarChart:
    """Horizontal bars from ``x0``; ``markers`` are the limits the bars are held to."""

    title: str
    width: float
    height: float
    x0: float
    plot_w: float
    bar_h: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    markers: tuple[Marker, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    r: float
    css: str
    title: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class LineChart:
    """Scores (0-10) over the phases of the cadence: one dot per run, the latest joined up."""

    title: str
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    limits: tuple[Tick, ...]
    line: tuple[Point, ...]
    runs: tuple[Point, ...]


def num(value: float) -> str:
    """A number as a person reads it: 412, 9.2, 6.84, 0.0123."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _scoring_markers(
    scoring: dict[str, float], x0: float, plot_w: float, top: float, bottom: float
) -> tuple[Marker, ...]:
    return tuple(
        Marker(
            round(x0 + plot_w * scoring[key] / 10, 1), top, bottom, f"{label} {num(scoring[key])}"
        )
        for key, label in (("conditional", "conditional"), ("go", "go"))
        if key in scoring
    )


def category_chart(rows: Sequence[CategoryRow], scoring: dict[str, float]) -> BarChart:
    """Score by category, 0-10, against the go and conditional thresholds when known."""
    plot_w = WIDTH - LABEL_W - 60
    top = TOP + 12  # room for the threshold labels above the plot
    height = top + ROW * len(rows) + AXIS
    bottom = top + ROW * len(rows)
    bars = tuple(
        Bar(
            label=row.name,
            y=round(top + ROW * i + (ROW - BAR) / 2, 1),
            width=round(plot_w * max(0.0, min(row.score, 10.0)) / 10, 1),
            css=f"s-{row.status}",
            value_text=f"{num(row.score)}/10",
            title=f"{row.name}: {num(row.score)}/10, {row.met}/{row.total} met",
        )
        for i, row in enumerate(rows)
    )
    ticks = tuple(Tick(round(LABEL_W + plot_w * v / 10, 1), num(v)) for v in (0, 2.5, 5, 7.5, 10))
    return BarChart(
        title="Score by category",
        width=WIDTH,
        height=height,
        x0=LABEL_W,
        plot_w=plot_w,
        bar_h=BAR,
        bars=bars,
        ticks=ticks,
        markers=_scoring_markers(scoring, LABEL_W, plot_w, top - 4, bottom),
    )


def threshold_chart(comparisons: Sequence[Comparison], limit: int = THRESHOLD_ROWS) -> BarChart:
    """Measured value against threshold, one row per check, each on its own scale.

    Units differ from row to row, so each bar is scaled to its own limit: the marker sits at the
    same place in every row, and a bar past it has broken its limit. Values past their limit
    come first, then those closest to it; ``limit`` rows at most.
    """
    chosen = sorted(comparisons, key=lambda c: (c.passed, -c.pressure))[:limit]
    plot_w = WIDTH - LABEL_W - VALUE_W
    marker_at = plot_w / 1.6  # the limit at 62.5% of the width leaves room to show overshoot
    bars: list[Bar] = []
    markers: list[Marker] = []
    for i, c in enumerate(chosen):
        y = TOP + ROW * i
        scale = marker_at / c.limit if c.limit > 0 else (marker_at / c.value if c.value else 0.0)
        width = min(plot_w, max(0.0, c.value * scale))
        unit = f" {c.unit}" if c.unit else ""
        bars.append(
            Bar(
                label=c.check,
                y=round(y + (ROW - BAR) / 2, 1),
                width=round(width, 1),
                css="s-passed" if c.passed else "s-failed",
                value_text=f"{num(c.value)}{unit} (limit {c.op_text} {num(c.limit)}{unit})",
                title=f"{c.check}: {c.subject} {num(c.value)}{unit},"
                f" limit {c.op_text} {num(c.limit)}{unit}",
            )
        )
        markers.append(Marker(round(LABEL_W + marker_at, 1), y + 2, y + ROW - 2, ""))
    hidden = len(comparisons) - len(chosen)
    return BarChart(
        title="Measured value against threshold",
        width=WIDTH,
        height=TOP + ROW * len(chosen) + 4,
        x0=LABEL_W,
        plot_w=plot_w,
        bar_h=BAR,
        bars=tuple(bars),
        ticks=(),
        markers=tuple(markers),
        note=f"{hidden} more numeric check(s) in the table" if hidden > 0 else "",
    )


def timeline_chart(
    phases: Sequence[PhaseResult],
    runs: Sequence[RunEntry],
    scoring: dict[str, float],
    width: float = 420.0,
) -> LineChart:
    """Decision and score of each phase (big dots, joined) and of every run logged (small).

    Narrower than the other charts: it sits in half a column of the one-page report.
    """
    left, right, top, bottom = 30.0, width - 50.0, 24.0, 150.0
    step = (right - left) / max(1, len(phases) - 1)
    xs = {p.phase: left + step * i for i, p in enumerate(phases)}

    def y(score: float) -> float:
        return round(bottom - (bottom - top) * max(0.0, min(score, 10.0)) / 10, 1)

    line = tuple(
        Point(
            x=round(xs[p.phase], 1),
            y=y(p.score),
            r=6.0 if p.current else 4.5,
            css=VERDICT_CSS.get(p.decision, "inc"),
            title=f"{p.phase}: {p.decision} {num(p.score)}/10",
            label=p.decision,
        )
        for p in phases
        if p.decision is not None and p.score is not None
    )
    dots: list[Point] = []
    by_phase: dict[str, list[RunEntry]] = {}
    for run in runs:
        if run.phase in xs:
            by_phase.setdefault(run.phase, []).append(run)
    for phase, entries in by_phase.items():
        shown = entries[-8:]  # the latest runs; older ones would only blur the column
        for i, run in enumerate(shown):
            offset = (i - (len(shown) - 1) / 2) * 5
            dots.append(
                Point(
                    x=round(xs[phase] + offset, 1),
                    y=y(run.score),
                    r=2.2,
                    css=VERDICT_CSS.get(run.decision, "inc"),
                    title=f"{phase} run at {run.finished_at}: {run.decision} {num(run.score)}/10",
                )
            )
    return LineChart(
        title="Decisions and scores across phases and runs",
        width=width,
        height=bottom + 26,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        x_ticks=tuple(Tick(round(x, 1), phase) for phase, x in xs.items()),
        y_ticks=tuple(Tick(y(v), num(v)) for v in (0, 5, 10)),
        limits=tuple(
            Tick(y(scoring[key]), f"{short} {num(scoring[key])}")
            for key, short in (("conditional", "cond"), ("go", "go"))
            if key in scoring
        ),
        line=line,
        runs=tuple(dots),
    )
