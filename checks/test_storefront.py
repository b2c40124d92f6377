"""Python gate checks: plain pytest tests with a phase marker, evidence through a fixture."""

from __future__ import annotations

import pytest


@pytest.mark.gate_t24h
@pytest.mark.gate_t48h
@pytest.mark.smoke
@pytest.mark.releasegate(category="functionality", severity="major")
def test_every_product_is_in_stock_or_flagged(rg_target, rg_evidence):
    """No product in the catalogue has negative stock."""
    answer = rg_target.get("/api/products")
    assert answer.response.status_code == 200, f"GET /api/products: {answer.response.status_code}"
    negative = [p["sku"] for p in answer.response.json()["items"] if p["stock"] < 0]
    rg_evidence.expect(not negative, "GET /api/products: products with stock < 0", negative, "none")


@pytest.mark.gate_t24h
@pytest.mark.gate_t72h
@pytest.mark.smoke
@pytest.mark.releasegate(category="health", severity="minor", weight=1)
def test_health_answers_json(rg_target):
    """A plain assert works as a check too."""
    answer = rg_target.get("/healthz")
    assert answer.response.headers.get("Content-Type", "").startswith("application/json")
