"""Kayenta's classifier, re-implemented: its own test suite's cases, and its false passes.

The expected values are those of spinnaker/kayenta's MannWhitneySuite.scala and
ClassifierSuite.scala (commit a69573be9d8f); their cases, data included, are in fixtures/.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from releasegate.canary import MetricPolicy, RateData, SampleData, Verdict, compare, judge
from releasegate.canary import kayenta as kay

FIXTURES = Path(__file__).parent / "fixtures"
CASES = json.loads((FIXTURES / "kayenta_classifier_suite.json").read_text())["cases"]
MW_CASES = json.loads((FIXTURES / "kayenta_mannwhitney_suite.json").read_text())["cases"]
L = kay.Label


def test_mann_whitney_interval_and_estimate() -> None:
    # MannWhitneySuite "Mann-Whitney Confidence Interval & Estimate".
    assert kay.mann_whitney_u_test([10.0, 20, 30, 40], [1.0, 2, 3, 4]) == pytest.approx(
        (6.0, 39.0, 22.5)
    )


@pytest.mark.parametrize("case", MW_CASES, ids=[c["name"] for c in MW_CASES])
def test_kayentas_mann_whitney_suite(case: dict[str, Any]) -> None:
    """MannWhitneySuite's cases on 90 to 850 values a side, some tied out with R."""
    tolerance = case["tolerance"]
    expected = case["expected"]
    if case["kind"] == "wilcoxon_diff":
        for point in expected:
            value = kay.wilcoxon_diff(point["mu"], point["quantile"], case["x"], case["y"])
            assert value == pytest.approx(point["value"], abs=tolerance)
    elif case["kind"] == "interval":
        lower, upper, estimate = kay.mann_whitney_u_test(
            case["experiment"], case["control"], case["confidence"]
        )
        assert lower == pytest.approx(expected["lower"], abs=tolerance)
        assert upper == pytest.approx(expected["upper"], abs=tolerance)
        assert estimate == pytest.approx(expected["estimate"], abs=case["estimate_tolerance"])
    else:
        test = kay.MannWhitney(case["x"], case["y"])
        z = expected["z"]
        x, y = np.asarray(case["x"]), np.asarray(case["y"])
        assert (test.mu_min, test.mu_max) == pytest.approx((expected["mu_min"], expected["mu_max"]))
        assert kay.wilcoxon_diff(test.mu_min, z, x, y) == pytest.approx(expected["f_lower1"])
        assert kay.wilcoxon_diff(test.mu_max, z, x, y) == pytest.approx(expected["f_upper1"])
        assert kay.wilcoxon_diff(test.mu_min, -z, x, y) == pytest.approx(expected["f_lower2"])
        assert kay.wilcoxon_diff(test.mu_max, -z, x, y) == pytest.approx(expected["f_upper2"])
        assert test.bound(z) == pytest.approx(expected["ci_lower"], abs=tolerance)
        assert test.bound(-z) == pytest.approx(expected["ci_upper"], abs=tolerance)
        assert test.estimate() == pytest.approx(expected["estimate"], abs=tolerance)


def test_wilcoxon_diff_is_kayentas_rank_formula() -> None:
    def reference(mu: float, q: float, x: np.ndarray, y: np.ndarray) -> float:
        # MannWhitney.wilcoxonDiff, literally: rank x - mu with y, average ranks.
        nx, ny = len(x), len(y)
        ranks = stats.rankdata(np.concatenate((x - mu, y)))
        dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        _, ties = np.unique(ranks, return_counts=True)
        sigma = math.sqrt(
            nx * ny / 12 * ((nx + ny + 1) - (ties**3.0 - ties).sum() / ((nx + ny) * (nx + ny - 1)))
        )
        return (dz - np.sign(dz) * 0.5) / sigma - q

    rng = np.random.default_rng(4)
    for _ in range(300):
        x = rng.integers(0, 5, rng.integers(2, 25)).astype(float)
        y = rng.integers(0, 5, rng.integers(2, 25)).astype(float)
        mu = float(rng.integers(-2, 3)) if rng.random() < 0.5 else float(rng.normal())
        if len(np.unique(np.concatenate((x - mu, y)))) == 1:
            continue
        assert kay.wilcoxon_diff(mu, 1.3, x, y) == pytest.approx(
            reference(mu, 1.3, x, y), abs=1e-12
        )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kayentas_classifier_suite(case: dict[str, Any]) -> None:
    """Every MannWhitneyClassifier test of Kayenta's ClassifierSuite, with its data."""
    arguments = dict(case["classifier"])
    for key in ("effect_size_thresholds", "critical_thresholds"):
        if key in arguments:
            arguments[key] = tuple(arguments[key])
    result = kay.MannWhitneyClassifier(**arguments).classify(
        case["control"],
        case["experiment"],
        direction=case["direction"],
        nan_strategy=case["nan_strategy"],
        is_critical=case["critical"],
    )
    assert result.label.value == case["expected"]
    if case["expected_critical"] is not None:
        assert result.critical is case["expected_critical"]


def test_the_suite_is_all_there() -> None:
    assert len(CASES) == 33
    assert sum(len(c["experiment"]) > 100 for c in CASES) == 2  # the zero-heavy large inputs


def test_no_data_rules() -> None:
    metric = kay.KayentaMetric("m")
    empty = kay.classify_metric(metric, control=[1.0, 2.0], experiment=[])
    assert empty.label is L.NODATA and not empty.critical
    critical = kay.classify_metric(kay.KayentaMetric("m", critical=True), control=[], experiment=[])
    assert critical.label is L.NODATA and critical.critical and critical.reason
    required = kay.classify_metric(
        kay.KayentaMetric("m", must_have_data=True), control=[], experiment=[]
    )
    assert required.label is L.NODATA_FAIL_METRIC
    replaced = kay.classify_metric(
        kay.KayentaMetric("m", nan_strategy="replace"), control=[1.0], experiment=[]
    )
    assert replaced.label is L.PASS
    nans = kay.classify_metric(metric, control=[math.nan, math.nan], experiment=[1.0])
    assert nans.label is L.NODATA  # NaNs removed first


def test_scorer_rules() -> None:
    def result(label: kay.Label, critical: bool = False) -> kay.MetricClassification:
        return kay.MetricClassification(label, f"{label.value} reason", 1.0, critical)

    def metric(name: str, group: str, **kw: bool) -> kay.KayentaMetric:
        return kay.KayentaMetric(name, groups=(group,), **kw)

    three = [metric("a", "g1"), metric("b", "g2"), metric("c", "g3")]
    passing = kay.score(
        list(zip(three, [result(L.PASS), result(L.PASS), result(L.NODATA)], strict=True))
    )
    assert (passing.score, passing.classification) == (100.0, "Pass")
    one_high = kay.score(
        list(zip(three, [result(L.HIGH), result(L.PASS), result(L.PASS)], strict=True))
    )
    assert (one_high.score, one_high.classification) == (66.67, "Fail")
    critical = kay.score(
        list(zip(three, [result(L.PASS), result(L.LOW, True), result(L.PASS)], strict=True))
    )
    assert critical.score == 0.0 and critical.reason == "Canary Failed: Low reason"
    nodata = kay.score(
        list(zip(three, [result(L.NODATA), result(L.NODATA), result(L.PASS)], strict=True))
    )
    assert nodata.score == 0.0 and "50% or more metrics returned NODATA" in (nodata.reason or "")
    required = kay.score(
        list(
            zip(three, [result(L.NODATA_FAIL_METRIC), result(L.PASS), result(L.PASS)], strict=True)
        )
    )
    assert (required.score, required.classification) == (66.67, "Fail")
    weighted = kay.score(
        list(zip(three, [result(L.HIGH), result(L.PASS), result(L.PASS)], strict=True)),
        group_weights={"g1": 10.0},
    )
    assert weighted.score == 90.0 and weighted.classification == "Marginal"
    muted = kay.score([(metric("a", "g1", muted=True), result(L.HIGH)), (three[1], result(L.PASS))])
    assert muted.score == 100.0


# --- Kayenta's known false passes: Kayenta passes them, releasegate does not. ---


def test_zero_error_baseline() -> None:
    # An hour of 1-minute error percentages (100 requests a minute): none on the baseline, an
    # error now and then on the canary (10 errors in 6,000 requests).
    canary = [0.0] * 60
    for minute in (3, 11, 17, 24, 30, 38, 41, 47, 52, 58):
        canary[minute] = 1.0
    metric = kay.KayentaMetric("errors", direction="increase")
    assert kay.classify_metric(metric, control=[0.0] * 60, experiment=canary).label is L.PASS
    result = compare(MetricPolicy("errors"), RateData(10, 6000), RateData(0, 6000))
    assert result.verdict is Verdict.FAILED


def test_both_sides_empty() -> None:
    rng = np.random.default_rng(5)
    healthy = [rng.lognormal(3, 0.5, 300) for _ in range(4)]
    pairs = [
        (kay.KayentaMetric("latency", groups=("latency",)), healthy[0], healthy[1]),
        (kay.KayentaMetric("cpu", groups=("system",)), healthy[2], healthy[3]),
        (kay.KayentaMetric("queue", groups=("queue",)), [], []),
    ]
    verdict = kay.judge(pairs)
    assert verdict.classification == "Pass" and verdict.score == 100.0
    ours = judge(
        [
            (MetricPolicy("latency"), SampleData(healthy[1]), SampleData(healthy[0])),
            (MetricPolicy("cpu"), SampleData(healthy[3]), SampleData(healthy[2])),
            (MetricPolicy("queue"), SampleData([]), SampleData([])),
        ]
    )
    assert ours.verdict is Verdict.NO_DATA


def test_variance_only_change() -> None:
    rng = np.random.default_rng(6)
    baseline = rng.lognormal(np.log(50), 0.6, 1000)
    canary = rng.lognormal(np.log(50), 0.9, 1000)  # same median, wider
    metric = kay.KayentaMetric("latency", direction="increase")
    assert kay.classify_metric(metric, control=baseline, experiment=canary).label is L.PASS
    result = compare(MetricPolicy("latency"), SampleData(canary), SampleData(baseline))
    assert result.verdict is Verdict.MARGINAL
