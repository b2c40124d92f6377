"""Background traffic: the demo target's own users, so that every SLO source has live data.

A thread in the server process sends a steady stream of requests to the server's own routes
(catalogue reads, product pages, health checks, a few orders) over loopback. It paces itself on
a fixed schedule and never catches up in a burst: when the target is slow (a latency fault) the
rate drops, as it would with real users waiting on each answer. Errors are the point of some
faults, so they are neither retried nor reported.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time

from ..errors import UsageError
from ..netguard import is_loopback_host
from .data import PRODUCTS

DEFAULT_RPS = 20.0
MAX_RPS = 500.0
REQUEST_TIMEOUT_S = 5.0
USER_AGENT = "releasegate-demo-traffic"

# (weight, method, path): about one request in twenty is an order. Orders reference existing
# products, so the database's integrity checks pass under traffic; the orders table grows, which
# is what a live shop's does (and what a "recent orders" SQL SLO can see).
_MIX: tuple[tuple[int, str, str], ...] = (
    (8, "GET", "/api/products"),
    (7, "GET", "/api/products/{product_id}"),
    (4, "GET", "/healthz"),
    (1, "POST", "/api/orders"),
)


class Traffic:
    """``rps`` requests a second to ``host:port`` from one thread, until ``stop()``."""

    def __init__(self, host: str, port: int, rps: float, seed: int) -> None:
        if not is_loopback_host(host):
            raise UsageError(f"background traffic only goes to loopback, not to {host!r}")
        if not 0 < rps <= MAX_RPS:
            raise UsageError(f"traffic rate {rps} is not between 0 and {MAX_RPS:.0f} requests/s")
        self.host = host
        self.port = port
        self.rps = rps
        self._rng = random.Random(f"{seed}:traffic")
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        """Ask the thread to stop, and wait for it (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def request_stop(self) -> None:
        """Ask the thread to stop without waiting (safe from a signal handler)."""
        self._stop.set()

    def _run(self) -> None:
        interval = 1.0 / self.rps
        due = time.monotonic()
        try:
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                self._send_one()
                due += interval
                if due < time.monotonic() - 1.0:  # fell behind a slow target: do not burst
                    due = time.monotonic()
        finally:
            self._close()

    def _send_one(self) -> None:
        weights = [weight for weight, _, _ in _MIX]
        _, method, path = self._rng.choices(_MIX, weights)[0]
        product_id = self._rng.randint(1, len(PRODUCTS))
        body = None
        headers = {"User-Agent": USER_AGENT}
        if method == "POST":
            body = json.dumps({"product_id": product_id, "quantity": self._rng.randint(1, 3)})
            headers["Content-Type"] = "application/json"
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT_S
                )
            self._conn.request(
                method, path.format(product_id=product_id), body=body, headers=headers
            )
            response = self._conn.getresponse()
            response.read()
            if response.will_close:
                self._close()
        except (OSError, http.client.HTTPException):
            self._close()  # a fault, or the server stopping: the next request reconnects

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
