"""Counts and ratios: the score test against statsmodels, zero baselines, margins, directions."""

from __future__ import annotations

import math
import warnings

import pytest
from statsmodels.stats import proportion as smprop

from releasegate.canary import Direction, Margin, MetricPolicy, RateData, Verdict, compare

ERRORS = MetricPolicy("errors")


def reference_p(c: RateData, b: RateData, value: float = 0.0, alternative: str = "larger") -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the ratio statsmodels also reports
        return float(
            smprop.test_proportions_2indep(
                c.events,
                c.total,
                b.events,
                b.total,
                value=value,
                method="score",
                compare="diff",
                alternative=alternative,
            ).pvalue
        )


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        ((25, 2000), (12, 2000)),
        ((40, 1000), (35, 3000)),
        ((3, 500), (5, 500)),
        ((60, 1200), (30, 1300)),
    ],
)
def test_p_value_and_interval_are_statsmodels_score_test(
    canary: tuple[int, int], baseline: tuple[int, int]
) -> None:
    c, b = RateData(*canary), RateData(*baseline)
    result = compare(ERRORS, c, b)
    assert result.test is not None and "score" in result.test
    assert result.p_value == pytest.approx(reference_p(c, b), rel=1e-12)
    assert result.p_adjusted == result.p_value  # a family of one
    low, high = smprop.confint_proportions_2indep(
        *canary, *baseline, method="score", compare="diff", alpha=0.02
    )
    assert result.interval == pytest.approx((low, high))
    assert result.interval_level == pytest.approx(0.98)
    assert result.effect is not None
    assert result.effect.estimate == pytest.approx(c.events / c.total - b.events / b.total)


def test_published_value_of_the_score_interval() -> None:
    # Fagerland, Lydersen and Laake (2015), Statistical Methods in Medical Research 24(2): for
    # 7/34 against 1/34 the Miettinen-Nurminen asymptotic score 95% interval is 0.028 to 0.34.
    policy = MetricPolicy("ratio", alpha=0.025)
    result = compare(policy, RateData(7, 34), RateData(1, 34))
    assert result.interval_level == pytest.approx(0.95)
    low, high = result.interval  # type: ignore[misc]
    assert low == pytest.approx(0.028, abs=0.002)
    assert high == pytest.approx(0.34, abs=0.006)


def test_zero_error_baseline_is_judged_by_the_test_not_passed() -> None:
    result = compare(ERRORS, RateData(10, 3000), RateData(0, 3000))
    assert result.verdict is Verdict.FAILED
    assert result.p_value == pytest.approx(reference_p(RateData(10, 3000), RateData(0, 3000)))
    assert result.effect is not None and result.effect.relative is None  # no ratio to zero
    assert "baseline has none" in result.reason
    low, high = result.interval  # type: ignore[misc]
    assert low is not None and low > 0 and high is not None


def test_a_few_errors_against_a_zero_baseline_are_not_enough() -> None:
    result = compare(ERRORS, RateData(2, 3000), RateData(0, 3000))
    assert result.verdict is Verdict.PASSED
    assert 0.01 < result.p_value < 0.5  # type: ignore[operator]


def test_no_error_on_either_side_passes_with_p_one() -> None:
    result = compare(ERRORS, RateData(0, 5000), RateData(0, 5000))
    assert result.verdict is Verdict.PASSED
    assert result.p_value == 1.0
    assert result.interval is not None and all(v is not None for v in result.interval)
    assert result.need is None  # no event anywhere: no power calculation either


def test_margin_is_the_null_value_of_the_test() -> None:
    c, b = RateData(780, 60000), RateData(600, 60000)  # 1.3% vs 1.0%
    policy = MetricPolicy("errors", margin=Margin(absolute=0.004, relative=0.2))
    result = compare(policy, c, b)
    allowance = max(0.004, 0.2 * 0.01)
    regression = next(t for t in result.tests if t.role == "regression")
    shift = next(t for t in result.tests if t.role == "shift")
    assert regression.p_value == pytest.approx(reference_p(c, b, value=allowance))
    assert shift.p_value == pytest.approx(reference_p(c, b))
    assert shift.p_value < 0.01 < regression.p_value
    assert result.verdict is Verdict.MARGINAL
    assert "within its margin of 0.004 or 20%" in result.reason


def test_the_more_lenient_part_of_the_margin_applies() -> None:
    margin = Margin(absolute=0.1, relative=0.1)
    assert margin.allowance(0.5) == pytest.approx(0.1)
    assert margin.allowance(1.5) == pytest.approx(0.15)
    assert Margin(relative=0.1).allowance(-2.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="absolute or a relative"):
        Margin()
    with pytest.raises(ValueError, match="negative"):
        Margin(absolute=-1)


def test_far_beyond_the_margin_fails() -> None:
    policy = MetricPolicy("errors", margin=Margin(relative=0.5))
    result = compare(policy, RateData(90, 3000), RateData(30, 3000))
    assert result.verdict is Verdict.FAILED
    assert "beyond its margin of 50%" in result.reason


def test_decrease_is_bad_tests_the_other_side() -> None:
    policy = MetricPolicy("success", direction=Direction.DECREASE)
    c, b = RateData(2900, 3000), RateData(2970, 3000)
    result = compare(policy, c, b)
    assert result.p_value == pytest.approx(reference_p(c, b, alternative="smaller"))
    assert result.verdict is Verdict.FAILED
    assert compare(policy, b, c).verdict is Verdict.PASSED


def test_both_directions_double_the_smaller_one_sided_p() -> None:
    policy = MetricPolicy("ratio", direction=Direction.BOTH)
    c, b = RateData(50, 2000), RateData(30, 2000)
    result = compare(policy, c, b)
    expected = 2 * min(reference_p(c, b), reference_p(c, b, alternative="smaller"))
    assert result.p_value == pytest.approx(expected)
    assert result.interval_level == pytest.approx(0.99)


def test_rate_data_is_validated() -> None:
    with pytest.raises(ValueError, match="more events than total"):
        RateData(5, 4)
    with pytest.raises(ValueError, match="non-negative integer"):
        RateData(-1, 4)
    with pytest.raises(ValueError, match="non-negative integer"):
        RateData(1.5, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="minutes"):
        RateData(1, 4, minutes=0)
    assert RateData(0, 0).rate is None
    assert math.isclose(RateData(1, 4).rate or 0, 0.25)
