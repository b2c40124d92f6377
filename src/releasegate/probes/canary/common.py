"""What every canary source shares: the time scale and each side's HTTP client."""

from __future__ import annotations

from typing import Any

from ...errors import ProbeError
from ...target import TargetClient
from ..base import ProbeContext

_BASELINE_CLIENT = "canary:baseline-client"
SIDES = ("canary", "baseline")


def _scale(ctx: ProbeContext) -> float:
    return ctx.time_scale * ctx.spec.slo.time_scale


def _client(check: Any, ctx: ProbeContext, side: str) -> TargetClient | None:
    """The client for one side: the target's for the canary, the baseline's own otherwise
    (None when the baseline is the demo's and this run has none)."""
    spec_side = getattr(check, side)
    base = ctx.target.base_url if side == "canary" else ctx.target.baseline_url
    url = spec_side.url or base
    if url is None:
        if side == "baseline" and ctx.spec.target.baseline_url == "demo://":
            return None
        raise ProbeError(
            f"the {side} has no URL: give {side}.url in the check or target.baseline_url"
            " (or baseline.golden, a golden baseline file)"
        )
    if url == ctx.target.base_url:
        return ctx.target
    cached = ctx.cache.get(f"{_BASELINE_CLIENT}:{url}")
    if cached is None:
        cached = TargetClient(
            base_url=url,
            timeout_s=ctx.target.timeout_s,
            verify_tls=ctx.target.verify_tls,
            headers=dict(ctx.spec.target.headers),
            max_body_bytes=ctx.target.max_body_bytes,
            policy=ctx.target.policy,
        )
        ctx.cache[f"{_BASELINE_CLIENT}:{url}"] = cached
    assert isinstance(cached, TargetClient)
    return cached


#: Seconds per unit of a latency column (sql) or a duration read off a log line (logs).
LATENCY_SCALE = {"s": 1.0, "ms": 0.001}
