"""Quantile intervals and ECDF shapes shared by the sample and histogram comparisons."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

from .results import Shape

Floats = npt.NDArray[np.float64]

#: The most points a shape keeps per side (the report overlays two ECDFs).
SHAPE_POINTS = 60


def order_ranks(n: int, q: float, tail: float) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the order statistics bounding the ``q``-quantile: ``X(l) <=
    xi_q`` and ``xi_q <= X(u)`` each hold with probability at least ``1 - tail`` for any
    continuous distribution (the count of observations below ``xi_q`` is Binomial(n, q)).
    ``l = 0`` or ``u = n + 1`` means that side is unbounded at this sample size."""
    below = stats.binom(n, q)
    k = int(below.ppf(tail))
    if below.cdf(k) > tail:
        k -= 1
    upper = int(below.ppf(1 - tail))
    return max(k + 1, 0), min(upper + 1, n + 1)


def sample_interval(sorted_values: Floats, q: float, tail: float) -> tuple[float, float]:
    """The distribution-free interval of the ``q``-quantile of a sorted sample (±inf when
    the sample is too small to bound a side)."""
    n = len(sorted_values)
    low, high = order_ranks(n, q, tail)
    lower = float(sorted_values[low - 1]) if low >= 1 else -math.inf
    upper = float(sorted_values[high - 1]) if high <= n else math.inf
    return lower, upper


def difference_interval(
    canary: tuple[float, float], baseline: tuple[float, float]
) -> tuple[float | None, float | None]:
    """Canary - baseline from two per-side intervals (each side's miss adds up: Bonferroni)."""
    low = canary[0] - baseline[1]
    high = canary[1] - baseline[0]
    return (low if math.isfinite(low) else None, high if math.isfinite(high) else None)


def _thin(points: Floats, limit: int = SHAPE_POINTS) -> Floats:
    if len(points) <= limit:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(int))
    return np.asarray(points[keep], dtype=np.float64)


def ecdf_shape(canary: Floats, baseline: Floats) -> Shape:
    """Both sorted samples' ECDFs at common points: pooled quantiles at even steps, so the
    points sit where the data are (a latency tail does not squeeze the body into one point)."""
    pooled = np.concatenate((canary, baseline))
    x = np.unique(np.quantile(pooled, np.linspace(0, 1, SHAPE_POINTS)))
    x = _thin(x)
    fc = np.searchsorted(canary, x, side="right") / len(canary)
    fb = np.searchsorted(baseline, x, side="right") / len(baseline)
    return Shape(
        kind="ecdf",
        x=tuple(float(v) for v in x),
        canary=tuple(float(v) for v in fc),
        baseline=tuple(float(v) for v in fb),
    )


def bucket_shape(bounds: Floats, canary: Floats, baseline: Floats) -> Shape:
    """ECDFs at the finite bucket bounds from cumulative counts (thinned to ~60 bounds)."""
    finite = np.flatnonzero(np.isfinite(bounds))
    keep = _thin(finite.astype(np.float64)).astype(int)
    n_c, n_b = max(float(canary[-1]), 1.0), max(float(baseline[-1]), 1.0)
    return Shape(
        kind="ecdf",
        x=tuple(float(bounds[i]) for i in keep),
        canary=tuple(float(canary[i]) / n_c for i in keep),
        baseline=tuple(float(baseline[i]) / n_b for i in keep),
    )
