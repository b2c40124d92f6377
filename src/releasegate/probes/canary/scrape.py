"""The ``metrics`` and ``prometheus`` sources: counter and histogram increases per side."""

from __future__ import annotations

from typing import Any

from ...errors import ProbeError
from ...slo.promtext import Snapshot, increase, parse_exposition, total_increase
from ...slo.selector import parse_selector
from ...target import TargetClient
from ..base import ProbeContext
from .common import _client, _scale


def _scrape(client: TargetClient, path: str, at: float) -> Snapshot:
    try:
        timed = client.request("GET", path)
    except ProbeError as err:
        raise ProbeError(f"cannot scrape {client.base_url}{path}: {err}") from None
    if timed.response.status_code != 200:
        raise ProbeError(f"{client.base_url}{path} answered {timed.response.status_code}")
    return parse_exposition(timed.response.content.decode("utf-8", errors="replace"), at)


def _side_selector(base: str, side_matchers: str | None, extra: str = "") -> str:
    selector = parse_selector(base)
    inner = [str(m) for m in selector.matchers]
    if extra:
        inner.append(extra)
    if side_matchers:
        inner.append(side_matchers.strip("{}"))
    return f"{selector.name}{{{', '.join(i for i in inner if i)}}}"


def _from_snapshots(check: Any, snapshots: list[Snapshot], side: Any, minutes: float) -> Any:
    from ...canary import HistogramData, RateData

    requests = total_increase(snapshots, _side_selector(check.counter, side.selector))
    errors = total_increase(
        snapshots, _side_selector(check.counter, side.selector, check.errors_when)
    )
    buckets: dict[float, float] = {}
    bucket_name = parse_selector(check.histogram).name + "_bucket"
    histogram = _side_selector(check.histogram, side.selector).replace(
        parse_selector(check.histogram).name, bucket_name, 1
    )
    for (_, labels), inc in increase(snapshots, histogram).items():
        le = dict(labels).get("le")
        try:
            bound = float(le) if le is not None else None
        except ValueError:
            bound = None
        if bound is not None:
            buckets[bound] = buckets.get(bound, 0.0) + inc
    bounds = sorted(buckets)
    return {
        "errors": RateData(round(errors or 0), round(requests or 0), minutes),
        "latency": HistogramData(bounds, [buckets[b] for b in bounds], minutes),
    }


def measure_metrics(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """Each side's /metrics at the window's start and end: increases per side."""
    clients = {side: _client(check, ctx, side) for side in sides}
    if any(c is None for c in clients.values()):
        return {}
    duration = check.hold_for / _scale(ctx)
    first = {side: _scrape(clients[side], check.metrics_path, ctx.clock()) for side in sides}  # type: ignore[arg-type]
    ctx.sleep(duration)
    last = {side: _scrape(clients[side], check.metrics_path, ctx.clock()) for side in sides}  # type: ignore[arg-type]
    minutes = check.hold_for / 60.0
    return {
        side: _from_snapshots(check, [first[side], last[side]], getattr(check, side), minutes)
        for side in sides
    }


def measure_prometheus(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """The increases over the window, from Prometheus (instant queries at now)."""
    from ...canary import HistogramData, RateData
    from ..slo import _await_data, _prometheus, query_prometheus

    client = _prometheus(ctx)
    window = f"{max(round(check.hold_for / _scale(ctx)), 1)}s"
    from ...slo.window import Window

    _await_data(ctx, Window(check.hold_for / _scale(ctx), check.hold_for / _scale(ctx), 1.0))
    now = ctx.clock()
    out: dict[str, Any] = {}
    name = parse_selector(check.histogram).name
    for side in sides:
        matchers = getattr(check, side).selector
        counter = _side_selector(check.counter, matchers)
        errs = _side_selector(check.counter, matchers, check.errors_when)
        buckets_sel = _side_selector(check.histogram, matchers).replace(name, f"{name}_bucket", 1)

        def one(query: str) -> float:
            answer = query_prometheus(client, query, now, None)
            values = [p.value for points in answer.series.values() for p in points]
            return sum(v for v in values if v is not None)

        total = one(f"sum(increase({counter}[{window}]))")
        errors = one(f"sum(increase({errs}[{window}]))")
        answer = query_prometheus(
            client, f"sum by (le) (increase({buckets_sel}[{window}]))", now, None
        )
        buckets: dict[float, float] = {}
        for labels, points in answer.series.items():
            le = dict(labels).get("le")
            value = points[-1].value if points else None
            if le is None or value is None:
                continue
            buckets[float(le)] = value
        bounds = sorted(buckets)
        minutes = check.hold_for / 60.0
        out[side] = {
            "errors": RateData(round(errors), round(total), minutes),
            "latency": HistogramData(bounds, [buckets[b] for b in bounds], minutes),
        }
    return out
