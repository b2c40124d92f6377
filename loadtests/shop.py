"""A shopper browsing the demo shop: the load profile of releasegate's demo load check.

A plain locustfile, runnable on its own::

    locust -f loadtests/shop.py --headless -u 10 -r 5 --run-time 10s --host http://127.0.0.1:8000

releasegate runs it as a child process (``type: load`` checks, docs/load.md) and gates on the
response times its recorder measures. Request names are the routes (``/api/products/[id]``,
not one name per product), so thresholds can be set per route.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, tag, task


class Shopper(FastHttpUser):
    """Mostly browsing, sometimes ordering, the way the seeds' shop traffic looks."""

    wait_time = between(0.02, 0.1)

    @tag("browse")
    @task(6)
    def products(self) -> None:
        self.client.get("/api/products")

    @tag("browse")
    @task(3)
    def product(self) -> None:
        self.client.get(f"/api/products/{random.randint(1, 12)}", name="/api/products/[id]")

    @tag("order")
    @task(1)
    def order(self) -> None:
        self.client.post("/api/orders", json={"product_id": random.randint(1, 12), "quantity": 1})

    @tag("health")
    @task(1)
    def health(self) -> None:
        self.client.get("/healthz")
