"""Scraped /metrics: parsing, selectors, increase/rate/ratio, histogram quantiles."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from releasegate.slo import (
    Snapshot,
    as_labels,
    bucket_quantile,
    gauge,
    histogram_quantile,
    increase,
    parse_exposition,
    parse_selector,
    rate,
    ratio,
    total_increase,
)

EXPOSITION = """\
# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 100
http_requests_total{code="500",path="/"} 2 1700000000000
# HELP jobs Jobs run (declared without _total).
# TYPE jobs counter
jobs 5
# TYPE queue_depth gauge
queue_depth{queue="mail"} 7
queue_depth{queue="a\\"b"} 1.5
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 10
latency_seconds_bucket{le="+Inf"} 20
latency_seconds_sum 3.5
latency_seconds_count 20
untyped_thing 42
"""


def snap(t: float, samples: dict[str, float]) -> Snapshot:
    """A snapshot from ``{'name{a="b"}': value}`` (labels written PromQL-style)."""
    parsed = {}
    for series, value in samples.items():
        name, _, rest = series.partition("{")
        labels = {}
        for pair in filter(None, rest.rstrip("}").split(",")):
            key, _, raw = pair.partition("=")
            labels[key] = raw.strip('"')
        parsed[(name, as_labels(labels))] = value
    return Snapshot(t, parsed)


def test_parse_keeps_exposition_names_and_labels() -> None:
    snapshot = parse_exposition(EXPOSITION, 12.5)
    assert snapshot.t == 12.5
    samples = snapshot.samples
    assert samples[("http_requests_total", (("code", "500"), ("path", "/")))] == 2
    assert samples[("jobs", ())] == 5  # not renamed jobs_total
    assert samples[("queue_depth", (("queue", 'a"b'),))] == 1.5
    assert samples[("latency_seconds_bucket", (("le", "+Inf"),))] == 20
    assert samples[("untyped_thing", ())] == 42
    assert len(samples) == 10


def test_parse_refuses_duplicates_garbage_and_too_many_series() -> None:
    with pytest.raises(ValueError, match=r"series foo\{\} appears twice in one scrape"):
        parse_exposition("foo 1\nfoo 2\n", 0)
    with pytest.raises(ValueError, match="the metrics text could not be read"):
        parse_exposition('foo{a="b" 1\n', 0)
    with pytest.raises(ValueError, match="more than 2 series"):
        parse_exposition("a 1\nb 2\nc 3\n", 0, max_series=2)


def test_gauge_reads_one_snapshot() -> None:
    snapshot = parse_exposition(EXPOSITION, 0)
    assert gauge(snapshot, 'queue_depth{queue="mail"}') == {
        ("queue_depth", (("queue", "mail"),)): 7.0
    }


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ('http_requests_total{code=~"5.."}', ["500"]),
        ('http_requests_total{code=~"5"}', []),  # anchored: "5" is not "500"
        ('http_requests_total{code!~"5.."}', ["200", "5000", ""]),  # absent label is ""
        ('http_requests_total{code!="200"}', ["500", "5000", ""]),
        ('http_requests_total{code=""}', [""]),
        ('http_requests_total{code="200",}', ["200"]),
        ("http_requests_total{code='500'}", ["500"]),
        ("http_requests_total{code=~`5\\d+`}", ["500", "5000"]),
        ('{__name__=~"http_.*", code=~"5.*"}', ["500", "5000"]),
        ('  http_requests_total { code = "200" } ', ["200"]),
    ],
)
def test_selectors_match_like_promql(selector: str, selected: list[str]) -> None:
    snapshot = snap(
        0,
        {
            'http_requests_total{code="200"}': 1,
            'http_requests_total{code="500"}': 1,
            'http_requests_total{code="5000"}': 1,
            "http_requests_total{}": 1,
            'other_total{code="500"}': 1,
        },
    )
    found = [dict(labels).get("code", "") for _, labels in snapshot.select(selector)]
    assert sorted(found) == sorted(selected)


def test_selector_escapes() -> None:
    selector = parse_selector('x{path="a\\"b\\\\c", re=~"\\d+\\.json"}')
    assert [m.value for m in selector.matchers] == ['a"b\\c', "\\d+\\.json"]
    assert selector.matches("x", {"path": 'a"b\\c', "re": "12.json"})


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("foo{a=b}", "the value of 'a' must be quoted: write a=\"...\""),
        ('foo{a=="b"}', "use '=' to match label 'a'"),
        ('{a=~".*"}', "would select every series"),
        ('foo{a=~"("}', "regex '('"),
        ("foo[5m]", "range selectors ([5m]) are not part of a selector here"),
        ('foo{a="b"', 'missing "}"'),
        ('foo{a="b', "unterminated string"),
        ('foo{1a="b"}', "expected a label name"),
        ("", "empty selector"),
        ("sum(foo)", "unexpected '(foo)'"),
        ('foo{a~"b"}', "expected =, !=, =~ or !~"),
    ],
)
def test_selector_errors_name_the_fix(text: str, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_selector(text)
    assert fix in str(info.value)


def test_increase_handles_resets() -> None:
    snaps = [
        snap(0, {"c_total": 10}),
        snap(15, {"c_total": 25}),
        snap(30, {"c_total": 5}),  # restarted: 5 since the restart
        snap(45, {"c_total": 12}),
    ]
    assert increase(snaps, "c_total") == {("c_total", ()): 27.0}
    assert rate(snaps, "c_total") == {("c_total", ()): 27.0 / 45}
    assert total_increase(snaps, "c_total") == 27.0
    assert increase(list(reversed(snaps)), "c_total") == {("c_total", ()): 27.0}


def test_a_series_that_appears_counts_from_zero() -> None:
    snaps = [
        snap(0, {'req_total{code="200"}': 100}),
        snap(10, {'req_total{code="200"}': 150, 'req_total{code="500"}': 2}),
        snap(20, {'req_total{code="200"}': 190, 'req_total{code="500"}': 3}),
    ]
    assert increase(snaps, "req_total") == {
        ("req_total", (("code", "200"),)): 90.0,  # counted from its first value
        ("req_total", (("code", "500"),)): 3.0,  # absent at first: counted from 0
    }


def test_a_series_that_disappears_continues_from_its_last_value() -> None:
    up = [snap(0, {"c_total": 10}), snap(10, {}), snap(20, {"c_total": 15})]
    assert total_increase(up, "c_total") == 5
    down = [snap(0, {"c_total": 10}), snap(10, {}), snap(20, {"c_total": 4})]
    assert total_increase(down, "c_total") == 4  # a drop across the gap: a restart
    nan = [snap(0, {"c_total": 10}), snap(10, {"c_total": math.nan}), snap(20, {"c_total": 12})]
    assert total_increase(nan, "c_total") == 2


def test_snapshots_must_be_two_at_different_times() -> None:
    with pytest.raises(ValueError, match="need two or more"):
        increase([snap(0, {})], "x")
    with pytest.raises(ValueError, match="scrape times must differ"):
        increase([snap(0, {}), snap(0, {})], "x")
    assert total_increase([snap(0, {}), snap(1, {})], "x") is None


def test_ratio_of_increases() -> None:
    snaps = [
        snap(0, {'req_total{code="200"}': 100}),
        snap(60, {'req_total{code="200"}': 190, 'req_total{code="500"}': 3}),
    ]
    result = ratio(snaps, 'req_total{code=~"5.."}', "req_total")
    assert (result.numerator, result.denominator) == (3.0, 93.0)
    assert result.value == pytest.approx(3 / 93)


def test_ratio_without_events_or_series_is_no_data() -> None:
    idle = [snap(0, {'req_total{code="200"}': 100}), snap(60, {'req_total{code="200"}': 100})]
    none = ratio(idle, 'req_total{code=~"5.."}', "req_total")
    assert none.value is None and none.denominator == 0
    assert "no increase of req_total in the window" in none.problem
    healthy = [snap(0, {'req_total{code="200"}': 100}), snap(60, {'req_total{code="200"}': 150})]
    assert ratio(healthy, 'req_total{code=~"5.."}', "req_total").value == 0.0
    typo = ratio(healthy, 'req_totl{code=~"5.."}', "req_total")
    assert typo.value is None and "the numerator" in typo.problem
    no_den = ratio(healthy, "req_total", "requests_total")
    assert no_den.value is None and "the denominator" in no_den.problem


def _histogram(t: float, counts: Mapping[str, float], route: str = "") -> dict[str, float]:
    extra = f',route="{route}"' if route else ""
    return {f'lat_seconds_bucket{{le="{le}"{extra}}}': c for le, c in counts.items()}


BEFORE = {"0.1": 10, "0.25": 15, "0.5": 20, "1": 20, "+Inf": 20}
AFTER = {"0.1": 40, "0.25": 75, "0.5": 95, "1": 99, "+Inf": 100}
# Increases: 30, 60, 75, 79, 80 (cumulative) over the window.


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.15),  # rank 40 in (0.1, 0.25]: 0.1 + 0.15 * 10/30
        (0.95, 0.625),  # rank 76 in (0.5, 1]: 0.5 + 0.5 * 1/4
        (0.99, 1.0),  # rank 79.2 in the +Inf bucket: the highest finite bound
        (0.2, 0.1 * 16 / 30),  # rank 16 in the lowest bucket, from 0
        (0.0, 0.0),
        (1.0, 1.0),
    ],
)
def test_histogram_quantile_by_hand(q: float, expected: float) -> None:
    snaps = [snap(0, _histogram(0, BEFORE)), snap(60, _histogram(60, AFTER))]
    (result,) = histogram_quantile(q, snaps, "lat_seconds").values()
    assert result.value == pytest.approx(expected)
    assert result.observations == 80
    same = histogram_quantile(q, snaps, "lat_seconds_bucket")
    assert same == histogram_quantile(q, snaps, "lat_seconds")


def test_histogram_quantile_by_labels() -> None:
    fast = {"0.1": 0, "1": 0, "+Inf": 0}
    before = {**_histogram(0, fast, "a"), **_histogram(0, fast, "b")}
    after = {
        **_histogram(0, {"0.1": 10, "1": 10, "+Inf": 10}, "a"),
        **_histogram(0, {"0.1": 0, "1": 10, "+Inf": 10}, "b"),
    }
    snaps = [snap(0, before), snap(60, after)]
    per_route = histogram_quantile(0.5, snaps, "lat_seconds", by=["route"])
    assert per_route[(("route", "a"),)].value == pytest.approx(0.05)
    assert per_route[(("route", "b"),)].value == pytest.approx(0.55)
    (together,) = histogram_quantile(0.5, snaps, "lat_seconds").values()
    assert together.value == pytest.approx(0.1)  # rank 10 of 20: the top of the first bucket
    only_b = histogram_quantile(0.5, snaps, 'lat_seconds{route="b"}')
    assert only_b[()].value == pytest.approx(0.55)


def test_histogram_quantile_without_observations_or_buckets() -> None:
    snaps = [snap(0, _histogram(0, BEFORE)), snap(60, _histogram(60, BEFORE))]
    (idle,) = histogram_quantile(0.95, snaps, "lat_seconds").values()
    assert (idle.value, idle.problem) == (None, "no observations in the window")
    assert histogram_quantile(0.95, snaps, "nothing_here") == {}
    with pytest.raises(ValueError, match="from 0 to 1"):
        histogram_quantile(95, snaps, "lat_seconds")
    with pytest.raises(ValueError, match="leave it out of 'by'"):
        histogram_quantile(0.5, snaps, "lat_seconds", by=["le"])


def test_histogram_series_that_appear_count_from_zero() -> None:
    snaps = [snap(0, {"other": 1}), snap(60, _histogram(60, {"0.5": 3, "+Inf": 4}))]
    (result,) = histogram_quantile(0.5, snaps, "lat_seconds").values()
    assert result.observations == 4 and result.value == pytest.approx(0.5 * 2 / 3)


def test_bucket_quantile_edge_rules() -> None:
    inf = math.inf
    assert bucket_quantile(0.5, [(1, 5), (2, 10)]) == (None, "the histogram has no +Inf bucket")
    assert bucket_quantile(0.5, [(inf, 5)]) == (None, "the histogram has fewer than two buckets")
    assert bucket_quantile(0.5, [(1, 0), (inf, 0)]) == (None, "no observations in the window")
    negative = [(-1, 5), (0, 10), (inf, 10)]
    assert bucket_quantile(0.25, negative) == (-1, "")  # lowest bound <= 0: the bound itself
    assert bucket_quantile(0.75, negative) == (-0.5, "")
    broken = [(0.1, 10), (0.5, 8), (1, 12), (inf, 12)]  # 8 < 10: raised to 10
    assert bucket_quantile(0.5, broken)[0] == pytest.approx(0.06)
    assert bucket_quantile(0.9, broken)[0] == pytest.approx(0.7)
    assert bucket_quantile(0.5, [(1, 3), (1, 2), (inf, 10)]) == (1.0, "")  # "1" and "1.0"
    assert bucket_quantile(0.0, [(0.1, 0), (0.2, 0), (0.5, 4), (inf, 4)]) == (0.2, "")
    assert bucket_quantile(0.5, [(0.1, 0), (inf, 4)]) == (0.1, "")  # all above: top bound
    nearly = [(0.1, 1e15), (0.2, 1e15 * (1 - 1e-14)), (inf, 1e15)]
    assert bucket_quantile(1.0, nearly)[0] == pytest.approx(0.1)


def test_real_client_output_from_two_scrapes() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = CollectorRegistry()
    requests = Counter("shop_requests", "Requests", ["code"], registry=registry)
    Counter("shop_errors", "Errors by kind", ["kind"], registry=registry)  # no series yet
    latency = Histogram(
        "shop_latency_seconds", "Latency", buckets=(0.1, 0.25, 0.5, 1.0), registry=registry
    )
    requests.labels("200").inc(50)
    first = parse_exposition(generate_latest(registry).decode(), 0)
    assert ("shop_requests_total", (("code", "200"),)) in first.samples
    assert first.has_metric("shop_errors_total")  # declared, no series yet
    for seconds in (0.05, 0.05, 0.2, 0.3, 0.3, 0.3, 0.7, 2.0):
        latency.observe(seconds)
    requests.labels("200").inc(38)
    requests.labels("503").inc(2)
    second = parse_exposition(generate_latest(registry).decode(), 30)
    snaps = [first, second]

    errors_ratio = ratio(snaps, 'shop_requests_total{code=~"5.."}', "shop_requests_total")
    assert (errors_ratio.numerator, errors_ratio.denominator) == (2, 40)
    no_errors = ratio(snaps, "shop_errors_total", "shop_requests_total")
    assert no_errors.value == 0.0  # declared but never incremented: none yet
    (p50,) = histogram_quantile(0.5, snaps, "shop_latency_seconds").values()
    assert p50.observations == 8
    assert p50.value == pytest.approx(0.25 + 0.25 * (4 - 3) / 3)  # rank 4 in (0.25, 0.5]
    (p99,) = histogram_quantile(0.99, snaps, "shop_latency_seconds").values()
    assert p99.value == 1.0  # in the +Inf bucket: the highest finite bound
