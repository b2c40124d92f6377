"""The ``canary`` probe: measure the canary and its baseline, then let the judge compare them.

Measuring is this module's; judging is ``releasegate.canary``'s (pure statistics, no I/O).
Three sources give the two populations:

* ``http``: requests sent to both sides, interleaved (so that both see the same moment), each
  timed: per-request latency samples and an error count (5xx or no answer);
* ``metrics``: each side's ``/metrics`` scraped at the window's start and end (or one endpoint
  and a label selector per side): the counter's increase (errors and requests) and the
  latency histogram's bucket increases;
* ``prometheus``: the same increases over the window, from Prometheus, per side's selector.

A golden baseline (``baseline.golden``) stands in for a live baseline; its age is in the
evidence and past ``max_age`` the check has NO DATA.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import deadlines
from ..errors import ProbeError, TargetRefused
from ..model import Evidence, Status
from ..slo.promtext import Snapshot, increase, parse_exposition, total_increase
from ..slo.selector import parse_selector
from ..spec_canary import parse_margin
from ..target import TargetClient
from .base import ProbeContext, ProbeResult

_BASELINE_CLIENT = "canary:baseline-client"
SIDES = ("canary", "baseline")


def _scale(ctx: ProbeContext) -> float:
    return ctx.time_scale * ctx.spec.slo.time_scale


def _client(check: Any, ctx: ProbeContext, side: str) -> TargetClient | None:
    """The client for one side: the target's for the canary, the baseline's own otherwise
    (None when the baseline is the demo's and this run has none)."""
    spec_side = getattr(check, side)
    base = ctx.target.base_url if side == "canary" else ctx.target.baseline_url
    url = spec_side.url or base
    if url is None:
        if side == "baseline" and ctx.spec.target.baseline_url == "demo://":
            return None
        raise ProbeError(
            f"the {side} has no URL: give {side}.url in the check or target.baseline_url"
            " (or baseline.golden, a golden baseline file)"
        )
    if url == ctx.target.base_url:
        return ctx.target
    cached = ctx.cache.get(f"{_BASELINE_CLIENT}:{url}")
    if cached is None:
        cached = TargetClient(
            base_url=url,
            timeout_s=ctx.target.timeout_s,
            verify_tls=ctx.target.verify_tls,
            headers=dict(ctx.spec.target.headers),
            max_body_bytes=ctx.target.max_body_bytes,
            policy=ctx.target.policy,
        )
        ctx.cache[f"{_BASELINE_CLIENT}:{url}"] = cached
    assert isinstance(cached, TargetClient)
    return cached


# --------------------------------------------------------------------------------- sources


def measure_http(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """Requests to each side in turn (alternating which goes first) at ``rps`` per side, up to
    ``requests`` per side, within the window (``for``) and the check's deadline: latencies (s)
    and error counts per side."""
    from ..canary import RateData, SampleData

    clients = {side: _client(check, ctx, side) for side in sides}
    if any(c is None for c in clients.values()):
        return {}
    limit = check.hold_for / _scale(ctx) if check.hold_for is not None else math.inf
    until = deadlines.current()
    budget = min(limit, (until - time.monotonic() - 1.0) if until is not None else math.inf)
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    errors = dict.fromkeys(sides, 0)
    sent = dict.fromkeys(sides, 0)
    interval = 1.0 / check.rps
    started = time.monotonic()
    for i in range(check.requests):
        due = started + i * interval
        now = time.monotonic()
        if now - started >= budget:
            break
        if due > now:
            time.sleep(due - now)
        # Each side goes first in every other round: the first request after the pause pays
        # for waking up (scheduler, sockets), which would otherwise always fall on one side.
        for side in sides if i % 2 == 0 else sides[::-1]:
            client = clients[side]
            assert client is not None
            sent[side] += 1
            try:
                timed = client.request(check.method, check.path)
            except (ProbeError, TargetRefused):
                errors[side] += 1  # no answer: an error, and no latency to count
                continue
            if timed.response.status_code >= 500:
                errors[side] += 1
            latencies[side].append(timed.elapsed_ms / 1000.0)
    minutes = (time.monotonic() - started) / 60.0
    return {
        side: {
            "errors": RateData(errors[side], sent[side], minutes * _scale(ctx)),
            "latency": SampleData(latencies[side], minutes * _scale(ctx)),
        }
        for side in sides
    }


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
    from ..canary import HistogramData, RateData

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
    from ..canary import HistogramData, RateData
    from .slo import _await_data, _prometheus, query_prometheus

    client = _prometheus(ctx)
    window = f"{max(round(check.hold_for / _scale(ctx)), 1)}s"
    from ..slo.window import Window

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


_SOURCES = {"http": measure_http, "metrics": measure_metrics, "prometheus": measure_prometheus}


def measure(check: Any, ctx: ProbeContext, sides: tuple[str, ...] = SIDES) -> dict[str, Any]:
    """``{side: {metric: data}}`` for the check's source ({} when the demo's baseline is
    absent)."""
    return _SOURCES[check.source](check, ctx, sides)


# ---------------------------------------------------------------------------------- judging


def _policies(check: Any) -> list[tuple[str, Any]]:
    from ..canary import Direction, Margin, MetricPolicy

    found = []
    for name in ("errors", "latency"):
        rule = getattr(check.metrics, name)
        if rule is None:
            continue
        margin = None
        if rule.margin is not None:
            absolute, relative = parse_margin(rule.margin, name)
            margin = Margin(absolute=absolute, relative=relative)
        kwargs: dict[str, Any] = {
            "direction": Direction(rule.direction),
            "margin": margin,
            "critical": rule.critical,
            "must_have_data": rule.must_have_data,
            "alpha": rule.alpha,
            "quantile": rule.quantile,
        }
        if rule.min_samples is not None:
            kwargs["min_samples"] = rule.min_samples
        found.append((name, MetricPolicy(name=name, **kwargs)))
    return found


def _golden(check: Any, ctx: ProbeContext) -> Any:
    """The golden baseline (``releasegate.canary.Baseline``), read and validated."""
    from ..canary import load_baseline

    path = Path(check.baseline.golden)
    if not path.is_absolute() and ctx.spec_dir is not None:
        path = ctx.spec_dir / path
    try:
        return load_baseline(
            path,
            now=datetime.fromtimestamp(ctx.clock(), timezone.utc),
            max_age_s=check.baseline.max_age,
        )
    except ValueError as err:  # BaselineError: unreadable, invalid, from the future
        raise ProbeError(str(err)) from None


def probe_canary(check: Any, ctx: ProbeContext) -> ProbeResult:
    """The canary against its baseline, metric by metric (docs/canary.md)."""
    from ..canary import Verdict, judge

    measured = f"canary vs baseline ({check.source})"
    source = None
    try:
        if check.baseline.golden is not None:
            golden = _golden(check, ctx)
            source = golden.source
            if golden.stale:
                why = (
                    f"{source.describe()}: a stale baseline says nothing of today's; capture a"
                    " fresh one (releasegate baseline capture)"
                )
                return ProbeResult(Status.NO_DATA, why, (Evidence(measured, None, None, why),))
            data = measure(check, ctx, ("canary",))
            data["baseline"] = dict(golden.metrics)
        else:
            data = measure(check, ctx)
            if not data:
                return ProbeResult(
                    Status.SKIPPED,
                    "target.baseline_url is demo://, the demo's baseline, and this run's"
                    " target is not the demo: give the baseline's URL",
                )
    except (ProbeError, TargetRefused) as err:
        return ProbeResult.error(f"{measured}: {err}")
    rows = []
    for name, policy in _policies(check):
        if name not in data["baseline"]:
            return ProbeResult.error(f"{measured}: the golden baseline has no {name!r} metric")
        rows.append((policy, data["canary"][name], data["baseline"][name]))
    judgement = judge(rows, source=source)
    reason = f"{measured}: {judgement.reason}"
    evidence = Evidence(
        measured, _values(judgement), _threshold(check), reason, judgement.to_dict()
    )
    verdict = judgement.verdict
    if verdict is Verdict.PASSED:
        return ProbeResult(Status.PASSED, reason, (evidence,))
    if verdict is Verdict.MARGINAL:
        return ProbeResult(Status.PASSED, reason, (evidence,), marginal=True)
    if verdict is Verdict.NO_DATA:
        return ProbeResult(Status.NO_DATA, reason, (evidence,))
    return ProbeResult(Status.FAILED, reason, (evidence,))


def _values(judgement: Any) -> dict[str, Any]:
    return {c.metric: c.verdict.value for c in judgement.comparisons}


def _threshold(check: Any) -> str:
    parts = []
    for name in ("errors", "latency"):
        rule = getattr(check.metrics, name)
        if rule is not None:
            margin = f" beyond {rule.margin}" if rule.margin else ""
            parts.append(f"{name}: no significant {rule.direction}{margin}")
    return "; ".join(parts)
