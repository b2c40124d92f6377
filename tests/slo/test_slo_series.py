"""Several series: no aggregate, max/min/sum/avg per step, each, no series."""

from __future__ import annotations

import pytest

from releasegate.model import Status
from releasegate.slo import (
    Aggregate,
    Point,
    Window,
    as_labels,
    evaluate_series,
    parse_condition,
)
from releasegate.slo.series import format_labels

NOW = 100.0
WINDOW = Window(10, 1)  # steps at 91..100
ERRORS = parse_condition("<= 0.3%")


def flat(value: float | None, skip: tuple[int, ...] = ()) -> list[Point]:
    return [Point(WINDOW.step_time(i, NOW), value) for i in range(10) if i not in skip]


def test_labels_are_canonical_and_shown_promql_style() -> None:
    labels = as_labels({"job": "api", "code": "500"})
    assert labels == (("code", "500"), ("job", "api"))
    assert as_labels(labels) == labels
    assert format_labels(labels) == '{code="500", job="api"}'
    assert format_labels(as_labels({"path": 'a"b'})) == '{path="a\\"b"}'


def test_no_series_is_no_data() -> None:
    verdict = evaluate_series({}, ERRORS, WINDOW, NOW, subject="5xx rate")
    assert verdict.status is Status.NO_DATA
    assert verdict.reason == "5xx rate: the query returned no series"
    (evidence,) = verdict.evidence("5xx rate of api")
    assert evidence.reason == verdict.reason


def test_one_series_needs_no_aggregate() -> None:
    series = {as_labels({"job": "api"}): flat(0.001)}
    verdict = evaluate_series(series, ERRORS, WINDOW, NOW, subject="5xx rate")
    assert verdict.status is Status.PASSED
    assert verdict.combined is not None and verdict.combined.worst == 0.001


def test_several_series_without_aggregate_is_an_error_listing_ten() -> None:
    series = {as_labels({"pod": f"api-{i:02d}"}): flat(0.001) for i in range(13)}
    verdict = evaluate_series(series, ERRORS, WINDOW, NOW, subject="5xx rate")
    assert verdict.status is Status.ERROR
    assert verdict.reason.startswith(
        '5xx rate: the query returned 13 series ({pod="api-00"}, {pod="api-01"}, '
    )
    assert '{pod="api-09"} and 3 more); set aggregate to one of max, min, sum, avg or each' in (
        verdict.reason
    )
    assert '{pod="api-10"}' not in verdict.reason


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("max", 0.004), ("min", 0.001), ("sum", 0.007), ("avg", 0.007 / 3)],
)
def test_aggregates_combine_per_step(aggregate: str, expected: float) -> None:
    series = {
        as_labels({"pod": "a"}): flat(0.001),
        as_labels({"pod": "b"}): flat(0.002),
        as_labels({"pod": "c"}): flat(0.004),
    }
    verdict = evaluate_series(series, ERRORS, WINDOW, NOW, aggregate, "5xx rate")
    assert verdict.combined is not None
    assert verdict.combined.worst == pytest.approx(expected)
    assert verdict.status is (Status.PASSED if expected <= 0.003 else Status.FAILED)
    assert verdict.reason.endswith(f"({aggregate} over 3 series)")
    assert verdict.combined.subject == f"{aggregate} of 5xx rate"


def test_aggregates_use_the_series_present_at_each_step() -> None:
    series = {
        as_labels({"pod": "a"}): flat(0.001, skip=(0, 1, 2, 3, 4)),  # a new pod, half the window
        as_labels({"pod": "b"}): flat(0.003, skip=(5, 6, 7, 8, 9)),  # the pod it replaced
    }
    verdict = evaluate_series(series, ERRORS, WINDOW, NOW, Aggregate.MAX)
    assert verdict.status is Status.PASSED
    assert verdict.combined is not None and verdict.combined.steps_with_data == 10
    gap = {as_labels({"pod": "a"}): flat(0.001, skip=(0, 1, 2))}
    assert evaluate_series(gap, ERRORS, WINDOW, NOW, "avg").status is Status.NO_DATA


def test_each_holds_every_series_and_the_worst_status_wins() -> None:
    series = {
        as_labels({"pod": "a"}): flat(0.001),
        as_labels({"pod": "b"}): flat(0.001, skip=(0, 1, 2, 3)),  # 60% coverage: no data
        as_labels({"pod": "c"}): flat(0.01),  # breaks
    }
    verdict = evaluate_series(series, ERRORS, WINDOW, NOW, "each", "5xx rate")
    assert verdict.status is Status.FAILED
    assert verdict.reason.startswith("3 series (1 failed, 1 no data, 1 passed); worst: 5xx rate")
    assert '{pod="c"} broke <= 0.3%' in verdict.reason
    statuses = {format_labels(k): v.status for k, v in verdict.per_series}
    assert statuses == {
        '{pod="a"}': Status.PASSED,
        '{pod="b"}': Status.NO_DATA,
        '{pod="c"}': Status.FAILED,
    }
    evidence = verdict.evidence("5xx rate")
    assert [e.measured for e in evidence] == [
        '5xx rate {pod="c"}',
        '5xx rate {pod="b"}',
        '5xx rate {pod="a"}',
    ]
    assert verdict.to_dict()["per_series"][2]["labels"] == '{pod="c"}'


def test_each_without_failures_but_one_missing_is_no_data() -> None:
    series = {as_labels({"pod": "a"}): flat(0.001), as_labels({"pod": "b"}): []}
    assert evaluate_series(series, ERRORS, WINDOW, NOW, "each").status is Status.NO_DATA


def test_unknown_aggregate_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate_series({}, ERRORS, WINDOW, NOW, "median")


def test_combined_evidence_carries_the_aggregate() -> None:
    series = {as_labels({"pod": "a"}): flat(0.001), as_labels({"pod": "b"}): flat(0.002)}
    (evidence,) = evaluate_series(series, ERRORS, WINDOW, NOW, "max").evidence("5xx")
    assert evidence.details["aggregate"] == "max"
    assert evidence.details["series_count"] == 2
    assert evidence.value["worst"] == pytest.approx(0.2)  # percent, the spec's unit
