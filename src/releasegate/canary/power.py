"""How much more data a metric needs: a power calculation and the sentence that says it.

"A 10 % regression" (``policy.detect``) is, per kind:

- rates: the canary's rate 10 % above the baseline's plus its margin allowance (from 1 % to
  1.1 % without a margin); the size comes from statsmodels'
  ``samplesize_proportions_2indep_onetail`` for the one-sided test at ``alpha`` (``alpha / 2``
  for ``both``), the margin-shifted baseline rate standing for the baseline's. With no event
  on the baseline the pooled rate stands for it; with no event at all nothing can be said;
- samples: every request 10 % slower (a scale change, which is how latency regressions look),
  i.e. a shift of ``log(1.1)`` in log latency, measured against the baseline's standard
  deviation of log values (``TTestIndPower`` on that effect size), divided by 3/pi, the
  Wilcoxon-Mann-Whitney test's efficiency relative to the t-test for normal data. A sample with
  values <= 0 uses a shift of 10 % of its median against its standard deviation instead;
- histograms: the same scale change read off the baseline's buckets: the share of baseline
  requests above ``E / 1.1`` is what a 10 % slower canary would put above ``E`` (the compared
  bucket bound), sized like a rate.

Samples are per side; the shortfall is that of the side further from it, and the minutes are
at that side's current rate (``count / minutes``), when its minutes are known.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

from .histograms import exceedance_at, pooled_edge, shared_buckets
from .model import Direction, HistogramData, MetricData, MetricPolicy, RateData, SampleData
from .results import Need

#: The asymptotic relative efficiency of a rank test to the t-test under normality.
_RANK_EFFICIENCY = 3 / math.pi
#: A "size" beyond this (a vanishing effect against the noise) says nothing useful.
_TOO_MANY = 1e12
_TINY_EFFECT = 1e-6  # a standardized effect this small needs more than _TOO_MANY


def _one_sided_alpha(policy: MetricPolicy) -> float:
    return policy.alpha / 2 if policy.direction is Direction.BOTH else policy.alpha


def _factor(policy: MetricPolicy) -> float:
    return 1 - policy.detect if policy.direction is Direction.DECREASE else 1 + policy.detect


def _proportions(policy: MetricPolicy, base: float, alternative: float) -> int | None:
    if not 0 < base < 1 or not 0 < alternative < 1 or alternative == base:
        return None
    side = "smaller" if alternative < base else "larger"
    n = samplesize_proportions_2indep_onetail(
        diff=alternative - base,
        prop2=base,
        power=policy.power,
        alpha=_one_sided_alpha(policy),
        alternative=side,
    )
    return math.ceil(float(n)) if float(n) < _TOO_MANY else None


def _rates(policy: MetricPolicy, canary: RateData, baseline: RateData) -> int | None:
    if baseline.events:
        base = baseline.events / baseline.total
    elif canary.events:
        base = canary.events / (canary.total + baseline.total)
    else:
        return None
    allowance = policy.margin.allowance(base) if policy.margin else 0.0
    if policy.direction is Direction.DECREASE:
        allowance = -allowance
    # statsmodels sizes only a zero null difference: the margin-shifted rate stands for the
    # baseline's (the variance under the null differs a little from the margin test's).
    shifted = base + allowance
    return _proportions(policy, shifted, shifted * _factor(policy))


def _samples(policy: MetricPolicy, canary: SampleData, baseline: SampleData) -> int | None:
    source = baseline if baseline.count >= 2 else canary
    if source.count < 2:
        return None
    values = np.asarray(source.values, dtype=np.float64)
    if values.min() > 0:
        spread = float(np.std(np.log(values), ddof=1))
        shift = abs(math.log(_factor(policy)))
    else:
        spread = float(np.std(values, ddof=1))
        shift = policy.detect * abs(float(np.median(values)))
    if spread == 0:
        return policy.min_samples  # no noise: any change shows with the minimum
    effect = shift / spread
    if effect < _TINY_EFFECT:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed root search warns and returns NaN
        n = float(
            TTestIndPower().solve_power(
                effect_size=effect,
                alpha=_one_sided_alpha(policy),
                power=policy.power,
                ratio=1.0,
                alternative="larger",
            )
        )
    if not math.isfinite(n):
        # The normal approximation when the t-based search fails (very large or tiny effects).
        z = stats.norm.isf(_one_sided_alpha(policy)) + stats.norm.ppf(policy.power)
        n = 2 * (z / effect) ** 2
    n /= _RANK_EFFICIENCY
    return math.ceil(n) if n < _TOO_MANY else None


def _histograms(policy: MetricPolicy, canary: HistogramData, baseline: HistogramData) -> int | None:
    bounds, cum_c, cum_b = shared_buckets(canary, baseline)
    if cum_b[-1] <= 0:
        return None
    edge = pooled_edge(policy, bounds, cum_c, cum_b)
    if edge is None:
        return None
    level = float(bounds[edge])
    base = exceedance_at(bounds, cum_b, level)
    moved = exceedance_at(bounds, cum_b, level / _factor(policy))
    return _proportions(policy, base, moved)


def samples_needed(policy: MetricPolicy, canary: MetricData, baseline: MetricData) -> int | None:
    """Samples per side to detect a ``policy.detect`` regression with ``policy.power``, never
    below ``policy.min_samples``; None when the data cannot say (no event on either side)."""
    if isinstance(canary, RateData) and isinstance(baseline, RateData):
        n = _rates(policy, canary, baseline)
    elif isinstance(canary, SampleData) and isinstance(baseline, SampleData):
        n = _samples(policy, canary, baseline)
    elif isinstance(canary, HistogramData) and isinstance(baseline, HistogramData):
        n = _histograms(policy, canary, baseline)
    else:
        raise TypeError("the canary and the baseline must be the same kind of data")
    return None if n is None else max(n, policy.min_samples)


def format_minutes(minutes: float) -> str:
    if minutes >= 120:
        return f"{minutes / 60:.1f} hours"
    value = f"{minutes:.1f}" if minutes < 1 else f"{minutes:.0f}"
    return f"{value} minute" + ("" if value == "1" else "s")


def sentence(more: int, minutes: float | None, policy: MetricPolicy) -> str:
    """'need ≈N more requests (≈M minutes at the current rate) to detect a 10% regression at
    80% power'."""
    at_rate = f" (≈{format_minutes(minutes)} at the current rate)" if minutes is not None else ""
    return (
        f"need ≈{more:,} more requests{at_rate} to detect a {policy.detect:.0%} regression "
        f"at {policy.power:.0%} power"
    )


def power_need(policy: MetricPolicy, canary: MetricData, baseline: MetricData) -> Need | None:
    """The data still missing on each side to detect a ``policy.detect`` regression at
    ``policy.power``, with the sentence; None when no power calculation is possible."""
    n = samples_needed(policy, canary, baseline)
    if n is None:
        return None
    short_c, short_b = max(0, n - canary.count), max(0, n - baseline.count)
    side = canary if short_c >= short_b else baseline
    more = max(short_c, short_b)
    minutes = None
    if side.minutes and side.count:
        minutes = more / (side.count / side.minutes)
    if more == 0:
        text = (
            f"enough data ({n:,} per side) to detect a {policy.detect:.0%} regression "
            f"at {policy.power:.0%} power"
        )
    else:
        text = sentence(more, minutes, policy)
    return Need(samples=n, more=more, minutes=minutes, sentence=text)
