"""The canary part of the gate spec: the fields of the ``canary`` check type.

A canary check compares two populations, the canary (the new version) and its baseline (the
version it replaces, live or a golden file), metric by metric, each with the test that fits
it (docs/canary.md): the error ratio with a test on two rates, the latency with a test on
per-request samples (the ``http`` source) or on histogram buckets (``metrics``,
``prometheus``). Like ``spec_slo``, this module holds field sets only; the check class is
declared in ``spec.py`` on top of ``CheckBase``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .slo.selector import parse_selector
from .slo.units import parse_duration

MAX_REQUESTS = 20_000
MAX_RPS = 500.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)


def _duration(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10m or 30s, not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    return parse_duration(str(value))


_TERM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|%|x)\s*$")


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
        " (CONDITIONAL GO).",
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


class CanarySide(_Strict):
    """One population: where it answers (``url``) and/or which series are its own
    (``selector``: label matchers such as ``version="1.4.2"``)."""

    url: str | None = Field(
        None,
        description="http/metrics: the side's base URL (default: target.base_url for the"
        " canary, target.baseline_url for the baseline).",
    )
    selector: str | None = Field(
        None, description='metrics/prometheus: label matchers of this side, e.g. version="1.4.2".'
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

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


class CanaryFields(_Strict):
    """A canary compared with its baseline (kind canary)."""

    type: Literal["canary"]
    source: Literal["http", "metrics", "prometheus"] = Field(
        "http",
        description="http: send requests to both sides and time each (per-request samples);"
        " metrics: scrape each side's /metrics over the window; prometheus: query both"
        " sides' series over the window.",
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
    kind: str = "canary"
    category: str = "performance"

    _durations = field_validator("hold_for", mode="before")(_duration)

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
            self.baseline.url is not None or self.baseline.selector is not None
        ):
            raise ValueError("baseline: give golden (a file) or a live baseline (url/selector)")
        return self
