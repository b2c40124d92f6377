"""Computations over scraped Prometheus text exposition (a target's ``/metrics``).

A scrape becomes a ``Snapshot``: its time (given by the caller, the same clock as the
window's ``now``) and every sample by ``(metric name, labels)``. Sample names are those of the
exposition: ``http_requests_total``, ``latency_seconds_bucket``, a counter declared without the
``_total`` suffix keeps its own name. A scrape with the same series twice is refused, as
Prometheus refuses it.

Functions over two or more snapshots (sorted by time; times must differ):

- ``increase``: per series, the sum of the rises between consecutive snapshots. A drop means
  the counter restarted from 0 (a process restart), so the new value is all increase. A series
  that is absent from an earlier snapshot and then appears counts from 0: client libraries
  create a labelled series at its first increment, so the first ``code="500"`` is an increase
  of 1, not the start of the series. A series present in the first snapshot counts from its
  value there (nothing is known before). A series that disappears and comes back continues from
  its last value (a drop is a reset). Prometheus's ``increase()`` differs on purpose: it does
  not count from absence (so it misses a lazily created series' first events) and it
  extrapolates to the window's edges; here the snapshots *are* the window and nothing is
  extrapolated. A series whose labels change (a new ``instance``) is a new series and counts
  from 0.
- ``rate``: ``increase`` divided by the time between the first and the last snapshot.
- ``ratio``: the summed increase of the numerator's series over the denominator's. No increase
  of the denominator is no data, never ``0/0`` taken for a pass. A numerator that selects no
  series counts as 0 when its metric name is known to the snapshots, by a sample or by its
  ``# TYPE``/``# HELP`` line (no ``code="500"`` series means no 5xx yet), and as no data when
  the name is unknown altogether (a typo).
- ``histogram_quantile``: the φ-quantile from the increases of a histogram's ``_bucket``
  series, grouped ``by`` labels, with Prometheus's rules (``bucket_quantile``).

``gauge`` reads one snapshot. Functions take a selector as text or as a ``Selector``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from .selector import Selector, parse_selector
from .series import Labels, as_labels

SeriesKey = tuple[str, Labels]
#: A scrape with more series than this is refused (a cardinality explosion, not a measurement).
MAX_SERIES = 100_000
_COUNTER_TYPE = re.compile(r"^\s*#\s*TYPE\s+(\S+)\s+counter\s*$", re.MULTILINE)
_DECLARED = re.compile(r"^\s*#\s*(?:TYPE|HELP)\s+(\S+)", re.MULTILINE)
_FAMILY_SUFFIXES = frozenset({"total", "bucket", "count", "sum", "created"})
_PRECISION = 1e-12


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One scrape: ``samples[(name, labels)] = value`` at time ``t``; ``declared`` holds the
    metric names of its ``# TYPE`` and ``# HELP`` lines (a labelled metric is declared before
    its first series exists)."""

    t: float
    samples: Mapping[SeriesKey, float]
    declared: frozenset[str] = frozenset()

    def select(self, selector: Selector | str) -> dict[SeriesKey, float]:
        """The samples ``selector`` selects."""
        sel = _selector(selector)
        return {
            key: value for key, value in self.samples.items() if sel.matches(key[0], dict(key[1]))
        }

    def has_metric(self, name: str) -> bool:
        """Whether the scrape knows ``name``: a sample of it, or a declaration of it or of its
        family (``foo`` declares ``foo_total``, ``foo_bucket``, ``foo_count``, ``foo_sum``)."""
        if name in self.declared or any(key[0] == name for key in self.samples):
            return True
        base, _, suffix = name.rpartition("_")
        return suffix in _FAMILY_SUFFIXES and base in self.declared


def parse_exposition(text: str, t: float, max_series: int = MAX_SERIES) -> Snapshot:
    """Parse Prometheus text exposition taken at time ``t``.

    Raises ValueError for text that is not the exposition format, a series given twice, or
    more than ``max_series`` series. The caller bounds the size of ``text``.
    """
    declared = set(_COUNTER_TYPE.findall(text))
    samples: dict[SeriesKey, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            # The parser renames the samples of a counter declared without `_total` (foo →
            # foo_total); give them back the name the target exposed.
            restore = family.type == "counter" and family.name in declared
            for sample in family.samples:
                name = sample.name
                if restore and name == family.name + "_total" and name not in declared:
                    name = family.name
                key = (name, as_labels(sample.labels))
                if key in samples:
                    raise ValueError(f"series {_show(key)} appears twice in one scrape")
                samples[key] = float(sample.value)
                if len(samples) > max_series:
                    raise ValueError(f"more than {max_series} series in one scrape")
    except ValueError as err:
        raise ValueError(f"the metrics text could not be read: {err or 'malformed line'}") from err
    except Exception as err:  # the parser fails on some malformed lines with other errors
        raise ValueError(
            f"the metrics text could not be read: {type(err).__name__}: {err}"
        ) from err
    return Snapshot(t, samples, frozenset(_DECLARED.findall(text)))


def gauge(snapshot: Snapshot, selector: Selector | str) -> dict[SeriesKey, float]:
    """The current value of each selected series."""
    return snapshot.select(selector)


def increase(snapshots: Sequence[Snapshot], selector: Selector | str) -> dict[SeriesKey, float]:
    """Per selected series, how much it rose across ``snapshots`` (see the module doc)."""
    ordered = _ordered(snapshots)
    sel = _selector(selector)
    selected = [snap.select(sel) for snap in ordered]
    keys = sorted({key for found in selected for key in found})
    result: dict[SeriesKey, float] = {}
    for key in keys:
        total, last, absent_before = 0.0, None, False
        for found in selected:
            value = found.get(key)
            if value is None or not math.isfinite(value):
                absent_before = absent_before or last is None
                continue
            if last is None:
                if absent_before:
                    total += value  # created within the window: it counted from 0
            else:
                total += value - last if value >= last else value
            last = value
        result[key] = total
    return result


def total_increase(snapshots: Sequence[Snapshot], selector: Selector | str) -> float | None:
    """The summed increase of the selected series, or None when none is selected."""
    found = increase(snapshots, selector)
    return math.fsum(found.values()) if found else None


def rate(snapshots: Sequence[Snapshot], selector: Selector | str) -> dict[SeriesKey, float]:
    """Per selected series, its increase per second between the first and last snapshot."""
    ordered = _ordered(snapshots)
    elapsed = ordered[-1].t - ordered[0].t
    return {key: inc / elapsed for key, inc in increase(ordered, selector).items()}


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator / denominator`` of summed increases; ``value`` None (with ``problem``) when
    there is no data."""

    value: float | None
    numerator: float | None
    denominator: float | None
    problem: str = ""


def ratio(
    snapshots: Sequence[Snapshot], numerator: Selector | str, denominator: Selector | str
) -> Ratio:
    """The ratio of the numerator's increase to the denominator's (see the module doc)."""
    ordered = _ordered(snapshots)
    num_sel, den_sel = _selector(numerator), _selector(denominator)
    den = total_increase(ordered, den_sel)
    num = total_increase(ordered, num_sel)
    if num is None and num_sel.name and any(s.has_metric(num_sel.name) for s in ordered):
        num = 0.0
    if den is None:
        return Ratio(None, num, None, f"the denominator {den_sel} selects no series")
    if num is None:
        return Ratio(None, None, den, f"the numerator {num_sel} selects no series")
    if den <= 0:
        return Ratio(None, num, den, f"no increase of {den_sel} in the window: no events")
    return Ratio(num / den, num, den)


@dataclass(frozen=True, slots=True)
class Quantile:
    """A quantile estimate; ``value`` None (with ``problem``) when the buckets cannot say.
    ``observations`` is the increase of the ``+Inf`` bucket over the window."""

    value: float | None
    observations: float
    problem: str = ""


def histogram_quantile(
    q: float,
    snapshots: Sequence[Snapshot],
    selector: Selector | str,
    by: Iterable[str] = (),
) -> dict[Labels, Quantile]:
    """The ``q``-quantile of the observations made between the first and last snapshot, per
    group of the ``by`` labels (all series together by default), like
    ``histogram_quantile(q, sum by (by..., le) (increase(x_bucket[w])))``.

    ``selector`` selects the ``_bucket`` series (a name without the suffix gets it). Series
    without a readable ``le`` label are ignored, as Prometheus ignores them. ``q`` outside
    [0, 1] is a ValueError (PromQL returns ±Inf). An empty result means no bucket series.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q!r}: a number from 0 to 1 (0.95 for p95)")
    group_by = tuple(by)
    if "le" in group_by:
        raise ValueError("'le' is the bucket label: leave it out of 'by'")
    sel = _selector(selector)
    if sel.name and not sel.name.endswith("_bucket"):
        sel = sel.with_name(sel.name + "_bucket")
    groups: dict[Labels, dict[float, float]] = {}
    for (_, labels), inc in increase(snapshots, sel).items():
        label_map = dict(labels)
        upper = _bucket_bound(label_map.get("le"))
        if upper is None:
            continue
        group = tuple((k, v) for k, v in labels if k in group_by)
        buckets = groups.setdefault(group, {})
        buckets[upper] = buckets.get(upper, 0.0) + inc  # "1" and "1.0" are one bucket
    return {group: _quantile(q, buckets) for group, buckets in sorted(groups.items())}


def _quantile(q: float, buckets: Mapping[float, float]) -> Quantile:
    observations = buckets.get(math.inf, 0.0)
    value, problem = bucket_quantile(q, buckets.items())
    return Quantile(value, observations, problem)


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> tuple[float | None, str]:
    """Prometheus's ``bucketQuantile`` on ``(upper bound, cumulative count)`` pairs.

    Linear interpolation inside the bucket that holds rank ``q * observations``; the lowest
    bucket starts at 0 when its bound is positive (if it is ≤ 0, its bound is the answer); a
    rank in the ``+Inf`` bucket answers the highest finite bound. Counts equal up to a relative
    1e-12 are made equal, then any decrease is raised to the running maximum (the monotonicity
    fix). No ``+Inf`` bucket, fewer than two buckets or no observations: no value, with the
    problem. One deviation: for ``q = 0`` the answer is the lower edge of the first non-empty
    bucket, where Prometheus divides 0 by 0 when the lowest bucket is empty.
    """
    merged: dict[float, float] = {}
    for upper, count in buckets:
        merged[upper] = merged.get(upper, 0.0) + count
    bounds = sorted(merged)
    if not bounds or bounds[-1] != math.inf:
        return None, "the histogram has no +Inf bucket"
    counts = [merged[b] for b in bounds]
    prev = counts[0]
    for i in range(1, len(counts)):
        delta = abs(counts[i] - prev)
        if delta == 0:
            continue
        if counts[i] != 0 and delta / counts[i] <= _PRECISION:
            counts[i] = prev
        else:
            prev = counts[i]
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    if len(bounds) < 2:
        return None, "the histogram has fewer than two buckets"
    observations = counts[-1]
    if observations <= 0:
        return None, "no observations in the window"
    rank = q * observations
    last = len(bounds) - 1
    b = next((i for i in range(last) if counts[i] >= rank), last)
    if rank == 0:
        b = next((i for i in range(last) if counts[i] > 0), last)
    if b == last:
        return bounds[-2], ""
    if b == 0 and bounds[0] <= 0:
        return bounds[0], ""
    start = bounds[b - 1] if b > 0 else 0.0
    if rank == 0:
        return start, ""
    below = counts[b - 1] if b > 0 else 0.0
    return start + (bounds[b] - start) * ((rank - below) / (counts[b] - below)), ""


def _bucket_bound(le: str | None) -> float | None:
    if le is None:
        return None
    try:
        bound = float(le)
    except ValueError:
        return None
    return None if math.isnan(bound) or bound == -math.inf else bound


def _ordered(snapshots: Sequence[Snapshot]) -> list[Snapshot]:
    if len(snapshots) < 2:
        raise ValueError(f"{len(snapshots)} snapshot(s): increase, rate and ratio need two or more")
    ordered = sorted(snapshots, key=lambda s: s.t)
    for a, b in itertools.pairwise(ordered):
        if not b.t > a.t:
            raise ValueError(f"two snapshots at the same time {a.t!r}: scrape times must differ")
    return ordered


def _selector(selector: Selector | str) -> Selector:
    return selector if isinstance(selector, Selector) else parse_selector(selector)


def _show(key: SeriesKey) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in key[1])
    return f"{key[0]}{{{inner}}}"
