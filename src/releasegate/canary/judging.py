"""The verdicts: one metric (``compare``) or several together (``judge``).

Per metric, in order:

1. NO_DATA when a side is empty or has fewer than ``min_samples`` (the evidence then says
   how much more data a ``detect`` regression needs, ``power.power_need``). With
   ``must_have_data=False`` these are PASSED instead, and the reason says there was no data;
2. FAILED when the regression test's (adjusted) p-value is at most ``alpha``;
3. MARGINAL when, with a margin, the same test without the margin is significant (worse, but
   within the margin), or when the spread test (samples) is significant;
4. PASSED otherwise, with a note of the data a ``detect`` regression would need when there is
   less (NO_DATA instead with ``require_power``).

Several metrics: each family of tests (regression, inside-margin shift, spread) gets
Benjamini-Hochberg over the metrics that ran it (``multipletests(method="fdr_bh")``), and each
adjusted p-value is compared with its metric's ``alpha``; ``compare`` is a family of one. The
overall verdict: any FAILED metric fails the canary (``non_critical_fails=False`` makes a
non-critical metric's FAILED only MARGINAL, as a non-critical check lowers a gate's score
without stopping it; a critical one always fails); otherwise a ``must_have_data`` metric with
NO_DATA makes it NO_DATA; otherwise any MARGINAL makes it MARGINAL; else PASSED.
"""

from __future__ import annotations

from collections.abc import Iterable

from statsmodels.stats.multitest import multipletests

from . import histograms, rates, samples
from .analysis import REGRESSION, SHIFT, SPREAD, Analysis
from .model import HistogramData, MetricData, MetricPolicy, RateData, SampleData, Verdict
from .power import power_need
from .results import BaselineSource, Comparison, Judgement, Summary, TestResult

Item = tuple[MetricPolicy, MetricData, MetricData]


def _kind_check(canary: MetricData, baseline: MetricData) -> None:
    if type(canary) is not type(baseline):
        raise TypeError(
            f"canary ({type(canary).__name__}) and baseline ({type(baseline).__name__}) "
            "must be the same kind of data"
        )


def _analyse(policy: MetricPolicy, canary: MetricData, baseline: MetricData) -> Analysis:
    if isinstance(canary, RateData) and isinstance(baseline, RateData):
        return rates.analyse(policy, canary, baseline)
    if isinstance(canary, SampleData) and isinstance(baseline, SampleData):
        return samples.analyse(policy, canary, baseline)
    if isinstance(canary, HistogramData) and isinstance(baseline, HistogramData):
        return histograms.analyse(policy, canary, baseline)
    raise TypeError(f"not metric data: {type(canary).__name__}")


def _summary(policy: MetricPolicy, data: MetricData) -> Summary:
    if isinstance(data, RateData):
        return rates.summarize(data)
    if isinstance(data, SampleData):
        return samples.summarize(data, policy.quantile)
    return histograms.summarize(data, policy.quantile)


def _kind(data: MetricData) -> str:
    return {RateData: "rate", SampleData: "samples", HistogramData: "histogram"}[type(data)]


def _with_source(reason: str, source: BaselineSource | None) -> str:
    return f"{reason}; baseline: {source.describe()}" if source else reason


def _short(
    policy: MetricPolicy, canary: MetricData, baseline: MetricData, source: BaselineSource | None
) -> Comparison | None:
    """The NO_DATA comparison when a side is empty or below the minimum, else None."""
    name, n_c, n_b = policy.name, canary.count, baseline.count
    if n_c >= policy.min_samples and n_b >= policy.min_samples:
        return None
    need = power_need(policy, canary, baseline) if n_c or n_b else None
    if n_c == 0 or n_b == 0:
        side = "either side" if n_c == n_b == 0 else ("the canary" if n_c == 0 else "the baseline")
        reason = f"no data for {name} on {side}"
    else:
        reason = (
            f"too little data for {name}: canary {n_c:,}, baseline {n_b:,} "
            f"(at least {policy.min_samples:,} per side)"
        )
    if need is not None and need.more > 0:
        reason += f"; {need.sentence}"
    verdict = Verdict.NO_DATA
    if not policy.must_have_data:
        verdict, reason = Verdict.PASSED, f"{reason}; passed because must_have_data is off"
    return Comparison(
        metric=name,
        kind=_kind(canary),
        verdict=verdict,
        reason=_with_source(reason, source),
        policy=policy,
        test=None,
        p_value=None,
        p_adjusted=None,
        effect=None,
        interval=None,
        interval_level=None,
        canary=_summary(policy, canary),
        baseline=_summary(policy, baseline),
        need=need,
        source=source,
    )


def _p(test: TestResult) -> str:
    text = f"p={test.p_value:.2g}"
    if test.p_adjusted is not None and test.p_adjusted != test.p_value:
        text += f" (BH-adjusted {test.p_adjusted:.2g})"
    return text


def _decide(
    policy: MetricPolicy, analysis: Analysis, tests: tuple[TestResult, ...]
) -> tuple[Verdict, str]:
    def significant(role: str) -> TestResult | None:
        test = next((t for t in tests if t.role == role), None)
        p = None if test is None else test.p_adjusted
        return test if p is not None and p <= policy.alpha else None

    name, alpha = policy.name, f"alpha={policy.alpha:g}"
    margin = f" its margin of {policy.margin.describe(policy.unit)}" if policy.margin else ""
    evidence = analysis.effect.description if analysis.effect else ""
    regression = next(t for t in tests if t.role == REGRESSION)
    if significant(REGRESSION):
        beyond = f" beyond{margin}" if margin else ""
        return (
            Verdict.FAILED,
            f"{name} regressed{beyond}: {evidence}; {regression.name} {_p(regression)} <= {alpha}",
        )
    shift = significant(SHIFT)
    if shift:
        return Verdict.MARGINAL, (
            f"{name} is significantly worse but within{margin}: {evidence}; "
            f"{shift.name} {_p(shift)} <= {alpha}, beyond the margin {_p(regression)}"
        )
    spread = significant(SPREAD)
    if spread:
        return Verdict.MARGINAL, (
            f"{name}'s spread grew without a significant shift: {evidence}; "
            f"{spread.name} {_p(spread)} <= {alpha}"
        )
    beyond = f" beyond{margin}" if margin else ""
    return (
        Verdict.PASSED,
        f"no significant regression of {name}{beyond}: {evidence}; "
        f"{regression.name} {_p(regression)} > {alpha}",
    )


def _finish(
    policy: MetricPolicy,
    canary: MetricData,
    baseline: MetricData,
    analysis: Analysis,
    tests: tuple[TestResult, ...],
    source: BaselineSource | None,
) -> Comparison:
    need = None
    if analysis.problem is not None:
        verdict, reason = Verdict.NO_DATA, f"cannot compare {policy.name}: {analysis.problem}"
    else:
        verdict, reason = _decide(policy, analysis, tests)
        if verdict is Verdict.PASSED:
            need = power_need(policy, canary, baseline)
            if need is not None and need.more > 0:
                reason += f"; {need.sentence}"
                if policy.require_power:
                    verdict = Verdict.NO_DATA
                    reason = f"too little data to pass {policy.name} (require_power): {reason}"
    regression = next((t for t in tests if t.role == REGRESSION), None)
    return Comparison(
        metric=policy.name,
        kind=analysis.kind,
        verdict=verdict,
        reason=_with_source(reason, source),
        policy=policy,
        test=regression.name if regression else None,
        p_value=regression.p_value if regression else None,
        p_adjusted=regression.p_adjusted if regression else None,
        effect=analysis.effect,
        interval=analysis.interval,
        interval_level=analysis.interval_level,
        canary=analysis.canary,
        baseline=analysis.baseline,
        tests=tests,
        need=need,
        shape=analysis.shape,
        source=source,
    )


def _adjust(analyses: dict[int, Analysis]) -> dict[int, tuple[TestResult, ...]]:
    """Benjamini-Hochberg within each family of tests, across the metrics that ran it."""
    adjusted: dict[int, list[TestResult]] = {i: [] for i in analyses}
    for role in (REGRESSION, SHIFT, SPREAD):
        family = [(i, t) for i, a in analyses.items() for t in a.tests if t.role == role]
        if not family:
            continue
        _, corrected, _, _ = multipletests([t.p_value for _, t in family], method="fdr_bh")
        for (i, test), p in zip(family, corrected, strict=True):
            adjusted[i].append(
                TestResult(test.role, test.name, test.statistic, test.p_value, min(1.0, float(p)))
            )
    return {i: tuple(tests) for i, tests in adjusted.items()}


def _overall(comparisons: tuple[Comparison, ...], non_critical_fails: bool) -> tuple[Verdict, str]:
    def names(items: list[Comparison]) -> str:
        return ", ".join(c.metric + (" (critical)" if c.critical else "") for c in items)

    total = len(comparisons)
    if not comparisons:
        return Verdict.NO_DATA, "no metric to judge"
    failed = [c for c in comparisons if c.verdict is Verdict.FAILED]
    failed.sort(key=lambda c: not c.critical)
    if failed and (non_critical_fails or failed[0].critical):
        return (
            Verdict.FAILED,
            f"{names(failed)} regressed ({len(failed)} of {total} metrics): {failed[0].reason}",
        )
    missing = [c for c in comparisons if c.verdict is Verdict.NO_DATA and c.policy.must_have_data]
    if missing:
        return Verdict.NO_DATA, f"no verdict for {names(missing)}: {missing[0].reason}"
    marginal = failed + [c for c in comparisons if c.verdict is Verdict.MARGINAL]
    if marginal:
        what = "non-critical regression" if failed else "marginal"
        return (
            Verdict.MARGINAL,
            f"{names(marginal)} {what} ({len(marginal)} of {total} metrics): {marginal[0].reason}",
        )
    if total == 1:
        return Verdict.PASSED, comparisons[0].reason
    # The numbers of each metric, so that a pass says what was measured, not only that it was.
    seen = "; ".join(
        f"{c.metric} {c.effect.description.split('; ')[0]}" for c in comparisons if c.effect
    )
    return Verdict.PASSED, f"all {total} metrics passed" + (f": {seen}" if seen else "")


def judge(
    items: Iterable[Item],
    *,
    source: BaselineSource | None = None,
    non_critical_fails: bool = True,
) -> Judgement:
    """Judge several metrics of one canary together: ``items`` are (policy, canary,
    baseline); ``source`` describes a golden baseline used for all of them."""
    items = list(items)
    names = [policy.name for policy, _, _ in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"metric names must be unique: {', '.join(duplicates)}")
    results: dict[int, Comparison] = {}
    analyses: dict[int, Analysis] = {}
    for i, (policy, canary, baseline) in enumerate(items):
        _kind_check(canary, baseline)
        short = _short(policy, canary, baseline, source)
        if short is not None:
            results[i] = short
        else:
            analyses[i] = _analyse(policy, canary, baseline)
    for i, tests in _adjust(analyses).items():
        policy, canary, baseline = items[i]
        results[i] = _finish(policy, canary, baseline, analyses[i], tests, source)
    comparisons = tuple(results[i] for i in range(len(items)))
    verdict, reason = _overall(comparisons, non_critical_fails)
    return Judgement(verdict=verdict, reason=reason, comparisons=comparisons)


def compare(
    policy: MetricPolicy,
    canary: MetricData,
    baseline: MetricData,
    *,
    source: BaselineSource | None = None,
) -> Comparison:
    """Judge one metric: canary against baseline (a family of one: p_adjusted = p_value)."""
    return judge([(policy, canary, baseline)], source=source).comparisons[0]
