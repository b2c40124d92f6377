"""Realistic decision records for the report tests, built with the engine's own objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from releasegate.actions import ActionResult
from releasegate.decision import Policy, decide
from releasegate.model import Action, CheckInfo, Evidence, Mode, Outcome, Severity, Status
from releasegate.phases import Phase
from releasegate.record import DecisionRecord
from releasegate.slo.condition import parse_condition
from releasegate.slo.series import Aggregate, as_labels, evaluate_series
from releasegate.slo.window import Point, Window, WindowVerdict, evaluate_window

START = datetime(2025, 10, 19, 9, 0, tzinfo=timezone.utc)
BASE = "http://127.0.0.1:8765"


def http_evidence(
    method: str, path: str, status: int, latency_ms: float, max_ms: float, body: str
) -> Evidence:
    return Evidence(
        measured=f"{method} {path}",
        value={"attempts": 1, "status": status, "latency_ms": latency_ms},
        threshold=f"status in [200]; latency <= {max_ms:g} ms",
        reason=f"{method} {path} answered {status} in {latency_ms:g} ms",
        details={
            "request": {
                "method": method,
                "url": BASE + path,
                "headers": {"User-Agent": "releasegate/0.1", "Accept": "application/json"},
            },
            "response": {
                "status": status,
                "headers": {"Content-Type": "application/json", "X-Version": "1.4.2"},
                "body": body,
                "bytes": len(body),
            },
        },
    )


def outcome(
    name: str,
    category: str,
    severity: Severity,
    status: Status,
    reason: str,
    evidence: tuple[Evidence, ...] = (),
    on_fail: Action | None = None,
    kind: str = "smoke",
    description: str = "",
) -> Outcome:
    check = CheckInfo(
        name=name,
        kind=kind,
        category=category,
        severity=severity,
        weight=severity.default_weight,
        phases=(Phase.T24H,),
        on_fail=on_fail,
        description=description,
        nodeid=f"releasegate.yaml::{name}",
    )
    return Outcome(check, status, reason, evidence, duration_s=0.042)


def healthy_outcomes() -> list[Outcome]:
    ok = Status.PASSED
    return [
        outcome(
            "liveness",
            "health",
            Severity.CRITICAL,
            ok,
            "GET /healthz answered 200 in 3 ms",
            (http_evidence("GET", "/healthz", 200, 3.1, 1000, '{"status": "ok"}'),),
            Action.IMMEDIATE_ROLLBACK,
        ),
        outcome(
            "readiness",
            "health",
            Severity.CRITICAL,
            ok,
            "database up",
            (http_evidence("GET", "/readyz", 200, 4.0, 1000, '{"database": "ok"}'),),
            Action.IMMEDIATE_ROLLBACK,
        ),
        outcome(
            "deployed-version",
            "release",
            Severity.CRITICAL,
            ok,
            "version 1.4.2 as expected",
            (Evidence("GET /version", {"version": "1.4.2"}, "version == 1.4.2", "matches"),),
            Action.IMMEDIATE_ROLLBACK,
        ),
        outcome(
            "catalog-lists-products",
            "functionality",
            Severity.MAJOR,
            ok,
            "12 products",
            (http_evidence("GET", "/api/products", 200, 18.5, 1000, '{"count": 12, "items": []}'),),
        ),
        outcome(
            "order-accepted",
            "functionality",
            Severity.MAJOR,
            ok,
            "POST /api/orders answered 201",
            (http_evidence("POST", "/api/orders", 201, 22.0, 1000, '{"id": 7}'),),
        ),
        outcome(
            "catalog-latency",
            "performance",
            Severity.CRITICAL,
            ok,
            "p95 within 300 ms",
            (http_evidence("GET", "/api/products", 200, 121.0, 300, '{"count": 12}'),),
            Action.GRADUAL_ROLLBACK,
            description="p95 target for catalogue reads is 300 ms (runbook 002)",
        ),
        outcome(
            "error-rate",
            "performance",
            Severity.MAJOR,
            ok,
            "0.2% errors over 5 min",
            (
                Evidence(
                    "rate(http_requests_total{code=~'5..'}[5m])",
                    0.002,
                    "< 0.01",
                    "0.2% < 1%",
                    {"query": "sum(rate(http_requests_total{code=~'5..'}[5m]))", "window": "5m"},
                ),
            ),
            kind="slo",
        ),
        outcome(
            "metrics-exposed",
            "observability",
            Severity.MINOR,
            ok,
            "/metrics exposes counters",
            (http_evidence("GET", "/metrics", 200, 2.0, 1000, "demo_http_requests_total 42"),),
        ),
    ]


def nogo_outcomes() -> list[Outcome]:
    outcomes = healthy_outcomes()
    outcomes[5] = outcome(
        "catalog-latency",
        "performance",
        Severity.CRITICAL,
        Status.FAILED,
        "GET /api/products: latency 412 ms > 300 ms",
        (http_evidence("GET", "/api/products", 200, 412.0, 300, '{"count": 12}'),),
        Action.GRADUAL_ROLLBACK,
    )
    outcomes[4] = outcome(
        "order-accepted",
        "functionality",
        Severity.MAJOR,
        Status.FAILED,
        "POST /api/orders: status 500 not in [201]",
        (http_evidence("POST", "/api/orders", 500, 35.0, 1000, '{"error": "db locked"}'),),
    )
    outcomes[7] = outcome(
        "metrics-exposed",
        "observability",
        Severity.MINOR,
        Status.ERROR,
        "GET /metrics: connection refused",
    )
    return outcomes


def make_record(
    outcomes: list[Outcome],
    phase: Phase = Phase.T24H,
    mode: Mode = Mode.ENFORCE,
    deployment: str = "demo-shop",
    actions: tuple[ActionResult, ...] = (),
    finished: datetime | None = None,
    policy: Policy | None = None,
    interrupted: str | None = None,
) -> dict[str, Any]:
    policy = policy or Policy(go=9.0, conditional=7.5)
    decision = decide(outcomes, policy, interrupted=interrupted)
    finished = finished or START + timedelta(hours=phase.hours, seconds=42)
    would = None
    if not decision.verdict.proceeds:
        would = decision.action.value if decision.action else "rollback"
    record = DecisionRecord(
        deployment=deployment,
        phase=phase,
        mode=mode,
        decision=decision,
        outcomes=tuple(outcomes),
        started_at=finished - timedelta(seconds=42),
        finished_at=finished,
        expected_version="1.4.2",
        expected_commit="3f2c1ab",
        target=BASE,
        spec_path="releasegate.yaml",
        actions=actions,
        would_action=would,
        actual_action=would if actions and mode is Mode.ENFORCE else None,
        extra={"scoring": {"go": policy.go, "conditional": policy.conditional}},
    )
    return record.to_dict()


def as_schema_1(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as releasegate wrote it before schema 2: no policy, interruption or action
    state, a summary without allowances."""
    old = {
        k: v
        for k, v in record.items()
        if k not in ("policy", "interrupted", "actions_state", "actions_planned")
    }
    old["schema_version"] = 1
    old["outcomes"] = [
        {**o, "check": {k: v for k, v in o["check"].items() if k != "source"}}
        for o in record["outcomes"]
    ]
    old["summary"] = {
        k: v for k, v in record["summary"].items() if k not in ("allowed", "policy", "interrupted")
    }
    return old


def rollback_action() -> ActionResult:
    return ActionResult(
        name="rollback", type="command", fired=True, ok=True, returncode=0, duration_s=0.3
    )


CATEGORIES = (
    "health",
    "functionality",
    "performance",
    "security",
    "release",
    "data",
    "observability",
    "capacity",
    "compliance",
    "frontend",
)
BODY = json.dumps(
    {"items": [{"id": i, "sku": f"SKU-{i:04d}", "price": 9.99 + i} for i in range(4)], "count": 12}
)


def many_outcomes(n: int) -> list[Outcome]:
    """``n`` HTTP checks with request and response evidence; about 4% do not pass."""
    severities = (Severity.CRITICAL, Severity.MAJOR, Severity.MAJOR, Severity.MINOR)
    outcomes: list[Outcome] = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        path = f"/api/{category}/{i}"
        if i % 97 == 13:
            status, latency, reason = Status.FAILED, 480.0 + i % 50, f"GET {path}: latency > 300 ms"
        elif i % 211 == 7:
            status, latency, reason = Status.ERROR, 0.0, f"GET {path}: connection refused"
        else:
            status, latency, reason = Status.PASSED, 20.0 + i % 90, f"GET {path} answered 200"
        severity = severities[i % 4] if status is Status.PASSED else Severity.MINOR
        outcomes.append(
            outcome(
                f"check-{i:05d}-{category}",
                category,
                severity,
                status,
                reason,
                (http_evidence("GET", path, 200, latency, 300, BODY),),
            )
        )
    return outcomes


def slo_verdict(
    values: Sequence[float | None],
    condition: str = "< 300ms",
    subject: str = "p95-latency",
    duration_s: float = 600.0,
    time_scale: float = 60.0,
) -> WindowVerdict:
    """The engine's verdict on one value per step (in the condition's unit, None = no data)
    over a ``duration_s`` window of ``len(values)`` steps, run at ``time_scale``."""
    cond = parse_condition(condition)
    window = Window(duration_s, duration_s / len(values)).scaled(time_scale)
    assert window.steps == len(values)
    now = 1_760_000_000.0
    points = [
        Point(window.step_time(i, now), None if v is None else cond.display_unit.to_canonical(v))
        for i, v in enumerate(values)
    ]
    return evaluate_window(points, cond, window, now, subject)


def slo_outcome(
    name: str,
    values: Sequence[float | None],
    condition: str = "< 300ms",
    severity: Severity = Severity.CRITICAL,
    **window: Any,
) -> Outcome:
    """A ``prometheus`` SLO check over a window, its evidence as the probe records it."""
    verdict = slo_verdict(values, condition, name, **window)
    query = "histogram_quantile(0.95, sum by (le) (rate(http_duration_seconds_bucket[1m])))"
    item = verdict.evidence(f"PromQL {query}")
    details = {**item.details, "query": query, "url": "http://127.0.0.1:9090/api/v1/query_range"}
    evidence = Evidence(
        item.measured, item.value, item.threshold, item.reason, details, item.limits
    )
    return outcome(
        name, "performance", severity, verdict.status, verdict.reason, (evidence,), kind="slo"
    )


def slo_each_outcome(
    name: str,
    series: dict[str, Sequence[float | None]],
    condition: str = "<= 1%",
    severity: Severity = Severity.MAJOR,
) -> Outcome:
    """An ``aggregate: each`` SLO check: one evidence per series (worst first), keyed by the
    value of its ``route`` label."""
    cond = parse_condition(condition)
    steps = len(next(iter(series.values())))
    window = Window(600.0, 600.0 / steps).scaled(60.0)
    now = 1_760_000_000.0
    points = {
        as_labels({"route": route}): [
            Point(
                window.step_time(i, now), None if v is None else cond.display_unit.to_canonical(v)
            )
            for i, v in enumerate(values)
        ]
        for route, values in series.items()
    }
    verdict = evaluate_series(points, cond, window, now, Aggregate.EACH, name)
    evidence = verdict.evidence("PromQL sum by (route) (rate(errors[1m])) / ...")
    return outcome(
        name, "reliability", severity, verdict.status, verdict.reason, evidence, kind="slo"
    )
