"""The ``canary`` probe: measure the canary and its baseline, then let the judge compare them.

Measuring is this module's; judging is ``releasegate.canary``'s (pure statistics, no I/O).
Three sources give the two populations:

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

import contextlib
import math
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import deadlines
from ..errors import ProbeError, TargetRefused
from ..model import Evidence, Status
from ..redact import redact_text, redact_value
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


#: What a sql row says that is not a count: the query's mistake, said with the fix.
_ERRORS_ROW = "the errors query must return one row of two numbers: the errors and the total"
_LATENCY_SCALE = {"s": 1.0, "ms": 0.001}


def _count(value: Any, what: str) -> int:
    """A count from the database (None: 0, as SUM over no row is NULL)."""
    if value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProbeError(f"{_ERRORS_ROW}; its {what} is {value!r}") from None
    if not number.is_integer() or number < 0:
        raise ProbeError(f"{_ERRORS_ROW}; its {what} is {value!r}, not a count")
    return int(number)


def _rate_row(row: Any, side: str) -> tuple[int, int]:
    """(errors, total) from the errors query's row; no row is no data (0 of 0)."""
    if row is None:
        return 0, 0
    if len(row) != 2:
        raise ProbeError(f"{_ERRORS_ROW}; the {side}'s row has {len(row)} column(s)")
    errors, total = _count(row[0], "first column (errors)"), _count(row[1], "second (total)")
    if errors > total:
        raise ProbeError(f"the errors query says {errors:,} errors out of {total:,} for the {side}")
    return errors, total


def _durations(rows: list[Any], scale: float, side: str) -> list[float]:
    """The first column as seconds; NULL becomes NaN, which the judge drops and counts."""
    values = []
    for row in rows:
        raw = row[0] if len(row) else None
        if raw is None:
            values.append(math.nan)
            continue
        try:
            values.append(float(raw) * scale)
        except (TypeError, ValueError):
            raise ProbeError(
                f"the latency query returned {raw!r} for the {side}, not a duration. Fix:"
                " SELECT one numeric column (in latency_unit)"
            ) from None
    return values


def _limited(query: str, backend: str, limit: int) -> str:
    """``query`` (guarded) read through a LIMIT, so that the server stops at ``limit`` rows.

    The newline before the parenthesis ends a trailing ``--`` comment of the user's query."""
    from ..db.connect import guard_read_query

    inner = guard_read_query(query, backend)
    return f"SELECT * FROM (\n{inner}\n) AS rg_canary_samples LIMIT {int(limit)}"


def measure_sql(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """Each side's queries in one read-only session on the check's database, each statement
    under the database's statement timeout and the check's deadline: errors and total
    (``RateData``), a column of durations (``SampleData``, at most ``max_samples`` rows: more
    is an error, as the rows cut would be any the database chose)."""
    from ..canary import RateData, SampleData
    from ..db.connect import database, read_only
    from .sql import within_deadline

    wanted = check.measured_metrics()
    scale = _LATENCY_SCALE[check.latency_unit]
    db = database(ctx.spec.databases, check.database)
    out: dict[str, Any] = {}
    with read_only(check.database, within_deadline(check.database, db, ctx), ctx.db) as session:
        for side in sides:
            spec_side = getattr(check, side)
            queries = spec_side.queries or check.queries
            # Without params a ':' is text (WHERE note = 'a:b'); with them, :name binds.
            params = dict(spec_side.params) or None
            data: dict[str, Any] = {}
            if "errors" in wanted:
                errors, total = _rate_row(session.row(queries.errors, params), side)
                data["errors"] = RateData(errors, total)
            if "latency" in wanted:
                limited = _limited(queries.latency, session.backend, check.max_samples + 1)
                rows = session.rows(limited, params)
                if len(rows) > check.max_samples:
                    raise ProbeError(
                        f"the latency query returned more than max_samples"
                        f" ({check.max_samples:,}) rows for the {side}: a cut sample would be"
                        " the rows the database happened to send first. Fix: narrow its"
                        " window, sample it (ORDER BY random() LIMIT n) or raise max_samples"
                    )
                data["latency"] = SampleData(_durations(rows, scale, side))
            out[side] = data
    return out


def _log_path(name: str, ctx: ProbeContext) -> Path:
    path = Path(name)
    if not path.is_absolute() and ctx.spec_dir is not None:
        path = ctx.spec_dir / path
    return path


class _SideLines:
    """One side's tally of log lines: all, errors, and the durations read off them, at most
    ``keep`` of them: past it a uniform random sample (a seeded reservoir), so that memory
    stays bounded however busy the log and the sample stays representative of the window."""

    def __init__(self, match: str | None, keep: int) -> None:
        self.match = re.compile(match) if match is not None else None
        self.lines = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.seen = 0
        self._keep = keep
        self._rng = random.Random(0)

    def took(self, seconds: float) -> None:
        self.seen += 1
        if len(self.latencies) < self._keep:
            self.latencies.append(seconds)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self._keep:
            self.latencies[slot] = seconds


def _tally(
    lines: list[str],
    sides: list[_SideLines],
    bad: list[re.Pattern[str]],
    latency: re.Pattern[str] | None,
    scale: float,
) -> None:
    for line in lines:
        mine = [s for s in sides if s.match is None or s.match.search(line)]
        if not mine:
            continue
        is_bad = any(b.search(line) for b in bad)
        took = None
        if latency is not None and (found := latency.search(line)) is not None:
            group = "latency" if "latency" in latency.groupindex else 1
            with contextlib.suppress(TypeError, ValueError):  # the group did not take part
                took = float(found.group(group)) * scale
        for side in mine:
            side.lines += 1
            side.errors += is_bad
            if took is not None:
                side.took(took)


def measure_logs(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """The lines each side's log gets over the window (``for``, scaled), read as they come:
    error lines (any ``patterns.bad``) out of all the side's lines, and the durations that
    ``latency_pattern`` reads off them. One file for both sides is read once and its lines
    go to each side whose ``match`` they match."""
    from ..canary import RateData, SampleData
    from .logs import DEADLINE_MARGIN_S, FILE_READ_BYTES, FileTail, LineSplitter

    duration = check.hold_for / _scale(ctx)
    tallies = {side: _SideLines(getattr(check, side).match, check.max_samples) for side in sides}
    by_file: dict[Path, list[_SideLines]] = {}
    for side in sides:
        path = _log_path(getattr(check, side).file or check.file, ctx)
        by_file.setdefault(path, []).append(tallies[side])
    tails = [
        (
            FileTail(
                path,
                LineSplitter(check.max_line_bytes, check.max_read_bytes),
                from_start=False,
                sleep=ctx.sleep,
            ),
            readers,
        )
        for path, readers in by_file.items()
    ]
    bad = [re.compile(p) for p in check.patterns.bad]
    latency = re.compile(check.latency_pattern) if check.latency_pattern else None
    scale = _LATENCY_SCALE[check.latency_unit]
    deadline = deadlines.current()
    with contextlib.ExitStack() as stack:
        for tail, _ in tails:
            tail.open()
            stack.callback(tail.close)
        started = ctx.clock()
        margin = 0.0
        if deadline is not None:
            margin = min(DEADLINE_MARGIN_S, max(deadline - time.monotonic(), 0.0) / 10)
        poll = min(max(duration / 20, 0.05), 1.0)

        def read(tail: FileTail, readers: list[_SideLines]) -> int:
            """One look at ``tail``: its new lines tallied; the bytes it read."""
            before = tail.split.bytes_read
            _tally(tail.lines(), readers, bad, latency, scale)
            if tail.split.capped:
                raise ProbeError(
                    f"read max_read_bytes ({tail.split.max_bytes:,} bytes) of {tail.path}"
                    f" after {ctx.clock() - started:.2f}s of {duration:.2f}s: the rest of"
                    " the window was not read. Fix: raise max_read_bytes or shorten for:"
                )
            return tail.split.bytes_read - before

        while True:
            left = started + duration - ctx.clock()
            if left <= 0:
                # The window is over: take the backlog it wrote that is still unread (a look
                # reads at most FILE_READ_BYTES); a short read means the end was reached.
                for tail, readers in tails:
                    while read(tail, readers) >= FILE_READ_BYTES:
                        pass
                break
            for tail, readers in tails:
                read(tail, readers)
            if deadline is not None:
                room = deadline - margin - time.monotonic()
                if room <= 0:
                    raise ProbeError(
                        f"the check's deadline ended the window after"
                        f" {ctx.clock() - started:.2f}s of {duration:.2f}s: give it a timeout"
                        " longer than for:"
                    )
                left = min(left, room)
            ctx.sleep(min(poll, left))
        minutes = max(ctx.clock() - started, 1e-9) * _scale(ctx) / 60.0
    return {
        side: {
            "errors": RateData(t.errors, t.lines, minutes),
            "latency": SampleData(t.latencies, minutes),
        }
        for side, t in tallies.items()
    }


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
    seconds, so reasons show them as ms; a margin is quoted as the spec wrote it."""
    from ..canary import Direction, Margin, MetricPolicy, Unit

    found = []
    for name in check.measured_metrics():
        rule = getattr(check.metrics, name)
        margin = None
        if rule.margin is not None:
            absolute, relative = parse_margin(rule.margin, name)
            margin = Margin(absolute=absolute, relative=relative, text=rule.margin)
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
                "file": str(_log_path(spec_side.file or check.file, ctx)),
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
