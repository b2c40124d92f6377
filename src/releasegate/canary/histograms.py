"""Latency histograms (Prometheus ``le`` buckets): the quantile compared through its bucket.

Without per-request samples the ``policy.quantile`` (p95) is compared at a bucket bound. ``E``
is the largest finite bound shared by both sides at which the pooled histogram (both sides'
counts added) holds at most 95 % (bounds only one side has are dropped: cumulative counts re-bucket
exactly onto a subset of bounds). If the canary's p95 is above the baseline's, more of the
canary's requests are above ``E``: the regression test compares the shares above ``E`` with the
rates' score test (``rates.p_value``, one-sided). Choosing ``E`` from the pooled counts keeps the
test valid: under "no difference" the pooled histogram says nothing about which side a request
came from.

A margin moves the canary's bound: for ``increase`` the canary's share above ``E'``, the
smallest shared bound at or above ``E + margin.allowance(E)``, is compared with the baseline's
share above ``E`` (if the canary is at most its margin worse, its share above ``E'`` is at most
the baseline's above ``E``, whatever ``E``). The margin test tries two edges: the pooled ``E``
and ``E_b``, the bound holding the baseline's own quantile, and takes the smaller p-value
doubled (Bonferroni) when they differ. With the pooled edge alone, a canary far slower than its
baseline put ``E`` in the canary's bulk (the pooled share jumps from 50 % to 100 %), the margin
then moved ``E'`` past every canary request, and the worst regression read as "within the
margin". When no bound is far enough out, a regression beyond the margin cannot be shown at
that edge (p = 1). ``decrease`` mirrors this downwards; ``both`` tests each side.

Evidence: each side's quantile interpolated inside its bucket as Prometheus'
``histogram_quantile`` does (the first bucket starts at 0 when its bound is positive), and the
distribution-free interval of each side's quantile: the buckets holding the order statistics
that bound it (``quantiles.order_ranks``), so the interval is as coarse as the buckets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .analysis import REGRESSION, SHIFT, Analysis, directional, interval_level, relative
from .model import HistogramData, MetricPolicy, RateData, format_number
from .quantiles import Floats, bucket_shape, difference_interval, order_ranks
from .rates import p_value
from .results import Effect, Summary


def shared_buckets(canary: HistogramData, baseline: HistogramData) -> tuple[Floats, Floats, Floats]:
    """The bounds both sides have, and each side's cumulative counts there (whole numbers)."""
    shared = sorted(set(canary.bounds) & set(baseline.bounds))
    at_c = dict(zip(canary.bounds, canary.cumulative, strict=True))
    at_b = dict(zip(baseline.bounds, baseline.cumulative, strict=True))
    bounds = np.asarray(shared, dtype=np.float64)
    return bounds, whole([at_c[b] for b in shared]), whole([at_b[b] for b in shared])


def whole(counts: Sequence[float] | npt.NDArray[Any]) -> Floats:
    """Counts rounded to whole observations (``increase()`` extrapolates to fractions)."""
    return np.rint(np.asarray(counts, dtype=np.float64))


def _lower_edge(bounds: Floats, i: int) -> float:
    if i > 0:
        return float(bounds[i - 1])
    return 0.0 if bounds[0] > 0 else -math.inf


def bucket_quantile(bounds: Floats, cumulative: Floats, q: float) -> float | None:
    """``histogram_quantile``: linear interpolation inside the bucket holding rank ``q * n``."""
    n = float(cumulative[-1])
    if n <= 0:
        return None
    rank = q * n
    i = int(np.searchsorted(cumulative, rank, side="left"))
    if not math.isfinite(bounds[i]):
        return float(bounds[-2]) if len(bounds) > 1 else None
    lower = _lower_edge(bounds, i)
    below = float(cumulative[i - 1]) if i > 0 else 0.0
    inside = float(cumulative[i]) - below
    if inside <= 0 or not math.isfinite(lower):
        return float(bounds[i])
    return lower + (float(bounds[i]) - lower) * (rank - below) / inside


def bucket_interval(
    bounds: Floats, cumulative: Floats, q: float, tail: float
) -> tuple[float, float]:
    """The bucket edges around the order statistics bounding the ``q``-quantile."""
    n = int(cumulative[-1])
    low_rank, high_rank = order_ranks(n, q, tail)
    low, high = -math.inf, math.inf
    if low_rank >= 1:
        low = _lower_edge(bounds, int(np.searchsorted(cumulative, low_rank, side="left")))
    if high_rank <= n:
        high = float(bounds[int(np.searchsorted(cumulative, high_rank, side="left"))])
    return low, high


def pooled_edge(policy: MetricPolicy, bounds: Floats, cum_c: Floats, cum_b: Floats) -> int | None:
    """Index of ``E``: the largest shared finite bound where the pooled share at or below it is
    at most ``policy.quantile`` (the smallest bound when even the first holds more).

    Not the bound *closest* to the quantile: with coarse buckets the pooled share can jump
    past it, e.g. from 50 % to 100 % when every canary request is slower than every baseline
    one; the closest bound would then have nothing above it on either side, and the worst
    regression would pass (p = 1). At or below the quantile, the share above ``E`` still holds
    the tail where a regression shows.
    """
    finite = np.flatnonzero(np.isfinite(bounds))
    pooled = cum_c + cum_b
    if len(finite) == 0 or pooled[-1] <= 0:
        return None
    share = pooled[finite] / pooled[-1]
    at_or_below = np.flatnonzero(share <= policy.quantile + 1e-12)
    if len(at_or_below) == 0:
        return int(finite[0])
    return int(finite[int(at_or_below[-1])])


def baseline_edge(policy: MetricPolicy, bounds: Floats, cum_b: Floats) -> int | None:
    """Index of ``E_b``: the smallest shared finite bound at or below which the baseline holds
    at least ``policy.quantile`` of its requests (None when only ``+Inf`` does)."""
    finite = np.flatnonzero(np.isfinite(bounds))
    if len(finite) == 0 or cum_b[-1] <= 0:
        return None
    reached = np.flatnonzero(cum_b[finite] / cum_b[-1] >= policy.quantile - 1e-12)
    return int(finite[int(reached[0])]) if len(reached) else None


def _shifted_edge(policy: MetricPolicy, bounds: Floats, edge: int, alternative: str) -> int | None:
    if policy.margin is None:
        return edge
    level = float(bounds[edge])
    allowance = policy.margin.allowance(level)
    finite = bounds[np.isfinite(bounds)]
    if alternative == "larger":
        i = int(np.searchsorted(finite, level + allowance, side="left"))
        return i if i < len(finite) else None
    i = int(np.searchsorted(finite, level - allowance, side="right")) - 1
    return i if i >= 0 else None


def summarize(data: HistogramData, q: float) -> Summary:
    bounds = np.asarray(data.bounds, dtype=np.float64)
    cumulative = whole(data.cumulative)
    n = int(cumulative[-1])
    p50, p95, p99, pq = (bucket_quantile(bounds, cumulative, x) for x in (0.5, 0.95, 0.99, q))
    mean = data.value_sum / n if data.value_sum is not None and n else None
    return Summary(count=n, mean=mean, p50=p50, p95=p95, p99=p99, quantile=pq, minutes=data.minutes)


def _superiority(cum_c: Floats, cum_b: Floats) -> float:
    """P(C > B) + P(C = B)/2 with values in one bucket counted as ties."""
    pc = np.diff(cum_c, prepend=0.0) / cum_c[-1]
    pb = np.diff(cum_b, prepend=0.0) / cum_b[-1]
    below_b = np.concatenate(([0.0], np.cumsum(pb)[:-1]))
    return float((pc * (below_b + pb / 2)).sum())


def _side_interval(data: HistogramData, q: float, tail: float) -> tuple[float, float]:
    bounds = np.asarray(data.bounds, dtype=np.float64)
    return bucket_interval(bounds, whole(data.cumulative), q, tail)


def analyse(policy: MetricPolicy, canary: HistogramData, baseline: HistogramData) -> Analysis:
    """The histogram tests for one metric (both sides non-empty)."""
    bounds, cum_c, cum_b = shared_buckets(canary, baseline)
    n_c, n_b = int(cum_c[-1]), int(cum_b[-1])
    sc, sb = summarize(canary, policy.quantile), summarize(baseline, policy.quantile)
    edge = pooled_edge(policy, bounds, cum_c, cum_b)
    if edge is None:
        problem = "the canary and baseline histograms have no finite bucket bound in common"
        return Analysis("histogram", (), None, None, None, sc, sb, problem=problem)
    label = f"p{policy.quantile * 100:g}"
    name = f"score test of the share above the {label} bucket (le={format_number(bounds[edge])})"

    own = baseline_edge(policy, bounds, cum_b)
    margin_edges = sorted({edge} | ({own} if own is not None else set()))

    def worse(margin: bool) -> Callable[[str], tuple[float, float | None]]:
        def at(e: int, alternative: str) -> tuple[float, float | None]:
            shifted = _shifted_edge(policy, bounds, e, alternative) if margin else e
            if shifted is None:
                return 1.0, None
            above_c = RateData(int(n_c - cum_c[shifted]), n_c)
            return p_value(above_c, RateData(int(n_b - cum_b[e]), n_b), 0.0, alternative)

        def run(alternative: str) -> tuple[float, float | None]:
            if not margin or policy.margin is None:
                return at(edge, alternative)
            p, statistic = min((at(e, alternative) for e in margin_edges), key=lambda r: r[0])
            return min(1.0, p * len(margin_edges)), statistic

        return run

    tests = [directional(policy, worse(True), name=name, role=REGRESSION)]
    if policy.margin is not None:
        tests.append(directional(policy, worse(False), name=name, role=SHIFT))
    level = interval_level(policy)
    tail = (1 - level) / 4
    interval = difference_interval(
        _side_interval(canary, policy.quantile, tail),
        _side_interval(baseline, policy.quantile, tail),
    )
    share_c, share_b = (n_c - cum_c[edge]) / n_c, (n_b - cum_b[edge]) / n_b
    rel = relative(sc.quantile, sb.quantile)
    description = (
        f"canary {label} ~{policy.show(sc.quantile or 0.0)} vs baseline "
        f"~{policy.show(sb.quantile or 0.0)}"
        + (f" ({rel:+.1%})" if rel is not None else "")
        + f"; above {policy.show(bounds[edge])}: {share_c:.1%} vs {share_b:.1%}"
    )
    effect = Effect(
        measure=f"difference of {label}",
        estimate=(sc.quantile or 0.0) - (sb.quantile or 0.0),
        relative=rel,
        superiority=_superiority(cum_c, cum_b),
        description=description,
    )
    return Analysis(
        kind="histogram",
        tests=tuple(tests),
        effect=effect,
        interval=interval,
        interval_level=level,
        canary=sc,
        baseline=sb,
        shape=bucket_shape(bounds, cum_c, cum_b),
    )


def exceedance_at(bounds: Floats, cumulative: Floats, x: float) -> float:
    """The share of observations above ``x``, interpolating linearly inside buckets."""
    finite = np.isfinite(bounds)
    edges = np.concatenate(([_lower_edge(bounds, 0)], bounds[finite]))
    counts = np.concatenate(([0.0], cumulative[finite]))
    if not math.isfinite(edges[0]):
        edges, counts = edges[1:], counts[1:]
    total = float(cumulative[-1])
    return 1.0 - float(np.interp(x, edges, counts, right=total)) / total
