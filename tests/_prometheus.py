"""A real Prometheus for tests: a child process on a free loopback port, scraping every second.

    with Prometheus(["http://127.0.0.1:41234"], tmp_path) as prom:
        prom.wait_for("sum(rate(http_requests_total[5s]))", lambda v: v > 0)

It runs in a process group of its own and the group is killed at the end, so nothing outlives
the test. Expect the first scrape about 5 s after ``/-/ready`` (Prometheus 2.42 hands targets to
its scrape manager on a 5 s tick), so a ``rate(...[5s])`` has data some 6 s after start. No
fixed port: Debian's package may run a system Prometheus on 9090. The ``prometheus`` fixture in
conftest.py wraps it and skips (or fails, under RELEASEGATE_REQUIRE_SERVICES=1) when the binary
is missing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import requests

from releasegate.demo.prometheus import DEFAULT_BINARY, prometheus_binary
from releasegate.demo.prometheus import Prometheus as _Prometheus

__all__ = ["DEFAULT_BINARY", "Prometheus", "prometheus_binary"]


class Prometheus(_Prometheus):
    """The package's Prometheus runner, with what tests ask of it: queries and waiting."""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query (a vector: ``[{"metric": ..., "value": [t, "v"]}]``)."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self,
        promql: str,
        accept: Callable[[float], bool] = lambda value: True,
        timeout_s: float = 15.0,
    ) -> list[dict[str, Any]]:
        """Query until the result has a sample whose value ``accept`` takes; raise at timeout.

        Returns that result. NaN values (a rate over one sample, 0/0) never count as data.
        """
        deadline = time.monotonic() + timeout_s
        last: list[dict[str, Any]] = []
        while True:
            last = self.query(promql)
            values = [float(item["value"][1]) for item in last]
            if any(not math.isnan(v) and accept(v) for v in values):
                return last
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{promql!r} returned no accepted data within {timeout_s:.0f} s;"
                    f" last result {last}; targets {self._targets_health()}"
                )
            time.sleep(0.25)

    def _targets_health(self) -> list[tuple[str, str, str]]:
        try:
            active = requests.get(f"{self.url}/api/v1/targets", timeout=5).json()["data"]
        except (requests.RequestException, ValueError, KeyError):
            return []
        return [
            (t["scrapeUrl"], t["health"], t.get("lastError", ""))
            for t in active.get("activeTargets", [])
        ]
