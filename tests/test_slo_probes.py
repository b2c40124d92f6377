"""The SLO probes against real sources: a live /metrics endpoint, a real Prometheus scraping it,
a JSON endpoint and a log file being written. Each source x each outcome (PASSED, FAILED,
NO_DATA, ERROR), including a source that is down, a series that stops mid-window, a counter
reset and several series without ``aggregate``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from werkzeug.wrappers import Response

from _httpserver import LocalServer, closed_port_url, json_response
from releasegate.model import Status
from releasegate.phases import Phase
from releasegate.probes.base import ProbeContext, ProbeResult, run_check
from releasegate.spec import Spec
from releasegate.target import TargetClient


class App:
    """A service whose /metrics counts requests by status and observes latencies; a thread
    drives ``rps`` requests a second with ``error_rate`` of them 500 and ``latency_s`` each."""

    def __init__(self, server: LocalServer) -> None:
        self.error_rate = 0.0
        self.latency_s = 0.05
        self.rps = 200.0
        self.running = True
        self._lock = threading.Lock()
        self._reset()
        server.route("/metrics", self._metrics)
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self._thread.start()

    def _reset(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "app_requests_total", "requests", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "app_request_seconds",
            "latency",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.requests.labels("200")  # the success series exists from the start

    def restart(self) -> None:
        """A process restart: every counter starts again from 0."""
        with self._lock:
            self._reset()

    def _drive(self) -> None:
        sent = 0
        while self.running:
            with self._lock:
                if self.rps:
                    sent += 1
                    failed = self.error_rate and (sent * self.error_rate) % 1 < self.error_rate
                    self.requests.labels("500" if failed else "200").inc()
                    self.latency.observe(self.latency_s)
            time.sleep(1 / self.rps if self.rps else 0.05)

    def _metrics(self, request: Any) -> Response:
        with self._lock:
            body = generate_latest(self.registry)
        return Response(body, mimetype="text/plain")


@pytest.fixture
def app() -> Iterator[tuple[LocalServer, App]]:
    with LocalServer() as server:
        service = App(server)
        yield server, service
        service.running = False


def probe(base_url: str, check: dict[str, Any], **spec: Any) -> ProbeResult:
    data = {
        "deployment": {"name": "shop"},
        "target": {"base_url": base_url},
        "checks": [{"name": "slo", "phases": ["t24h"], **check}],
        **spec,
    }
    parsed = Spec.model_validate(data)
    ctx = ProbeContext(
        spec=parsed, target=TargetClient(base_url=base_url, timeout_s=3), phase=Phase.T24H
    )
    return run_check(parsed.checks[0], ctx)


ERROR_RATIO = {
    "numerator": 'app_requests_total{status=~"5.."}',
    "denominator": "app_requests_total",
}


# ------------------------------------------------------------------------------- /metrics


@pytest.mark.parametrize(("error_rate", "expected"), [(0.0, Status.PASSED), (0.1, Status.FAILED)])
def test_metrics_ratio_held_over_a_window(
    app: tuple[LocalServer, App], error_rate: float, expected: Status
) -> None:
    server, service = app
    service.error_rate = error_rate
    check = {
        "type": "metrics",
        "ratio": ERROR_RATIO,
        "threshold": "<= 1%",
        "for": "2s",
        "step": "250ms",
    }
    started = time.monotonic()
    result = probe(server.url, check)
    assert result.status is expected, result.reason
    assert 2.0 <= time.monotonic() - started < 6
    evidence = result.evidence[0].to_dict()
    assert evidence["details"]["window"]["duration_s"] == 2.0
    assert evidence["details"]["scrapes"] >= 8
    assert evidence["limits"][0]["op"] == "<="


def test_metrics_quantile_from_bucket_deltas(app: tuple[LocalServer, App]) -> None:
    server, service = app
    check = {
        "type": "metrics",
        "quantile": {"q": 0.95, "buckets": "app_request_seconds_bucket"},
        "threshold": "< 300ms",
        "for": "1s",
        "step": "250ms",
    }
    assert probe(server.url, check).status is Status.PASSED
    service.latency_s = 0.4
    failed = probe(server.url, check)
    assert failed.status is Status.FAILED, failed.reason
    assert "ms" in failed.reason


def test_metrics_without_traffic_is_no_data(app: tuple[LocalServer, App]) -> None:
    server, service = app
    service.rps = 0
    time.sleep(0.1)
    check = {
        "type": "metrics",
        "ratio": ERROR_RATIO,
        "threshold": "<= 1%",
        "for": "1s",
        "step": "250ms",
    }
    result = probe(server.url, check)
    assert result.status is Status.NO_DATA, result.reason


def test_a_counter_reset_mid_window_is_not_a_drop_in_errors(app: tuple[LocalServer, App]) -> None:
    server, service = app
    service.error_rate = 0.2
    check = {
        "type": "metrics",
        "ratio": ERROR_RATIO,
        "threshold": "<= 1%",
        "for": "2s",
        "step": "250ms",
    }
    threading.Timer(1.0, service.restart).start()
    result = probe(server.url, check)
    assert result.status is Status.FAILED, result.reason


def test_several_series_need_an_aggregate(app: tuple[LocalServer, App]) -> None:
    server, service = app
    service.error_rate = 0.5
    check = {"type": "metrics", "rate": "app_requests_total", "threshold": "< 1000/s"}
    result = probe(server.url, check)
    assert result.status is Status.ERROR
    assert "set aggregate" in result.reason
    summed = probe(server.url, {**check, "aggregate": "sum"})
    assert summed.status is Status.PASSED, summed.reason


def test_metrics_endpoint_down_is_an_error() -> None:
    check = {"type": "metrics", "rate": "app_requests_total", "threshold": "< 10/s"}
    result = probe(closed_port_url(), check)
    assert result.status is Status.ERROR
    assert "connection refused" in result.reason


# ------------------------------------------------------------------------------ Prometheus


@pytest.fixture
def prom(app: tuple[LocalServer, App], prometheus: Any) -> tuple[App, Any]:
    server, service = app
    started = prometheus(server.url)
    # Six scrapes in six seconds: a rate over 3s has data over the last few seconds' windows.
    started.wait_for(
        'count_over_time(app_requests_total{status="200"}[6s])', lambda v: v >= 6, timeout_s=40
    )
    return service, started


def prometheus_check(**fields: Any) -> dict[str, Any]:
    return {"type": "prometheus", **fields}


PROM_ERROR_RATIO = (
    'sum(rate(app_requests_total{status=~"5.."}[3s]) or vector(0))'
    " / sum(rate(app_requests_total[3s]))"
)


def test_prometheus_instant_and_range_pass_and_fail(prom: tuple[App, Any]) -> None:
    service, server = prom
    slo = {"prometheus": {"url": server.url}}
    healthy = probe(
        server.url, prometheus_check(query=PROM_ERROR_RATIO, threshold="<= 1%"), slo=slo
    )
    assert healthy.status is Status.PASSED, healthy.reason
    held = probe(
        server.url,
        prometheus_check(query=PROM_ERROR_RATIO, threshold="<= 1%", **{"for": "2s"}),
        slo=slo,
    )
    assert held.status is Status.PASSED, held.reason
    assert held.evidence[0].to_dict()["details"]["total_steps"] >= 10
    service.error_rate = 0.2
    server.wait_for(PROM_ERROR_RATIO, lambda v: v > 0.05, timeout_s=20)
    failed = probe(server.url, prometheus_check(query=PROM_ERROR_RATIO, threshold="<= 1%"), slo=slo)
    assert failed.status is Status.FAILED, failed.reason
    assert "%" in failed.reason


def test_prometheus_no_series_is_no_data_and_several_need_an_aggregate(
    prom: tuple[App, Any],
) -> None:
    service, server = prom
    slo = {"prometheus": {"url": server.url}}
    empty = probe(
        server.url,
        prometheus_check(query="rate(no_such_metric_total[1m])", threshold="< 1/s"),
        slo=slo,
    )
    assert empty.status is Status.NO_DATA, empty.reason
    service.error_rate = 0.5  # a status="500" series besides status="200"
    server.wait_for('app_requests_total{status="500"}', timeout_s=10)
    several = probe(
        server.url, prometheus_check(query="app_requests_total", threshold="< 1e12"), slo=slo
    )
    assert several.status is Status.ERROR, several.reason
    assert "series" in several.reason


def test_prometheus_a_series_that_starts_mid_window_lacks_coverage(prom: tuple[App, Any]) -> None:
    service, server = prom
    slo = {"prometheus": {"url": server.url}}
    service.requests.labels("503")  # a new series, a second old
    server.wait_for('app_requests_total{status="503"}', timeout_s=10)
    result = probe(
        server.url,
        prometheus_check(
            query='app_requests_total{status="503"}', threshold="== 0", **{"for": "30s"}
        ),
        slo=slo,
    )
    assert result.status is Status.NO_DATA, result.reason
    assert "coverage" in result.reason or "missing" in result.reason


def test_prometheus_down_or_a_bad_query_is_an_error() -> None:
    down = probe(
        "http://127.0.0.1:9",
        prometheus_check(query="up", threshold=">= 1"),
        slo={"prometheus": {"url": closed_port_url()}},
    )
    assert down.status is Status.ERROR
    assert "Prometheus did not answer" in down.reason
    unset = probe("http://127.0.0.1:9", prometheus_check(query="up", threshold=">= 1"))
    assert unset.status is Status.ERROR
    assert "slo.prometheus.url" in unset.reason


def test_prometheus_refuses_bad_promql(prom: tuple[App, Any]) -> None:
    _, server = prom
    result = probe(
        server.url,
        prometheus_check(query="sum(rate(x[1m]", threshold="< 1"),
        slo={"prometheus": {"url": server.url}},
    )
    assert result.status is Status.ERROR
    assert "bad_data" in result.reason


# ------------------------------------------------------------------------------ JSON metric


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"p95_ms": 120}, Status.PASSED),
        ({"p95_ms": 450}, Status.FAILED),
        ({"p95_ms": None}, Status.NO_DATA),
        ({"other": 1}, Status.NO_DATA),
    ],
)
def test_json_metric(body: dict[str, Any], expected: Status) -> None:
    with LocalServer() as server:
        server.route("/stats", lambda request: json_response(body))
        check = {
            "type": "json_metric",
            "path": "/stats",
            "jsonpath": "$.p95_ms",
            "scale": 0.001,
            "threshold": "< 300ms",
            "for": "1s",
            "step": "250ms",
        }
        result = probe(server.url, check)
    assert result.status is expected, result.reason
    if expected is Status.FAILED:
        assert "450 ms" in result.reason


def test_json_metric_endpoint_failing_is_an_error_or_no_data() -> None:
    result = probe(
        closed_port_url(),
        {"type": "json_metric", "path": "/stats", "jsonpath": "$.x", "threshold": "< 1"},
    )
    assert result.status is Status.ERROR


# ------------------------------------------------------------------------------ log pattern


def writer(path: Path, lines: list[str], every_s: float, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        i = 0
        while not stop.is_set():
            with path.open("a") as fh:
                fh.write(lines[i % len(lines)] + "\n")
            i += 1
            if i == 7:  # rotate by rename, as logrotate does
                path.rename(path.with_suffix(".1"))
            stop.wait(every_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


LOG_CHECK = {
    "type": "log_pattern",
    "patterns": {
        "good": [r"\[INFO\]"],
        "concerning": [r"\[WARNING\]"],
        "bad": [r"\[(ERROR|CRITICAL)\]"],
    },
    "for": "1.5s",
}


@pytest.mark.parametrize(
    ("lines", "extra", "expected"),
    [
        (["2026 [INFO] GET /api 200"], {}, Status.PASSED),
        (["2026 [INFO] ok", "2026 [ERROR] boom"], {}, Status.FAILED),
        (["2026 [WARNING] slow"], {"concerning_rate": "<= 20/hr"}, Status.FAILED),
        (["2026 [WARNING] slow", "2026 [INFO] ok"], {"concerning_rate": "<= 100/s"}, Status.PASSED),
    ],
)
def test_log_pattern_classes_lines_across_rotation(
    tmp_path: Path, lines: list[str], extra: dict[str, Any], expected: Status
) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026 [ERROR] before the window: not counted\n")
    stop = threading.Event()
    writer(log, lines, 0.05, stop)
    try:
        result = probe("http://127.0.0.1:9", {**LOG_CHECK, "file": str(log), **extra})
    finally:
        stop.set()
    assert result.status is expected, result.reason
    value = result.evidence[0].to_dict()["value"]
    assert value["lines"] >= 15  # read on across the rotation


def test_a_silent_log_is_no_data_and_a_missing_one_an_error(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    silent = probe("http://127.0.0.1:9", {**LOG_CHECK, "file": str(log), "for": "0.3s"})
    assert silent.status is Status.NO_DATA, silent.reason
    missing = probe("http://127.0.0.1:9", {**LOG_CHECK, "file": str(tmp_path / "nope.log")})
    assert missing.status is Status.ERROR
    assert "cannot read the log file" in missing.reason


def test_a_partial_line_is_counted_once_complete(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")

    def write() -> None:
        time.sleep(0.1)
        with log.open("a") as fh:
            fh.write("2026 [ERR")
            fh.flush()
            time.sleep(0.3)
            fh.write("OR] split across two writes\n")

    threading.Thread(target=write, daemon=True).start()
    result = probe("http://127.0.0.1:9", {**LOG_CHECK, "file": str(log), "for": "0.8s"})
    assert result.status is Status.FAILED, result.reason
    assert result.evidence[0].to_dict()["value"]["bad"] == 1


def test_the_time_scale_shortens_windows_and_the_record_says_so(
    app: tuple[LocalServer, App],
) -> None:
    server, _ = app
    check = {"type": "metrics", "ratio": ERROR_RATIO, "threshold": "<= 1%", "for": "10m"}
    started = time.monotonic()
    result = probe(server.url, {**check}, slo={"time_scale": 300})
    assert time.monotonic() - started < 5
    assert result.status is Status.PASSED, result.reason
    window = result.evidence[0].to_dict()["details"]["window"]
    assert window["duration_s"] == 600
    assert window["time_scale"] == 300
    assert window["scaled_duration_s"] == pytest.approx(2.0)


# ------------------------------------------------------------------------------- burn rate

SLOTH = """\
version: "prometheus/v1"
service: "app"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(app_requests_total{status=~"5.."}[{{.window}}])) or vector(0)
        total_query: sum(rate(app_requests_total[{{.window}}]))
"""


def test_burn_rate_fires_on_a_fast_burn_and_not_when_healthy(
    prom: tuple[App, Any], tmp_path: Path
) -> None:
    """The fast pair (1h / 5m) at time scale 120: 30 s and 2.5 s windows on a real Prometheus,
    inline queries and a Sloth file alike."""
    service, server = prom
    (tmp_path / "slo.yaml").write_text(SLOTH)
    slo = {"prometheus": {"url": server.url}, "time_scale": 120}
    inline = {
        "type": "burn_rate",
        "objective": "99.9%",
        "bad_query": 'sum(increase(app_requests_total{status=~"5.."}[{{.window}}])) or vector(0)',
        "total_query": "sum(increase(app_requests_total[{{.window}}]))",
        "min_events": 50,
    }
    from_file = {"type": "burn_rate", "slo_file": str(tmp_path / "slo.yaml"), "min_events": 50}
    for check in (inline, from_file):
        healthy = probe(server.url, check, slo=slo)
        assert healthy.status is Status.PASSED, healthy.reason
        details = healthy.evidence[0].to_dict()["details"]
        assert details["objective"] == pytest.approx(0.999)
        assert details["queries"]
    service.error_rate = 0.5
    server.wait_for('sum(rate(app_requests_total{status="500"}[3s]))', lambda v: v > 10)
    for check in (inline, from_file):
        burning = probe(server.url, check, slo=slo)
        assert burning.status is Status.FAILED, burning.reason
    quiet = probe(server.url, {**inline, "min_events": 10**9}, slo=slo)
    assert quiet.status is Status.NO_DATA, quiet.reason
