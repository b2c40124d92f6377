"""The canary judge: a canary's metrics against a baseline's, with the statistics stated.

Pure functions, no I/O except the golden baseline file. One test per kind of metric:

- ``RateData`` (errors out of requests): Miettinen-Nurminen score test on the difference of
  the two rates, defined when the baseline has no error (``rates``);
- ``SampleData`` (per-request latencies): Brunner-Munzel on the samples, a one-sided spread
  test and the quantile's bootstrap interval (``samples``);
- ``HistogramData`` (``le`` buckets): the quantile compared through the share of requests
  above its bucket bound (``histograms``).

``compare(policy, canary, baseline) -> Comparison`` judges one metric, ``judge([(policy,
canary, baseline), ...]) -> Judgement`` several with Benjamini-Hochberg across them;
``power_need`` says how much more data a 10 % regression needs; ``capture_baseline`` and
``load_baseline`` store and read golden baselines; ``kayenta`` is Kayenta's classifier,
re-implemented as the reference. docs/canary.md states the semantics in full.

Importing this package loads neither numpy, scipy nor statsmodels: the names below load their
module on first use (the pytest plugin imports releasegate's packages on every run).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .model import (
    Direction,
    HistogramData,
    Margin,
    MetricData,
    MetricPolicy,
    RateData,
    SampleData,
    Unit,
    Verdict,
)
from .results import BaselineSource, Comparison, Effect, Judgement, Need, Shape, Summary, TestResult

_WHERE = {
    "Baseline": "baseline",
    "BaselineError": "baseline",
    "capture_baseline": "baseline",
    "load_baseline": "baseline",
    "compare": "judging",
    "judge": "judging",
    "power_need": "power",
}

if TYPE_CHECKING:
    from .baseline import Baseline, BaselineError, capture_baseline, load_baseline
    from .judging import compare, judge
    from .power import power_need


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Baseline",
    "BaselineError",
    "BaselineSource",
    "Comparison",
    "Direction",
    "Effect",
    "HistogramData",
    "Judgement",
    "Margin",
    "MetricData",
    "MetricPolicy",
    "Need",
    "RateData",
    "SampleData",
    "Shape",
    "Summary",
    "TestResult",
    "Unit",
    "Verdict",
    "capture_baseline",
    "compare",
    "judge",
    "load_baseline",
    "power_need",
]
