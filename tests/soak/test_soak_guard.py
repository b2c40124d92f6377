"""The soak guard, pure: thresholds over a sliding window, held for their grace; recovery
resets; too few requests is NO_DATA; warm-up does not count; SLO failures count at once.

Intervals are the load channel's own value objects with real HDR histograms (no locust)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.errors import UsageError
from releasegate.load.channel import Interval, NameStats, new_histogram, to_us
from releasegate.load.thresholds import Metric
from releasegate.model import Status
from releasegate.soak.guard import Guard, GuardState
from releasegate.soak.rules import parse_rule, parse_seconds, rule_dict, rule_from_dict

T0 = 1_800_000_000.0


def interval(
    second: int, *, latency_ms: float = 10.0, requests: int = 300, failures: int = 0
) -> Interval:
    """One second of traffic: ``requests`` answered in ``latency_ms`` (95% of them; the rest
    twice as fast), ``failures`` of them failed."""
    hist = new_histogram()
    fast = requests // 20
    for i in range(requests):
        hist.record_value(to_us(latency_ms / 2 if i < fast else latency_ms))
    stats = NameStats(requests, failures, hist)
    return Interval(
        start=T0 + second, end=T0 + second + 1, users=10, by_name={"GET /": stats}, index=second
    )


def test_rules_parse_in_k6_form() -> None:
    p95 = parse_rule("p(95) < 300ms")
    assert (p95.metric, p95.quantile, p95.name, p95.abort_on_fail) == (
        Metric.PERCENTILE,
        95.0,
        None,
        True,
    )
    assert p95.condition.threshold == pytest.approx(0.3)
    assert parse_rule("p(99) <= 0.8s").condition.threshold == pytest.approx(0.8)
    assert parse_rule("error_rate < 0.5%").condition.threshold == pytest.approx(0.005)
    assert parse_rule("rps > 200").metric is Metric.RPS
    named = parse_rule("GET /api/products: p(99) < 800ms for 10s", grace_s=3.0, window_s=2.0)
    assert (named.name, named.grace_s, named.window_s) == ("GET /api/products", 10.0, 2.0)
    assert parse_rule("error_rate < 1% for 5m").grace_s == 300.0
    assert rule_from_dict(rule_dict(named)) == named
    for bad in ("p95 < 300ms", "p(95) < 3%", "rps > 3ms", "p(100) < 1ms", "speed > 1"):
        with pytest.raises(UsageError):
            parse_rule(bad)
    assert parse_seconds("48h") == 48 * 3600
    assert parse_seconds("500ms") == 0.5
    with pytest.raises(UsageError):
        parse_seconds("soon")


def test_a_breach_ends_only_once_held_for_its_grace() -> None:
    guard = Guard([parse_rule("p(95) < 300ms", grace_s=3.0, window_s=2.0)])
    for s in range(5):
        assert guard.observe(interval(s)).state is GuardState.OK
    # The fault starts at second 5: the window's p95 is over the limit from then on.
    states = [guard.observe(interval(s, latency_ms=400)) for s in range(5, 10)]
    assert [t.state for t in states[:2]] == [GuardState.BREACHING, GuardState.BREACHING]
    breached = next(t for t in states if t.breach is not None)
    assert breached.breach is not None
    assert breached.breach.onset == T0 + 5
    assert breached.breach.confirmed_at == T0 + 8  # the first interval end 3 s after onset
    assert breached.state is GuardState.BREACHED
    assert breached.breach.measured is not None and breached.breach.measured >= 400
    assert guard.breach == breached.breach
    assert guard.measured["p(95) < 300 ms"] == guard.ticks


def test_recovery_resets_the_grace() -> None:
    guard = Guard([parse_rule("p(95) < 300ms", grace_s=3.0, window_s=1.0)])
    ticks = []
    # Two seconds bad, one good, two bad, one good...: never 3 s in a row, never a breach.
    for s in range(30):
        slow = s % 3 != 2
        ticks.append(guard.observe(interval(s, latency_ms=400 if slow else 10)))
    assert all(t.breach is None for t in ticks)
    assert guard.breach is None
    assert {t.state for t in ticks} == {GuardState.BREACHING, GuardState.OK}


def test_too_few_requests_is_no_data_and_does_not_reset() -> None:
    guard = Guard([parse_rule("p(95) < 300ms", grace_s=2.0, window_s=1.0)])
    tick = guard.observe(interval(0, requests=30))
    assert tick.state is GuardState.NO_DATA
    assert tick.measurements[0].status is Status.NO_DATA
    assert "needs at least 200" in tick.measurements[0].reason
    assert guard.observe(interval(1, latency_ms=500)).state is GuardState.BREACHING
    guard.observe(interval(2, requests=0))  # silence: the breach goes on
    tick = guard.observe(interval(3, latency_ms=500))
    assert tick.breach is not None and tick.breach.onset == T0 + 1


def test_warmup_intervals_are_not_judged() -> None:
    guard = Guard([parse_rule("p(95) < 300ms", grace_s=1.0, window_s=1.0)], warmup_until=T0 + 5)
    ticks = [guard.observe(interval(s, latency_ms=400)) for s in range(4)]
    assert all(t.state is GuardState.WARMUP and t.breach is None for t in ticks)
    ticks = [guard.observe(interval(s, latency_ms=400)) for s in range(5, 8)]
    assert ticks[0].breach is not None and ticks[0].breach.onset == T0 + 5


def test_error_rate_and_rps_rules() -> None:
    guard = Guard(
        [
            parse_rule("error_rate < 1%", grace_s=0.0, window_s=2.0),
            parse_rule("rps > 50", window_s=2.0),
        ]
    )
    tick = guard.observe(interval(0, failures=0))
    assert [m.status for m in tick.measurements] == [Status.PASSED, Status.PASSED]
    assert tick.measurements[1].measured == pytest.approx(300.0)
    tick = guard.observe(interval(1, requests=40, failures=5))
    assert tick.measurements[0].measured == pytest.approx(100 * 5 / 340)  # shown in %
    assert tick.breach is not None and tick.breach.rule == "error_rate < 1%"
    assert tick.breach.evidence["samples"] == 340


def test_a_failing_slo_check_ends_the_soak_once_held_for_the_grace() -> None:
    guard = Guard([parse_rule("p(95) < 300ms")], slo_grace_s=8.0)
    assert guard.note_slo("p95-latency", Status.PASSED, "ok", T0, aborts=True) is None
    # Not an aborting check (minor, no on_fail): never a breach.
    for at in (1, 20, 40):
        assert guard.note_slo("error-log", Status.FAILED, "warn", T0 + at, aborts=False) is None
    # One bad round is not a sustained breach; a pass resets; an unknown result holds.
    assert guard.note_slo("error-rate", Status.FAILED, "5xx at 3%", T0 + 2, aborts=True) is None
    assert guard.note_slo("error-rate", Status.PASSED, "ok", T0 + 12, aborts=True) is None
    assert guard.note_slo("error-rate", Status.FAILED, "5xx at 3%", T0 + 22, aborts=True) is None
    assert guard.note_slo("error-rate", Status.ERROR, "timeout", T0 + 26, aborts=True) is None
    found = guard.note_slo("error-rate", Status.FAILED, "5xx at 4%", T0 + 32, aborts=True)
    assert found is not None and found.source == "slo" and found.check == "error-rate"
    assert (found.onset, found.confirmed_at) == (T0 + 22, T0 + 32)
    assert guard.breach == found and guard.worst is GuardState.BREACHED
    at_once = Guard([], slo_grace_s=0.0)
    assert at_once.note_slo("error-rate", Status.FAILED, "x", T0, aborts=True) is not None


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.lists(st.booleans(), min_size=1, max_size=40),
    grace=st.integers(min_value=0, max_value=6),
)
def test_breach_iff_a_run_of_bad_seconds_lasts_the_grace(pattern: list[bool], grace: int) -> None:
    """Property: with a 1-second window, the guard breaches exactly when some run of
    consecutive bad seconds spans the grace (from the start of its first second)."""
    guard = Guard([parse_rule("p(95) < 300ms", grace_s=float(grace), window_s=1.0)])
    breached_at = None
    for s, bad in enumerate(pattern):
        tick = guard.observe(interval(s, latency_ms=400 if bad else 10))
        if tick.breach is not None and breached_at is None:
            breached_at = s
    run = 0
    expected = None
    for s, bad in enumerate(pattern):
        run = run + 1 if bad else 0
        if bad and run >= max(grace, 1) and expected is None:
            expected = s
    assert breached_at == expected
