"""OpenSLO v1 and Sloth documents into SloDefinition; what cannot be used is refused clearly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from releasegate.slo import SloDefinition, load_slo_definitions, slo_definitions_from
from releasegate.slo.openslo import render_window

FIXTURES = Path(__file__).parent / "fixtures"
DAY = 86400


def load(name: str) -> tuple[SloDefinition, ...]:
    return load_slo_definitions((FIXTURES / name).read_text(encoding="utf-8"))


def test_openslo_inline_ratio() -> None:
    (slo,) = load("openslo_inline_ratio.yaml")
    assert slo == SloDefinition(
        name="checkout-availability",
        objective=0.995,
        period_s=28 * DAY,
        total_query='sum(http_requests_total{job="checkout"})',
        good_query='sum(http_requests_total{job="checkout",code!~"5.."})',
        source_format="openslo/v1",
        service="checkout",
        counter=True,
    )


def test_openslo_multi_document_with_references_and_two_objectives() -> None:
    internal, contract = load("openslo_multi_document.yaml")
    assert (internal.name, contract.name) == (
        "search-availability/Internal",
        "search-availability/Contract",
    )
    assert internal.objective == 0.9995  # targetPercent 99.95, exactly
    assert contract.objective == 0.999
    assert internal.period_s == 28 * DAY  # 4w
    assert internal.good_query is None
    assert internal.bad_query == 'sum(rate(search_requests_total{code=~"5.."}[{{.window}}]))'
    assert internal.query("bad", 300) == 'sum(rate(search_requests_total{code=~"5.."}[5m]))'
    assert internal.query("total", 3600) == "sum(rate(search_requests_total[1h]))"
    assert internal.description == "Search answers without server errors"
    with pytest.raises(ValueError, match="has no 'good' query"):
        internal.query("good", 300)


def test_sloth_spec() -> None:
    availability, latency = load("sloth_getting_started.yaml")
    assert availability.name == "requests-availability"
    assert availability.service == "checkout"
    assert availability.objective == 0.999
    assert availability.period_s == 30 * DAY  # Sloth's default period
    assert availability.source_format == "prometheus/v1"
    assert availability.bad_query is not None and availability.good_query is None
    assert availability.query("bad", 3600) == (
        'sum(rate(http_request_duration_seconds_count{job="checkout",code=~"(5..|429)"}[1h]))'
    )
    assert latency.objective == 0.99
    assert latency.query("total", 1800) == (
        'sum(rate(http_request_duration_seconds_count{job="checkout"}[30m]))'  # {{ .window }}
    )
    assert "[5m]))\n  -\n" in latency.query("bad", 300)


def test_sloth_kubernetes_resource_and_period_override() -> None:
    text = (FIXTURES / "sloth_k8s.yaml").read_text(encoding="utf-8")
    (slo,) = load_slo_definitions(text, default_period_s=7 * DAY)
    assert (slo.objective, slo.period_s, slo.source_format) == (0.995, 7 * DAY, "sloth.slok.dev/v1")
    assert slo.bad_query is not None and "[{{.window}}]" in slo.bad_query


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        (
            "openslo_datadog.yaml",
            "ratioMetric.good reads from 'Datadog': releasegate queries Prometheus only",
        ),
        ("openslo_threshold.yaml", "a thresholdMetric SLI is not supported"),
        ("openslo_timeslices.yaml", "budgetingMethod 'Timeslices' is not supported"),
        ("sloth_raw.yaml", "a raw SLI (error_ratio_query) is not supported"),
    ],
)
def test_documented_shapes_it_cannot_use_are_refused(fixture: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        load(fixture)
    assert message in str(info.value)


OPENSLO_SLO: dict[str, Any] = {
    "apiVersion": "openslo/v1",
    "kind": "SLO",
    "metadata": {"name": "api"},
    "spec": {
        "indicator": {
            "spec": {
                "ratioMetric": {
                    "good": {"metricSource": {"type": "Prometheus", "spec": {"query": "g"}}},
                    "total": {"metricSource": {"type": "Prometheus", "spec": {"query": "t"}}},
                }
            }
        },
        "objectives": [{"target": 0.99}],
    },
}


def _with(path: tuple[str, ...], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(OPENSLO_SLO)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def test_minimal_openslo_defaults() -> None:
    (slo,) = slo_definitions_from([OPENSLO_SLO])
    assert (slo.period_s, slo.objective, slo.counter) == (30 * DAY, 0.99, None)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("apiVersion",), "openslo/v1alpha", "apiVersion 'openslo/v1alpha' is not supported"),
        (("spec", "objectives"), [{"target": 1}], "must be above 0 and below 1"),
        (("spec", "objectives"), [{"targetPercent": 100}], "below 100"),
        (("spec", "objectives"), [{"target": 0.9, "targetPercent": 90}], "exactly one of"),
        (("spec", "objectives"), [], "at least one target"),
        (("spec", "timeWindow"), [{"duration": "30s"}], "timeWindow duration '30s'"),
        (("spec", "timeWindow"), [{"duration": "1d"}, {"duration": "2d"}], "exactly one window"),
        (("spec", "indicator"), None, "needs spec.indicator or spec.indicatorRef"),
        (("spec", "indicatorRef"), "missing-sli", "indicatorRef 'missing-sli' names no SLI"),
        (("metadata",), {}, "without metadata.name"),
        (
            ("spec", "indicator", "spec", "ratioMetric", "bad"),
            {"metricSource": {"type": "Prometheus", "spec": {"query": "b"}}},
            "exactly one of 'good' and 'bad'",
        ),
        (
            ("spec", "indicator", "spec", "ratioMetric", "total", "metricSource"),
            {"metricSourceRef": "prom"},
            "metricSourceRef 'prom' names no DataSource in this file",
        ),
        (
            ("spec", "indicator", "spec", "ratioMetric", "total", "metricSource"),
            {"type": "Prometheus", "spec": {}},
            "ratioMetric.total.metricSource.spec.query is missing",
        ),
        (
            ("spec", "indicator", "spec", "ratioMetric", "raw"),
            {"metricSource": {"type": "Prometheus", "spec": {"query": "r"}}},
            "a raw (precomputed) ratioMetric is not supported",
        ),
    ],
)
def test_openslo_refusals(path: tuple[str, ...], value: object, message: str) -> None:
    doc = _with(path, value)
    if path == ("spec", "indicatorRef"):
        del doc["spec"]["indicator"]
    with pytest.raises(ValueError) as info:
        slo_definitions_from([doc])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "not valid YAML"),
        ("kind: Deployment\n", "neither an OpenSLO document"),
        ("- 1\n", "is a list, not a mapping"),
        ("apiVersion: openslo/v1\nkind: Service\nmetadata: {name: x}\n", "no SLO found"),
        ("version: prometheus/v1\nslos: []\n", "'service' is required"),
        ("version: prometheus/v1\nservice: s\nslos: []\n", "at least one SLO"),
        (
            "version: prometheus/v1\nservice: s\nslos:\n- name: a\n  objective: 99\n"
            "  sli: {events: {error_query: 'sum(x)', total_query: 'sum(y[{{.window}}])'}}\n",
            "must use the {{.window}} placeholder",
        ),
        (
            "version: prometheus/v1\nservice: s\nslos:\n- name: a\n  objective: 100\n"
            "  sli: {events: {error_query: 'x[{{.window}}]', total_query: 'y[{{.window}}]'}}\n",
            "an objective of 100 leaves no error budget",
        ),
        (
            "version: prometheus/v1\nservice: s\nslos:\n- name: a\n  objective: 99\n"
            "  sli: {plugin: {id: sloth-common/availability}}\n",
            "SLI plugins are not supported",
        ),
    ],
)
def test_text_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        load_slo_definitions(text)
    assert message in str(info.value)


def test_render_window_accepts_the_spaced_placeholder() -> None:
    assert render_window("rate(x[{{ .window }}]) / rate(y[{{.window}}])", 21600) == (
        "rate(x[6h]) / rate(y[6h])"
    )
