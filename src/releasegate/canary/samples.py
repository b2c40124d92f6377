"""Per-request samples (latencies): a rank test on the whole distribution, a spread test and
the quantile's interval.

Regression: the Brunner-Munzel test (``scipy.stats.brunnermunzel``, one-sided in the bad
direction). It tests whether a canary value tends to be larger than a baseline value (the
relative effect P(C > B) + P(C = B)/2 against 1/2) and, unlike Mann-Whitney U, does not assume
that both sides have the same shape or spread. With a margin the baseline is first made worse by
the margin, value by value (``b + margin.allowance(b)`` for ``increase``): FAILED then means the
canary is worse than the baseline plus its margin across the distribution, so "p95 at most
100 ms or 10 % worse" is read as "every quantile at most ...". When the two samples do not
overlap at all Brunner-Munzel's variance is 0 and it has no p-value; Mann-Whitney U
(``scipy.stats.mannwhitneyu``) stands in.

Spread (MARGINAL, never FAILED): the Brown-Forsythe idea with Welch's t, i.e. a one-sided Welch
t-test (``scipy.stats.ttest_ind(equal_var=False)``) of the canary's absolute deviations from its
median against the baseline's. It is what catches "same median, wider spread", which a rank or
location test passes by construction.

Quantile interval (evidence only): the ``policy.quantile`` difference canary - baseline with a
percentile bootstrap (``scipy.stats.bootstrap``, ``policy.resamples`` resamples, seeded by
``policy.seed``), or, with ``resamples=0``, the distribution-free order-statistic intervals of
the two quantiles combined (wider, no resampling).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats

from .analysis import (
    REGRESSION,
    SHIFT,
    SPREAD,
    Analysis,
    clean_p,
    directional,
    finite,
    interval_level,
    relative,
)
from .model import Direction, MetricPolicy, SampleData
from .quantiles import Floats, difference_interval, ecdf_shape, sample_interval
from .results import Effect, Summary, TestResult

RANK_TEST = "Brunner-Munzel"
SPREAD_TEST = "Brown-Forsythe spread (Welch t on absolute deviations from the median)"
_SCIPY_SIDE = {"larger": "greater", "smaller": "less"}
#: Values per bootstrap batch (resamples x sample size): bounds the memory at ~16 MB.
_BOOTSTRAP_BATCH_VALUES = 2_000_000


def _rank_test(x: Floats, y: Floats, alternative: str) -> tuple[float, float | None]:
    if x.min() == x.max() == y.min() == y.max():
        return 1.0, None  # one value on both sides: no difference to test
    side = _SCIPY_SIDE[alternative]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.brunnermunzel(x, y, alternative=side)
        p, statistic = float(result.pvalue), float(result.statistic)
        if p != p:  # no overlap: Brunner-Munzel's variance estimate is 0
            result = stats.mannwhitneyu(x, y, alternative=side)
            p, statistic = float(result.pvalue), float(result.statistic)
    return p, statistic


def _worsened(values: Floats, policy: MetricPolicy, alternative: str) -> Floats:
    """The baseline made worse by the margin in ``alternative``'s direction, value by value."""
    margin = policy.margin
    if margin is None:
        return values
    allowance = np.maximum(margin.absolute or 0.0, (margin.relative or 0.0) * np.abs(values))
    return values + allowance if alternative == "larger" else values - allowance


def _spread_test(canary: Floats, baseline: Floats) -> TestResult:
    dc = np.abs(canary - np.median(canary))
    db = np.abs(baseline - np.median(baseline))
    if dc.max() == 0 and db.max() == 0:
        return TestResult(role=SPREAD, name=SPREAD_TEST, statistic=None, p_value=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(dc, db, equal_var=False, alternative="greater")
    return TestResult(
        role=SPREAD,
        name=SPREAD_TEST,
        statistic=finite(float(result.statistic)),
        p_value=clean_p(float(result.pvalue)),
    )


def _interval(
    canary: Floats, baseline: Floats, policy: MetricPolicy, level: float
) -> tuple[float | None, float | None]:
    q = policy.quantile
    if policy.resamples == 0:
        tail = (1 - level) / 4  # each side two-sided at 1 - (1 - level) / 2
        return difference_interval(
            sample_interval(canary, q, tail), sample_interval(baseline, q, tail)
        )

    def statistic(c: Floats, b: Floats, axis: int) -> Floats:
        return np.asarray(np.quantile(c, q, axis=axis) - np.quantile(b, q, axis=axis))

    batch = max(1, _BOOTSTRAP_BATCH_VALUES // max(len(canary), len(baseline)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate sample warns and gives NaN bounds
        result = stats.bootstrap(
            (canary, baseline),
            statistic,
            n_resamples=policy.resamples,
            batch=batch,
            vectorized=True,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(policy.seed),
        )
    low, high = result.confidence_interval
    return finite(float(low)), finite(float(high))


def summarize(data: SampleData, q: float) -> Summary:
    values = np.asarray(data.values, dtype=np.float64)
    if len(values) == 0:
        return Summary(count=0, minutes=data.minutes, dropped=data.dropped)
    p50, p95, p99, pq = (float(v) for v in np.quantile(values, [0.5, 0.95, 0.99, q]))
    return Summary(
        count=len(values),
        mean=float(values.mean()),
        p50=p50,
        p95=p95,
        p99=p99,
        quantile=pq,
        minutes=data.minutes,
        dropped=data.dropped,
    )


def superiority(canary: Floats, baseline: Floats) -> float:
    """P(C > B) + P(C = B)/2 from the pooled ranks (the Mann-Whitney U over n_c * n_b)."""
    ranks = stats.rankdata(np.concatenate((canary, baseline)))
    u = float(ranks[: len(canary)].sum()) - len(canary) * (len(canary) + 1) / 2
    return u / (len(canary) * len(baseline))


def analyse(policy: MetricPolicy, canary: SampleData, baseline: SampleData) -> Analysis:
    """The sample tests for one metric (both sides non-empty)."""
    c = np.sort(np.asarray(canary.values, dtype=np.float64))
    b = np.sort(np.asarray(baseline.values, dtype=np.float64))

    def worse(margin: bool) -> Callable[[str], tuple[float, float | None]]:
        def run(alternative: str) -> tuple[float, float | None]:
            reference = _worsened(b, policy, alternative) if margin else b
            return _rank_test(c, reference, alternative)

        return run

    tests = [directional(policy, worse(True), name=RANK_TEST, role=REGRESSION)]
    if policy.margin is not None:
        tests.append(directional(policy, worse(False), name=RANK_TEST, role=SHIFT))
    if policy.spread and len(c) >= 3 and len(b) >= 3:
        tests.append(_spread_test(c, b))
    level = interval_level(policy)
    sc, sb = summarize(canary, policy.quantile), summarize(baseline, policy.quantile)
    sup = superiority(c, b)
    label = f"p{policy.quantile * 100:g}"
    rel = relative(sc.quantile, sb.quantile)
    larger = "smaller" if policy.direction is Direction.DECREASE else "larger"
    share = sup if larger == "larger" else 1 - sup
    description = (
        f"canary {label} {policy.show(sc.quantile or 0.0)} vs baseline "
        f"{policy.show(sb.quantile or 0.0)}"
        + (f" ({rel:+.1%})" if rel is not None else "")
        + f"; a canary value is {larger} than a baseline one in {share:.0%} of pairs"
    )
    effect = Effect(
        measure=f"difference of {label}",
        estimate=(sc.quantile or 0.0) - (sb.quantile or 0.0),
        relative=rel,
        superiority=sup,
        description=description,
    )
    return Analysis(
        kind="samples",
        tests=tuple(tests),
        effect=effect,
        interval=_interval(c, b, policy, level),
        interval_level=level,
        canary=sc,
        baseline=sb,
        shape=ecdf_shape(c, b),
    )
