"""A faithful Python re-implementation of Kayenta's canary judge, the reference of the bench.

Ported from spinnaker/kayenta (commit a69573be9d8f, April 2025), file by file:

- ``kayenta-mannwhitney/.../mannwhitney/MannWhitney.scala`` and ``BrentSolver.java``: in
  ``kayenta_mannwhitney`` (the interval of the shift experiment - control, its Hodges-Lehmann
  estimate, Brent's root finder with its absolute tolerance 1e-4), re-exported here.
- ``kayenta-judge/.../classifiers/metric/MannWhitneyClassifier.scala``: class defaults
  ``tolerance=0.25, confLevel=0.95, effectSizeThresholds=(1.0, 1.0),
  criticalThresholds=(1.0, 1.0), effectSizeMeasure="meanRatio"``; High when
  ``lowerConfidence > tolerance * |estimate|`` and the effect size (mean ratio experiment /
  control; NaN when either mean is 0, and then ignored) is at least ``allowedIncrease``; Low
  symmetrically; identical data, or a single distinct value on both sides, is Pass; both
  sides with a single (different) value get Gaussian noise of sd ``value * 1e-5``.
- ``kayenta-judge/.../NetflixACAJudge.scala`` (``classifyMetric``): the judge builds the
  classifier with ``tolerance = 0.25, confLevel = 0.98``; per-metric defaults ``direction
  "either"``, ``nanStrategy "none"`` (parsed as remove), ``critical false``, ``mustHaveData
  false``, ``effectSize.measure "meanRatio"`` with allowed and critical increase/decrease
  1.0 (0.5 for CLES); NaNs are removed (or replaced with 0.0 with ``nanStrategy
  "replace"``); any RuntimeException during classification is an ``Error``.
- NODATA rules (``MannWhitneyClassifier.classify``): an empty side is ``Nodata`` (critical if
  the metric is), or ``NodataFailMetric`` when ``mustHaveData`` is set on a non-critical
  metric; with ``nanStrategy "replace"`` an empty side is a ``Pass``.
- ``kayenta-judge/.../scorers/WeightedSumScorer.scala`` and
  ``classifiers/score/ThresholdScoreClassifier.scala``: a group's score is the share of Pass
  among Pass/High/Low/NodataFailMetric (a group with none of those counts as 100); any critical
  metric not Pass fails the canary (score 0); 50 % or more Nodata metrics fails it; else the
  weighted group scores are compared with the pass and marginal thresholds (95 and 75 in
  Kayenta's documented examples, ``json-formats.md``).

Not reproduced: outlier removal (``outliers.strategy``, off by default) and the Java RNG (the
noise uses a seeded Python RNG). Argument order follows Kayenta: control, then experiment.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .kayenta_mannwhitney import (
    Floats,
    MannWhitney,
    Values,
    brent_solve,
    mann_whitney_u_test,
    wilcoxon_diff,
)

#: NetflixACAJudge.classifyMetric builds its MannWhitneyClassifier with these.
NETFLIX_TOLERANCE = 0.25
NETFLIX_CONFIDENCE = 0.98
#: WeightedSumScorer.NODATA_THRESHOLD (percent of metrics).
NODATA_THRESHOLD = 50.0


__all__ = [
    "NETFLIX_CONFIDENCE",
    "NETFLIX_TOLERANCE",
    "NODATA_THRESHOLD",
    "KayentaJudgement",
    "KayentaMetric",
    "Label",
    "MannWhitney",
    "MannWhitneyClassifier",
    "MannWhitneyResult",
    "MetricClassification",
    "brent_solve",
    "classify_metric",
    "cles",
    "judge",
    "mann_whitney_u_test",
    "mean_ratio",
    "score",
    "wilcoxon_diff",
]


class Label(str, enum.Enum):
    """MetricClassificationLabel."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA_FAIL_METRIC = "NodataFailMetric"
    NODATA = "Nodata"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class MetricClassification:
    label: Label
    reason: str | None
    deviation: float
    critical: bool


@dataclass(frozen=True, slots=True)
class MannWhitneyResult:
    lower: float
    upper: float
    estimate: float
    deviation: float
    effect_size: float


def mean_ratio(control: Values, experiment: Values) -> float:
    """EffectSizes.meanRatio: experiment mean / control mean; NaN when either mean is 0."""
    control_mean, experiment_mean = float(np.mean(control)), float(np.mean(experiment))
    if control_mean == 0.0 or experiment_mean == 0.0:
        return math.nan
    return experiment_mean / control_mean


def cles(control: Values, experiment: Values) -> float:
    """EffectSizes.cles: the share of pairs in which the experiment is higher (ties half)."""
    m, n = len(experiment), len(control)
    ranks = stats.rankdata(np.concatenate((np.asarray(experiment), np.asarray(control))))
    return float((2 * ranks[:m].sum() - m * (m + 1)) / (2 * n * m))


class MannWhitneyClassifier:
    """MannWhitneyClassifier(tolerance, confLevel, effectSizeThresholds, criticalThresholds,
    effectSizeMeasure) with the class's own defaults; ``seed`` drives the tie-breaking noise."""

    def __init__(
        self,
        tolerance: float = 0.25,
        conf_level: float = 0.95,
        effect_size_thresholds: tuple[float, float] = (1.0, 1.0),
        critical_thresholds: tuple[float, float] = (1.0, 1.0),
        effect_size_measure: str = "meanRatio",
        seed: int = 0,
    ) -> None:
        self.tolerance = tolerance
        self.conf_level = conf_level
        self.effect_size_thresholds = effect_size_thresholds
        self.critical_thresholds = critical_thresholds
        self.effect_size_measure = effect_size_measure
        self._random = random.Random(seed)

    def _noise(self, values: Floats) -> Floats:
        stdev = float(values[0]) * 1e-5
        noise = [self._random.gauss(0.0, 1.0) * stdev for _ in range(len(values))]
        return np.asarray(values + np.asarray(noise), dtype=np.float64)

    def mann_whitney(self, experiment: Floats, control: Floats) -> MannWhitneyResult:
        if len(np.unique(experiment)) == 1 and len(np.unique(control)) == 1:
            experiment, control = self._noise(experiment), self._noise(control)
        lower, upper, estimate = mann_whitney_u_test(experiment, control, self.conf_level)
        deviation = mean_ratio(control, experiment)
        effect = cles(control, experiment) if self.effect_size_measure == "cles" else deviation
        return MannWhitneyResult(lower, upper, estimate, deviation, effect)

    def _compare(
        self, experiment: Floats, control: Floats, name: str, direction: str
    ) -> tuple[Label, str | None, float, float]:
        result = self.mann_whitney(experiment, control)
        bound = self.tolerance * abs(result.estimate)
        effect = result.effect_size
        is_high = (
            direction in ("increase", "either")
            and result.lower > bound
            and (math.isnan(effect) or effect >= self.effect_size_thresholds[1])
        )
        is_low = (
            direction in ("decrease", "either")
            and result.upper < -bound
            and (math.isnan(effect) or effect <= self.effect_size_thresholds[0])
        )
        if is_high:
            return Label.HIGH, f"{name} was classified as High", result.deviation, effect
        if is_low:
            return Label.LOW, f"{name} was classified as Low", result.deviation, effect
        return Label.PASS, None, result.deviation, effect

    def classify(
        self,
        control: Values,
        experiment: Values,
        *,
        name: str = "metric",
        direction: str = "either",
        nan_strategy: str = "remove",
        is_critical: bool = False,
        is_data_required: bool = False,
    ) -> MetricClassification:
        """MannWhitneyClassifier.classify (the data already had its NaNs handled)."""
        exp = np.asarray(experiment, dtype=np.float64)
        ctl = np.asarray(control, dtype=np.float64)
        if len(exp) == 0 or len(ctl) == 0:
            if nan_strategy == "remove":
                reason = f"Missing data for {name}"
                if is_data_required and not is_critical:
                    return MetricClassification(Label.NODATA_FAIL_METRIC, reason, 1.0, False)
                return MetricClassification(Label.NODATA, reason, 1.0, is_critical)
            return MetricClassification(Label.PASS, None, 1.0, False)
        if np.array_equal(np.sort(exp), np.sort(ctl)):
            reason = "The Canary and Baseline data are identical"
            return MetricClassification(Label.PASS, reason, 1.0, False)
        if len(np.unique(np.concatenate((exp, ctl)))) == 1:
            return MetricClassification(Label.PASS, None, 1.0, False)
        label, because, deviation, effect = self._compare(exp, ctl, name, direction)
        nan = math.isnan(effect)
        if is_critical and label is Label.HIGH and (nan or effect >= self.critical_thresholds[1]):
            return MetricClassification(
                label, f"The metric {name} was classified as High (Critical)", deviation, True
            )
        if is_critical and label is Label.LOW and (nan or effect <= self.critical_thresholds[0]):
            return MetricClassification(
                label, f"The metric {name} was classified as Low (Critical)", deviation, True
            )
        return MetricClassification(label, because, deviation, False)


@dataclass(frozen=True, slots=True)
class KayentaMetric:
    """A metric's ``analysisConfigurations.canary`` block, with NetflixACAJudge's defaults.
    A metric counts in the score only through its groups (Kayenta's ``groups``)."""

    name: str
    direction: str = "either"
    nan_strategy: str = "none"
    critical: bool = False
    must_have_data: bool = False
    muted: bool = False
    effect_size_measure: str = "meanRatio"
    allowed_increase: float | None = None
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None
    groups: tuple[str, ...] = ("default",)


def classify_metric(
    metric: KayentaMetric,
    *,
    control: Values,
    experiment: Values,
    confidence: float = NETFLIX_CONFIDENCE,
    tolerance: float = NETFLIX_TOLERANCE,
    seed: int = 0,
) -> MetricClassification:
    """NetflixACAJudge.classifyMetric for one metric pair (NaN handling, defaults, Error)."""
    direction = metric.direction if metric.direction in ("increase", "decrease") else "either"
    nan_strategy = "replace" if metric.nan_strategy == "replace" else "remove"
    default = 0.5 if metric.effect_size_measure == "cles" else 1.0

    def _or(value: float | None) -> float:
        return default if value is None else value

    classifier = MannWhitneyClassifier(
        tolerance=tolerance,
        conf_level=confidence,
        effect_size_thresholds=(_or(metric.allowed_decrease), _or(metric.allowed_increase)),
        critical_thresholds=(_or(metric.critical_decrease), _or(metric.critical_increase)),
        effect_size_measure=metric.effect_size_measure,
        seed=seed,
    )

    def handle_nans(values: Values) -> list[float]:
        if nan_strategy == "remove":
            return [v for v in values if not math.isnan(v)]
        return [0.0 if math.isnan(v) else v for v in values]

    try:
        return classifier.classify(
            handle_nans(control),
            handle_nans(experiment),
            name=metric.name,
            direction=direction,
            nan_strategy=nan_strategy,
            is_critical=metric.critical,
            is_data_required=metric.must_have_data,
        )
    except (ArithmeticError, ValueError):  # Kayenta catches any RuntimeException
        return MetricClassification(Label.ERROR, "Metric Classification Failed", math.nan, False)


@dataclass(frozen=True, slots=True)
class KayentaJudgement:
    """The canary's summary: score (0-100), ``Pass``/``Marginal``/``Fail`` and the metrics."""

    score: float
    classification: str
    reason: str | None
    results: tuple[tuple[KayentaMetric, MetricClassification], ...]


def score(
    results: Sequence[tuple[KayentaMetric, MetricClassification]],
    *,
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
    group_weights: Mapping[str, float] | None = None,
) -> KayentaJudgement:
    """WeightedSumScorer.score then ThresholdScoreClassifier.classify."""
    scored = [(m, c) for m, c in results if not m.muted]
    weights = dict(group_weights or {})
    groups: dict[str, list[Label]] = {}
    for metric, result in scored:
        for group in metric.groups:
            groups.setdefault(group, []).append(result.label)
    counted = (Label.PASS, Label.HIGH, Label.LOW, Label.NODATA_FAIL_METRIC)
    reason: str | None = None
    critical = [c for m, c in scored if c.critical and c.label is not Label.PASS]
    nodata = sum(1 for _, c in scored if c.label is Label.NODATA)
    if critical:
        reason, summary = f"Canary Failed: {critical[0].reason}", 0.0
    elif scored and nodata / len(scored) * 100 >= NODATA_THRESHOLD:
        reason = f"Canary Failed: {NODATA_THRESHOLD:.0f}% or more metrics returned NODATA"
        summary = 0.0
    else:
        unweighted = [g for g in groups if g not in weights]
        spare = (100 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
        summary = 0.0
        for group, labels in groups.items():
            total = sum(1 for label in labels if label in counted)
            passed = sum(1 for label in labels if label is Label.PASS)
            effective = 100.0 if total == 0 else passed / total * 100
            summary += effective * (weights.get(group, spare) / 100)
        summary = round(summary, 2)
    if summary >= pass_threshold:
        classification = "Pass"
    elif summary >= marginal_threshold:
        classification = "Marginal"
    else:
        classification = "Fail"
    return KayentaJudgement(summary, classification, reason, tuple(scored))


def judge(
    pairs: Sequence[tuple[KayentaMetric, Values, Values]],
    *,
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
    seed: int = 0,
) -> KayentaJudgement:
    """NetflixACAJudge.judge: classify each (metric, control, experiment), then score."""
    results = [
        (metric, classify_metric(metric, control=control, experiment=experiment, seed=seed))
        for metric, control, experiment in pairs
    ]
    return score(results, pass_threshold=pass_threshold, marginal_threshold=marginal_threshold)
