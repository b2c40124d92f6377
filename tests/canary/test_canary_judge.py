"""Several metrics: Benjamini-Hochberg, the overall verdict, NO_DATA, the record's shape."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from releasegate.canary import (
    MetricPolicy,
    RateData,
    SampleData,
    Verdict,
    compare,
    judge,
)

HEALTHY = (RateData(30, 3000), RateData(30, 3000))
BROKEN = (RateData(90, 3000), RateData(30, 3000))


def latency(seed: int, scale: float = 1.0, n: int = 500) -> SampleData:
    values = np.random.default_rng(seed).lognormal(np.log(50), 0.6, n) * scale
    return SampleData(values, minutes=5.0)


def test_importing_the_package_loads_no_numerical_library() -> None:
    code = (
        "import sys, releasegate.canary as c\n"
        "heavy = [m for m in ('numpy', 'scipy', 'statsmodels') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert c.Verdict.NO_DATA.value == 'no_data'\n"
        "from releasegate.canary import compare\n"  # loads the judging module ...
        "from releasegate.canary import judge\n"  # ... whose name must not shadow judge()
        "assert callable(judge) and judge.__name__ == 'judge', judge\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_benjamini_hochberg_across_metrics() -> None:
    items = [
        (MetricPolicy("a"), RateData(45, 3000), RateData(30, 3000)),
        (MetricPolicy("b"), RateData(60, 3000), RateData(30, 3000)),
        (MetricPolicy("c"), RateData(31, 3000), RateData(30, 3000)),
        (MetricPolicy("d"), latency(1, 1.2), latency(2)),
    ]
    result = judge(items)
    raw = [c.p_value for c in result.comparisons]
    expected = multipletests(raw, method="fdr_bh")[1]
    assert [c.p_adjusted for c in result.comparisons] == pytest.approx(list(expected))
    assert all(
        c.p_value == compare(*item).p_value
        for c, item in zip(result.comparisons, items, strict=True)
    )
    spread = [t for c in result.comparisons for t in c.tests if t.role == "spread"]
    assert len(spread) == 1 and spread[0].p_adjusted == spread[0].p_value  # a family of one


def test_adjustment_can_turn_a_failure_into_a_pass() -> None:
    borderline = (MetricPolicy("edge"), RateData(52, 3000), RateData(30, 3000))
    alone = compare(*borderline)
    assert alone.verdict is Verdict.FAILED and alone.p_value > 0.005  # type: ignore[operator]
    others = [(MetricPolicy(f"m{i}"), *HEALTHY) for i in range(4)]
    together = judge([borderline, *others]).comparisons[0]
    assert together.p_adjusted > 0.01  # type: ignore[operator]
    assert together.verdict is Verdict.PASSED
    assert "BH-adjusted" in together.reason


def test_any_failure_fails_and_critical_ones_come_first() -> None:
    result = judge(
        [
            (MetricPolicy("errors"), *BROKEN),
            (MetricPolicy("latency", critical=True), latency(3, 1.3), latency(4)),
            (MetricPolicy("other"), *HEALTHY),
        ]
    )
    assert result.verdict is Verdict.FAILED
    assert result.reason.startswith("latency (critical), errors regressed (2 of 3 metrics)")
    assert [c.metric for c in result.critical_failures] == ["latency"]


def test_non_critical_failures_can_be_only_marginal() -> None:
    items = [(MetricPolicy("errors"), *BROKEN), (MetricPolicy("other", critical=True), *HEALTHY)]
    assert judge(items).verdict is Verdict.FAILED
    relaxed = judge(items, non_critical_fails=False)
    assert relaxed.verdict is Verdict.MARGINAL
    assert "non-critical regression" in relaxed.reason
    critical = [(MetricPolicy("errors", critical=True), *BROKEN)]
    assert judge(critical, non_critical_fails=False).verdict is Verdict.FAILED


def test_no_data_outranks_marginal_and_pass_but_not_failure() -> None:
    empty = (MetricPolicy("queue"), SampleData([]), SampleData([]))
    result = judge([(MetricPolicy("errors"), *HEALTHY), empty])
    assert result.verdict is Verdict.NO_DATA
    assert "no data for queue on either side" in result.reason
    assert judge([(MetricPolicy("errors"), *BROKEN), empty]).verdict is Verdict.FAILED
    optional = (MetricPolicy("queue", must_have_data=False), SampleData([]), latency(5))
    passed = judge([(MetricPolicy("errors"), *HEALTHY), optional])
    assert passed.verdict is Verdict.PASSED
    reason = passed.comparisons[1].reason
    assert reason.startswith("no data for queue on the canary; need ≈")
    assert reason.endswith("; passed because must_have_data is off")


def test_one_side_empty_is_no_data() -> None:
    assert compare(MetricPolicy("e"), RateData(0, 0), RateData(3, 900)).verdict is Verdict.NO_DATA
    result = compare(MetricPolicy("e"), RateData(3, 900), RateData(0, 0))
    assert result.verdict is Verdict.NO_DATA and "on the baseline" in result.reason


def test_judgement_to_dict_is_json_without_nan() -> None:
    result = judge(
        [
            (MetricPolicy("errors"), RateData(10, 3000, 5.0), RateData(0, 3000, 5.0)),
            (MetricPolicy("latency"), latency(6), latency(7)),
            (MetricPolicy("empty"), SampleData([]), SampleData([])),
        ]
    )
    text = json.dumps(result.to_dict(), allow_nan=False)
    doc = json.loads(text)
    assert doc["verdict"] == "failed" and doc["correction"] == "Benjamini-Hochberg"
    errors, lat, empty = doc["metrics"]
    assert errors["effect"]["relative"] is None  # a ratio to a zero rate
    assert errors["canary"]["events"] == 10 and errors["baseline"]["rate"] == 0.0
    assert lat["tests"][0]["role"] == "regression" and len(lat["shape"]["x"]) <= 60
    assert empty["verdict"] == "no_data" and empty["p_value"] is None


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="unique"):
        judge([(MetricPolicy("a"), *HEALTHY), (MetricPolicy("a"), *HEALTHY)])
    with pytest.raises(TypeError, match="same kind"):
        compare(MetricPolicy("a"), RateData(1, 10), SampleData([1.0]))
    with pytest.raises(ValueError, match="alpha"):
        MetricPolicy("a", alpha=1.5)
    with pytest.raises(ValueError, match="min_samples"):
        MetricPolicy("a", min_samples=0)
    assert judge([]).verdict is Verdict.NO_DATA
