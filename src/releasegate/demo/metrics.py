"""The demo target's Prometheus metrics, in the app's own registry (never the global one).

The request series are the ones an SRE expects of an HTTP service:

* ``http_requests_total{route, method, status, version}`` (counter)
* ``http_request_duration_seconds{route, method, version}`` (histogram, 5 ms .. 10 s)
* ``http_requests_in_flight`` (gauge)

``route`` is the URL rule (``/api/products/<int:product_id>``, ``unmatched`` for a 404 no rule
matched), never the raw path, so the number of series stays bounded whatever clients send.
``version`` is the version the target reports at ``/version`` (the ``wrong_version`` fault
changes it, as a bad deploy would). The controls and scrape endpoints (``CONTROL_PATHS``) are
not counted: a Prometheus scraping every second, or a gate switching faults, must not move an
SLO computed from these series.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Runbook thresholds sit on bucket edges (200 ms and 300 ms p95 targets, 500 ms rollback).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)


class DemoMetrics:
    """Every series the demo exposes at ``/metrics``."""

    def __init__(self, version: str, commit: str) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by URL rule, method, status code and serving version.",
            ["route", "method", "status", "version"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, injected latency included.",
            ["route", "method", "version"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being answered now.", registry=registry
        )
        # The name the demo suite's metrics-exposed check looks for (releasegate.yaml). Unlike
        # the series above it counts every request, controls and scrapes included.
        self.legacy_requests = Counter(
            "demo_http_requests",
            "HTTP requests answered (legacy; prefer http_requests_total).",
            ["method", "path", "status"],
            registry=registry,
        )
        self.orders = Counter("demo_orders", "Orders created.", registry=registry)
        self.risk_mean = Gauge(
            "demo_risk_gate_mean_score",
            "Mean risk_log draft_total_score over the last 6 hours.",
            registry=registry,
        )
        build = Gauge(
            "demo_build_info",
            "The build the demo target was started as (always 1).",
            ["version", "commit"],
            registry=registry,
        )
        build.labels(version, commit).set(1)
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, fds

    def observe(
        self, route: str, method: str, status: int, version: str, duration_s: float
    ) -> None:
        """Count one answered request of the measured kind."""
        self.requests.labels(route, method, str(status), version).inc()
        self.duration.labels(route, method, version).observe(duration_s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
