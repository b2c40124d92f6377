"""Thresholds as values: probes record ``Limit``s, the reports compare them without parsing."""

from __future__ import annotations

import pytest

from releasegate.model import Evidence, Limit
from releasegate.report.view import comparison


def test_a_limit_reads_its_number_from_the_value_or_its_key() -> None:
    latency = Limit("latency", "<=", 300, "ms", key="latency_ms")
    assert latency.text == "latency <= 300 ms"
    assert latency.measured_in({"status": 200, "latency_ms": 412.5}) == 412.5
    assert not latency.holds(412.5)
    assert Limit("rows", ">=", 1).measured_in(7) == 7.0
    assert Limit("rows", ">=", 1).measured_in(True) is None
    assert Limit.from_dict(latency.to_dict()) == latency
    with pytest.raises(ValueError, match="operator"):
        Limit("x", "~", 1)


def test_free_text_is_read_once_with_the_key_of_the_measured_number() -> None:
    (limit,) = Limit.parse("status in [200]; latency <= 300 ms", {"latency_ms": 12})
    assert limit == Limit("latency", "<=", 300.0, "ms", key="latency_ms")
    assert Limit.parse("status 2xx") == ()


def test_the_report_uses_the_recorded_limits_not_the_text() -> None:
    evidence = Evidence(
        "GET /api",
        {"latency_ms": 412.0, "status": 200},
        threshold="whatever the text says",
        limits=(Limit("latency", "<=", 300, "ms", key="latency_ms"),),
    ).to_dict()
    found = comparison("catalog-latency", [evidence])
    assert found is not None
    assert (found.subject, found.value, found.op, found.limit, found.unit) == (
        "latency",
        412.0,
        "<=",
        300.0,
        "ms",
    )
    assert not found.passed


def test_the_most_pressing_of_several_limits_is_shown() -> None:
    evidence = Evidence(
        "sql", 0.9, limits=(Limit("value", ">=", 0), Limit("value", "<=", 1))
    ).to_dict()
    found = comparison("mean", [evidence])
    assert found is not None and found.op == "<="


def test_a_schema_1_record_without_limits_still_compares_its_text() -> None:
    found = comparison("lat", [{"value": {"latency_ms": 50}, "threshold": "latency <= 300 ms"}])
    assert found is not None and found.passed and found.value == 50


def test_a_limit_survives_the_redaction_of_the_record() -> None:
    from releasegate.redact import redact_value

    evidence = Evidence(
        "GET /api",
        {"latency_ms": 412.0},
        limits=(Limit("latency", "<=", 300, "ms", key="latency_ms"),),
    ).to_dict()
    found = comparison("catalog-latency", [redact_value(evidence)])
    assert found is not None and found.value == 412.0
