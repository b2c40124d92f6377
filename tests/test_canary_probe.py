"""The canary probe against real services: two demo targets side by side (the canary serving
1.4.2, the baseline 1.4.1), each source (per-request samples over http, scraped /metrics,
Prometheus) and each outcome (PASSED, FAILED, MARGINAL, NO_DATA, ERROR, SKIPPED), and golden
baselines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from _httpserver import closed_port_url
from releasegate.demo import BASELINE_VERSION, DemoTarget
from releasegate.model import Status
from releasegate.phases import Phase
from releasegate.probes.base import ProbeContext, ProbeResult, run_check
from releasegate.spec import Spec
from releasegate.target import TargetClient


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[DemoTarget, DemoTarget]]:
    """A canary and its baseline, no background traffic (the probe's requests are the data)."""
    with (
        DemoTarget(traffic_rps=0, fault_seed=11) as canary,
        DemoTarget(traffic_rps=0, fault_seed=12, version=BASELINE_VERSION) as baseline,
    ):
        yield canary, baseline
        canary.clear_faults()
        baseline.clear_faults()


@pytest.fixture
def healthy(pair: tuple[DemoTarget, DemoTarget]) -> Iterator[tuple[DemoTarget, DemoTarget]]:
    for target in pair:
        target.clear_faults()
    yield pair
    for target in pair:
        target.clear_faults()


def probe(
    canary_url: str,
    baseline_url: str | None,
    check: dict[str, Any],
    spec_dir: Path | None = None,
    **spec: Any,
) -> ProbeResult:
    target: dict[str, Any] = {"base_url": canary_url}
    if baseline_url is not None:
        target["baseline_url"] = baseline_url
    parsed = Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": target,
            "checks": [{"name": "canary", "phases": ["t24h"], "type": "canary", **check}],
            **spec,
        }
    )
    ctx = ProbeContext(
        spec=parsed,
        target=TargetClient(
            base_url=canary_url,
            baseline_url=None if baseline_url == "demo://" else baseline_url,
            timeout_s=3,
        ),
        phase=Phase.T24H,
        spec_dir=spec_dir,
    )
    return run_check(parsed.checks[0], ctx)


def metrics_of(result: ProbeResult) -> dict[str, dict[str, Any]]:
    details = result.evidence[0].to_dict()["details"]
    return {m["metric"]: m for m in details["metrics"]}


HTTP = {"source": "http", "path": "/api/products", "requests": 150, "rps": 400}


def test_a_healthy_canary_passes_with_both_metrics_measured(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    canary, baseline = healthy
    result = probe(canary.url, baseline.url, HTTP)
    assert result.status is Status.PASSED, result.reason
    assert not result.marginal
    found = metrics_of(result)
    assert set(found) == {"errors", "latency"}
    assert found["errors"]["canary"]["count"] == found["errors"]["baseline"]["count"] == 150
    assert found["errors"]["canary"]["events"] == found["errors"]["baseline"]["events"] == 0
    latency = found["latency"]
    assert latency["verdict"] == "passed"
    assert latency["test"] and latency["p_value"] is not None
    assert latency["shape"]["kind"] == "ecdf" and len(latency["shape"]["x"]) >= 10


def test_a_slower_canary_fails_through_the_latency_comparison(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    canary, baseline = healthy
    canary.set_faults({"latency_ms": 60})
    result = probe(canary.url, baseline.url, {**HTTP, "requests": 60})
    assert result.status is Status.FAILED, result.reason
    found = metrics_of(result)
    assert found["latency"]["verdict"] == "failed"
    assert found["errors"]["verdict"] == "passed"
    assert "latency" in result.reason
    # Latencies read as milliseconds, not raw seconds (60 ms added to a few ms).
    shown = re.search(r"canary p95 (\d+(?:\.\d+)?)ms vs baseline (\d+(?:\.\d+)?)ms", result.reason)
    assert shown, result.reason
    # (A busy machine can slow the baseline too; the canary carries the 60 ms on top.)
    assert float(shown.group(1)) >= 60
    assert float(shown.group(1)) > float(shown.group(2))


def test_canary_errors_fail_even_against_a_baseline_without_any(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    """Kayenta's zero-error-baseline false pass: the rate test judges it, not a ratio of 0."""
    canary, baseline = healthy
    canary.set_faults({"error_rate": 0.1})
    result = probe(canary.url, baseline.url, HTTP)
    assert result.status is Status.FAILED, result.reason
    errors = metrics_of(result)["errors"]
    assert errors["verdict"] == "failed"
    assert errors["baseline"]["events"] == 0
    assert errors["canary"]["events"] > 0


def test_a_fault_on_both_sides_is_not_a_canary_regression(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    """The canary check compares: an environment-wide problem is the SLO checks' to catch."""
    for target in healthy:
        target.set_faults({"latency_ms": 40})
    result = probe(healthy[0].url, healthy[1].url, {**HTTP, "requests": 80})
    assert result.status is Status.PASSED, result.reason


def test_a_regression_inside_the_margin_is_marginal(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    canary, baseline = healthy
    canary.set_faults({"latency_ms": 15})
    check = {**HTTP, "requests": 120, "metrics": {"latency": {"margin": "200ms"}, "errors": None}}
    result = probe(canary.url, baseline.url, check)
    assert result.status is Status.PASSED, result.reason
    assert result.marginal, result.reason
    assert metrics_of(result)["latency"]["verdict"] == "marginal"
    assert "within its margin of 200ms" in result.reason
    assert metrics_of(result)["latency"]["policy"]["margin"]["text"] == "200ms"


def test_too_few_requests_is_no_data_with_how_many_more(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    canary, baseline = healthy
    result = probe(canary.url, baseline.url, {**HTTP, "requests": 5})
    assert result.status is Status.NO_DATA, result.reason
    need = [m["need"] for m in metrics_of(result).values() if m.get("need")]
    assert need and "more" in need[0]["sentence"]
    assert need[0]["more"] > 0


def test_a_baseline_that_is_down_is_an_error(healthy: tuple[DemoTarget, DemoTarget]) -> None:
    result = probe(healthy[0].url, closed_port_url(), {**HTTP, "requests": 40})
    # Every baseline request failed: an error ratio of 100 % on the baseline is not a
    # measurement of the previous version, the canary cannot be judged against it.
    assert result.status in (Status.ERROR, Status.NO_DATA), result.reason
    assert result.status is not Status.PASSED


def test_the_demo_baseline_absent_is_skipped_with_the_reason(
    healthy: tuple[DemoTarget, DemoTarget],
) -> None:
    result = probe(healthy[0].url, "demo://", HTTP)
    assert result.status is Status.SKIPPED
    assert "baseline" in result.reason


def test_metrics_source_compares_histogram_buckets(
    pair: tuple[DemoTarget, DemoTarget],
) -> None:
    """Each side's own /metrics, scraped at the window's start and end, with traffic sent
    meanwhile: error counts and latency buckets."""
    canary, baseline = pair
    for target in pair:
        target.clear_faults()
    canary.set_faults({"latency_ms": 120})
    check = {
        "source": "metrics",
        "for": "4s",
        "counter": 'http_requests_total{route!="/metrics"}',
        "histogram": 'http_request_duration_seconds{route="/api/products"}',
    }
    import threading

    stop = threading.Event()

    def drive() -> None:
        clients = [TargetClient(base_url=t.url, timeout_s=3) for t in pair]
        while not stop.is_set():
            for client in clients:
                client.request("GET", "/api/products")

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        result = probe(canary.url, baseline.url, check)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        canary.clear_faults()
    assert result.status is Status.FAILED, result.reason
    latency = metrics_of(result)["latency"]
    assert latency["verdict"] == "failed"
    assert latency["canary"]["count"] > 0 and latency["baseline"]["count"] > 0
    assert re.search(r"canary p95 ~\d+(\.\d+)?ms vs baseline ~\d+(\.\d+)?ms", result.reason)
    assert re.search(r"above \d+(\.\d+)?ms: ", result.reason), result.reason


def test_a_golden_baseline_stands_in_for_a_live_one(
    healthy: tuple[DemoTarget, DemoTarget], tmp_path: Path
) -> None:
    from releasegate.canary import capture_baseline

    canary, baseline = healthy
    measured = _measure_side(baseline.url)
    path = tmp_path / "golden.json"
    capture_baseline(path, measured, deployment="shop", version=BASELINE_VERSION)
    check = {**HTTP, "baseline": {"golden": "golden.json", "max_age": "7d"}}
    result = probe(canary.url, None, check, spec_dir=tmp_path)
    assert result.status is Status.PASSED, result.reason
    assert "golden" in json.dumps(result.evidence[0].to_dict()["details"])

    canary.set_faults({"latency_ms": 60})
    assert probe(canary.url, None, check, spec_dir=tmp_path).status is Status.FAILED


def test_a_stale_golden_baseline_is_no_data(
    healthy: tuple[DemoTarget, DemoTarget], tmp_path: Path
) -> None:
    from releasegate.canary import capture_baseline

    canary, baseline = healthy
    path = tmp_path / "golden.json"
    capture_baseline(
        path,
        _measure_side(baseline.url),
        deployment="shop",
        version=BASELINE_VERSION,
        captured_at=datetime.now(timezone.utc) - timedelta(days=30),
    )
    check = {**HTTP, "baseline": {"golden": str(path), "max_age": "7d"}}
    result = probe(canary.url, None, check)
    assert result.status is Status.NO_DATA, result.reason
    assert "old" in result.reason


def _measure_side(url: str) -> dict[str, Any]:
    """One side measured by the probe's own http source (what `baseline capture` does)."""
    from releasegate.probes.canary import measure

    parsed = Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": {"base_url": url},
            "checks": [{"name": "c", "phases": ["t24h"], "type": "canary", **HTTP}],
        }
    )
    ctx = ProbeContext(spec=parsed, target=TargetClient(base_url=url, timeout_s=3))
    measured: dict[str, Any] = measure(parsed.checks[0], ctx, ("canary",))["canary"]
    return measured
