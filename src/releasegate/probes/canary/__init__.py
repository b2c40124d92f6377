"""The ``canary`` probe: measure the canary and its baseline, then let the judge compare them.

Measuring is this package's (a module per source); judging is ``releasegate.canary``'s (pure
statistics, no I/O). Five sources give the two populations:

* ``http``: requests sent to both sides, interleaved (so that both see the same moment), each
  timed: per-request latency samples and an error count (5xx or no answer);
* ``metrics``: each side's ``/metrics`` scraped at the window's start and end (or one endpoint
  and a label selector per side): the counter's increase (errors and requests) and the
  latency histogram's bucket increases;
* ``prometheus``: the same increases over the window, from Prometheus, per side's selector;
* ``sql``: read-only queries on a spec database, the same ones with each side's bound
  parameters (``version = :version``) or a query each: errors and total (a rate) and a column
  of durations (samples), in one guarded read-only session under the check's deadline;
* ``logs``: each side's new log lines over the window (a file each, or one file and a line
  pattern each), tailed across rotation: error lines out of all lines (a rate) and durations
  read off the lines (samples).

A golden baseline (``baseline.golden``) stands in for a live baseline; its age is in the
evidence and past ``max_age`` the check has NO DATA.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...errors import ProbeError, TargetRefused
from ...model import Evidence, Status
from ...redact import redact_text, redact_value
from ...spec_canary import DEFAULT_MARGINS, parse_margin
from ..base import ProbeContext, ProbeResult
from .common import SIDES
from .http import measure_http
from .logs import log_path, measure_logs
from .scrape import measure_metrics, measure_prometheus
from .sql import measure_sql

__all__ = ["SIDES", "measure", "probe_canary"]

_SOURCES = {
    "http": measure_http,
    "metrics": measure_metrics,
    "prometheus": measure_prometheus,
    "sql": measure_sql,
    "logs": measure_logs,
}


def measure(check: Any, ctx: ProbeContext, sides: tuple[str, ...] = SIDES) -> dict[str, Any]:
    """``{side: {metric: data}}`` for the check's source ({} when the demo's baseline is
    absent)."""
    return _SOURCES[check.source](check, ctx, sides)


# ---------------------------------------------------------------------------------- judging


def _policies(check: Any) -> list[tuple[str, Any]]:
    """One policy per metric the check's source measures. Every source gives latencies in
    seconds, so reasons show them as ms; a margin is quoted as the spec wrote it (or the
    metric's default, ``DEFAULT_MARGINS``)."""
    from ...canary import Direction, Margin, MetricPolicy, Unit

    found = []
    for name in check.measured_metrics():
        rule = getattr(check.metrics, name)
        margin = None
        text = rule.margin if rule.margin is not None else DEFAULT_MARGINS.get(name)
        if text is not None:
            absolute, relative = parse_margin(text, name)
            margin = Margin(absolute=absolute, relative=relative, text=text)
        kwargs: dict[str, Any] = {
            "unit": Unit.SECONDS if name == "latency" else Unit.NUMBER,
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
    from ...canary import load_baseline

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
    from ...canary import Verdict, judge

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
    except (ProbeError, TargetRefused, OSError) as err:  # OSError: a log file that broke
        return ProbeResult.error(redact_text(f"{measured}: {err}"))
    rows = []
    for name, policy in _policies(check):
        if name not in data["baseline"]:
            return ProbeResult.error(f"{measured}: the golden baseline has no {name!r} metric")
        rows.append((policy, data["canary"][name], data["baseline"][name]))
    judgement = judge(rows, source=source)
    reason = f"{measured}: {judgement.reason}"
    details = judgement.to_dict()
    read = _measured_from(check, ctx)
    if read is not None:
        details["measured_from"] = read
    evidence = Evidence(measured, _values(judgement), _threshold(check), reason, details)
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
    for name in check.measured_metrics():
        rule = getattr(check.metrics, name)
        margin = f" beyond {rule.margin}" if rule.margin else ""
        parts.append(f"{name}: no significant {rule.direction}{margin}")
    return "; ".join(parts)


def _measured_from(check: Any, ctx: ProbeContext) -> dict[str, Any] | None:
    """What the sql and logs sources read, for the record (queries and params redacted)."""
    if check.source == "sql":
        sides = {}
        for side in SIDES:
            spec_side = getattr(check, side)
            queries = spec_side.queries or check.queries
            if side == "baseline" and check.baseline.golden is not None:
                continue
            sides[side] = {
                "params": spec_side.params,
                "queries": {
                    name: redact_text(getattr(queries, name)) for name in check.measured_metrics()
                },
            }
        return {
            "database": check.database,
            "latency_unit": check.latency_unit,
            **redact_value(sides),
        }
    if check.source == "logs":
        files = {}
        for side in SIDES:
            spec_side = getattr(check, side)
            if side == "baseline" and check.baseline.golden is not None:
                continue
            files[side] = {
                "file": str(log_path(spec_side.file or check.file, ctx)),
                "match": spec_side.match,
            }
        return {
            **files,
            "bad": list(check.patterns.bad),
            "latency_pattern": check.latency_pattern,
            "latency_unit": check.latency_unit,
            "window_s": check.hold_for,
        }
    return None
