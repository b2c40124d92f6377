"""Value objects of the canary judge: what goes in (the data of each side, the policy).

Pure Python on purpose: ``import releasegate.canary`` loads this module and ``results``, and
nothing that imports numpy, scipy or statsmodels (the pytest plugin imports the package on
every run).

Units are the caller's. A latency may be in seconds or in milliseconds; a margin's
``absolute`` part, the evidence's quantiles and intervals are in the same unit as the values
given. Rates are fractions (0.01 = 1 %), never percentages. How reasons print them is the
policy's ``unit`` (``Unit.SECONDS``: latencies as ms) and a margin's ``text`` (as written).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    #: A numpy array is accepted wherever a sequence of numbers is (typing only: no import).
    Numbers = Sequence[float] | npt.NDArray[np.floating[Any] | np.integer[Any]]


class Verdict(str, enum.Enum):
    """One metric's (or the whole canary's) outcome.

    PASSED: no significant regression beyond the margin. FAILED: a significant regression
    beyond the margin. MARGINAL (a CONDITIONAL go): significant but inside the margin, or the
    canary's spread grew while its level did not. NO_DATA: too little data to judge.
    """

    PASSED = "passed"
    FAILED = "failed"
    MARGINAL = "marginal"
    NO_DATA = "no_data"


class Unit(str, enum.Enum):
    """What a metric's values are, for the reasons only (the tests are unit-free):
    ``number`` (shown as given) or ``seconds`` (latencies: shown as ms, or s from 10 s)."""

    NUMBER = "number"
    SECONDS = "seconds"


class Direction(str, enum.Enum):
    """Which change of the metric is bad: ``increase`` (latency, errors), ``decrease``
    (throughput, cache hits) or ``both``."""

    INCREASE = "increase"
    DECREASE = "decrease"
    BOTH = "both"


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number: {value!r}")
    return float(value)


def _minutes(value: float | None) -> None:
    if value is not None and not _number(value, "minutes") > 0:
        raise ValueError(f"minutes must be positive: {value!r}")


@dataclass(frozen=True, slots=True)
class Margin:
    """How much worse the canary may be and still pass (a non-inferiority margin).

    ``absolute`` is in the metric's unit (e.g. 0.1 s, or 0.001 for an error rate: 0.1
    percentage point); ``relative`` is a fraction of the baseline's level (0.10 = 10 %). With
    both, the MORE LENIENT one applies: "100 ms or 10 %" allows 100 ms at a 500 ms baseline and
    150 ms at a 1.5 s one (the allowance is ``max(absolute, relative * |level|)``).
    ``text`` is the margin as its author wrote it (``"50ms or 10%"``): reasons quote it.
    """

    absolute: float | None = None
    relative: float | None = None
    text: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.absolute is None and self.relative is None:
            raise ValueError("a margin needs an absolute or a relative part")
        for name in ("absolute", "relative"):
            value = getattr(self, name)
            if value is not None and _number(value, f"margin {name}") < 0:
                raise ValueError(f"margin {name} must not be negative: {value!r}")

    def allowance(self, level: float) -> float:
        """The allowed worsening at a baseline ``level`` (the more lenient part)."""
        absolute = self.absolute or 0.0
        relative = (self.relative or 0.0) * abs(level)
        return max(absolute, relative)

    def describe(self, unit: Unit = Unit.NUMBER) -> str:
        """The margin as written, else its parts (the absolute one in ``unit``)."""
        if self.text:
            return self.text
        parts = []
        if self.absolute is not None:
            parts.append(format_value(self.absolute, unit))
        if self.relative is not None:
            parts.append(f"{format_number(self.relative * 100)}%")
        return " or ".join(parts)

    def to_dict(self, unit: Unit = Unit.NUMBER) -> dict[str, Any]:
        return {"absolute": self.absolute, "relative": self.relative, "text": self.describe(unit)}


@dataclass(frozen=True, slots=True)
class RateData:
    """Counts: ``events`` out of ``total`` (e.g. 5xx responses out of requests), observed over
    ``minutes`` (used only to say how long more data would take)."""

    events: int
    total: int
    minutes: float | None = None

    def __post_init__(self) -> None:
        for name in ("events", "total"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer: {value!r}")
        if self.events > self.total:
            raise ValueError(f"{self.events} events out of {self.total}: more events than total")
        _minutes(self.minutes)

    @property
    def count(self) -> int:
        return self.total

    @property
    def rate(self) -> float | None:
        return self.events / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class SampleData:
    """Per-request values (latencies), in the caller's unit. NaN and ±inf are dropped and
    counted in ``dropped`` (a scrape gap is not a measurement)."""

    values: Numbers
    minutes: float | None = None
    dropped: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        kept = tuple(float(v) for v in self.values if math.isfinite(v))
        object.__setattr__(self, "dropped", len(self.values) - len(kept))
        object.__setattr__(self, "values", kept)
        _minutes(self.minutes)

    @property
    def count(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class HistogramData:
    """Prometheus-like cumulative buckets: ``cumulative[i]`` observations were ``<=
    bounds[i]``; the last bound is ``+inf`` and holds the total. ``value_sum`` (the
    ``_sum`` series) gives the mean when known. Counts from ``increase()`` may be fractional:
    the tests round them to whole observations."""

    bounds: Numbers
    cumulative: Numbers
    minutes: float | None = None
    value_sum: float | None = None

    def __post_init__(self) -> None:
        bounds = tuple(float(b) for b in self.bounds)
        cumulative = tuple(_number(c, "a bucket count") for c in self.cumulative)
        if not bounds or len(bounds) != len(cumulative):
            raise ValueError("a histogram needs as many cumulative counts as bucket bounds")
        if bounds[-1] != math.inf:
            raise ValueError("the last bucket bound must be +Inf (it holds the total)")
        if any(math.isnan(b) for b in bounds) or any(b >= a for b, a in itertools.pairwise(bounds)):
            raise ValueError(f"bucket bounds must increase strictly: {bounds}")
        if cumulative[0] < 0 or any(b < a for a, b in itertools.pairwise(cumulative)):
            raise ValueError(
                f"cumulative bucket counts must be non-negative and never fall: {cumulative}"
            )
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "cumulative", cumulative)
        _minutes(self.minutes)

    @property
    def count(self) -> int:
        return round(self.cumulative[-1])


#: What ``compare`` accepts for one side.
MetricData = RateData | SampleData | HistogramData


@dataclass(frozen=True, slots=True)
class MetricPolicy:
    """How one metric is judged.

    ``alpha`` is the per-metric false-positive rate of FAILED: 0.01 one-sided (for
    ``both``: 0.01 split over the two sides), a nominal A/A false-positive rate of 1 % per
    metric. ``min_samples`` is per side (requests for a rate, samples, histogram observations);
    below it the metric is NO_DATA and the evidence says how much more is needed to detect a
    ``detect`` (10 %) regression with probability ``power``. ``require_power`` makes an
    underpowered pass NO_DATA too. ``quantile`` is the latency quantile reported (samples) or
    compared (histograms). ``spread`` adds a one-sided spread test on samples (MARGINAL on a
    larger spread). ``resamples`` bootstrap resamples give the quantile interval on samples
    (0: the distribution-free order-statistic interval instead, no resampling); ``seed`` makes
    the bootstrap repeatable. ``unit`` is how the values read in reasons (latencies in
    seconds: ``Unit.SECONDS``, shown as ms).
    """

    name: str
    direction: Direction = Direction.INCREASE
    margin: Margin | None = None
    critical: bool = False
    must_have_data: bool = True
    min_samples: int = 30
    alpha: float = 0.01
    quantile: float = 0.95
    detect: float = 0.10
    power: float = 0.8
    require_power: bool = False
    spread: bool = True
    resamples: int = 999
    seed: int = 0
    unit: Unit = Unit.NUMBER

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", Unit(self.unit))
        if not self.name:
            raise ValueError("a metric policy needs a name")
        object.__setattr__(self, "direction", Direction(self.direction))
        if isinstance(self.min_samples, bool) or self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1: {self.min_samples!r}")
        for name in ("alpha", "quantile", "power"):
            value = _number(getattr(self, name), name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be between 0 and 1: {value!r}")
        if not _number(self.detect, "detect") > 0:
            raise ValueError(f"detect must be a positive fraction: {self.detect!r}")
        if self.resamples < 0:
            raise ValueError(f"resamples must not be negative: {self.resamples!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "direction": self.direction.value,
            "margin": self.margin.to_dict(self.unit) if self.margin else None,
            "critical": self.critical,
            "must_have_data": self.must_have_data,
            "min_samples": self.min_samples,
            "alpha": self.alpha,
            "quantile": self.quantile,
            "detect": self.detect,
            "power": self.power,
            "require_power": self.require_power,
            "spread": self.spread,
            "resamples": self.resamples,
            "unit": self.unit.value,
        }

    def show(self, value: float) -> str:
        """``value`` of this metric as a reason writes it (``format_value`` in its unit)."""
        return format_value(value, self.unit)


def format_number(value: float) -> str:
    """Four significant digits, no exponent for everyday magnitudes."""
    if value == 0 or 1e-4 <= abs(value) < 1e6:
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:.3g}"


def format_latency(seconds: float) -> str:
    """A latency in seconds for people: milliseconds with three significant digits below
    10 s (``0.155`` → ``155ms``, ``0.004796`` → ``4.8ms``, ``2.5`` → ``2500ms``), seconds
    from 10 s (``12.34`` → ``12.3s``)."""
    if not math.isfinite(seconds):
        return format_number(seconds)
    if seconds < 0:
        return "-" + format_latency(-seconds)
    if seconds >= 10:
        return f"{seconds:.0f}s" if seconds >= 100 else f"{seconds:.3g}s"
    ms = seconds * 1000
    if ms == 0:
        return "0ms"
    return f"{ms:.0f}ms" if ms >= 100 else f"{ms:.3g}ms"


def format_percent(fraction: float) -> str:
    """A rate (a fraction) as a percentage with three significant digits: ``0.008333`` →
    ``0.833%``, ``0.1033`` → ``10.3%``, ``0`` → ``0%``."""
    if not math.isfinite(fraction):
        return format_number(fraction)
    return f"{fraction * 100:.3g}%" if fraction else "0%"


def format_value(value: float, unit: Unit) -> str:
    """``value`` in ``unit`` as a reason shows it."""
    return format_latency(value) if unit is Unit.SECONDS else format_number(value)
