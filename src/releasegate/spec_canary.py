"""The canary part of the gate spec: the fields of the ``canary`` check type.

A canary check compares two populations, the canary (the new version) and its baseline (the
version it replaces, live or a golden file), metric by metric, each with the test that fits
it (docs/canary.md): the error ratio with a test on two rates, the latency with a test on
per-request samples (the ``http`` source, a SQL column of durations, durations read off log
lines) or on histogram buckets (``metrics``, ``prometheus``). ``sql`` and ``logs`` tell the
sides apart by a filter each (bound query parameters, a line pattern) or a query or file each.
Like ``spec_slo``, this module holds field sets only; the check class is declared in
``spec.py`` on top of ``CheckBase``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .slo.selector import parse_selector
from .spec_db import DB_BACKENDS, DEFAULT_DATABASE, refused_query
from .spec_slo import DEFAULT_MAX_READ_BYTES
from .spec_text import StrictModel as _Strict
from .spec_text import check_regex, http_url_or_none
from .spec_text import duration_or_none as _duration

MAX_REQUESTS = 20_000
MAX_RPS = 500.0
#: Rows a ``sql`` latency query may return per side by default, and at most.
DEFAULT_MAX_SAMPLES = 100_000
MAX_SAMPLES = 1_000_000
#: The metrics each source can measure (``metrics:`` keys).
METRIC_NAMES = ("errors", "latency")
#: A bound parameter's value: what every SQL driver binds as is.
Param = str | int | float | bool


_TERM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|%|x)\s*$")


#: The margin of a metric whose rule sets none. Per-request latencies are measured precisely
#: enough that a shift of a fraction of a millisecond (another process on the host, a golden
#: baseline captured on a quieter day) is significant; without an allowance every such drift
#: would fail a canary. Errors get none: any significant increase fails.
DEFAULT_MARGINS: dict[str, str | None] = {"latency": "5ms or 10%", "errors": None}


def parse_margin(
    text: str, metric: Literal["errors", "latency"]
) -> tuple[float | None, float | None]:
    """A non-inferiority margin: how much worse the canary may be, as ``(absolute, relative)``.

    Latency: ``100ms`` (absolute, in seconds), ``10%`` (relative to the baseline), or both
    with ``or`` (the more lenient holds). Errors: ``0.5%`` (absolute: percentage points of
    the error ratio), ``2x`` (relative: at most twice the baseline's ratio), or both.
    """
    absolute: float | None = None
    relative: float | None = None
    for term in str(text).split(" or "):
        found = _TERM.match(term)
        if found is None:
            raise ValueError(f"margin {text!r}: {_MARGIN_HELP[metric]}")
        number, unit = float(found.group(1)), found.group(2)
        if metric == "latency" and unit in ("ms", "s"):
            value, slot = number / 1000 if unit == "ms" else number, "absolute"
        elif metric == "latency" and unit == "%":
            value, slot = number / 100, "relative"
        elif metric == "errors" and unit == "%":
            value, slot = number / 100, "absolute"
        elif metric == "errors" and unit == "x":
            if number < 1:
                raise ValueError(f"margin {text!r}: a ratio margin is at least 1x")
            value, slot = number - 1, "relative"
        else:
            raise ValueError(f"margin {text!r}: {_MARGIN_HELP[metric]}")
        if slot == "absolute":
            if absolute is not None:
                raise ValueError(f"margin {text!r}: two absolute terms")
            absolute = value
        else:
            if relative is not None:
                raise ValueError(f"margin {text!r}: two relative terms")
            relative = value
    return absolute, relative


_MARGIN_HELP = {
    "latency": "write how much slower the canary may be: '100ms', '10%' or '100ms or 10%'",
    "errors": "write how many more errors the canary may have: '0.5%' (percentage points),"
    " '2x' (times the baseline's ratio) or '0.5% or 2x'",
}


class MetricRule(_Strict):
    """How one metric is judged (docs/canary.md)."""

    direction: Literal["increase", "decrease", "both"] = Field(
        "increase", description="Which way is a regression (an error ratio: increase)."
    )
    margin: str | None = Field(
        None,
        description="How much worse the canary may be and still pass (non-inferiority):"
        " latency '100ms or 10%', errors '0.5%' or '2x'. Significant but inside it: MARGINAL"
        " (CONDITIONAL GO). Unset: latency '5ms or 10%' (a shift too small to matter, such as a"
        " golden baseline's drift, is MARGINAL rather than FAILED; '0ms' for none), errors none"
        " (any significant increase fails).",
    )
    critical: bool = Field(True, description="A regression here fails the check.")
    must_have_data: bool = Field(
        True, description="Too few samples on either side is NO DATA (never a pass)."
    )
    min_samples: int | None = Field(None, ge=1, le=10_000_000, description="Per side.")
    alpha: float = Field(0.01, gt=0, lt=0.5, description="Significance (one-sided), before BH.")
    quantile: float = Field(0.95, gt=0, lt=1, description="Latency: the quantile compared.")


class Metrics(_Strict):
    errors: MetricRule | None = Field(
        default_factory=lambda: MetricRule(), description="The error ratio (5xx / requests)."
    )
    latency: MetricRule | None = Field(
        default_factory=lambda: MetricRule(), description="The request latency."
    )

    @model_validator(mode="after")
    def _margins(self) -> Metrics:
        for name in ("errors", "latency"):
            rule = getattr(self, name)
            if rule is not None and rule.margin is not None:
                parse_margin(rule.margin, name)
        if self.errors is None and self.latency is None:
            raise ValueError("give at least one of errors or latency")
        return self


class SqlQueries(_Strict):
    """The ``sql`` source's read-only queries (one SELECT each, refused at load otherwise);
    ``:name`` in them is a parameter bound to the side's ``params``."""

    errors: str | None = Field(
        None,
        min_length=1,
        description="One row of two numbers: the errors and the total (e.g. SELECT"
        " SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), COUNT(*) FROM orders WHERE"
        " version = :version).",
    )
    latency: str | None = Field(
        None,
        min_length=1,
        description="One column, a row per request: its duration in latency_unit (NULL rows"
        " are dropped and counted).",
    )

    @model_validator(mode="after")
    def _one(self) -> SqlQueries:
        if self.errors is None and self.latency is None:
            raise ValueError("give errors: and/or latency: (a query each)")
        return self


class CanarySide(_Strict):
    """One population: where it answers (``url``), which series are its own (``selector``:
    label matchers such as ``version="1.4.2"``), its rows (``params`` bound into the ``sql``
    queries, or ``queries`` of its own) or its log lines (``file``, ``match``)."""

    url: str | None = Field(
        None,
        description="http/metrics: the side's base URL (default: target.base_url for the"
        " canary, target.baseline_url for the baseline).",
    )
    selector: str | None = Field(
        None, description='metrics/prometheus: label matchers of this side, e.g. version="1.4.2".'
    )
    params: dict[str, Param] = Field(
        default_factory=dict,
        description="sql: values of the queries' :name parameters for this side, e.g."
        ' {version: "1.4.2"}.',
    )
    queries: SqlQueries | None = Field(
        None, description="sql: this side's own queries instead of the check's queries:."
    )
    file: str | None = Field(
        None,
        min_length=1,
        description="logs: this side's log file (default: the check's file:), relative to the"
        " spec's folder; its rotations are followed.",
    )
    match: str | None = Field(
        None,
        min_length=1,
        description="logs: a regex; only lines it matches are this side's (one file for both"
        " sides, e.g. 'version 1\\.4\\.2').",
    )

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Param]) -> dict[str, Param]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"parameter {name!r}: a name such as version (:version in SQL)")
        return value

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            check_regex(value)
        return value

    _url = field_validator("url")(http_url_or_none)

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is None:
            return value
        inner = value.strip()
        if not inner.startswith("{"):
            inner = "{" + inner + "}"
        parse_selector(inner)
        return inner


class BaselineSide(CanarySide):
    golden: str | None = Field(
        None,
        description="A golden baseline file (releasegate baseline capture) instead of a live"
        " baseline; relative to the spec's folder.",
    )
    max_age: float | None = Field(
        None, description="A golden baseline older than this is NO DATA (e.g. 7d)."
    )

    _age = field_validator("max_age", mode="before")(_duration)


class LogErrorPatterns(_Strict):
    """Which log lines are errors: a line that any ``bad`` regex matches."""

    bad: list[str] = Field(min_length=1, description="Regexes of error lines.")

    @field_validator("bad")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            check_regex(pattern)
        return value


class CanaryFields(_Strict):
    """A canary compared with its baseline (kind canary)."""

    type: Literal["canary"]
    source: Literal["http", "metrics", "prometheus", "sql", "logs"] = Field(
        "http",
        description="http: send requests to both sides and time each (per-request samples);"
        " metrics: scrape each side's /metrics over the window; prometheus: query both"
        " sides' series over the window; sql: read-only queries per side (errors and"
        " total, a column of durations); logs: each side's new log lines over the window"
        " (error lines out of all lines, durations read off the lines).",
    )
    canary: CanarySide = Field(default_factory=lambda: CanarySide())
    baseline: BaselineSide = Field(default_factory=lambda: BaselineSide())
    metrics: Metrics = Field(default_factory=lambda: Metrics())
    # http
    path: str = Field("/", pattern=r"^/", description="http: the path each request asks.")
    method: Literal["GET", "HEAD"] = "GET"
    requests: int = Field(
        300, ge=1, le=MAX_REQUESTS, description="http: requests per side, at most."
    )
    rps: float = Field(50.0, gt=0, le=MAX_RPS, description="http: requests a second, per side.")
    # metrics / prometheus
    hold_for: float | None = Field(
        None,
        alias="for",
        description="metrics/prometheus: the window compared (scaled by slo.time_scale);"
        " http: at most this long.",
    )
    metrics_path: str = Field("/metrics", pattern=r"^/", description="metrics: the endpoint.")
    counter: str = Field(
        "http_requests_total", description="metrics/prometheus: the request counter selector."
    )
    errors_when: str = Field(
        'status=~"5.."',
        description="metrics/prometheus: the matchers that make a request an error.",
    )
    histogram: str = Field(
        "http_request_duration_seconds",
        description="metrics/prometheus: the latency histogram (seconds), without _bucket.",
    )
    # sql
    database: str | None = Field(
        None,
        description="sql: the database, by its name under databases: (default"
        f" {DEFAULT_DATABASE}).",
    )
    queries: SqlQueries | None = Field(
        None, description="sql: the queries both sides run, each with its own params."
    )
    latency_unit: Literal["s", "ms"] = Field(
        "s", description="sql/logs: the unit of the durations read (s or ms)."
    )
    max_samples: int = Field(
        DEFAULT_MAX_SAMPLES,
        ge=1,
        le=MAX_SAMPLES,
        description="sql: latency rows read per side at most, a query returning more is an"
        " ERROR (the rows cut would be any the database chose): narrow it or raise this;"
        " logs: durations kept per side, a uniform random sample of them past it.",
    )
    # logs
    file: str | None = Field(
        None,
        min_length=1,
        description="logs: one log file for both sides (each side's match: tells its lines),"
        " relative to the spec's folder.",
    )
    patterns: LogErrorPatterns | None = Field(
        None, description="logs: which lines are errors ({bad: [regex, ...]})."
    )
    latency_pattern: str | None = Field(
        None,
        description="logs: a regex whose first group (or group 'latency') is a request's"
        " duration in latency_unit, e.g. ' in (\\d+(?:\\.\\d+)?) ms'; without it logs give"
        " no latency.",
    )
    max_line_bytes: int = Field(64 * 1024, gt=0, le=16 * 1024 * 1024)
    max_read_bytes: int = Field(
        DEFAULT_MAX_READ_BYTES,
        gt=0,
        le=1024**3,
        description="logs: bytes read per side in one window at most; past it the check is an"
        " ERROR (the rest of the window was not read).",
    )
    kind: str = "canary"
    category: str = "performance"

    _durations = field_validator("hold_for", mode="before")(_duration)

    @model_validator(mode="before")
    @classmethod
    def _default_database(cls, data: Any) -> Any:
        """A sql canary reads the spec's default database unless it names one (like the DB
        checks); no other source has one."""
        if isinstance(data, dict) and data.get("source") == "sql" and data.get("database") is None:
            return {**data, "database": DEFAULT_DATABASE}
        return data

    @field_validator("latency_pattern")
    @classmethod
    def _latency_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return value
        check_regex(value)
        if re.compile(value).groups < 1:
            raise ValueError("needs a group around the number, e.g. ' in (\\d+(?:\\.\\d+)?) ms'")
        return value

    def measured_metrics(self) -> tuple[str, ...]:
        """The metrics this check judges: those its source measures and ``metrics:`` keeps
        (sql: those it has a query for; logs: errors, and latency with latency_pattern)."""
        wanted = [name for name in METRIC_NAMES if getattr(self.metrics, name) is not None]
        if self.source == "sql":
            sides = [self.queries, self.canary.queries, self.baseline.queries]
            have = {n for q in sides if q is not None for n in METRIC_NAMES if getattr(q, n)}
            wanted = [name for name in wanted if name in have]
        elif self.source == "logs" and self.latency_pattern is None:
            wanted = [name for name in wanted if name != "latency"]
        return tuple(wanted)

    @field_validator("counter", "histogram")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value

    @field_validator("errors_when")
    @classmethod
    def _matchers(cls, value: str) -> str:
        inner = value.strip().strip("{}")
        parse_selector("{" + inner + "}")
        return inner

    @model_validator(mode="after")
    def _fits_source(self) -> CanaryFields:
        if self.hold_for is not None and self.hold_for <= 0:
            raise ValueError("for: must be a positive duration such as 5m")
        if self.source in ("metrics", "prometheus") and self.hold_for is None:
            raise ValueError(
                f"source: {self.source} compares the two sides over a window: add for: (e.g. 5m)"
            )
        if self.source == "prometheus":
            for side, name in ((self.canary, "canary"), (self.baseline, "baseline")):
                if side.selector is None and not (
                    name == "baseline" and self.baseline.golden is not None
                ):
                    raise ValueError(
                        f"source: prometheus tells the sides apart by their series: give"
                        f' {name}.selector (e.g. version="1.4.2")'
                    )
        if self.baseline.golden is not None and (
            self.baseline.url is not None
            or self.baseline.selector is not None
            or self.baseline.params
            or self.baseline.queries is not None
            or self.baseline.file is not None
            or self.baseline.match is not None
        ):
            raise ValueError(
                "baseline: give golden (a file) or a live baseline (url/selector/params/"
                "queries/file/match), not both"
            )
        if self.source == "sql":
            self._fits_sql()
        else:
            self._not_for("sql", "queries")
        if self.source == "logs":
            self._fits_logs()
        else:
            self._not_for(
                "logs", "file", "patterns", "latency_pattern", "max_line_bytes", "max_read_bytes"
            )
        for name in ("latency_unit", "max_samples"):
            if self.source not in ("sql", "logs") and name in self.model_fields_set:
                raise ValueError(f"{name}: only applies to source: sql or logs")
        if self.source != "sql" and self.database is not None:
            raise ValueError(f"database: only applies to source: sql (this is {self.source})")
        return self

    def _sides(self) -> list[tuple[str, CanarySide]]:
        sides: list[tuple[str, CanarySide]] = [("canary", self.canary)]
        if self.baseline.golden is None:
            sides.append(("baseline", self.baseline))
        return sides

    def _not_for(self, source: str, *names: str) -> None:
        for name in names:
            if name in self.model_fields_set:
                raise ValueError(f"{name}: only applies to source: {source}")
        side_fields = {"sql": ("params", "queries"), "logs": ("file", "match")}[source]
        for side_name, side in (("canary", self.canary), ("baseline", self.baseline)):
            for name in side_fields:
                if name in side.model_fields_set:
                    raise ValueError(f"{side_name}.{name}: only applies to source: {source}")

    def _explicit_metrics(self) -> set[str]:
        return {n for n in self.metrics.model_fields_set if getattr(self.metrics, n) is not None}

    def _fits_sql(self) -> None:
        if self.hold_for is not None:
            raise ValueError(
                "for: does not apply to source: sql: the queries select their window"
                " themselves (e.g. WHERE created_at > datetime('now', '-1 hour'))"
            )
        measured = set(self.measured_metrics())
        for name, side in self._sides():
            queries = side.queries or self.queries
            if queries is None:
                raise ValueError(
                    f"source: sql reads each side with queries: give queries: (shared, with"
                    f" {name}.params) or {name}.queries"
                )
            where = f"{name}.queries" if side.queries is not None else "queries"
            for metric in sorted(measured):
                if getattr(queries, metric) is None:
                    raise ValueError(
                        f"{where} has no {metric}: query for the {name}, and the other side"
                        f" has one: give both sides a {metric} query (or metrics: {{{metric}:"
                        " null})"
                    )
        unmeasured = sorted(self._explicit_metrics() - measured)
        if unmeasured:
            name = unmeasured[0]
            raise ValueError(f"metrics.{name}: no {name}: query under queries: measures it")
        if not measured:
            raise ValueError("no metric to judge: give a query for errors or latency")
        sides = self._sides()
        shared = len(sides) == 2 and all(side.queries is None for _, side in sides)
        if shared and self.canary.params == self.baseline.params:
            raise ValueError(
                "canary and baseline run the same queries with the same params: they would"
                ' read the same rows. Give each side its params (e.g. {version: "1.4.2"})'
            )

    def _fits_logs(self) -> None:
        if self.hold_for is None:
            raise ValueError(
                "source: logs reads the lines written over a window: add for: (e.g. 5m)"
            )
        if self.patterns is None:
            raise ValueError("source: logs counts error lines: give patterns: {bad: [regex, ...]}")
        files = {}
        for name, side in self._sides():
            path = side.file or self.file
            if path is None:
                raise ValueError(
                    f"source: logs needs {name}'s lines: give {name}.file, or file: with a"
                    f" match: per side"
                )
            files[name] = (path, side.match)
        same_file = len(files) == 2 and files["canary"][0] == files["baseline"][0]
        if same_file and (files["canary"][1] is None or files["baseline"][1] is None):
            raise ValueError(
                "both sides read the same log file: give canary.match and baseline.match"
                " (a regex each, e.g. 'version 1\\.4\\.2') to tell their lines apart"
            )
        if self._explicit_metrics() - set(self.measured_metrics()):
            raise ValueError(
                "metrics.latency: logs give a latency only with latency_pattern: (a regex"
                " around the duration)"
            )

    @model_validator(mode="after")
    def _read_only_queries(self, info: ValidationInfo) -> CanaryFields:
        """The sql source's queries are one SELECT each, or the spec does not load (the loader
        names each database's backend; without it the guard runs before every statement)."""
        if self.source != "sql" or not isinstance(info.context, dict):
            return self
        backend = info.context.get(DB_BACKENDS, {}).get(self.database)
        for where, queries in (
            ("queries", self.queries),
            ("canary.queries", self.canary.queries),
            ("baseline.queries", self.baseline.queries),
        ):
            for metric in METRIC_NAMES:
                query = getattr(queries, metric, None) if queries is not None else None
                problem = refused_query(query, backend) if query is not None else None
                if problem:
                    raise ValueError(f"{where}.{metric}: {problem}")
        return self
