"""Latency samples: Brunner-Munzel, the margin, the spread test, intervals, the evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from releasegate.canary import Direction, Margin, MetricPolicy, SampleData, Verdict, compare
from releasegate.canary.quantiles import order_ranks, sample_interval

LATENCY = MetricPolicy("latency")


def lognormal(seed: int, n: int, scale: float = 1.0, sigma: float = 0.6) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(50), sigma, n) * scale


def test_regression_test_is_scipy_brunner_munzel() -> None:
    canary, baseline = lognormal(1, 400, 1.15), lognormal(2, 500)
    result = compare(LATENCY, SampleData(canary), SampleData(baseline))
    reference = stats.brunnermunzel(canary, baseline, alternative="greater")
    assert result.test == "Brunner-Munzel"
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.verdict is Verdict.FAILED
    assert result.effect is not None
    u = stats.mannwhitneyu(canary, baseline).statistic
    assert result.effect.superiority == pytest.approx(u / (400 * 500))
    assert result.effect.estimate == pytest.approx(
        np.quantile(canary, 0.95) - np.quantile(baseline, 0.95)
    )


def test_margin_worsens_the_baseline_value_by_value() -> None:
    canary, baseline = lognormal(3, 600, 1.08), lognormal(4, 600)
    margin = Margin(absolute=2.0, relative=0.10)
    result = compare(
        MetricPolicy("latency", margin=margin), SampleData(canary), SampleData(baseline)
    )
    worsened = baseline + np.maximum(2.0, 0.10 * baseline)
    regression = next(t for t in result.tests if t.role == "regression")
    shift = next(t for t in result.tests if t.role == "shift")
    expected = stats.brunnermunzel(canary, worsened, alternative="greater").pvalue
    assert regression.p_value == pytest.approx(expected, rel=1e-9)
    assert shift.p_value == pytest.approx(
        stats.brunnermunzel(canary, baseline, alternative="greater").pvalue, rel=1e-9
    )
    assert result.verdict is Verdict.MARGINAL
    assert "within its margin of 2 or 10%" in result.reason


def test_spread_test_is_welch_on_absolute_deviations() -> None:
    canary, baseline = lognormal(5, 300, sigma=0.9), lognormal(6, 300)
    result = compare(LATENCY, SampleData(canary), SampleData(baseline))
    spread = next(t for t in result.tests if t.role == "spread")
    dc, db = np.abs(canary - np.median(canary)), np.abs(baseline - np.median(baseline))
    welch = stats.ttest_ind(dc, db, equal_var=False, alternative="greater")
    assert spread.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    # With equal sizes Welch's t is the pooled t, whose square is Levene's (Brown-Forsythe) F.
    levene = stats.levene(canary, baseline, center="median")
    assert spread.statistic**2 == pytest.approx(levene.statistic, rel=1e-9)  # type: ignore[operator]


def test_wider_spread_at_the_same_median_is_marginal_not_passed() -> None:
    canary, baseline = lognormal(7, 1000, sigma=0.9), lognormal(8, 1000)
    result = compare(LATENCY, SampleData(canary), SampleData(baseline))
    assert result.verdict is Verdict.MARGINAL
    assert "spread grew" in result.reason
    off = compare(MetricPolicy("latency", spread=False), SampleData(canary), SampleData(baseline))
    assert off.verdict is Verdict.PASSED


def test_identical_samples_pass() -> None:
    values = lognormal(9, 200)
    result = compare(LATENCY, SampleData(values), SampleData(values[::-1]))
    assert result.verdict is Verdict.PASSED
    assert result.p_value == pytest.approx(0.5)


def test_constant_samples_pass_and_separated_ones_fail() -> None:
    same = compare(LATENCY, SampleData([5.0] * 40), SampleData([5.0] * 40))
    assert same.verdict is Verdict.PASSED and same.p_value == 1.0
    apart = compare(LATENCY, SampleData([9.0 + i / 100 for i in range(40)]), SampleData([1.0] * 40))
    # No overlap: Brunner-Munzel has no variance; Mann-Whitney U stands in.
    assert apart.verdict is Verdict.FAILED
    assert apart.p_value == pytest.approx(
        stats.mannwhitneyu(
            [9.0 + i / 100 for i in range(40)], [1.0] * 40, alternative="greater"
        ).pvalue
    )


def test_decrease_direction_flags_a_drop() -> None:
    policy = MetricPolicy("throughput", direction=Direction.DECREASE)
    canary, baseline = lognormal(10, 300, 0.8), lognormal(11, 300)
    result = compare(policy, SampleData(canary), SampleData(baseline))
    assert result.verdict is Verdict.FAILED
    assert "smaller than a baseline one" in result.reason


def test_bootstrap_interval_is_seeded_scipy_bootstrap() -> None:
    canary, baseline = lognormal(12, 300, 1.2), lognormal(13, 300)
    policy = MetricPolicy("latency", resamples=499, seed=7)
    result = compare(policy, SampleData(canary), SampleData(baseline))
    again = compare(policy, SampleData(canary), SampleData(baseline))
    assert result.interval == again.interval

    def statistic(c: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return np.quantile(c, 0.95, axis=axis) - np.quantile(b, 0.95, axis=axis)

    reference = stats.bootstrap(
        (np.sort(canary), np.sort(baseline)),
        statistic,
        n_resamples=499,
        vectorized=True,
        confidence_level=0.98,
        method="percentile",
        rng=np.random.default_rng(7),
    ).confidence_interval
    assert result.interval == pytest.approx((reference.low, reference.high))


def test_order_statistic_interval_of_the_median() -> None:
    # The classical sign-test 95% interval of the median of 100 values is (X(40), X(61)):
    # P(B <= 39) = 0.0176 <= 0.025 < P(B <= 40) = 0.0284 for B ~ Binomial(100, 1/2).
    assert order_ranks(100, 0.5, 0.025) == (40, 61)
    values = np.arange(1.0, 101.0)
    assert sample_interval(values, 0.5, 0.025) == (40.0, 61.0)
    # Too few values to bound the p99 from above: unbounded.
    assert sample_interval(values[:20], 0.99, 0.005)[1] == float("inf")


def test_resamples_zero_uses_order_statistics() -> None:
    canary, baseline = lognormal(14, 200), lognormal(15, 200)
    result = compare(MetricPolicy("latency", resamples=0), SampleData(canary), SampleData(baseline))
    tail = 0.02 / 4
    lc, hc = sample_interval(np.sort(canary), 0.95, tail)
    lb, hb = sample_interval(np.sort(baseline), 0.95, tail)
    assert result.interval == pytest.approx((lc - hb, hc - lb))


def test_evidence_is_json_safe_and_shaped_for_a_plot() -> None:
    canary, baseline = lognormal(16, 5000), lognormal(17, 4000)
    result = compare(
        MetricPolicy("latency", resamples=0),
        SampleData([*canary, float("nan")]),
        SampleData(baseline),
    )
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["canary"]["count"] == 5000 and doc["canary"]["dropped"] == 1
    assert doc["baseline"]["p99"] == pytest.approx(np.quantile(baseline, 0.99))
    shape = doc["shape"]
    assert shape["kind"] == "ecdf" and 2 <= len(shape["x"]) <= 60
    assert len(shape["canary"]) == len(shape["baseline"]) == len(shape["x"])
    assert shape["canary"] == sorted(shape["canary"]) and shape["canary"][-1] == 1.0
    assert doc["verdict"] in ("passed", "marginal")
