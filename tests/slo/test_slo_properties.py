"""The SLO core's promises as hypothesis properties."""

from __future__ import annotations

import itertools
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from releasegate.model import Status
from releasegate.slo import (
    BurnRule,
    Condition,
    Point,
    Snapshot,
    UnitKind,
    Window,
    evaluate_burn,
    evaluate_window,
    histogram_quantile,
    parse_condition,
    rules_for,
    total_increase,
)
from releasegate.slo.window import judge_steps

SETTINGS = settings(deadline=None, database=None, max_examples=150)
finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
ordering = st.sampled_from(["<", "<=", ">", ">="])
conditions = st.builds(
    lambda op, threshold: Condition(op, threshold, UnitKind.NUMBER, f"{op} {threshold!r}"),
    ordering,
    finite,
)
LATENCY = parse_condition("< 300ms")


@SETTINGS
@given(condition=conditions, value=st.floats(allow_nan=True, allow_infinity=True))
def test_a_condition_and_its_negation_never_both_hold(condition: Condition, value: float) -> None:
    negation = condition.negated()
    assert not (condition.holds(value) and negation.holds(value))
    if not math.isnan(value):
        assert condition.holds(value) or negation.holds(value)


step_value = st.one_of(st.none(), st.floats(min_value=0, max_value=0.299))


@SETTINGS
@given(
    values=st.lists(step_value, min_size=1, max_size=80),
    min_coverage=st.floats(min_value=0.01, max_value=1.0),
)
def test_coverage_below_the_floor_is_never_passed(
    values: list[float | None], min_coverage: float
) -> None:
    window = Window(len(values), 1, min_coverage=min_coverage)
    verdict = judge_steps(values, LATENCY, window, now=100.0)
    if verdict.coverage < min_coverage or verdict.steps_with_data == 0:
        assert verdict.status is not Status.PASSED
        assert verdict.status is Status.NO_DATA
    else:
        assert verdict.status is Status.PASSED


@SETTINGS
@given(
    values=st.lists(step_value, min_size=1, max_size=80),
    data=st.data(),
    breach=st.floats(min_value=0.3, max_value=1e6),
)
def test_one_breach_at_any_step_fails(
    values: list[float | None], data: st.DataObject, breach: float
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    values[index] = breach
    window = Window(len(values), 1)
    now = 1000.0
    points = [Point(window.step_time(i, now), v) for i, v in enumerate(values)]
    verdict = evaluate_window(points, LATENCY, window, now)
    assert verdict.status is Status.FAILED
    assert verdict.breaches == (index,)
    assert verdict.worst == breach


BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Observations on a bucket bound belong to that bucket (le is inclusive): draw some exactly.
observed = st.one_of(st.sampled_from(BOUNDS), st.floats(min_value=0, max_value=12))


def _bucket_snapshots(observations: list[float], bounds: list[float]) -> list[Snapshot]:
    def counts(values: list[float]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            ("lat_bucket", (("le", repr(b) if b != math.inf else "+Inf"),)): float(
                sum(v <= b for v in values)
            )
            for b in [*bounds, math.inf]
        }

    return [Snapshot(0, counts([])), Snapshot(60, counts(observations))]


@SETTINGS
@given(
    observations=st.lists(observed, min_size=1, max_size=200),
    bounds=st.lists(st.sampled_from(BOUNDS), min_size=1, unique=True).map(sorted),
    q=st.floats(min_value=0, max_value=1),
)
def test_histogram_quantile_is_within_the_bucket_of_the_true_quantile(
    observations: list[float], bounds: list[float], q: float
) -> None:
    (result,) = histogram_quantile(q, _bucket_snapshots(observations, bounds), "lat").values()
    assert result.value is not None
    ordered = sorted(observations)
    true = ordered[max(1, math.ceil(q * len(ordered))) - 1]
    edges = [*bounds, math.inf]
    b = next(i for i, edge in enumerate(edges) if true <= edge)
    if edges[b] == math.inf:
        assert result.value == bounds[-1]  # the highest finite bound, as Prometheus answers
    else:
        lower = bounds[b - 1] if b > 0 else 0.0
        assert lower - 1e-12 <= result.value <= edges[b] + 1e-12


@SETTINGS
@given(
    observations=st.lists(observed, min_size=1, max_size=100),
    bounds=st.lists(st.sampled_from(BOUNDS), min_size=1, unique=True).map(sorted),
    qs=st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=8).map(sorted),
)
def test_histogram_quantile_is_monotone_in_q(
    observations: list[float], bounds: list[float], qs: list[float]
) -> None:
    snaps = _bucket_snapshots(observations, bounds)
    found = [next(iter(histogram_quantile(q, snaps, "lat").values())).value for q in qs]
    values = [v for v in found if v is not None]
    assert len(values) == len(found)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))


@SETTINGS
@given(
    start=st.integers(min_value=0, max_value=10**6),
    steps=st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=10**6)), min_size=1),
    absent_first=st.booleans(),
)
def test_increase_over_random_resets_is_the_sum_of_true_increments(
    start: int, steps: list[tuple[bool, int]], absent_first: bool
) -> None:
    key = ("jobs_total", ())
    value, true_total = start, 0
    snapshots = [Snapshot(0, {} if absent_first else {key: float(start)})]
    if absent_first:
        value, true_total = 0, 0  # created after the first scrape: it counts from 0
    for t, (reset, inc) in enumerate(steps, 1):
        if reset and value > 0:
            inc %= value  # a restart is seen as a drop: fewer events since than before
            value = inc
        else:
            value += inc
        true_total += inc
        snapshots.append(Snapshot(t, {key: float(value)}))
    assert total_increase(snapshots, "jobs_total") == true_total


windows = st.sampled_from([3600.0, 300.0, 21600.0, 1800.0, 86400.0, 7200.0])


@SETTINGS
@given(
    totals=st.dictionaries(windows, st.integers(min_value=0, max_value=10**7)),
    objective=st.floats(min_value=0.5, max_value=0.99999),
    phase=st.sampled_from([1800.0, 6 * 3600.0, 86400.0, 3 * 86400.0]),
    min_events=st.integers(min_value=0, max_value=1000),
)
def test_no_bad_events_never_fail(
    totals: dict[float, int], objective: float, phase: float, min_events: int
) -> None:
    counts = {w: (float(n), float(n)) for w, n in totals.items()}
    rules = rules_for(30 * 86400, phase)
    verdict = evaluate_burn(counts, objective, rules, min_events)
    assert verdict.status is not Status.FAILED
    needed = {w for r in rules for w in (r.long_s, r.short_s)}
    if all(totals.get(w, 0) >= max(min_events, 1) for w in needed):
        assert verdict.status is Status.PASSED


@SETTINGS
@example(bad=1, total=300, factor=3.333333333333333)  # 1 - 0.999 in floats broke this once
@given(
    bad=st.integers(min_value=1, max_value=100),
    total=st.integers(min_value=100, max_value=10**6),
    factor=st.floats(min_value=0.1, max_value=50),
)
def test_a_rule_fires_exactly_when_both_windows_burn_above_its_factor(
    bad: int, total: int, factor: float
) -> None:
    rule = BurnRule(3600, 300, factor)
    verdict = evaluate_burn({3600: (total - bad, total), 300: (0, 1)}, 0.999, [rule], 1)
    short_burns = factor < 1 / 0.001  # the short window: 1 bad of 1
    long_burns = (bad / total) / 0.001 > factor
    assert (verdict.status is Status.FAILED) == (short_burns and long_burns)


@SETTINGS
@given(
    n=st.integers(min_value=1, max_value=60),
    step=st.floats(min_value=10, max_value=60),
    now=st.floats(min_value=0, max_value=1e6),
    scale=st.floats(min_value=1, max_value=100),
    data=st.data(),
)
def test_scaling_a_window_and_its_points_alike_leaves_the_verdict(
    n: int, step: float, now: float, scale: float, data: st.DataObject
) -> None:
    window = Window(n * step, step)
    samples = data.draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=n - 1),
                st.floats(min_value=-0.4, max_value=0.4),
                st.one_of(st.none(), st.floats(min_value=0, max_value=0.6)),
            ),
            max_size=3 * n,
        )
    )
    points = [Point(window.step_time(i, now) + jitter * step, v) for i, jitter, v in samples]
    scaled = window.scaled(scale)
    assert scaled.steps == window.steps
    fast = [Point(p.t / scale, p.value) for p in points]
    a = evaluate_window(points, LATENCY, window, now)
    b = evaluate_window(fast, LATENCY, scaled, now / scale)
    assert (a.status, a.breaches, a.missing, a.worst) == (b.status, b.breaches, b.missing, b.worst)
