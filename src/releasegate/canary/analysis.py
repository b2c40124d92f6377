"""What each kind of metric's tests hand to the judge, and the helpers they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .model import Direction, MetricPolicy
from .results import Effect, Shape, Summary, TestResult

#: The regression test decides FAILED; the shift and spread tests can only make it MARGINAL.
REGRESSION, SHIFT, SPREAD = "regression", "shift", "spread"


@dataclass(frozen=True, slots=True)
class Analysis:
    """One metric's raw test results and evidence, before any verdict.

    ``tests`` holds raw p-values; the judge adjusts them across metrics (Benjamini-Hochberg)
    and then decides. ``problem`` is set when the data cannot be compared at all (say, two
    histograms without a bucket bound in common): the metric is then NO_DATA.
    """

    kind: str
    tests: tuple[TestResult, ...]
    effect: Effect | None
    interval: tuple[float | None, float | None] | None
    interval_level: float | None
    canary: Summary
    baseline: Summary
    shape: Shape | None = None
    problem: str | None = None


def interval_level(policy: MetricPolicy) -> float:
    """The two-sided level whose bounds are the one-sided tests' (1 - 2*alpha), or 1 - alpha
    for ``both``."""
    if policy.direction is Direction.BOTH:
        return 1 - policy.alpha
    return 1 - 2 * policy.alpha


def directional(
    policy: MetricPolicy,
    p_worse: Callable[[str], tuple[float, float | None]],
    *,
    name: str,
    role: str,
) -> TestResult:
    """Run a one-sided test in the policy's bad direction(s). ``p_worse("larger")`` returns the
    p-value (and statistic) of "the canary is larger (beyond its margin)", ``p_worse("smaller")``
    of "smaller". ``both`` doubles the smaller p-value (a Bonferroni split of alpha)."""
    if policy.direction is Direction.INCREASE:
        p, statistic = p_worse("larger")
    elif policy.direction is Direction.DECREASE:
        p, statistic = p_worse("smaller")
    else:
        p, statistic = min((p_worse("larger"), p_worse("smaller")), key=lambda r: clean_p(r[0]))
        p = 2 * clean_p(p)
    return TestResult(role=role, name=name, statistic=finite(statistic), p_value=clean_p(p))


def finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def clean_p(p: float) -> float:
    """A p-value in [0, 1]; a test that could not be computed (NaN) is no evidence: 1."""
    if p != p:  # NaN
        return 1.0
    return min(1.0, max(0.0, float(p)))


def relative(canary: float | None, baseline: float | None) -> float | None:
    if canary is None or baseline is None or baseline == 0:
        return None
    return canary / baseline - 1
