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
