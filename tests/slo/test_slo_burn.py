"""Burn-rate gates: the workbook's rules, scaling to other periods, the traffic floor."""

from __future__ import annotations

import pytest

from releasegate.model import Status
from releasegate.slo import DEFAULT_RULES, BurnRule, burn_rate, evaluate_burn, rules_for

DAY = 86400
THIRTY_DAYS = 30 * DAY
OBJECTIVE = 0.999  # a budget of 0.1% bad events
FIRST_TWO = rules_for(THIRTY_DAYS, 6 * 3600)  # 14.4x over 1h & 5m, 6x over 6h & 30m


def test_default_rules_are_the_workbook_table() -> None:
    table = [(r.long_s, r.short_s, r.factor) for r in DEFAULT_RULES]
    assert table == [(3600, 300, 14.4), (21600, 1800, 6), (DAY, 7200, 3), (3 * DAY, 21600, 1)]
    assert [round(r.budget_fraction, 6) for r in DEFAULT_RULES] == [0.02, 0.05, 0.1, 0.1]
    assert DEFAULT_RULES[0].describe() == "14.4x over 1h and 5m (2% of a 30d budget in 1h)"


def test_rules_for_other_periods_scale_windows_and_keep_factors() -> None:
    week = rules_for(7 * DAY, 10 * DAY)
    assert [(r.long_s, r.short_s, r.factor) for r in week] == [
        (840, 70, 14.4),
        (5040, 420, 6),
        (20160, 1680, 3),
        (60480, 5040, 1),
    ]
    assert [round(r.budget_fraction, 6) for r in week] == [0.02, 0.05, 0.1, 0.1]


def test_rules_for_keeps_what_the_phase_can_observe_and_always_the_fast_pair() -> None:
    assert [r.long_s for r in rules_for(THIRTY_DAYS, 1800)] == [3600]
    assert [r.long_s for r in rules_for(THIRTY_DAYS, DAY)] == [3600, 21600, DAY]
    assert len(rules_for(THIRTY_DAYS, 3 * DAY)) == 4
    with pytest.raises(ValueError, match="SLO period"):
        rules_for(0, 3600)


def test_burn_rate() -> None:
    assert burn_rate(5, 1000, OBJECTIVE) == pytest.approx(5.0)
    assert burn_rate(0, 1000, OBJECTIVE) == 0
    assert burn_rate(1, 100, 0.99) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one"):
        burn_rate(0, 0, OBJECTIVE)
    with pytest.raises(ValueError, match="objective"):
        burn_rate(1, 10, 99.9)


def test_a_burn_exactly_at_the_factor_does_not_fire() -> None:
    counts = {21600: (994, 1000), 1800: (994, 1000)}  # 0.6% bad at 99.9%: exactly 6x
    rule = FIRST_TWO[1]
    assert evaluate_burn(counts, OBJECTIVE, [rule], min_events=1).status is Status.PASSED
    counts[1800] = (993, 1000)
    assert evaluate_burn(counts, OBJECTIVE, [rule], min_events=1).status is Status.PASSED
    counts[21600] = (993, 1000)
    assert evaluate_burn(counts, OBJECTIVE, [rule], min_events=1).status is Status.FAILED


def test_a_rule_fires_only_when_both_windows_burn() -> None:
    counts = {
        3600: (9800, 10000),  # 200 bad: 2% = 20x
        300: (790, 800),  # 10 bad: 1.25% = 12.5x, below 14.4: the fast rule stays quiet
        21600: (59000, 60000),  # 1000 bad: 16.67x
        1800: (9900, 10000),  # 100 bad: 10x, above 6: the second rule fires
    }
    verdict = evaluate_burn(counts, OBJECTIVE, FIRST_TWO, min_events=100)
    assert verdict.status is Status.FAILED
    assert [r.state for r in verdict.rules] == ["quiet", "fired"]
    assert verdict.fired == (FIRST_TWO[1],)
    assert verdict.budget_remaining == pytest.approx(1 - 1000 / 60000 / 0.001)
    assert verdict.reason == (
        "burn 16.67x over 6h and 10x over 30m, above 6x over 6h and 30m (5% of a 30d budget in "
        "6h) (objective 99.9%; 1667% of the error budget of the last 6h spent)"
    )
    (limit,) = verdict.evidence("checkout availability").limits
    assert (limit.op, limit.value, limit.key) == ("<=", 6, "burn_rate")
    assert verdict.evidence("x").value["burn_rate"] == pytest.approx(10.0)


def test_no_rule_fires_passes_with_the_remaining_budget() -> None:
    counts = {3600: (9995, 10000), 300: (800, 800), 21600: (59990, 60000), 1800: (10000, 10000)}
    verdict = evaluate_burn(counts, OBJECTIVE, FIRST_TWO, min_events=100)
    assert verdict.status is Status.PASSED
    assert verdict.budget_remaining == pytest.approx(1 - 10 / 60000 / 0.001)
    assert verdict.reason == (
        "no burn-rate rule fired (5m: 0x, 30m: 0x, 1h: 0.5x, 6h: 0.1667x; objective 99.9%; "
        "16.7% of the error budget of the last 6h spent)"
    )
    assert verdict.to_dict()["windows"][0] == {
        "window_s": 300,
        "window": "5m",
        "good": 800.0,
        "total": 800.0,
        "bad": 0.0,
        "burn_rate": 0.0,
        "problem": "",
    }


def test_little_traffic_is_no_data_unless_a_sound_window_settles_the_rule() -> None:
    quiet_long = {3600: (5000, 5000), 300: (5, 5)}
    verdict = evaluate_burn(quiet_long, OBJECTIVE, FIRST_TWO[:1], min_events=100)
    assert verdict.status is Status.PASSED  # 1h burns 0x: the pair cannot fire
    idle = {3600: (50, 50), 300: (5, 5)}
    verdict = evaluate_burn(idle, OBJECTIVE, FIRST_TWO[:1], min_events=100)
    assert verdict.status is Status.NO_DATA
    assert verdict.reason == (
        "not enough traffic to decide 1 of 1 burn-rate rules (at least 100 events per window): "
        "(1h: 50 events, below 100; 5m: 5 events, below 100) (objective 99.9%)"
    )
    burning_but_thin = {3600: (900, 1000), 300: (40, 50)}  # 5m would fire but is below 100
    verdict = evaluate_burn(burning_but_thin, OBJECTIVE, FIRST_TWO[:1], min_events=100)
    assert verdict.status is Status.NO_DATA


def test_zero_events_never_decide_even_without_a_floor() -> None:
    verdict = evaluate_burn({3600: (0, 0), 300: (0, 0)}, OBJECTIVE, FIRST_TWO[:1], min_events=0)
    assert verdict.status is Status.NO_DATA
    assert verdict.budget_remaining is None


def test_counts_from_a_function_and_missing_windows() -> None:
    asked: list[float] = []

    def source(window_s: float) -> tuple[float, float] | None:
        asked.append(window_s)
        return None if window_s == 300 else (1000, 1000)

    verdict = evaluate_burn(source, OBJECTIVE, FIRST_TWO[:1], min_events=10, observed_s=7200)
    assert verdict.status is Status.PASSED  # the 1h window is sound and quiet
    assert sorted(asked) == [300, 3600, 7200]  # each window asked once
    assert verdict.observed is not None and verdict.observed.window_s == 7200
    verdict = evaluate_burn({}, OBJECTIVE, FIRST_TWO[:1], min_events=10)
    assert verdict.status is Status.NO_DATA and "1h: no count" in verdict.reason


def test_impossible_counts_are_an_error_unless_a_rule_fired() -> None:
    verdict = evaluate_burn({3600: (1200, 1000), 300: (10, 10)}, OBJECTIVE, FIRST_TWO[:1], 1)
    assert verdict.status is Status.ERROR
    assert (
        verdict.reason
        == "cannot compute burn rates (1h: inconsistent counts: good 1200, total 1000)"
    )
    counts = {3600: (900, 1000), 300: (90, 100), 21600: (-1, 10), 1800: (10, 10)}
    assert evaluate_burn(counts, OBJECTIVE, FIRST_TWO, 1).status is Status.FAILED


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="objective"):
        evaluate_burn({}, 1.0, FIRST_TWO, 1)
    with pytest.raises(ValueError, match="no burn-rate rules"):
        evaluate_burn({}, OBJECTIVE, (), 1)
    with pytest.raises(ValueError, match="min_events"):
        evaluate_burn({}, OBJECTIVE, FIRST_TWO, -1)
    with pytest.raises(ValueError, match="short"):
        BurnRule(300, 3600, 14.4)
    with pytest.raises(ValueError, match="factor"):
        BurnRule(3600, 300, 0)
