"""Conditions and units: parsing spec text, canonical values, showing values back, limits."""

from __future__ import annotations

import math

import pydantic
import pytest

from releasegate.model import Limit
from releasegate.slo import ConditionField, UnitKind, parse_condition
from releasegate.slo.units import format_duration, parse_duration, prometheus_duration


@pytest.mark.parametrize(
    ("text", "op", "threshold", "kind", "shown"),
    [
        ("< 300ms", "<", 0.3, UnitKind.DURATION, "< 300 ms"),
        ("<= 0.3%", "<=", 0.003, UnitKind.RATIO, "<= 0.3%"),
        ("> 20/hr", ">", 20 / 3600, UnitKind.RATE, "> 20/hr"),
        (">= 99.9%", ">=", 0.999, UnitKind.RATIO, ">= 99.9%"),
        ("< 2s", "<", 2.0, UnitKind.DURATION, "< 2 s"),
        ("<= 0.003", "<=", 0.003, UnitKind.NUMBER, "<= 0.003"),
        ("== 0", "==", 0.0, UnitKind.NUMBER, "== 0"),
        ("<10m", "<", 600.0, UnitKind.DURATION, "< 10 m"),
        (">= 1.5h", ">=", 5400.0, UnitKind.DURATION, ">= 1.5 h"),
        ("< 100/hr", "<", 100 / 3600, UnitKind.RATE, "< 100/hr"),
        ("< 5/min", "<", 5 / 60, UnitKind.RATE, "< 5/min"),
        ("< 3/s", "<", 3.0, UnitKind.RATE, "< 3/s"),
        ("< 48/d", "<", 48 / 86400, UnitKind.RATE, "< 48/d"),
        ("< 1e3", "<", 1000.0, UnitKind.NUMBER, "< 1000"),
        ("  >  -5  ", ">", -5.0, UnitKind.NUMBER, "> -5"),
    ],
)
def test_parse_gives_canonical_threshold_and_kind(
    text: str, op: str, threshold: float, kind: UnitKind, shown: str
) -> None:
    condition = parse_condition(text)
    assert condition.op == op
    assert condition.threshold == pytest.approx(threshold, rel=1e-15)
    assert condition.unit_kind is kind
    assert str(condition) == shown
    assert condition.text == text.strip()


def test_percent_thresholds_are_exact_decimals() -> None:
    # 0.7 / 100 in floats is 0.006999999999999999: a measured 7 in 1000 would break "<= 0.7%".
    assert parse_condition("<= 0.7%").holds(7 / 1000)
    assert parse_condition("<= 0.3%").holds(3 / 1000)
    assert not parse_condition("<= 0.3%").holds(4 / 1000)
    assert parse_condition(">= 99.9%").holds(999 / 1000)


def test_holds_compares_in_canonical_units() -> None:
    latency = parse_condition("< 300ms")
    assert latency.holds(0.299)
    assert not latency.holds(0.3)
    assert not latency.holds(math.nan)
    assert not latency.holds(math.inf)
    assert parse_condition("<= 300ms").holds(0.3)
    assert parse_condition("> 20/hr").holds(21 / 3600)
    assert not parse_condition("> 20/hr").holds(20 / 3600)
    assert parse_condition("== 0").holds(0.0)
    assert not parse_condition("== 0").holds(1e-9)


@pytest.mark.parametrize(
    ("text", "value", "shown"),
    [
        ("< 300ms", 0.412, "412 ms"),
        ("< 300ms", 0.2123456, "212.3 ms"),
        ("<= 0.3%", 0.0042, "0.42%"),
        ("> 20/hr", 24 / 3600, "24/hr"),
        ("< 2s", 0.3, "0.3 s"),
        ("<= 0.003", 0.0042, "0.0042"),
        ("== 0", 12345.0, "12345"),
        ("< 10m", 90.0, "1.5 m"),
    ],
)
def test_describe_shows_values_in_the_spec_unit(text: str, value: float, shown: str) -> None:
    assert parse_condition(text).describe(value) == shown


def test_limit_is_in_the_spec_unit_and_holds_like_the_condition() -> None:
    condition = parse_condition("< 300ms")
    limit = condition.limit("p95 latency", key="worst")
    assert limit == Limit("p95 latency", "<", 300.0, "ms", key="worst")
    assert limit.text == "p95 latency < 300 ms"
    assert parse_condition("<= 0.3%").limit("error rate") == Limit("error rate", "<=", 0.3, "%")
    assert parse_condition("> 20/hr").limit("warnings").value == 20.0
    assert parse_condition("<= 0.003").limit("ratio").unit == ""
    for value in (0.1, 0.299, 0.3, 0.5):
        assert limit.holds(condition.display(value)) == condition.holds(value)


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("300ms", "does not start with a comparison: write one of '< 300ms'"),
        ("=< 3", "write '<=' instead of '=<'"),
        ("=> 3", "write '>=' instead of '=>'"),
        ("= 3", "write '==' instead of '='"),
        ("!= 3", "'!=' is not supported"),
        ("< 3sec", "unknown unit 'sec' in '3sec': use one of ms, s, m, h, %"),
        ("< 3 per hour", "is not a number with an optional unit"),
        ("<", "has no threshold"),
        ("< abc", "'abc' is not a number"),
        ("", "does not start with a comparison"),
    ],
)
def test_parse_errors_name_the_fix(text: str, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_condition(text)
    assert fix in str(info.value)


def test_source_kind_mismatch_is_refused_at_load() -> None:
    with pytest.raises(ValueError) as info:
        parse_condition("<= 0.3%").check_source("duration", "the p95 latency query")
    message = str(info.value)
    assert "the p95 latency query returns a duration but '<= 0.3%' is a ratio" in message
    assert "'< 300ms'" in message
    with pytest.raises(ValueError, match="has no unit: write it with one"):
        parse_condition("< 300").check_source(UnitKind.DURATION)
    with pytest.raises(ValueError, match="returns a rate"):
        parse_condition("< 2s").check_source("rate")
    with pytest.raises(ValueError):
        parse_condition("< 2s").check_source("volume")  # not a unit kind at all


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("< 300ms", "duration"),
        ("<= 0.3%", "ratio"),
        ("<= 0.003", "ratio"),
        ("<= 0.003", "number"),
        ("> 20/hr", "rate"),
        ("== 0", "number"),
    ],
)
def test_matching_kinds_are_accepted(text: str, kind: str) -> None:
    parse_condition(text).check_source(kind)


def test_negation_flips_the_comparison() -> None:
    alert = parse_condition("> 2s")  # an alerting rule: "P95 > 2s for 10m"
    gate = alert.negated()
    assert gate.op == "<=" and gate.threshold == 2.0 and gate.text == "<= 2s"
    assert gate.holds(2.0) and not alert.holds(2.0)
    with pytest.raises(ValueError, match="no negation"):
        parse_condition("== 0").negated()


def test_worst_and_margin() -> None:
    assert parse_condition("< 300ms").worst([0.1, 0.5, 0.2]) == 0.5
    assert parse_condition("> 20/hr").worst([0.1, 0.5, 0.2]) == 0.1
    assert parse_condition("== 0").worst([0.1, -0.5, 0.2]) == -0.5
    assert parse_condition("== 0").worst([]) is None


class _Spec(pydantic.BaseModel):
    threshold: ConditionField


def test_pydantic_field_parses_serializes_and_explains() -> None:
    spec = _Spec.model_validate({"threshold": "<= 0.3%"})
    assert spec.threshold.threshold == 0.003
    assert spec.model_dump(mode="json") == {"threshold": "<= 0.3%"}
    with pytest.raises(pydantic.ValidationError) as info:
        _Spec.model_validate({"threshold": "=< 3"})
    assert "write '<=' instead of '=<'" in str(info.value)
    schema = _Spec.model_json_schema()["properties"]["threshold"]
    assert schema["type"] == "string"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10m", 600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("3d", 259200),
        ("2w", 1209600),
        ("90", 90),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10 minutes", "m10", "1h-5m", "-3", "nan"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10m"), (5400, "1h30m"), (0.06, "60ms"), (259200, "3d"), (1.5, "1.5s"), (0, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_prometheus_duration_is_whole_milliseconds_rounded_up() -> None:
    assert prometheus_duration(300) == "5m"
    assert prometheus_duration(3600) == "1h"
    assert prometheus_duration(0.0504) == "51ms"
    assert prometheus_duration(1.5) == "1500ms"
    with pytest.raises(ValueError):
        prometheus_duration(0)
