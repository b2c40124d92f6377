"""How much more data: the power calculation against statsmodels and the sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

from releasegate.canary import (
    Direction,
    HistogramData,
    MetricPolicy,
    RateData,
    SampleData,
    Verdict,
    compare,
    power_need,
)
from releasegate.canary.power import sentence

ERRORS = MetricPolicy("errors")


def test_rate_size_is_statsmodels_and_the_sentence_says_it() -> None:
    canary, baseline = RateData(9, 1000, minutes=10.0), RateData(10, 1000, minutes=10.0)
    need = power_need(ERRORS, canary, baseline)
    assert need is not None
    expected = math.ceil(
        samplesize_proportions_2indep_onetail(
            diff=0.001, prop2=0.01, power=0.8, alpha=0.01, alternative="larger"
        )
    )
    assert need.samples == expected
    assert need.more == expected - 1000
    assert need.minutes == pytest.approx((expected - 1000) / 100.0)
    hours = need.minutes / 60  # type: ignore[operator]
    assert need.sentence == (
        f"need ≈{expected - 1000:,} more requests (≈{hours:.1f} hours at the current rate) "
        "to detect a 10% regression at 80% power"
    )


def test_sentence_format() -> None:
    policy = MetricPolicy("latency", detect=0.25, power=0.9)
    assert sentence(1200, 12.4, policy) == (
        "need ≈1,200 more requests (≈12 minutes at the current rate) "
        "to detect a 25% regression at 90% power"
    )
    assert sentence(50, 0.5, policy).startswith("need ≈50 more requests (≈0.5 minutes at")
    assert sentence(50, 1.2, policy).startswith("need ≈50 more requests (≈1 minute at")
    assert (
        sentence(7, None, policy) == "need ≈7 more requests to detect a 25% regression at 90% power"
    )


def test_sample_size_is_a_t_test_on_log_latency_over_the_rank_efficiency() -> None:
    values = np.random.default_rng(1).lognormal(np.log(50), 0.6, 400)
    need = power_need(MetricPolicy("latency"), SampleData(values[:40]), SampleData(values))
    assert need is not None
    d = math.log(1.1) / float(np.std(np.log(values), ddof=1))
    n_t = TTestIndPower().solve_power(effect_size=d, alpha=0.01, power=0.8, alternative="larger")
    assert need.samples == math.ceil(n_t / (3 / math.pi))
    assert need.more == need.samples - 40
    assert need.minutes is None  # no minutes given


def test_below_the_minimum_is_no_data_with_the_sentence() -> None:
    values = np.random.default_rng(2).lognormal(np.log(50), 0.6, 600)
    canary = SampleData(values[:12], minutes=1.0)
    result = compare(MetricPolicy("latency"), canary, SampleData(values[100:], minutes=5.0))
    assert result.verdict is Verdict.NO_DATA
    assert result.need is not None and result.need.more > 0
    assert result.need.minutes == pytest.approx(result.need.more / 12.0)
    assert (
        "too little data for latency: canary 12, baseline 500 (at least 30 per side)"
        in result.reason
    )
    assert result.need.sentence in result.reason


def test_an_underpowered_pass_says_so_and_can_be_no_data() -> None:
    canary, baseline = RateData(31, 3000, minutes=30.0), RateData(30, 3000, minutes=30.0)
    result = compare(ERRORS, canary, baseline)
    assert result.verdict is Verdict.PASSED
    assert result.need is not None and result.need.more > 0
    assert result.reason.endswith(result.need.sentence)
    strict = compare(MetricPolicy("errors", require_power=True), canary, baseline)
    assert strict.verdict is Verdict.NO_DATA


def test_enough_data_says_enough() -> None:
    need = power_need(ERRORS, RateData(20_000, 400_000), RateData(20_000, 400_000))
    assert need is not None and need.more == 0
    assert need.sentence.startswith("enough data (")


def test_no_event_anywhere_cannot_be_sized() -> None:
    assert power_need(ERRORS, RateData(0, 100), RateData(0, 100)) is None
    pooled = power_need(ERRORS, RateData(4, 1000), RateData(0, 1000))
    assert pooled is not None  # the pooled rate (0.2 %) stands for the baseline's


def test_decrease_and_histograms_are_sized() -> None:
    policy = MetricPolicy("success", direction=Direction.DECREASE)
    assert power_need(policy, RateData(950, 1000), RateData(950, 1000)) is not None
    values = np.random.default_rng(3).lognormal(np.log(50), 0.6, 2000)
    bounds = [25, 50, 100, 150, 200, 300, math.inf]
    hist = HistogramData(bounds, [float((values <= b).sum()) for b in bounds])
    need = power_need(MetricPolicy("latency"), hist, hist)
    # The bound compared is 100 (the largest whose pooled share is at most 95 %: 87.6 %); a
    # 10 % slower canary puts above it what the baseline has above 100 / 1.1, read linearly
    # inside the (50, 100] bucket.
    at = dict(zip(bounds, hist.cumulative, strict=True))
    assert at[100] / 2000 <= 0.95 < at[150] / 2000
    base = 1 - at[100] / 2000
    moved = 1 - (at[50] + (at[100] - at[50]) * (100 / 1.1 - 50) / 50) / 2000
    expected = samplesize_proportions_2indep_onetail(
        diff=moved - base, prop2=base, power=0.8, alpha=0.01, alternative="larger"
    )
    assert need is not None and need.samples == math.ceil(expected)
