"""Golden baselines: round trip, the sample cap, atomic writes, age and validation."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from releasegate.canary import (
    BaselineError,
    HistogramData,
    MetricPolicy,
    RateData,
    SampleData,
    Verdict,
    capture_baseline,
    compare,
    judge,
    load_baseline,
)

CAPTURED = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
METRICS = {
    "errors": RateData(12, 48_000, minutes=30.0),
    "latency": SampleData([0.041, 0.052, 0.2], minutes=30.0),
    "latency_hist": HistogramData([0.05, 0.1, math.inf], [10, 25, 30], minutes=30.0, value_sum=2.5),
}


def test_round_trip_of_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    captured = capture_baseline(
        path, METRICS, deployment="checkout", version="v1.4.2", captured_at=CAPTURED
    )
    loaded = load_baseline(path, now=CAPTURED + timedelta(hours=3))
    assert loaded.metrics == captured.metrics == METRICS
    assert (loaded.deployment, loaded.version, loaded.captured_at) == (
        "checkout",
        "v1.4.2",
        "2026-01-05T12:00:00Z",
    )
    assert loaded.age_s == pytest.approx(3 * 3600)
    assert not loaded.stale
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1
    assert doc["metrics"]["latency_hist"]["bounds"][-1] == "+Inf"


def test_samples_are_capped_by_a_seeded_subsample(tmp_path: Path) -> None:
    values = np.random.default_rng(1).lognormal(0, 1, 25_000)
    metrics = {"latency": SampleData(values)}
    one = capture_baseline(
        tmp_path / "a.json", metrics, deployment="d", version="v", captured_at=CAPTURED
    )
    two = capture_baseline(
        tmp_path / "b.json", metrics, deployment="d", version="v", captured_at=CAPTURED
    )
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    stored = one.metrics["latency"]
    assert isinstance(stored, SampleData) and stored.count == 10_000
    assert set(stored.values) <= set(values.tolist())
    assert (
        json.loads((tmp_path / "a.json").read_text())["metrics"]["latency"]["subsampled_from"]
        == 25_000
    )
    assert two.metrics == one.metrics


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "golden.json"
    capture_baseline(path, METRICS, deployment="d", version="v1", captured_at=CAPTURED)
    before = path.read_bytes()

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        capture_baseline(path, METRICS, deployment="d", version="v2", captured_at=CAPTURED)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["golden.json"]


def test_a_stale_baseline_is_named_in_every_reason(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    capture_baseline(path, METRICS, deployment="checkout", version="v1.4.2", captured_at=CAPTURED)
    golden = load_baseline(path, now=CAPTURED + timedelta(days=10))
    assert golden.stale
    result = compare(
        MetricPolicy("errors"), RateData(15, 50_000), golden.metric("errors"), source=golden.source
    )
    assert result.verdict is Verdict.PASSED
    assert (
        "the golden baseline of v1.4.2 captured 10 d ago (older than the 7 d limit: recapture it)"
        in result.reason
    )
    assert result.to_dict()["source"]["stale"] is True
    fresh = load_baseline(path, now=CAPTURED + timedelta(days=10), max_age_s=30 * 86400)
    text = judge(
        [(MetricPolicy("errors"), RateData(15, 50_000), fresh.metric("errors"))],
        source=fresh.source,
    )
    assert text.comparisons[0].reason.endswith(
        "baseline: the golden baseline of v1.4.2 captured 10 d ago"
    )


def test_missing_metric_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    capture_baseline(path, METRICS, deployment="d", version="v", captured_at=CAPTURED)
    with pytest.raises(
        BaselineError, match=r"no metric 'cpu' \(it has: errors, latency, latency_hist\)"
    ):
        load_baseline(path, now=CAPTURED).metric("cpu")


def document(**changes: object) -> str:
    """A valid baseline file's text, with ``changes`` to its top level."""
    doc: dict[str, object] = {
        "schema_version": 1,
        "deployment": "d",
        "version": "v",
        "captured_at": "2026-01-05T12:00:00Z",
        "metrics": {"a": {"kind": "rate", "events": 1, "total": 2}},
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        (document(schema_version=2), "schema_version 2"),
        (document(captured_at=None), "no captured_at"),
        (document(captured_at="x"), "not an ISO 8601 time"),
        (document(captured_at="2026-02-05T12:00:00Z"), "captured in the future"),
        (document(metrics={}), "has no metrics"),
        (
            document(metrics={"a": {"kind": "rate", "events": 5, "total": 2}}),
            "more events than total",
        ),
        (document(metrics={"a": {"kind": "sketch"}}), "unknown kind 'sketch'"),
        (document(metrics={"a": {"kind": "samples"}}), "missing 'values'"),
        (document(metrics={"a": [1, 2]}), "expected an object"),
    ],
)
def test_invalid_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "golden.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=message):
        load_baseline(path, now=CAPTURED)
    assert load_baseline_ok(tmp_path)


def load_baseline_ok(tmp_path: Path) -> bool:
    """The unchanged document loads: each case above fails for its one change."""
    path = tmp_path / "valid.json"
    path.write_text(document())
    return load_baseline(path, now=CAPTURED).metric("a") == RateData(1, 2)


def test_missing_file_and_naive_times_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="cannot read"):
        load_baseline(tmp_path / "nope.json")
    with pytest.raises(BaselineError, match="timezone-aware"):
        capture_baseline(
            tmp_path / "g.json",
            METRICS,
            deployment="d",
            version="v",
            captured_at=datetime(2026, 1, 1),
        )
    with pytest.raises(BaselineError, match="at least one metric"):
        capture_baseline(tmp_path / "g.json", {}, deployment="d", version="v")
