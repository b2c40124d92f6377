"""Counts and ratios (errors out of requests): a score test on the difference of two rates.

The test is statsmodels' ``test_proportions_2indep(method="score", compare="diff")``, the
Miettinen-Nurminen score test for a difference of two binomial proportions. It is defined when
the baseline has no event at all (its variance is taken under the null, from the restricted
maximum-likelihood rates, not from the observed zero), and it takes a non-inferiority margin
directly: for ``increase`` it tests H0 ``canary - baseline <= allowance`` against H1
``canary - baseline > allowance`` (``value=allowance, alternative="larger"``), where the
allowance is ``margin.allowance(baseline rate)``. Its exact size at alpha = 0.01 without a
margin, summed over the binomial distribution at 30, 100, 200 and 500 requests per side and
rates from 0.5 % to 50 %, was at most 1.05 % (500 requests at 50 %), and under 1 % at rates up
to 20 %. When neither side has an event there is nothing to test: p = 1.

The interval of the difference is the score interval (``confint_proportions_2indep``), the
inversion of the same test, or Newcombe's hybrid Wilson interval when the score interval is
undefined (no event, or only events, on both sides).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    test_proportions_2indep,
)

from .analysis import REGRESSION, SHIFT, Analysis, directional, finite, interval_level, relative
from .model import MetricPolicy, RateData, format_number, format_percent
from .results import Effect, Summary, TestResult

TEST_NAME = "Miettinen-Nurminen score test (difference of rates)"


def p_value(
    canary: RateData, baseline: RateData, value: float, alternative: str
) -> tuple[float, float | None]:
    """One-sided score test of canary - baseline against ``value`` ("larger"/"smaller"):
    (p-value, statistic). "smaller" runs as the mirrored "larger" test (baseline - canary >
    -value), so swapping the sides and the direction gives the very same numbers."""
    if canary.events + baseline.events == 0:
        return 1.0, None
    if alternative == "smaller":
        p, statistic = p_value(baseline, canary, -value, "larger")
        return p, None if statistic is None else -statistic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = test_proportions_2indep(
            canary.events,
            canary.total,
            baseline.events,
            baseline.total,
            value=value,
            method="score",
            compare="diff",
            alternative="larger",
        )
    return float(result.pvalue), float(result.statistic)


def _interval(
    canary: RateData, baseline: RateData, level: float
) -> tuple[float | None, float | None]:
    counts = (canary.events, canary.total, baseline.events, baseline.total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for method in ("score", "newcomb"):
            try:
                low, high = confint_proportions_2indep(
                    *counts, method=method, compare="diff", alpha=1 - level
                )
            except (ValueError, ZeroDivisionError, FloatingPointError):
                continue
            if finite(low) is not None and finite(high) is not None:
                return float(low), float(high)
    return None, None


def summarize(data: RateData) -> Summary:
    return Summary(count=data.total, events=data.events, rate=data.rate, minutes=data.minutes)


def _describe(canary: RateData, baseline: RateData) -> str:
    def side(data: RateData) -> str:
        rate = data.rate or 0.0
        return f"{format_percent(rate)} ({data.events:,}/{data.total:,})"

    text = f"canary {side(canary)} vs baseline {side(baseline)}"
    ratio = relative(canary.rate, baseline.rate)
    if ratio is not None:
        text += f" ({format_number(ratio + 1)} times)"
    elif baseline.events == 0 and canary.events > 0:
        text += " (the baseline has none)"
    return text


def analyse(policy: MetricPolicy, canary: RateData, baseline: RateData) -> Analysis:
    """The rate tests for one metric (both sides non-empty)."""
    allowance = policy.margin.allowance(baseline.rate or 0.0) if policy.margin else 0.0

    def worse(margin: float) -> Callable[[str], tuple[float, float | None]]:
        def run(alternative: str) -> tuple[float, float | None]:
            value = margin if alternative == "larger" else -margin
            return p_value(canary, baseline, value, alternative)

        return run

    tests: list[TestResult] = [
        directional(policy, worse(allowance), name=TEST_NAME, role=REGRESSION)
    ]
    if policy.margin is not None:
        tests.append(directional(policy, worse(0.0), name=TEST_NAME, role=SHIFT))
    level = interval_level(policy)
    estimate = (canary.rate or 0.0) - (baseline.rate or 0.0)
    effect = Effect(
        measure="difference of rates",
        estimate=estimate,
        relative=relative(canary.rate, baseline.rate),
        superiority=None,
        description=_describe(canary, baseline),
    )
    return Analysis(
        kind="rate",
        tests=tuple(tests),
        effect=effect,
        interval=_interval(canary, baseline, level),
        interval_level=level,
        canary=summarize(canary),
        baseline=summarize(baseline),
    )
