"""What the canary judge hands back: one metric's ``Comparison``, several metrics'
``Judgement`` and their evidence. ``to_dict()`` is JSON-safe: NaN and infinities become None,
enums their values. Pure Python, like ``model`` (imported by the package itself)."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .model import MetricPolicy, Verdict


@dataclass(frozen=True, slots=True)
class Summary:
    """One side at a glance: counts, level and quantiles (None where the kind has none)."""

    count: int
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    quantile: float | None = None
    events: int | None = None
    rate: float | None = None
    minutes: float | None = None
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class Effect:
    """How big the change is: ``estimate`` (canary minus baseline, in the metric's unit),
    ``relative`` (canary / baseline - 1), ``superiority`` (samples and histograms: the chance
    that a canary value is larger than a baseline one, ties counting half; 0.5 = none)."""

    measure: str
    estimate: float | None
    relative: float | None
    superiority: float | None
    description: str


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test run for a metric. ``role``: ``regression`` (decides FAILED: beyond the margin
    when there is one), ``shift`` (without the margin: MARGINAL) or ``spread`` (MARGINAL)."""

    __test__ = False  # not a pytest test class, whatever its name says

    role: str
    name: str
    statistic: float | None
    p_value: float
    p_adjusted: float | None = None


@dataclass(frozen=True, slots=True)
class Need:
    """More data needed: ``samples`` per side in all (from a power calculation), ``more``
    (the larger shortfall of the two sides), ``minutes`` at that side's current rate."""

    samples: int
    more: int
    minutes: float | None
    sentence: str


@dataclass(frozen=True, slots=True)
class Shape:
    """Both sides' ECDFs at common points ``x`` (at most ~60), for an overlaid plot."""

    kind: str
    x: tuple[float, ...]
    canary: tuple[float, ...]
    baseline: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class BaselineSource:
    """Where the baseline came from when it is a stored (golden) one, and how old it is."""

    path: str
    deployment: str
    version: str
    captured_at: str
    age_s: float
    max_age_s: float | None

    @property
    def stale(self) -> bool:
        return self.max_age_s is not None and self.age_s > self.max_age_s

    def describe(self) -> str:
        text = f"the golden baseline of {self.version} captured {format_age(self.age_s)} ago"
        if self.stale and self.max_age_s is not None:
            text += f" (older than the {format_age(self.max_age_s)} limit: recapture it)"
        return text


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric's judgement and its evidence; ``to_dict()`` is JSON-safe (None for NaN/inf).

    ``test``/``p_value``/``p_adjusted`` are those of the regression test; ``tests`` lists
    every test run. ``interval`` is the (``interval_level``) interval of the difference
    canary - baseline (rates: of the rate; latency: of the quantile).
    """

    metric: str
    kind: str
    verdict: Verdict
    reason: str
    policy: MetricPolicy
    test: str | None
    p_value: float | None
    p_adjusted: float | None
    effect: Effect | None
    interval: tuple[float | None, float | None] | None
    interval_level: float | None
    canary: Summary
    baseline: Summary
    tests: tuple[TestResult, ...] = ()
    need: Need | None = None
    shape: Shape | None = None
    source: BaselineSource | None = None

    @property
    def critical(self) -> bool:
        return self.policy.critical

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = json_safe(
            {
                "metric": self.metric,
                "kind": self.kind,
                "verdict": self.verdict,
                "reason": self.reason,
                "critical": self.critical,
                "policy": self.policy.to_dict(),
                "test": self.test,
                "p_value": self.p_value,
                "p_adjusted": self.p_adjusted,
                "effect": _fields(self.effect),
                "interval": list(self.interval) if self.interval else None,
                "interval_level": self.interval_level,
                "canary": _fields(self.canary),
                "baseline": _fields(self.baseline),
                "tests": [_fields(t) for t in self.tests],
                "need": _fields(self.need),
                "shape": _fields(self.shape),
                "source": _source(self.source),
            }
        )
        return doc


@dataclass(frozen=True, slots=True)
class Judgement:
    """Several metrics judged together: the overall verdict, one reason and each metric."""

    verdict: Verdict
    reason: str
    comparisons: tuple[Comparison, ...]
    correction: str = "Benjamini-Hochberg"

    @property
    def critical_failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.critical and c.verdict is Verdict.FAILED)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = json_safe(
            {
                "verdict": self.verdict,
                "reason": self.reason,
                "correction": self.correction,
                "metrics": [c.to_dict() for c in self.comparisons],
            }
        )
        return doc


def _fields(obj: object) -> dict[str, Any] | None:
    if obj is None:
        return None
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def _source(source: BaselineSource | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {**(_fields(source) or {}), "stale": source.stale, "text": source.describe()}


def json_safe(value: Any) -> Any:
    """``value`` with NaN/±inf as None, enums as their values and tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return json_safe(value.item())
    return value


def format_age(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"
