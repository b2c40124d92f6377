"""Windows: the step grid, binning, the for-semantics verdicts, coverage, scaling, the record."""

from __future__ import annotations

import json
import math

import pytest

from releasegate.model import Status
from releasegate.slo import Point, Window, evaluate_instant, evaluate_window, parse_condition
from releasegate.slo.window import MAX_RECORD_STEPS, step_values

NOW = 1000.0
TEN_MINUTES = Window(600, 10)  # steps at 410, 420, ..., 1000 (index 0..59)
LATENCY = parse_condition("< 300ms")


def grid(values: dict[int, float | None], default: float | None = 0.2) -> list[Point]:
    """One point at each step time of TEN_MINUTES; ``values`` overrides some, a missing index
    with ``default=None`` is left out."""
    points = []
    for i in range(60):
        value = values.get(i, default)
        if i in values or default is not None:
            points.append(Point(TEN_MINUTES.step_time(i, NOW), value))
    return points


def test_grid_is_half_open_and_ends_at_now() -> None:
    assert TEN_MINUTES.steps == 60
    assert TEN_MINUTES.step_time(0, NOW) == 410
    assert TEN_MINUTES.step_time(59, NOW) == NOW
    assert Window(600, 7).steps == 85  # 600 // 7: the grid ends at now, starts after now-600


def test_passes_with_enough_coverage_and_names_the_worst() -> None:
    points = [p for p in grid({30: 0.212}) if p.t not in (460.0, 470.0)]  # steps 5 and 6 missing
    verdict = evaluate_window(points, LATENCY, TEN_MINUTES, NOW, "p95 latency")
    assert verdict.status is Status.PASSED
    assert verdict.reason == (
        "p95 latency held < 300 ms over 10m at 58 of 60 steps (96.7% coverage); worst 212 ms"
    )
    assert verdict.missing == (5, 6)
    assert verdict.worst == 0.212 and verdict.worst_index == 30
    assert verdict.coverage == pytest.approx(58 / 60)


def test_one_breach_fails_and_the_reason_names_steps_times_and_worst() -> None:
    verdict = evaluate_window(
        grid({12: 0.412, 13: 0.512}), LATENCY, TEN_MINUTES, NOW, "p95 latency"
    )
    assert verdict.status is Status.FAILED
    assert verdict.breaches == (12, 13)
    assert verdict.worst == 0.512
    assert verdict.reason == (
        "p95 latency broke < 300 ms over 10m at 2 of 60 steps with data (100% coverage): "
        "step 12 (now-7m50s) 412 ms, step 13 (now-7m40s) 512 ms; worst 512 ms at step 13 "
        "(now-7m40s)"
    )


def test_more_than_five_breaches_are_summarised() -> None:
    verdict = evaluate_window(grid({i: 0.4 for i in range(8)}), LATENCY, TEN_MINUTES, NOW)
    assert "step 4 (now-9m10s) 400 ms, and 3 more; worst 400 ms" in verdict.reason


def test_coverage_below_the_floor_is_no_data_naming_missing_steps() -> None:
    points = grid({i: None for i in range(50, 60)})  # None values: missing
    verdict = evaluate_window(points, LATENCY, TEN_MINUTES, NOW, "p95 latency")
    assert verdict.status is Status.NO_DATA
    assert verdict.reason == (
        "p95 latency: over 10m, data at 50 of 60 steps (83.3% coverage, below the 90% floor); "
        "missing steps 50-59 (now-1m30s to now)"
    )


def test_a_breach_fails_even_when_coverage_is_low() -> None:
    points = [Point(TEN_MINUTES.step_time(3, NOW), 0.9)]
    verdict = evaluate_window(points, LATENCY, TEN_MINUTES, NOW)
    assert verdict.status is Status.FAILED
    assert "1 of 1 steps with data (1.7% coverage)" in verdict.reason


def test_nothing_at_all_is_no_data() -> None:
    verdict = evaluate_window([], LATENCY, TEN_MINUTES, NOW, "p95 latency")
    assert verdict.status is Status.NO_DATA
    assert verdict.reason == "p95 latency: no data over 10m at any of 60 steps"
    assert verdict.worst is None


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_none_nan_and_infinities_are_missing_steps(bad: float | None) -> None:
    values = step_values([Point(410, bad), Point(420, 0.1)], LATENCY, TEN_MINUTES, NOW)
    assert values[:2] == [None, 0.1]


def test_binning_edges() -> None:
    cases = {405.0: None, 405.001: 0, 415.0: 0, 415.001: 1, 1005.0: 59, 1005.001: None}
    for t, index in cases.items():
        values = step_values([Point(t, 0.1)], LATENCY, TEN_MINUTES, NOW)
        found = [i for i, v in enumerate(values) if v is not None]
        assert found == ([] if index is None else [index]), t


def test_the_worst_sample_of_a_step_stands_for_it() -> None:
    points = [Point(409, 0.1), Point(410, 0.35), Point(412, 0.2)]
    assert step_values(points, LATENCY, TEN_MINUTES, NOW)[0] == 0.35
    rate_floor = parse_condition("> 20/hr")
    assert step_values(points, rate_floor, TEN_MINUTES, NOW)[0] == 0.1


def test_unsorted_points_and_points_outside_are_fine() -> None:
    points = [*reversed(grid({})), Point(-5, 99.0), Point(5000, 99.0)]
    assert evaluate_window(points, LATENCY, TEN_MINUTES, NOW).status is Status.PASSED


def test_min_coverage_is_configurable() -> None:
    points = grid({i: None for i in range(30, 60)})
    strict = evaluate_window(points, LATENCY, Window(600, 10, min_coverage=1.0), NOW)
    lenient = evaluate_window(points, LATENCY, Window(600, 10, min_coverage=0.5), NOW)
    assert (strict.status, lenient.status) == (Status.NO_DATA, Status.PASSED)


def test_scaled_window_divides_duration_and_step_and_remembers_both() -> None:
    scaled = TEN_MINUTES.scaled(100)
    assert (scaled.duration_s, scaled.step_s, scaled.steps) == (6.0, 0.1, 60)
    assert scaled.describe() == "10m (6s at time scale 100)"
    assert scaled.to_dict() == {
        "duration_s": 600,
        "step_s": 10,
        "time_scale": 100.0,
        "scaled_duration_s": 6.0,
        "scaled_step_s": 0.1,
        "steps": 60,
        "min_coverage": 0.9,
    }
    floored = Window(600, 1).scaled(1000)
    assert (floored.duration_s, floored.step_s, floored.steps) == (0.6, 0.05, 12)
    tiny = Window(1, 1).scaled(1000)
    assert tiny.step_s == tiny.duration_s == 0.001
    twice = TEN_MINUTES.scaled(10).scaled(10)
    assert twice.duration_s == pytest.approx(6.0)
    assert (twice.time_scale, twice.nominal_duration) == (100, 600)


def test_scaled_window_reason_says_both_windows() -> None:
    scaled = TEN_MINUTES.scaled(100)
    points = [Point(scaled.step_time(i, 10.0), 0.2) for i in range(60)]
    verdict = evaluate_window(points, LATENCY, scaled, 10.0, "p95 latency")
    assert verdict.status is Status.PASSED
    assert "over 10m (6s at time scale 100) at 60 of 60 steps" in verdict.reason


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"duration_s": 0, "step_s": 1}, "duration_s must be a positive"),
        ({"duration_s": 60, "step_s": -1}, "step_s must be a positive"),
        ({"duration_s": 60, "step_s": 120}, "longer than the window"),
        ({"duration_s": 60, "step_s": 1, "min_coverage": 0}, "min_coverage"),
        ({"duration_s": 60, "step_s": 1, "min_coverage": 1.5}, "min_coverage"),
        ({"duration_s": 86400 * 30, "step_s": 1}, "use a larger step"),
        ({"duration_s": math.inf, "step_s": 1}, "duration_s must be a positive"),
    ],
)
def test_window_validation(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Window(**kwargs)


def test_the_record_keeps_at_most_500_steps_with_breaches_and_extremes() -> None:
    window = Window(3000, 1)
    values = {i: 0.1 + (i % 7) / 1000 for i in range(3000)}
    values.update({17: 0.5, 1234: 0.7, 2999: 0.31})
    values[2000] = 0.01  # the lowest
    points = [Point(window.step_time(i, NOW), v) for i, v in values.items()]
    verdict = evaluate_window(points, LATENCY, window, NOW)
    recorded = {s.index: s for s in verdict.steps}
    assert len(recorded) <= MAX_RECORD_STEPS
    assert {0, 17, 1234, 2000, 2999} <= set(recorded)
    assert recorded[1234].ok is False and recorded[1234].value == 0.7
    assert verdict.breaches == (17, 1234, 2999)
    assert len(verdict.to_dict()["steps"]) == len(recorded)


def test_evidence_holds_the_worst_value_to_the_limit() -> None:
    verdict = evaluate_window(grid({12: 0.512}), LATENCY, TEN_MINUTES, NOW, "p95 latency")
    evidence = verdict.evidence("p95 of GET /checkout")
    assert evidence.value == {"worst": 512.0, "coverage": 1.0}
    assert evidence.threshold == "< 300 ms at every step over 10m"
    (limit,) = evidence.limits
    assert (limit.subject, limit.op, limit.value, limit.unit, limit.key) == (
        "p95 latency",
        "<",
        300.0,
        "ms",
        "worst",
    )
    assert limit.measured_in(evidence.value) == 512.0 and not limit.holds(512.0)
    details = json.loads(json.dumps(evidence.to_dict()))["details"]
    assert details["breach_steps"] == [12]
    assert details["steps"][12] == [12, 530.0, 512.0, False]
    assert details["window"]["duration_s"] == 600


def test_instant() -> None:
    assert evaluate_instant(0.2, LATENCY, "p95").status is Status.PASSED
    failed = evaluate_instant(0.5, LATENCY, "p95")
    assert (failed.status, failed.reason) == (Status.FAILED, "p95 is 500 ms: breaks < 300 ms")
    for nothing in (None, math.nan, math.inf):
        verdict = evaluate_instant(nothing, LATENCY, "p95")
        assert verdict.status is Status.NO_DATA
        assert verdict.evidence("p95").value == {"worst": None, "coverage": 0.0}
    assert evaluate_instant(None, LATENCY, "p95").reason == (
        "p95: no value, nothing to hold to < 300 ms"
    )
