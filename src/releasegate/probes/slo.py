"""SLO probes: PromQL over Prometheus' HTTP API, a scraped ``/metrics`` endpoint, a JSON metric,
and multiwindow burn-rate gates (log lines by class: ``logs.py``).

Each probe gathers samples (``releasegate.slo.Point``) and lets ``releasegate.slo`` judge them:
``for:`` means the condition holds at every step of the window, missing steps below the
coverage floor are NO DATA, several series without ``aggregate`` are an ERROR (docs/slo.md).
Windows run ``time_scale`` times faster (``slo.time_scale``, ``--rg-time-scale``); the record
keeps the nominal and the scaled window.

Sources that observe live (``metrics``, ``json_metric``) wait out their window
with ``ctx.sleep`` and read ``ctx.clock``: time is a parameter. ``prometheus`` reads the past
window from the server at once; a phase's Prometheus queries are sent together
(``slo.prometheus.concurrency`` at a time) when its first one runs.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import deadlines
from ..errors import ProbeError, TargetRefused
from ..model import Evidence, Status
from ..redact import redact_text, redact_value
from ..slo import (
    Aggregate,
    Condition,
    Point,
    Snapshot,
    Window,
    evaluate_instant,
    evaluate_series,
    histogram_quantile,
    parse_exposition,
    rate,
    ratio,
)
from ..slo.burn import evaluate_burn, rules_for
from ..slo.openslo import SloDefinition, load_slo_definitions, render_window
from ..slo.series import Labels, as_labels
from ..slo.units import format_duration, prometheus_duration
from ..target import TargetClient
from .base import ProbeContext, ProbeResult

#: Raw answers kept in the record, per check (the values per step are always kept, capped).
MAX_RAW_CHARS = 20_000
#: An instant check of a counter over /metrics scrapes twice, this far apart (nominal).
DEFAULT_RANGE_S = 10.0
_STEP = re.compile(r"\{\{\s*\.step\s*\}\}")
_PROMETHEUS = "slo.prometheus"
_RESULTS = "slo.prometheus.results"


# ------------------------------------------------------------------------------------ context


def _scale(ctx: ProbeContext) -> float:
    return ctx.spec.slo.time_scale * ctx.time_scale


def _window(check: Any, ctx: ProbeContext) -> Window | None:
    window: Window | None = check.window()
    return window.scaled(_scale(ctx)) if window is not None else None


def _instant_window() -> Window:
    # One step: the instant value judged as a window of one step, with full coverage needed.
    return Window(1.0, 1.0, 1.0)


def _result(status: Status, reason: str, *evidence: Evidence) -> ProbeResult:
    return ProbeResult(status, redact_text(reason), evidence)


def _error(measured: str, reason: str, **details: Any) -> ProbeResult:
    text = redact_text(reason)
    return ProbeResult(Status.ERROR, text, (Evidence(measured, None, None, text, details),))


# ------------------------------------------------------------------------------ prometheus


@dataclass(frozen=True, slots=True)
class _Answer:
    """A Prometheus API answer: its series (labels -> points) and the raw JSON (capped)."""

    series: dict[Labels, list[Point]]
    raw: str
    url: str
    evaluated_at: float


def _prometheus(ctx: ProbeContext) -> TargetClient:
    source = ctx.spec.slo.prometheus
    if source is None:
        raise ProbeError(
            "this check queries Prometheus, but the spec has no slo.prometheus.url: add"
            " slo: {prometheus: {url: 'http://127.0.0.1:9090'}}"
        )
    client = ctx.cache.get(_PROMETHEUS)
    if client is None:
        url = source.url
        if url == "demo://":
            demo = ctx.cache.get("demo")
            url = getattr(demo, "prometheus_url", None) or ""
            if not url:
                why = getattr(demo, "prometheus_missing", "") or (
                    "slo.prometheus.url is demo://, the demo target's own Prometheus, but this"
                    " run's target is not the demo"
                )
                raise _Absent(why)
        client = TargetClient(
            base_url=url,
            timeout_s=source.timeout_s,
            verify_tls=source.verify_tls,
            headers=dict(source.headers),
            policy=ctx.target.policy if ctx.target is not None else None,
        )
        _pool(client, source.concurrency)
        ctx.cache[_PROMETHEUS] = client
    assert isinstance(client, TargetClient)
    return client


class _Absent(ProbeError):
    """An optional source that is not there (the demo's Prometheus not installed): SKIPPED."""


def _pool(client: TargetClient, size: int) -> None:
    """Room in the connection pool for ``size`` queries at once (requests keeps 10)."""
    for prefix in ("http://", "https://"):
        adapter = client.session.get_adapter(prefix)
        adapter.init_poolmanager(size, size)  # type: ignore[attr-defined]


def _sample(value: Any) -> float | None:
    """A Prometheus sample value (a string): NaN and ±Inf are missing, as no data."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def query_prometheus(
    client: TargetClient, query: str, now: float, window: Window | None
) -> _Answer:
    """Run ``query`` as an instant query at ``now``, or over ``window`` ending at ``now``."""
    if window is None:
        path, params = "/api/v1/query", {"query": query, "time": f"{now:.3f}"}
    else:
        start = now - window.duration_s + window.step_s
        params = {
            "query": query,
            "start": f"{start:.3f}",
            "end": f"{now:.3f}",
            "step": f"{window.step_s:.3f}",
        }
        path = "/api/v1/query_range"
    try:
        timed = client.request("GET", path, params=params, lean=True)
    except ProbeError as err:
        raise ProbeError(f"Prometheus did not answer: {err}") from None
    response = timed.response
    url = f"{client.base_url}{path}"
    text = response.content.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        raise ProbeError(
            f"Prometheus answered {response.status_code} with a body that is not JSON:"
            f" {text[:200]!r}"
        ) from None
    if not isinstance(body, dict) or body.get("status") != "success":
        kind = body.get("errorType", "error") if isinstance(body, dict) else "error"
        why = body.get("error", text[:300]) if isinstance(body, dict) else text[:300]
        raise ProbeError(f"Prometheus refused the query ({response.status_code} {kind}): {why}")
    data = body.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    series: dict[Labels, list[Point]] = {}
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        series[()] = [Point(float(result[0]), _sample(result[1]))]
    elif kind in ("vector", "matrix") and isinstance(result, list):
        for item in result:
            labels = as_labels({str(k): str(v) for k, v in (item.get("metric") or {}).items()})
            if kind == "vector":
                t, value = item.get("value") or (now, None)
                points = [Point(float(t), _sample(value))]
            else:
                points = [Point(float(t), _sample(v)) for t, v in item.get("values") or ()]
            series[labels] = points
    else:
        raise ProbeError(f"Prometheus answered a {kind!r} result, which is not a number series")
    return _Answer(series, text[:MAX_RAW_CHARS], url, now)


def _promql(check: Any, window: Window | None) -> str:
    query: str = check.query
    if window is not None:
        query = render_window(query, window.duration_s)
        query = _STEP.sub(prometheus_duration(window.step_s), query)
    return query


def _await_data(ctx: ProbeContext, window: Window | None) -> None:
    """A Prometheus started with this run (the demo's) has data only since it began scraping:
    wait until it covers the check's window (at most the check's deadline allows)."""
    since = getattr(ctx.cache.get("demo"), "prometheus_since", None)
    if since is None:
        return
    span = (window.duration_s + window.step_s if window is not None else 0.0) + 2.0
    wait = since + span - ctx.clock()
    until = deadlines.current()
    if until is not None:
        wait = min(wait, until - time.monotonic() - 1.0)
    if wait > 0:
        ctx.sleep(wait)


def _prefetch(ctx: ProbeContext) -> dict[str, Future[_Answer]]:
    """Send every ``prometheus`` check of the phase at once (``concurrency`` at a time)."""
    found = ctx.cache.get(_RESULTS)
    if isinstance(found, dict):
        return found
    futures: dict[str, Future[_Answer]] = {}
    ctx.cache[_RESULTS] = futures
    if ctx.phase is None:
        return futures
    checks = [c for c in ctx.spec.checks_for(ctx.phase) if c.type == "prometheus"]
    if len(checks) < 2:
        return futures
    client = _prometheus(ctx)
    assert ctx.spec.slo.prometheus is not None
    pool = ThreadPoolExecutor(
        max_workers=ctx.spec.slo.prometheus.concurrency, thread_name_prefix="rg-promql"
    )
    now = ctx.clock()
    for check in checks:
        if check.skip_if is not None and check.skip_if.condition:
            continue
        window = _window(check, ctx)
        futures[check.name] = pool.submit(
            query_prometheus, client, _promql(check, window), now, window
        )
    pool.shutdown(wait=False)
    return futures


def probe_prometheus(check: Any, ctx: ProbeContext) -> ProbeResult:
    """PromQL held to the threshold, now or at every step of the window."""
    window = _window(check, ctx)
    query = _promql(check, window)
    measured = f"PromQL {query}"
    try:
        client = _prometheus(ctx)
        _await_data(ctx, window)
        future = _prefetch(ctx).pop(check.name, None)
        if future is not None:
            answer = future.result()
        else:
            answer = query_prometheus(client, query, ctx.clock(), window)
    except _Absent as err:
        return _result(Status.SKIPPED, str(err))
    except (ProbeError, TargetRefused) as err:
        return _error(measured, str(err), query=query)
    return _judge(
        check,
        answer.series,
        window,
        answer.evaluated_at,
        measured,
        {"query": query, "url": answer.url, "raw": answer.raw},
    )


def _judge(
    check: Any,
    series: Mapping[Labels, Sequence[Point]],
    window: Window | None,
    now: float,
    measured: str,
    details: dict[str, Any],
) -> ProbeResult:
    condition: Condition = check.threshold
    if window is None and len(series) == 1:
        # One value, now: judged as an instant (no window to speak of in the reason).
        (points,) = series.values()
        instant = evaluate_instant(_last(points), condition, check.name, now)
        one = instant.evidence(measured)
        extra = {**one.details, **redact_value(details), "evaluated_at": round(now, 3)}
        return _result(
            instant.status,
            instant.reason,
            Evidence(one.measured, one.value, one.threshold, one.reason, extra, one.limits),
        )
    if window is None:
        # The instant value stands for the one step ending now.
        series = {labels: [Point(now, _last(points))] for labels, points in series.items()}
        verdict_window = _instant_window()
    else:
        verdict_window = window
    aggregate: Aggregate | None = check.aggregate
    verdict = evaluate_series(series, condition, verdict_window, now, aggregate, check.name)
    evidence = []
    for item in verdict.evidence(measured):
        extra = {**item.details, **redact_value(details), "evaluated_at": round(now, 3)}
        if window is None:
            extra.pop("window", None)
        evidence.append(
            Evidence(item.measured, item.value, item.threshold, item.reason, extra, item.limits)
        )
    return _result(verdict.status, verdict.reason, *evidence)


def _last(points: Sequence[Point]) -> float | None:
    return points[-1].value if points else None


# ---------------------------------------------------------------------------- scraped metrics


def _scrape(ctx: ProbeContext, path: str) -> Snapshot:
    timed = ctx.target.get(path)
    response = timed.response
    if not 200 <= response.status_code < 300:
        raise ProbeError(f"GET {path} answered {response.status_code}: no metrics to read")
    text = response.content.decode("utf-8", errors="replace")
    try:
        return parse_exposition(text, ctx.clock())
    except ValueError as err:
        raise ProbeError(f"GET {path}: {err}") from None


def _values(check: Any, snapshots: Sequence[Snapshot]) -> tuple[dict[Labels, float | None], str]:
    """The value of the check's expression over ``snapshots``, per series, and any problem."""
    if check.gauge is not None:
        found = snapshots[-1].select(check.gauge)
        return {labels: value for (_, labels), value in found.items()}, ""
    if len(snapshots) < 2:
        return {}, "one scrape only: a counter needs two"
    if check.rate is not None:
        return {labels: value for (_, labels), value in rate(snapshots, check.rate).items()}, ""
    if check.ratio is not None:
        share = ratio(snapshots, check.ratio.numerator, check.ratio.denominator)
        return {(): share.value}, share.problem
    quantiles = histogram_quantile(
        check.quantile.q, snapshots, check.quantile.buckets, check.quantile.by
    )
    problems = sorted({q.problem for q in quantiles.values() if q.problem})
    return {labels: q.value for labels, q in quantiles.items()}, "; ".join(problems)


def probe_metrics(check: Any, ctx: ProbeContext) -> ProbeResult:
    """Scrape ``path`` over the window; each step's value covers the scrapes of ``range``."""
    window = _window(check, ctx)
    scale = _scale(ctx)
    nominal_range = check.range or (check.window().step_s if window else DEFAULT_RANGE_S)
    span = max(nominal_range / scale, 0.05)
    measured = f"scrape {check.path}: {check.expression()}"
    series: dict[Labels, list[Point]] = {}
    problems: list[str] = []
    kept: list[Snapshot] = []
    scrapes = 0
    try:
        if check.gauge is None:
            kept.append(_scrape(ctx, check.path))
            scrapes += 1
            ctx.sleep(span)
        for t in _step_times(ctx, window):
            kept.append(_scrape(ctx, check.path))
            scrapes += 1
            kept = _within(kept, span)
            values, problem = _values(check, kept)
            if problem:
                problems.append(problem)
            for labels, value in values.items():
                series.setdefault(labels, []).append(Point(t, value))
            if not values:  # no series this step: keep the step as missing
                series.setdefault((), []).append(Point(t, None))
    except (ProbeError, TargetRefused) as err:
        return _error(measured, str(err), path=check.path, scrapes=scrapes)
    now = ctx.clock()
    details = {
        "path": check.path,
        "expression": check.expression(),
        "scrapes": scrapes,
        "range_s": nominal_range,
        "problems": sorted(set(problems))[:10],
    }
    if () in series and len(series) > 1 and all(p.value is None for p in series[()]):
        del series[()]  # placeholder of early steps, once real series appeared
    result = _judge(check, series, window, now, measured, details)
    if result.status is Status.NO_DATA and problems:
        return _result(
            Status.NO_DATA, f"{result.reason} ({sorted(set(problems))[0]})", *result.evidence
        )
    return result


def _within(snapshots: list[Snapshot], span: float) -> list[Snapshot]:
    """The scrapes a value over the last ``span`` needs: those within it and the newest one
    before it (the base of the increase)."""
    newest = snapshots[-1].t
    older = [i for i, s in enumerate(snapshots) if s.t <= newest - span + 1e-6]
    return snapshots[older[-1] :] if older else snapshots


def _step_times(ctx: ProbeContext, window: Window | None) -> Iterator[float]:
    """Yield each step's time, sleeping until it (once, now, for an instant check)."""
    if window is None:
        yield ctx.clock()
        return
    start = ctx.clock()
    for index in range(window.steps):
        due = start + (index + 1) * window.step_s
        wait = due - ctx.clock()
        if wait > 0:
            ctx.sleep(wait)
        yield ctx.clock()


# ------------------------------------------------------------------------------ JSON metric


def probe_json_metric(check: Any, ctx: ProbeContext) -> ProbeResult:
    """The number(s) a JSONPath selects in a JSON endpoint, at every step of the window."""
    from .http import _jsonpath  # the probes' one JSONPath parser (and its cache)

    window = _window(check, ctx)
    expression = _jsonpath(check.jsonpath)
    measured = f"GET {check.path} {check.jsonpath}"
    series: dict[Labels, list[Point]] = {}
    samples = 0
    try:
        for t in _step_times(ctx, window):
            timed = ctx.target.get(check.path)
            samples += 1
            response = timed.response
            values: dict[Labels, float | None] = {}
            if 200 <= response.status_code < 300:
                try:
                    doc = json.loads(response.content)
                except ValueError:
                    doc = None
                if doc is not None:
                    for match in expression.find(doc):
                        where = str(match.full_path)
                        values[(("path", where),)] = _number(match.value, check.scale)
            for labels, value in values.items():
                series.setdefault(labels, []).append(Point(t, value))
            if not values:
                series.setdefault((), []).append(Point(t, None))
    except (ProbeError, TargetRefused) as err:
        return _error(measured, str(err), path=check.path, samples=samples)
    if () in series and len(series) > 1 and all(p.value is None for p in series[()]):
        del series[()]
    if len(series) == 1:  # one value: no need for its path as a label
        series = {(): next(iter(series.values()))}
    details = {"path": check.path, "jsonpath": check.jsonpath, "samples": samples}
    return _judge(check, series, window, ctx.clock(), measured, details)


def _number(value: Any, scale: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number * scale if math.isfinite(number) else None


# -------------------------------------------------------------------------------- burn rate


def _definition(check: Any, ctx: ProbeContext) -> SloDefinition:
    if check.slo_file is None:
        return SloDefinition(
            name=check.name,
            objective=check.objective,
            period_s=check.period or 30 * 86400.0,
            total_query=check.total_query,
            good_query=check.good_query,
            bad_query=check.bad_query,
            source_format="spec",
            counter=False,
        )
    path = Path(check.slo_file)
    if not path.is_absolute() and ctx.spec_dir is not None:
        path = ctx.spec_dir / path
    try:
        if path.stat().st_size > 1024 * 1024:
            raise ProbeError(f"the SLO file {path} is over 1 MiB")
        text = path.read_text(encoding="utf-8")
        definitions = load_slo_definitions(text)
    except OSError as err:
        raise ProbeError(f"cannot read the SLO file {path}: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ProbeError(f"the SLO file {path}: {err}") from None
    chosen = [d for d in definitions if check.slo_name in (None, d.name)]
    if len(chosen) != 1:
        names = ", ".join(d.name for d in definitions) or "none"
        raise ProbeError(
            f"the SLO file {path} holds {len(definitions)} SLO(s) ({names}): set slo_name"
            " to one of them"
            if chosen
            else f"the SLO file {path} has no SLO named {check.slo_name!r} (it has {names})"
        )
    found = chosen[0]
    if check.objective is not None or check.period is not None:
        found = SloDefinition(
            name=found.name,
            objective=check.objective or found.objective,
            period_s=check.period or found.period_s,
            total_query=found.total_query,
            good_query=found.good_query,
            bad_query=found.bad_query,
            source_format=found.source_format,
            service=found.service,
            description=found.description,
            counter=found.counter,
        )
    return found


def probe_burn_rate(check: Any, ctx: ProbeContext) -> ProbeResult:
    """The multiwindow multi-burn-rate rule over Prometheus (docs/slo.md)."""
    measured = f"burn rate of {check.name}"
    try:
        definition = _definition(check, ctx)
        client = _prometheus(ctx)
    except _Absent as err:
        return _result(Status.SKIPPED, str(err))
    except (ProbeError, TargetRefused) as err:
        return _error(measured, str(err))
    scale = _scale(ctx)
    rules = rules_for(definition.period_s, check.phase_length or 0.0)
    now = ctx.clock()
    queries: dict[str, str] = {}
    problems: list[str] = []

    def counts(window_s: float) -> tuple[float, float] | None:
        scaled = window_s / scale
        total = _count(definition, "total", scaled, now)
        which = "good" if definition.good_query is not None else "bad"
        part = _count(definition, which, scaled, now)
        if total is None or part is None:
            return None
        good = part if which == "good" else total - part
        return max(good, 0.0), total

    def _count(definition: SloDefinition, which: str, window_s: float, at: float) -> float | None:
        query = definition.query(which, window_s)
        if definition.counter:
            query = f"sum(increase(({query})[{prometheus_duration(window_s)}:]))"
        queries[f"{which} {format_duration(window_s)}"] = query
        answer = query_prometheus(client, query, at, None)
        values = [_last(points) for points in answer.series.values()]
        present = [v for v in values if v is not None]
        if not present:
            problems.append(f"{which} over {format_duration(window_s)}: no data")
            return None
        value = math.fsum(present)
        if definition.source_format.startswith("sloth") or definition.counter is None:
            value *= window_s  # Sloth's queries are ratios of rates: events per second
        return value

    try:
        verdict = evaluate_burn(counts, definition.objective, rules, check.min_events)
    except (ProbeError, TargetRefused) as err:
        return _error(measured, str(err), queries=queries)
    item = verdict.evidence(measured)
    details = {
        **item.details,
        "queries": queries,
        "objective": definition.objective,
        "period_s": definition.period_s,
        "source": definition.source_format,
        "time_scale": scale,
        "problems": problems[:10],
    }
    evidence = Evidence(
        item.measured, item.value, item.threshold, item.reason, details, item.limits
    )
    return _result(verdict.status, verdict.reason, evidence)
