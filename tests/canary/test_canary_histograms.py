"""Histograms: the quantile through its bucket, shared bounds, intervals, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats import proportion as smprop

from releasegate.canary import HistogramData, Margin, MetricPolicy, Verdict, compare
from releasegate.canary.histograms import bucket_quantile

BOUNDS = [10, 25, 50, 75, 100, 150, 200, 300, 500, 1000, math.inf]
LATENCY = MetricPolicy("latency")


def histogram(values: np.ndarray, bounds: list[float] = BOUNDS) -> HistogramData:
    return HistogramData(bounds, [float((values <= b).sum()) for b in bounds], minutes=10)


def lognormal(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(50), 0.6, n) * scale


def test_quantile_interpolates_like_histogram_quantile() -> None:
    bounds = np.array([0.1, 0.2, 0.4, math.inf])
    cumulative = np.array([50.0, 80.0, 100.0, 100.0])
    assert bucket_quantile(bounds, cumulative, 0.5) == pytest.approx(0.1)
    assert bucket_quantile(bounds, cumulative, 0.65) == pytest.approx(0.15)
    assert bucket_quantile(bounds, cumulative, 0.25) == pytest.approx(0.05)  # from 0
    assert bucket_quantile(bounds, np.array([0.0, 0.0, 90.0, 100.0]), 0.95) == 0.4  # in +Inf
    assert bucket_quantile(bounds, np.zeros(4), 0.5) is None


def test_regression_is_the_score_test_on_the_share_above_the_bucket() -> None:
    canary, baseline = lognormal(1, 3000, 1.25), lognormal(2, 3000)
    result = compare(LATENCY, histogram(canary), histogram(baseline))
    assert result.verdict is Verdict.FAILED
    # Pooled, the share at or below 150 is the closest to 95 %: E = 150.
    assert "le=150" in (result.test or "")
    above_c, above_b = int((canary > 150).sum()), int((baseline > 150).sum())
    reference = smprop.test_proportions_2indep(
        above_c, 3000, above_b, 3000, value=0, method="score", compare="diff", alternative="larger"
    )
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.shape is not None and result.shape.x == tuple(BOUNDS[:-1])


def test_same_distribution_passes() -> None:
    result = compare(LATENCY, histogram(lognormal(3, 2000)), histogram(lognormal(4, 2000)))
    assert result.verdict is Verdict.PASSED
    low, high = result.interval  # type: ignore[misc]
    assert low is not None and high is not None and low <= 0 <= high


def test_margin_moves_the_canary_bucket() -> None:
    canary, baseline = lognormal(5, 4000, 1.25), lognormal(6, 4000)
    policy = MetricPolicy("latency", margin=Margin(absolute=100))
    result = compare(policy, histogram(canary), histogram(baseline))
    regression = next(t for t in result.tests if t.role == "regression")
    # E = 150, E + 100 = 250: the canary's share above 300 against the baseline's above 150.
    reference = smprop.test_proportions_2indep(
        int((canary > 300).sum()), 4000, int((baseline > 150).sum()), 4000,
        value=0, method="score", compare="diff", alternative="larger",
    )  # fmt: skip
    assert regression.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.verdict is Verdict.MARGINAL


def test_a_margin_past_the_last_bound_cannot_fail() -> None:
    policy = MetricPolicy("latency", margin=Margin(absolute=5000))
    result = compare(policy, histogram(lognormal(7, 2000, 3.0)), histogram(lognormal(8, 2000)))
    assert result.p_value == 1.0
    assert result.verdict is Verdict.MARGINAL


def test_only_shared_bounds_are_compared() -> None:
    values = lognormal(9, 2000)
    fine = histogram(values)
    coarse = histogram(values, [25, 100, 200, 500, math.inf])
    result = compare(LATENCY, fine, coarse)
    assert result.verdict is Verdict.PASSED
    assert result.shape is not None and result.shape.x == (25, 100, 200, 500)
    nothing = HistogramData([7, math.inf], [1000, 2000])
    apart = compare(LATENCY, fine, nothing)
    assert apart.verdict is Verdict.NO_DATA
    assert "no finite bucket bound in common" in apart.reason


def test_fractional_counts_are_rounded_and_sum_gives_the_mean() -> None:
    data = HistogramData([1, 2, math.inf], [10.4, 29.6, 40.2], value_sum=60.0)
    assert data.count == 40
    result = compare(MetricPolicy("x", min_samples=10), data, data)
    assert result.canary.mean == pytest.approx(60.0 / 40)


@pytest.mark.parametrize(
    ("bounds", "cumulative", "message"),
    [
        ([1, 2], [1, 2], r"\+Inf"),
        ([2, 1, math.inf], [1, 2, 3], "increase strictly"),
        ([1, 2, math.inf], [3, 2, 4], "never fall"),
        ([1, math.inf], [1], "as many"),
    ],
)
def test_histograms_are_validated(
    bounds: list[float], cumulative: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HistogramData(bounds, cumulative)


def test_a_canary_slower_than_every_baseline_request_fails_with_coarse_buckets() -> None:
    """Found wiring the demo: every canary request in (0.1, 0.2], every baseline one below
    5 ms. The pooled share jumps from 50 % to 100 % at 0.2, the bound closest to 95 %, where
    neither side has anything above: a test there passed the worst regression (p = 1)."""
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, math.inf]
    canary = HistogramData(bounds, [0, 0, 0, 0, 0, 122, 122, 122, 122, 122])
    baseline = HistogramData(bounds, [122] * len(bounds))
    result = compare(MetricPolicy("latency"), canary, baseline)
    assert result.verdict is Verdict.FAILED, result.reason
    assert result.p_value is not None and result.p_value < 1e-6


def test_a_margin_does_not_hide_a_canary_far_slower_than_its_baseline() -> None:
    """Every canary request slower than every baseline one: the pooled edge lands in the
    canary's bulk, and the margin alone would move the canary's bound past all of it. The
    baseline's own quantile bound still shows the regression beyond the margin."""
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]
    baseline = np.random.default_rng(11).uniform(0.002, 0.005, 600)
    canary = np.random.default_rng(12).uniform(0.15, 0.24, 600)
    policy = MetricPolicy("latency", margin=Margin(absolute=0.005, relative=0.10))
    result = compare(policy, histogram(canary, bounds), histogram(baseline, bounds))
    assert result.verdict is Verdict.FAILED, result.reason
    # A canary inside the margin (a millisecond slower, same buckets) is not failed.
    near = compare(policy, histogram(baseline + 0.001, bounds), histogram(baseline, bounds))
    assert near.verdict is not Verdict.FAILED, near.reason
