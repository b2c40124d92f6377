"""What SLO sources read from the demo target: /metrics, /metrics.json, the application log,
the background traffic behind them, the seeded random faults, and a real Prometheus scraping it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from releasegate.demo import DEMO_VERSION, DemoTarget
from releasegate.demo.app import CONTROL_PATHS
from releasegate.demo.applog import LINE_PATTERN
from releasegate.demo.faults import FaultDraws
from releasegate.demo.window import RequestWindow

SEED = 424242
ROUTES = {
    "/healthz",
    "/readyz",
    "/version",
    "/api/products",
    "/api/products/<int:product_id>",
    "/api/orders",
    "/api/episodes/recent",
    "unmatched",
}
LINE = re.compile(LINE_PATTERN)


@pytest.fixture(scope="module")
def live() -> Iterator[DemoTarget]:
    """A demo target with its default background traffic (20 requests a second)."""
    with DemoTarget(fault_seed=SEED) as target:
        yield target


def get(target: DemoTarget, path: str) -> requests.Response:
    return requests.get(f"{target.url}{path}", timeout=10)


def samples(target: DemoTarget, name: str, **labels: str) -> list[Any]:
    """The samples called ``name`` whose labels include ``labels``, parsed from /metrics."""
    return [
        sample
        for family in text_string_to_metric_families(get(target, "/metrics").text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def total(target: DemoTarget, name: str, **labels: str) -> float:
    return float(sum(sample.value for sample in samples(target, name, **labels)))


def hammer(target: DemoTarget, path: str, count: int, workers: int = 4) -> list[int]:
    """``count`` GETs of ``path`` from ``workers`` threads; their status codes."""
    with ThreadPoolExecutor(workers) as pool:
        answers = pool.map(lambda _: get(target, path), range(count))
        return [answer.status_code for answer in answers]


def log_lines(target: DemoTarget) -> list[str]:
    """Every line of the log and its rotated files, oldest file first."""
    path = target.log_path
    files = sorted(path.parent.glob(f"{path.name}.*"), key=lambda p: -int(p.suffix[1:]))
    return [line for f in [*files, path] for line in f.read_text().splitlines()]


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


# /metrics


def test_metrics_parse_and_grow_with_background_traffic(live: DemoTarget) -> None:
    families = {
        family.name: family.type
        for family in text_string_to_metric_families(get(live, "/metrics").text)
    }
    assert families["http_requests"] == "counter"
    assert families["http_request_duration_seconds"] == "histogram"
    assert families["http_requests_in_flight"] == "gauge"
    assert families["demo_build_info"] == "gauge"
    assert "process_resident_memory_bytes" in families

    # Nothing but scrapes from us: the background traffic alone makes the counters grow.
    before = total(live, "http_requests_total")
    wait_until(lambda: total(live, "http_requests_total") >= before + 10)
    for _ in range(5):
        get(live, "/metrics.json")
        get(live, "/_faults")
    counted = samples(live, "http_requests_total")
    routes = {sample.labels["route"] for sample in counted}
    assert {"/api/products", "/api/products/<int:product_id>", "/healthz"} <= routes <= ROUTES
    assert not routes & set(CONTROL_PATHS)  # scrapes and controls are not counted
    assert {sample.labels["version"] for sample in counted} == {DEMO_VERSION}
    assert {sample.labels["method"] for sample in counted} <= {"GET", "POST", "other"}


def test_route_labels_stay_bounded_whatever_clients_send(live: DemoTarget) -> None:
    for n in range(20):
        get(live, f"/api/products/{1000 + n}")
        get(live, f"/no/such/page/{n}")
        requests.request("BREW", f"{live.url}/api/products", timeout=10)
    routes = {s.labels["route"] for s in samples(live, "http_requests_total")}
    methods = {s.labels["method"] for s in samples(live, "http_requests_total")}
    assert routes <= ROUTES
    assert "other" in methods and "BREW" not in methods


def test_error_rate_shows_as_that_share_of_5xx_in_the_counters() -> None:
    with DemoTarget(faults={"error_rate": 0.2}, fault_seed=SEED) as target:
        statuses = hammer(target, "/api/products/1", 400)
        assert set(statuses) == {200, 500}
        counted = samples(target, "http_requests_total")
        errors = sum(s.value for s in counted if s.labels["status"].startswith("5"))
        ratio = errors / sum(s.value for s in counted)
        assert 0.14 <= ratio <= 0.26, ratio  # 400+ Bernoulli(0.2) draws: sd 0.02
        summary = get(target, "/metrics.json").json()
        assert 0.14 <= summary["error_rate"] <= 0.26
        assert summary["variants"][DEMO_VERSION]["error_rate"] == summary["error_rate"]
        assert summary["error_rate_percent"] == pytest.approx(100 * summary["error_rate"], 1e-3)


def test_latency_fault_shows_in_histogram_buckets_and_json_p95(tmp_path: Path) -> None:
    route = "/api/products/<int:product_id>"

    def bucket(target: DemoTarget, le: str) -> float:
        return total(target, "http_request_duration_seconds_bucket", route=route, le=le)

    with DemoTarget(traffic_rps=0, workdir=tmp_path) as target:
        empty = get(target, "/metrics.json").json()
        assert empty["requests"] == 0 and empty["window_s"] == 60.0
        assert empty["p95_ms"] is None and empty["error_rate"] is None  # no data, not zero
        assert hammer(target, "/api/products/2", 20) == [200] * 20
        fast = get(target, "/metrics.json").json()
        assert fast["requests"] == 20 and fast["p95_ms"] < 250

        target.set_faults({"latency_ms": 300})
        fast_buckets = bucket(target, "0.25"), bucket(target, "0.5"), bucket(target, "+Inf")
        assert hammer(target, "/api/products/3", 20, workers=10) == [200] * 20
        assert bucket(target, "0.25") == fast_buckets[0]  # none of the 20 under 250 ms
        assert bucket(target, "+Inf") == fast_buckets[2] + 20
        assert bucket(target, "10.0") == bucket(target, "+Inf")

        slow = get(target, "/metrics.json").json()
        assert slow["requests"] == 40
        assert slow["p95_ms"] >= 300 > fast["p95_ms"]
        assert slow["p50_ms"] < 300  # half the window is still the fast requests
        assert slow["routes"][f"GET {route}"]["p95_ms"] >= 300
        assert slow["variants"][DEMO_VERSION]["p95_ms"] == slow["p95_ms"]


def test_window_forgets_old_requests_and_bounds_memory() -> None:
    now = [100.0]
    window = RequestWindow(window_s=60, max_samples=5, clock=lambda: now[0])
    for n in range(3):
        window.add("1.4.2", "GET /healthz", 0.001 * (n + 1), error=n == 2)
    summary = window.snapshot()
    assert (summary["requests"], summary["errors"], summary["p50_ms"]) == (3, 1, 2.0)
    assert summary["truncated"] is False
    now[0] += 61
    assert window.snapshot()["requests"] == 0
    for _ in range(7):
        window.add("1.4.2", "GET /healthz", 0.001, error=False)
    capped = window.snapshot()
    assert capped["requests"] == 5 and capped["truncated"] is True


# The application log


def test_log_gets_bad_lines_for_injected_errors_and_warnings_for_slow_requests(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    with DemoTarget(
        faults={"error_rate": 0.5}, fault_seed=SEED, traffic_rps=0, log_file=log
    ) as target:
        assert target.log_path == log
        assert get(target, "/_demo").json()["log_file"] == str(log)
        statuses = [get(target, "/healthz").status_code for _ in range(30)]
        target.set_faults({"error_rate": 0, "latency_ms": 300})
        get(target, "/api/products")
        lines = log_lines(target)
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    errors = [line for line in lines if "[ERROR]" in line]
    assert len(errors) == statuses.count(500) > 0
    assert (
        errors[0].endswith("(route /healthz, version 1.4.2): InjectedFault: error_rate=0.5")
        and " [ERROR] GET /healthz -> 500 in " in errors[0]
    )
    infos = [line for line in lines if "[INFO] GET /healthz -> 200" in line]
    assert len(infos) == statuses.count(200)
    (slow,) = [line for line in lines if "[WARNING]" in line]
    assert "slow request: GET /api/products -> 200 in " in slow
    assert any(f"fault seed {SEED}" in line for line in lines)


def test_log_spike_writes_exception_lines_at_its_rate_until_cleared(live: DemoTarget) -> None:
    def critical() -> int:
        return sum("[CRITICAL] unhandled exception" in line for line in log_lines(live))

    assert critical() == 0
    live.set_faults({"log_spike": 1200})  # 20 a second
    try:
        wait_until(lambda: critical() >= 10, timeout_s=5)
    finally:
        live.clear_faults()
    settled = critical()
    time.sleep(0.5)
    assert critical() <= settled + 1  # one may have been on its way
    assert "InjectedFault: log_spike=1200 (1200 exceptions/min)" in live.log_path.read_text()


def test_log_rotates_by_rename_and_every_line_stays_whole(tmp_path: Path) -> None:
    with DemoTarget(traffic_rps=200, log_max_bytes=4096, workdir=tmp_path) as target:
        hammer(target, "/api/products/1", 150)
        wait_until(lambda: (tmp_path / "demo.log.3").exists())
    files = [tmp_path / name for name in ("demo.log", "demo.log.1", "demo.log.2", "demo.log.3")]
    assert not (tmp_path / "demo.log.4").exists()  # three backups kept, older ones dropped
    for path in files:
        text = path.read_text()
        assert len(text.encode()) <= 4096
        assert text.endswith("\n")
        assert all(LINE.match(line) for line in text.splitlines()), path


# Seeded random faults


def test_same_seed_same_draws_and_two_seeds_differ() -> None:
    def statuses(seed: int | None) -> tuple[int, list[int]]:
        with DemoTarget(faults={"error_rate": 0.5}, fault_seed=seed, traffic_rps=0) as target:
            assert get(target, "/_faults").json()["fault_seed"] == target.fault_seed
            assert get(target, "/_demo").json()["fault_seed"] == target.fault_seed
            return target.fault_seed, [get(target, "/healthz").status_code for _ in range(40)]

    seed, first = statuses(7)
    assert seed == 7
    assert statuses(7)[1] == first
    draws = FaultDraws(7)
    assert first == [500 if draws.fails(0.5) else 200 for _ in range(40)]
    assert statuses(8)[1] != first
    # Without a seed, each run draws a fresh one: 20 runs are 20 different trials.
    assert statuses(None)[0] != statuses(None)[0]


# A real Prometheus


def test_prometheus_scrapes_the_demo(prometheus: Callable[..., Any]) -> None:
    with DemoTarget(faults={"error_rate": 0.2}, fault_seed=SEED) as target:
        prom = prometheus(target.url)
        started = time.monotonic()
        prom.wait_for("sum(rate(http_requests_total[5s]))", lambda v: v > 0, timeout_s=15)
        assert time.monotonic() - started < 15
        ratio = (
            'sum(rate(http_requests_total{status=~"5.."}[10s]))'
            " / sum(rate(http_requests_total[10s]))"
        )
        prom.wait_for(ratio, lambda v: 0.02 < v < 0.5, timeout_s=15)
        p95 = (
            "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5s])))"
        )
        (result,) = prom.wait_for(p95, lambda v: 0 < v < 1)
        assert result["metric"] == {}
        (build,) = prom.query("demo_build_info")
        assert build["metric"]["version"] == DEMO_VERSION
