"""Kayenta's Mann-Whitney module (``kayenta-mannwhitney``), ported for ``kayenta``.

- ``MannWhitney.scala``: ``wilcoxonDiff``, the continuity- and tie-corrected normal
  approximation of the rank sum of ``x - mu`` against ``y`` (R's ``wilcox.test(conf.int=TRUE,
  exact=FALSE, correct=TRUE)``), and ``calculateConfidenceInterval``: the interval of the shift
  ``x - y`` and its Hodges-Lehmann estimate, by root finding over ``mu``.
- ``BrentSolver.java``: the root finder, with its absolute tolerance 1e-4 (so results depend
  on the metric's unit) and its 1000 iterations, line by line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import stats

_BRENT_MAX_ITERATIONS = 1000
_BRENT_TOLERANCE = 1e-4
_EPSILON = 2.220446049250313e-16

Floats = npt.NDArray[np.float64]
#: Kayenta's ``Array[Double]``: a list or an array.
Values = Sequence[float] | Floats


def _precision_zero(value: float) -> bool:
    # commons-math Precision.equals(value, 0): equal within one ulp.
    return abs(value) <= math.ulp(0.0)


def brent_solve(
    ax: float, bx: float, fa: float, fb: float, func: Callable[[float], float]
) -> float:
    """BrentSolver.solve, line by line (including returning the last point on no convergence)."""
    a, b, c, fc = ax, bx, ax, fa
    if _precision_zero(fa):
        return a
    if _precision_zero(fb):
        return b
    for _ in range(_BRENT_MAX_ITERATIONS + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPSILON * abs(b) + _BRENT_TOLERANCE / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or _precision_zero(fb):
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = func(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


class _WilcoxonDiff:
    """MannWhitney.wilcoxonDiff for fixed ``x`` and ``y``, as a function of ``mu``.

    Kayenta ranks ``x - mu`` together with ``y`` (average ranks) at every call. The rank sum
    of the ``x`` part minus ``nx(nx+1)/2`` is the Mann-Whitney U (pairs with ``x - mu > y``,
    ties counting half), and the tie correction needs only the sizes of the groups of equal
    values; both come from binary searches over the sorted samples here: the same numbers, in
    O(n log n) without re-sorting.
    """

    def __init__(self, x: Floats, y: Floats) -> None:
        self.x = np.sort(np.asarray(x, dtype=np.float64))
        self.y = np.sort(np.asarray(y, dtype=np.float64))
        self.nx, self.ny = float(len(self.x)), float(len(self.y))
        _, y_ties = np.unique(self.y, return_counts=True)
        self.y_tie_term = float((y_ties.astype(np.float64) ** 3 - y_ties).sum())

    def __call__(self, mu: float, quantile: float) -> float:
        nx, ny = self.nx, self.ny
        shifted = self.x - mu  # still sorted: rounding is monotone
        below = np.searchsorted(self.y, shifted, side="left")
        equal = np.searchsorted(self.y, shifted, side="right") - below
        dz = float(below.sum() + 0.5 * equal.sum()) - nx * ny / 2
        correction = math.copysign(0.5, dz) if dz != 0 else 0.0
        # Groups of equal values in the pooled sample: runs of x - mu joined by equal y values.
        starts = np.flatnonzero(np.concatenate(([True], shifted[1:] != shifted[:-1])))
        a = np.diff(np.append(starts, len(shifted))).astype(np.float64)
        b = equal[starts].astype(np.float64)
        joined = float(((a + b) ** 3 - (a + b) - (b**3 - b)).sum())
        tie_term = self.y_tie_term + joined
        sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - tie_term / ((nx + ny) * (nx + ny - 1))))
        if sigma == 0:
            raise ValueError("cannot compute confidence interval when all observations are tied")
        return (dz - correction) / sigma - quantile


def wilcoxon_diff(mu: float, quantile: float, x: Values, y: Values) -> float:
    """MannWhitney.wilcoxonDiff: the corrected z of the rank sum of ``x - mu``, - ``quantile``."""
    return _WilcoxonDiff(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))(
        mu, quantile
    )


class MannWhitney:
    """MannWhitney.calculateConfidenceInterval for fixed ``x`` (experiment) and ``y`` (control):
    ``bound(zq)`` is the shift at which the corrected z falls to ``zq`` (the lower confidence
    bound for ``zq > 0``, the upper for ``zq < 0``), ``estimate()`` the Hodges-Lehmann shift."""

    def __init__(self, x: Values, y: Values) -> None:
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self._diff = _WilcoxonDiff(xa, ya)
        self.mu_min = float(xa.min() - ya.max())
        self.mu_max = float(xa.max() - ya.min())

    def bound(self, zq: float) -> float:
        """calculateConfidenceInterval's ``findRoot`` (clamped to the range of shifts)."""
        f_lower, f_upper = self._diff(self.mu_min, zq), self._diff(self.mu_max, zq)
        if f_lower <= 0:
            return self.mu_min
        if f_upper >= 0:
            return self.mu_max
        return brent_solve(self.mu_min, self.mu_max, f_lower, f_upper, lambda m: self._diff(m, zq))

    def estimate(self) -> float:
        f_lower, f_upper = self._diff(self.mu_min, 0), self._diff(self.mu_max, 0)
        return brent_solve(self.mu_min, self.mu_max, f_lower, f_upper, lambda m: self._diff(m, 0))


def mann_whitney_u_test(
    x: Values, y: Values, confidence_level: float = 0.95
) -> tuple[float, float, float]:
    """MannWhitney.mannWhitneyUTest(x, y): (lower, upper, Hodges-Lehmann estimate) of x - y."""
    test = MannWhitney(x, y)
    z_quant = float(stats.norm.ppf((1.0 - confidence_level) / 2))
    return test.bound(-z_quant), test.bound(z_quant), test.estimate()
