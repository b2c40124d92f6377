"""The soak report: a timeline page (HTML, in the scorecard's style) and its Markdown summary,
written beside the soak's decision record (``soak.html``, ``soak.md``).

Per timeline row: requests a second, p50/p95/p99, the error rate, each SLO check's state, the
guard's word and the events (the fault, the full gates, the breach); the breach and the
rollback (the record's hook results) are marked on the charts and in the table. Coordinates
are computed here, layout is the templates'; the page needs no script and no network.

A 48-hour soak has up to 2880 rows; the HTML table shows at most ``TABLE_ROWS`` of them (every
row with an event or a breach, the others evenly thinned, saying so); the charts use every row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReportError
from ..report.charts import Tick, num
from ..report.render import build_view, environment
from .timeline import Row

TABLE_ROWS = 600
SOAK_OUTPUTS = {"soak.html.j2": "soak.html", "soak.md.j2": "soak.md"}
WIDTH, HEIGHT = 760.0, 220.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 640.0, 10.0, 190.0


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str
    #: SVG polyline segments ("x,y x,y ..."): a gap (no data) breaks the line
    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    x: float
    label: str
    css: str


@dataclass(frozen=True, slots=True)
class TimeChart:
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
    series: tuple[Series, ...]
    marks: tuple[Mark, ...]


@dataclass(frozen=True, slots=True)
class TableRow:
    elapsed: str
    rps: str
    p50: str
    p95: str
    p99: str
    errors: str
    guard: str
    slo: tuple[tuple[str, str], ...]
    events: tuple[str, ...]
    css: str


@dataclass(frozen=True, slots=True)
class SoakView:
    soak: dict[str, Any]
    rows: int
    row_s: float
    table: tuple[TableRow, ...]
    thinned: bool
    slo_names: tuple[str, ...]
    latency_chart: TimeChart | None
    rps_chart: TimeChart | None
    breach: dict[str, Any] | None
    breach_elapsed_s: float | None
    rollback: tuple[dict[str, Any], ...]
    record_at: str
    headline: str


def _clock(seconds: float) -> str:
    total = int(max(seconds, 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def _x(elapsed: float, span: float) -> float:
    return round(LEFT + (RIGHT - LEFT) * (elapsed / span if span > 0 else 0.0), 1)


def _chart(
    title: str,
    rows: Sequence[Row],
    series: Sequence[tuple[str, str, str]],
    limits: Sequence[tuple[float, str]],
    marks: Sequence[tuple[float, str, str]],
    unit: str,
) -> TimeChart | None:
    values = [v for row in rows for _, attr, _ in series if (v := getattr(row, attr)) is not None]
    if not values:
        return None
    span = max(rows[-1].elapsed_s, 1e-9)
    top_value = max([*values, *(lim for lim, _ in limits)]) * 1.1 or 1.0

    def y(value: float) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * (value / top_value), 1)

    lines = []
    for name, attr, css in series:
        segments: list[str] = []
        current: list[str] = []
        for row in rows:
            value = getattr(row, attr)
            if value is None:
                if current:
                    segments.append(" ".join(current))
                current = []
                continue
            current.append(f"{_x(row.elapsed_s, span)},{y(value)}")
        if current:
            segments.append(" ".join(current))
        lines.append(Series(name, css, tuple(segments)))
    return TimeChart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=RIGHT,
        top=TOP,
        bottom=BOTTOM,
        x_ticks=tuple(Tick(_x(t, span), _clock(t)) for t in _ticks(0.0, span)),
        y_ticks=tuple(Tick(y(t), f"{num(round(t, 1))}{unit}") for t in _ticks(0.0, top_value, 4)),
        limits=tuple(Tick(y(v), label) for v, label in limits if v <= top_value),
        series=tuple(lines),
        marks=tuple(Mark(_x(at, span), label, css) for at, label, css in marks if at <= span),
    )


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def build_soak_view(record: dict[str, Any], rows: Sequence[Row]) -> SoakView:
    """What the soak templates show, from the soak's record and its timeline rows."""
    soak: dict[str, Any] = dict(record.get("soak") or {})
    breach = soak.get("breach") if isinstance(soak.get("breach"), dict) else None

    # Soak time of a wall-clock moment, from the row that holds it (resumes leave gaps).
    def elapsed_at(epoch: float) -> float | None:
        if not rows:
            return None
        row = next((r for r in rows if r.start <= epoch <= r.end), None)
        if row is None:
            row = min(rows, key=lambda r: min(abs(r.start - epoch), abs(r.end - epoch)))
        return row.elapsed_s - (row.end - min(max(epoch, row.start), row.end))

    breach_at = elapsed_at(float(breach["confirmed_at"])) if breach else None
    onset_at = elapsed_at(float(breach["onset"])) if breach else None
    fault = soak.get("fault") if isinstance(soak.get("fault"), dict) else None
    rollback = tuple(
        a for a in record.get("actions") or () if isinstance(a, dict) and a.get("fired")
    )
    marks: list[tuple[float, str, str]] = []
    if fault and fault.get("on_at"):
        at = elapsed_at(float(fault["on_at"]))
        if at is not None:
            marks.append((at, "fault on", "mk-fault"))
    if onset_at is not None:
        marks.append((onset_at, "breach began", "mk-onset"))
    if breach_at is not None:
        marks.append((breach_at, "breach: soak ended", "mk-breach"))
        if rollback:
            marks.append((breach_at, "rollback", "mk-rollback"))
    limits_ms: list[tuple[float, str]] = []
    limits_rps: list[tuple[float, str]] = []
    from ..load.thresholds import Metric
    from .rules import rule_from_dict

    for rule in soak.get("rules") or ():
        try:
            parsed = rule_from_dict(dict(rule))
        except Exception:
            continue
        if parsed.name is not None:
            continue
        if parsed.metric is Metric.PERCENTILE:
            limits_ms.append((parsed.condition.threshold * 1000.0, parsed.label))
        elif parsed.metric is Metric.RPS:
            limits_rps.append((parsed.condition.threshold, parsed.label))
    latency = _chart(
        "Latency over the soak (ms): p50, p95, p99 per row",
        rows,
        [("p50", "p50_ms", "s-p50"), ("p95", "p95_ms", "s-p95"), ("p99", "p99_ms", "s-p99")],
        limits_ms,
        marks,
        "",
    )
    rps = _chart(
        "Requests a second over the soak",
        rows,
        [("rps", "rps", "s-rps")],
        limits_rps,
        marks,
        "",
    )
    slo_names = tuple(sorted({name for row in rows for name in row.slo}))
    keep = list(rows)
    thinned = False
    if len(keep) > TABLE_ROWS:
        thinned = True
        every = -(-len(keep) // TABLE_ROWS)
        keep = [
            r
            for i, r in enumerate(rows)
            if r.events or r.guard.value == "breached" or i % every == 0
        ]
    table = []
    for row in keep:
        events = list(row.events)
        if rollback and breach and row.start < float(breach["confirmed_at"]) <= row.end:
            events.append("rollback: " + ", ".join(str(a.get("name")) for a in rollback))
        table.append(
            TableRow(
                elapsed=_clock(row.elapsed_s),
                rps=_fmt(row.rps),
                p50=_fmt(row.p50_ms),
                p95=_fmt(row.p95_ms),
                p99=_fmt(row.p99_ms),
                errors="-" if row.error_rate is None else f"{row.error_rate:.2%}",
                guard=row.guard.value,
                slo=tuple((name, row.slo.get(name, "")) for name in slo_names),
                events=tuple(events),
                css="breach" if row.guard.value == "breached" else ("ev" if events else ""),
            )
        )
    verdict = record.get("decision", "")
    ended = soak.get("ended", "")
    if breach:
        headline = f"{verdict}: the soak ended on a sustained breach ({breach.get('reason')})"
    else:
        headline = (
            f"{verdict}: the soak ended ({ended}) after {_clock(float(soak.get('elapsed_s', 0)))}"
        )
    return SoakView(
        soak=soak,
        rows=len(rows),
        row_s=float(soak.get("row_s", 0) or 0),
        table=tuple(table),
        thinned=thinned,
        slo_names=slo_names,
        latency_chart=latency,
        rps_chart=rps,
        breach=breach,
        breach_elapsed_s=breach_at,
        rollback=rollback,
        record_at=str(record.get("finished_at", "")),
        headline=headline,
    )


def write_soak_reports(
    record: dict[str, Any], rows: Sequence[Row], out_dir: Path, template_dirs: Sequence[Path] = ()
) -> list[Path]:
    """Render ``soak.html`` and ``soak.md`` into ``out_dir``; returns the paths written."""
    rv = build_view(record, None)
    sv = build_soak_view(rv.record, rows)
    env = environment(tuple(str(Path(d)) for d in template_dirs))
    written = []
    for template, filename in SOAK_OUTPUTS.items():
        try:
            text = env.get_template(template).render(rg=rv, record=rv.record, soak=sv)
        except Exception as err:
            raise ReportError(f"cannot render {template}: {err}") from err
        path = out_dir / filename
        tmp = path.with_name(f".{filename}.tmp{os.getpid()}")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            raise ReportError(f"cannot write {path}: {err}") from err
        written.append(path)
    return written
