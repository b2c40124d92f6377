"""The channel's histograms are freed by reference counting (no garbage collection needed)."""

from __future__ import annotations

import gc
import weakref

from releasegate.load.channel import NameStats, decode_histogram, merge, new_histogram


def test_histograms_are_freed_without_a_garbage_collection() -> None:
    """hdrh's histogram and its encoder refer to each other; left so, every histogram of a
    long soak waited for a full collection (about 180 MB an hour of garbage)."""
    gc.disable()
    try:
        made = new_histogram()
        made.record_value(1234)
        encoded = made.encode()
        decoded = decode_histogram(encoded)
        merged = merge([NameStats(1, 0, made), NameStats(1, 0, decoded)])
        assert merged.requests == 2 and merged.histogram.get_total_count() == 2
        assert decoded.get_value_at_percentile(50) == made.get_value_at_percentile(50)
        refs = [weakref.ref(h) for h in (made, decoded, merged.histogram)]
        del made, decoded, merged
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()


def test_a_locust_that_dies_mid_run_is_an_error_not_a_pass() -> None:
    """Killed by the OOM killer or a traceback after 10 s of 600: no final line, so the
    intervals read are only part of the run (found by review: it used to pass)."""
    from types import SimpleNamespace

    from releasegate.load.runner import LoadResult
    from releasegate.load.thresholds import parse_threshold
    from releasegate.model import Status
    from releasegate.probes.load import judge

    histogram = new_histogram()
    for _ in range(1000):
        histogram.record_value(50_000)
    stats = NameStats(1000, 0, histogram)
    check = SimpleNamespace(locustfile="x.py", users=1, spawn_rate=1, duration=600, workers=0)
    for exit_code in (1, -9):
        result = LoadResult(
            intervals=10, totals=stats, by_name={"GET /": stats}, duration_s=10, locust=None,
            exit_code=exit_code, output_tail="Traceback ...", stopped_reason=None, measured_s=10,
        )  # fmt: skip
        verdict = judge(check, [parse_threshold("p(95) < 300ms")], result, None, "http://x")
        assert verdict.status is Status.ERROR, verdict.reason
        assert "without its final report" in verdict.reason
