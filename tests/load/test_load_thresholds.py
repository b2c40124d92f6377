"""Load thresholds and the channel, pure: parsing, the minimum-sample rule, verdicts on HDR
histograms (checked against a sort of the raw values), the live abort monitor, the channel's
reader and the plugin's merge logic (``load.collector``'s Recorder and Collector, which
locust_main wires to locust's events)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.load.channel import (
    ChannelReader,
    FinalStats,
    Interval,
    NameStats,
    merge,
    new_histogram,
    to_us,
)
from releasegate.load.collector import MAX_NAMES, OTHER_NAMES, Collector, Recorder
from releasegate.load.thresholds import (
    AbortMonitor,
    Metric,
    count_meeting,
    evaluate_all,
    overall,
    parse_threshold,
    target_rank,
)
from releasegate.model import Status


def stats_of(values_ms: list[float], failures: int = 0) -> NameStats:
    histogram = new_histogram()
    for value in values_ms:
        histogram.record_value(to_us(value))
    return NameStats(len(values_ms), failures, histogram)


def interval(
    start: float, values_ms: list[float], failures: int = 0, seconds: float = 1.0
) -> Interval:
    return Interval(
        start=start,
        end=start + seconds,
        users=10,
        by_name={"GET /": stats_of(values_ms, failures)} if values_ms else {},
        index=int(start),
    )


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "threshold", "needed"),
    [
        ("p(95) < 300ms", Metric.PERCENTILE, 0.3, 200),
        ("p(99) < 800ms", Metric.PERCENTILE, 0.8, 1000),
        ("p(99.9)<=1.2s", Metric.PERCENTILE, 1.2, 10000),
        ("p(50) < 100ms", Metric.PERCENTILE, 0.1, 20),
        ("med < 100ms", Metric.PERCENTILE, 0.1, 20),
        ("error_rate < 0.5%", Metric.ERROR_RATE, 0.005, 200),
        ("http_req_failed < 0.01", Metric.ERROR_RATE, 0.01, 100),
        ("rps > 200", Metric.RPS, 200.0, 1),
        ("rps > 12000/min", Metric.RPS, 200.0, 1),
        ("requests >= 1000", Metric.REQUESTS, 1000.0, 1),
        ("failures == 0", Metric.FAILURES, 0.0, 1),
        ("avg < 150ms", Metric.AVG, 0.15, 1),
        ("max < 2s", Metric.MAX, 2.0, 1),
    ],
)
def test_parse_k6_thresholds(text: str, metric: Metric, threshold: float, needed: int) -> None:
    parsed = parse_threshold(text)
    assert parsed.metric is metric
    assert parsed.condition.threshold == pytest.approx(threshold)
    assert parsed.needed_samples() == needed


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("p(95) < 300", "'< 300ms'"),
        ("p95 < 300ms", "write p(95)"),
        ("rsp > 3", "did you mean 'rps'?"),
        ("p(100) < 1s", "use max"),
        ("p(95) == 3ms", "'==' is for counts"),
        ("error_rate < 300ms", "hold it to a ratio"),
        ("p(95) =< 3ms", "write '<='"),
        ("latency", "write a metric and a comparison"),
    ],
)
def test_bad_thresholds_say_what_to_write(text: str, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_threshold(text)
    assert fix in str(info.value)


def test_minimum_sample_rule_is_ten_beyond_the_percentile() -> None:
    for q, needed in ((50, 20), (90, 100), (95, 200), (99, 1000), (99.9, 10000)):
        assert parse_threshold(f"p({q}) < 1s").needed_samples() == needed
        assert math.ceil((1 - q / 100) * needed) >= 10 - 1e-9
    assert parse_threshold("p(99) < 1s", min_samples=50).needed_samples() == 50


# -- verdicts on whole runs -----------------------------------------------------------------


def test_p99_from_50_requests_is_no_data_saying_how_many() -> None:
    verdict = parse_threshold("p(99) < 800ms").evaluate(stats_of([10.0] * 50), 5.0)
    assert verdict.status is Status.NO_DATA
    assert verdict.needed == 1000
    assert "needs at least 1000 (950 more)" in verdict.reason


def test_an_overwhelming_breach_is_decided_before_the_minimum() -> None:
    # 84 samples, all slower than 300 ms: whatever 116 more would be, p(95) of 200 breaks.
    verdict = parse_threshold("p(95) < 300ms").evaluate(stats_of([420.0] * 84), 5.0)
    assert verdict.status is Status.FAILED
    assert "decided from 84 of the 200" in verdict.reason
    # ...but 84 fast samples cannot pass it: 116 slow ones would break it.
    assert parse_threshold("p(95) < 300ms").evaluate(stats_of([5.0] * 84), 5.0).status is (
        Status.NO_DATA
    )


def test_error_rate_needs_its_resolution_unless_decided() -> None:
    t = parse_threshold("error_rate < 1%")
    assert t.evaluate(stats_of([5.0] * 50), 1.0).status is Status.NO_DATA
    assert t.evaluate(stats_of([5.0] * 50, failures=2), 1.0).status is Status.FAILED
    assert t.evaluate(stats_of([5.0] * 100), 1.0).status is Status.PASSED
    assert t.evaluate(stats_of([5.0] * 1000, failures=10), 1.0).status is Status.FAILED


def test_empty_or_missing_stats_are_no_data() -> None:
    t = parse_threshold("p(95) < 300ms", name="GET /api/products")
    assert t.evaluate(None, 5.0).status is Status.NO_DATA
    assert "no request named 'GET /api/products'" in t.evaluate(None, 5.0).reason
    assert overall([]) is Status.NO_DATA


def test_overall_a_failure_wins_then_no_data() -> None:
    fast, slow = stats_of([5.0] * 300), stats_of([500.0] * 300)
    ok = parse_threshold("p(95) < 300ms")
    starved = parse_threshold("p(99) < 300ms")
    assert overall([ok.evaluate(fast, 1)]) is Status.PASSED
    assert overall([ok.evaluate(fast, 1), starved.evaluate(fast, 1)]) is Status.NO_DATA
    assert overall([ok.evaluate(slow, 1), starved.evaluate(fast, 1)]) is Status.FAILED


def test_per_name_and_total() -> None:
    by_name = {"GET /a": stats_of([5.0] * 300), "GET /b": stats_of([900.0] * 300)}
    totals = merge(by_name.values())
    verdicts = evaluate_all(
        [
            parse_threshold("p(95) < 300ms", name="GET /a"),
            parse_threshold("p(95) < 300ms", name="GET /b"),
            parse_threshold("p(50) < 300ms"),
            parse_threshold("rps > 100"),
            parse_threshold("requests >= 600"),
        ],
        by_name,
        totals,
        seconds=5.0,
    )
    assert [v.status for v in verdicts] == [
        Status.PASSED,
        Status.FAILED,
        Status.PASSED,
        Status.PASSED,
        Status.PASSED,
    ]
    assert verdicts[3].value == pytest.approx(120.0)


values_ms = st.lists(
    st.floats(min_value=0.05, max_value=5000, allow_nan=False), min_size=1, max_size=400
)


@settings(max_examples=150, deadline=None)
@given(
    values=values_ms,
    q=st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9]),
    limit_ms=st.floats(min_value=0.1, max_value=5000),
    op=st.sampled_from(["<", "<=", ">", ">="]),
)
def test_counting_agrees_with_the_merged_percentile(
    values: list[float], q: float, limit_ms: float, op: str
) -> None:
    """The live monitor's counts give the verdict the histogram's percentile gives."""
    stats = stats_of(values)
    t = parse_threshold(f"p({q:g}) {op} {limit_ms!r}ms", min_samples=1)
    value_us = stats.histogram.get_value_at_percentile(q)
    expected = t.condition.holds(value_us / 1e6)
    rank = target_rank(q, len(values))
    meeting = count_meeting(stats, t.condition)
    held = meeting >= rank if op in ("<", "<=") else meeting < rank
    if not math.isclose(value_us / 1e6, t.condition.threshold, rel_tol=1e-9):
        assert held == expected
        assert t.evaluate(stats, 1.0).status is (Status.PASSED if expected else Status.FAILED)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(min_value=1, max_value=10_000_000), min_size=1, max_size=300))
def test_hdr_percentiles_within_a_tenth_of_a_percent_of_sorting(values: list[int]) -> None:
    stats = stats_of([v / 1000 for v in values])
    ordered = sorted(values)
    for q in (50.0, 95.0, 99.0):
        exact = ordered[target_rank(q, len(values)) - 1]
        measured = stats.percentile_ms(q)
        assert measured is not None
        assert measured * 1000 >= exact - 1e-6  # never below the true value
        assert measured * 1000 <= exact * 1.001 + 1e-6  # at most 0.1% above it


# -- the live abort monitor -------------------------------------------------------------------


def test_abort_waits_for_the_grace_and_reports_the_breach() -> None:
    t = parse_threshold("p(95) < 300ms", abort_on_fail=True, grace_s=3, window_s=1)
    monitor = AbortMonitor([t])
    for second in range(5):
        assert monitor.observe(interval(float(second), [20.0] * 250)) is None
    breach = None
    for second in range(5, 20):
        breach = monitor.observe(interval(float(second), [450.0] * 250))
        if breach is not None:
            break
    assert breach is not None
    assert breach.since == 5.0
    assert breach.at == 8.0  # breached for its 3 s grace
    assert "breached for 3s" in breach.reason
    assert breach.to_dict()["breached_for_s"] == 3.0


def test_a_passing_window_resets_the_breach() -> None:
    t = parse_threshold("error_rate < 1%", abort_on_fail=True, grace_s=2, window_s=1)
    monitor = AbortMonitor([t])
    pattern = [50, 0, 50, 0, 50, 0]  # failures per 100 requests a second
    for second, failures in enumerate(pattern):
        assert monitor.observe(interval(float(second), [5.0] * 100, failures)) is None
    assert monitor.observe(interval(6.0, [5.0] * 100, 50)) is None
    breach = monitor.observe(interval(7.0, [5.0] * 100, 50))
    assert breach is not None and (breach.since, breach.at) == (6.0, 8.0)


def test_window_reaches_back_for_enough_samples() -> None:
    # 40 requests a second: p(95) needs 200, so a 1 s window reaches back 5 s.
    t = parse_threshold("p(95) < 300ms", abort_on_fail=True, window_s=1)
    monitor = AbortMonitor([t])
    # 5 slow of 40: undecided (195 more could all be fast), not a breach
    assert monitor.observe(interval(0.0, [500.0] * 5 + [5.0] * 35)) is None
    first = monitor.state()[0]
    assert first is not None and first.status is Status.NO_DATA
    verdicts = []
    for second in range(1, 6):
        monitor.observe(interval(float(second), [5.0] * 40))
        verdicts.append(monitor.state()[0])
    last = verdicts[-1]
    assert last is not None and last.samples >= 200 and last.status is Status.PASSED


def test_thresholds_without_abort_are_not_watched() -> None:
    assert not AbortMonitor([parse_threshold("p(95) < 300ms")])


# -- the channel ------------------------------------------------------------------------------


def test_reader_waits_for_a_partial_line_and_skips_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "channel.jsonl"
    reader = ChannelReader(path)
    assert reader.read_new() == []  # no file yet
    first = json.dumps(interval(1.0, [5.0, 7.0]).to_json())
    second = json.dumps(interval(2.0, [9.0]).to_json())
    path.write_text(first + "\n" + second[:40])
    got = reader.read_new()
    assert [i.total().requests for i in got] == [2]
    with path.open("a") as handle:
        handle.write(second[40:] + "\nnot json\n")
    got = reader.read_new()
    assert [i.total().requests for i in got] == [1]
    assert reader.bad_lines == 1 and reader.last_problem is not None
    final = FinalStats(3.0, 2, {"GET /": stats_of([5.0, 7.0, 9.0])}, {"total": {}})
    with path.open("a") as handle:
        handle.write(json.dumps(final.to_json()) + "\n")
    assert reader.read_new() == []
    assert reader.final is not None and reader.final.total().requests == 3


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_master_merges_worker_histograms_by_interval(tmp_path: Path) -> None:
    clock = FakeClock(100.2)
    workers = [Recorder(1.0, clock), Recorder(1.0, clock)]
    master = Collector(str(tmp_path / "ch.jsonl"), 1.0, lateness_s=1.5, clock=clock)
    master.start()
    for n, worker in enumerate(workers):
        for k in range(100):
            worker.record("GET /", 10.0 + n * 100 + k, failed=k == 0)
    clock.now = 101.3
    workers[0].record("GET /", 5.0, failed=False)
    for worker in workers:
        master.take_report({"releasegate_hdr": worker.encoded(), "stats": []})
    clock.now = 103.0
    master.emit_due(users=4)
    clock.now = 103.1
    late = Recorder(1.0, FakeClock(100.5))  # a report for an interval written already
    late.record("GET /", 1.0, failed=False)
    master.take_report({"releasegate_hdr": late.encoded(), "stats": []})
    master.take_report({"stats": [{"num_requests": 3}]})  # plain locust worker
    master.finish(users=0, locust={"total": {"requests": 202}})
    reader = ChannelReader(tmp_path / "ch.jsonl")
    intervals = reader.read_new()
    assert [i.total().requests for i in intervals][:2] == [200, 2]  # 101 holds the late one
    assert intervals[1].late == 1
    assert sum(i.total().requests for i in intervals) == 202
    assert sum(i.late for i in intervals) == 1
    first = intervals[0].total()
    assert first.failures == 2
    merged = sorted([10.0 + k for k in range(100)] + [110.0 + k for k in range(100)])
    assert first.percentile_ms(50) == pytest.approx(merged[99], rel=1e-3)
    assert reader.final is not None
    assert reader.final.total().requests == 202
    assert reader.final.locust["late_requests"] == 1
    assert reader.final.locust["foreign_reports"] == 1


def test_names_past_the_cap_share_one_histogram(tmp_path: Path) -> None:
    recorder = Recorder(1.0, FakeClock(10.0))
    for n in range(MAX_NAMES + 50):
        recorder.record(f"GET /item/{n}", 5.0, failed=False)
    names = recorder.pending[10]
    assert len(names) == MAX_NAMES + 1
    assert names[OTHER_NAMES].requests == 50
