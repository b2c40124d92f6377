"""The judge's invariants as hypothesis properties.

- swapping canary and baseline flips the direction (same p-value, same FAILED);
- identical samples never FAIL;
- adding samples to two identical populations never moves toward FAIL beyond the
  false-positive rate (alpha): at every size the share of FAILED stays within what alpha allows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from releasegate.canary import (
    Comparison,
    Direction,
    HistogramData,
    Margin,
    MetricPolicy,
    RateData,
    SampleData,
    Verdict,
    compare,
)

SETTINGS = settings(deadline=None, database=None, max_examples=60)
UP = MetricPolicy("m", direction=Direction.INCREASE, min_samples=5, resamples=0)
DOWN = MetricPolicy("m", direction=Direction.DECREASE, min_samples=5, resamples=0)
BOUNDS = (5.0, 10.0, 20.0, 50.0, 100.0, math.inf)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.001, max_value=1e4, allow_nan=False)
samples = st.lists(st.one_of(values, st.sampled_from([0.0, 1.0, 50.0])), min_size=5, max_size=80)


@st.composite
def rates(draw: st.DrawFn) -> RateData:
    total = draw(st.integers(min_value=5, max_value=100_000))
    return RateData(draw(st.integers(min_value=0, max_value=total)), total)


@st.composite
def histograms(draw: st.DrawFn) -> HistogramData:
    counts = draw(st.lists(st.integers(min_value=0, max_value=500), min_size=6, max_size=6))
    return HistogramData(BOUNDS, np.cumsum(counts).astype(float))


def assert_flipped(up: Comparison, down: Comparison) -> None:
    if up.p_value is None or down.p_value is None:
        assert up.p_value is down.p_value is None
    else:
        assert up.p_value == pytest.approx(down.p_value, rel=1e-9, abs=1e-12)
    assert (up.verdict is Verdict.FAILED) == (down.verdict is Verdict.FAILED)


@SETTINGS
@given(canary=rates(), baseline=rates(), margin=st.none() | st.floats(min_value=0, max_value=0.05))
def test_swapping_rates_flips_the_direction(
    canary: RateData, baseline: RateData, margin: float | None
) -> None:
    fence = None if margin is None else Margin(absolute=margin)
    up = compare(MetricPolicy("m", margin=fence, min_samples=5), canary, baseline)
    down_policy = MetricPolicy("m", margin=fence, direction=Direction.DECREASE, min_samples=5)
    down = compare(down_policy, baseline, canary)
    assert_flipped(up, down)


@SETTINGS
@given(canary=samples, baseline=samples)
def test_swapping_samples_flips_the_direction(canary: list[float], baseline: list[float]) -> None:
    assert_flipped(
        compare(UP, SampleData(canary), SampleData(baseline)),
        compare(DOWN, SampleData(baseline), SampleData(canary)),
    )


@SETTINGS
@given(canary=histograms(), baseline=histograms())
def test_swapping_histograms_flips_the_direction(
    canary: HistogramData, baseline: HistogramData
) -> None:
    assert_flipped(compare(UP, canary, baseline), compare(DOWN, baseline, canary))


@SETTINGS
@given(data=samples, seed=st.integers(0, 2**32 - 1), direction=st.sampled_from(list(Direction)))
def test_identical_samples_never_fail(data: list[float], seed: int, direction: Direction) -> None:
    shuffled = list(np.random.default_rng(seed).permutation(data))
    policy = MetricPolicy("m", direction=direction, min_samples=5, resamples=0)
    assert compare(policy, SampleData(data), SampleData(shuffled)).verdict is not Verdict.FAILED


@SETTINGS
@given(data=rates(), histogram=histograms(), direction=st.sampled_from(list(Direction)))
def test_identical_rates_and_histograms_never_fail(
    data: RateData, histogram: HistogramData, direction: Direction
) -> None:
    policy = MetricPolicy("m", direction=direction, min_samples=1)
    assert compare(policy, data, data).verdict is not Verdict.FAILED
    assert compare(policy, histogram, histogram).verdict is not Verdict.FAILED


TRIALS = 120
SIZES = (40, 160, 640)
#: More FAILED than this in TRIALS A/A trials has probability < 1e-6 at alpha = 0.01.
ALLOWED = int(stats.binom.ppf(1 - 1e-6, TRIALS, 0.01))


def _failures_by_size(draw_population: object, judge_at: object, seed: int) -> list[int]:
    failures = [0] * len(SIZES)
    for trial in range(TRIALS):
        rng = np.random.default_rng([seed, trial])
        canary, baseline = draw_population(rng), draw_population(rng)  # type: ignore[operator]
        for i, n in enumerate(SIZES):  # the same streams, growing: samples are added
            failures[i] += judge_at(canary, baseline, n) is Verdict.FAILED  # type: ignore[operator]
    return failures


@settings(deadline=None, database=None, max_examples=3, derandomize=True)
@given(sigma=st.floats(min_value=0.2, max_value=1.5), seed=st.integers(0, 2**32 - 1))
def test_adding_latency_samples_to_identical_populations_stays_within_alpha(
    sigma: float, seed: int
) -> None:
    def draw(rng: np.random.Generator) -> np.ndarray:
        return rng.lognormal(math.log(50), sigma, SIZES[-1])

    def judge_at(canary: np.ndarray, baseline: np.ndarray, n: int) -> Verdict:
        policy = MetricPolicy("latency", resamples=0, spread=False)
        return compare(policy, SampleData(canary[:n]), SampleData(baseline[:n])).verdict

    assert max(_failures_by_size(draw, judge_at, seed)) <= ALLOWED


@settings(deadline=None, database=None, max_examples=4, derandomize=True)
@given(rate=st.floats(min_value=0.001, max_value=0.3), seed=st.integers(0, 2**32 - 1))
def test_adding_requests_to_identical_error_rates_stays_within_alpha(
    rate: float, seed: int
) -> None:
    def draw(rng: np.random.Generator) -> np.ndarray:
        return np.cumsum(rng.random(SIZES[-1] * 25) < rate)  # errors among the first k requests

    def judge_at(canary: np.ndarray, baseline: np.ndarray, n: int) -> Verdict:
        k = n * 25
        return compare(
            MetricPolicy("errors"),
            RateData(int(canary[k - 1]), k),
            RateData(int(baseline[k - 1]), k),
        ).verdict

    assert max(_failures_by_size(draw, judge_at, seed)) <= ALLOWED
