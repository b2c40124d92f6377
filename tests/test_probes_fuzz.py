"""The bad-input probe against a real loopback server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from _httpserver import LocalServer, closed_port_url
from releasegate.model import Status
from releasegate.netguard import Policy
from releasegate.probes.base import ProbeContext, ProbeResult
from releasegate.probes.fuzz import probe_bad_input
from releasegate.spec import BadInputCheck, Spec
from releasegate.target import TargetClient

EXAMPLE = {"sku": "A-1", "qty": 2, "note": "gift"}


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def fuzz(base_url: str, *paths: str, allow_remote_fuzz: bool = False, **fields: Any) -> ProbeResult:
    check = BadInputCheck.model_validate(
        {
            "name": "bad-input",
            "type": "bad_input",
            "phases": ["t0h"],
            "endpoints": [{"path": p, "example": EXAMPLE} for p in paths or ("/api/orders",)],
            **fields,
        }
    )
    spec = Spec.model_validate({"deployment": {"name": "shop"}, "target": {"base_url": base_url}})
    # Gate traffic may reach the target (allowed_hosts); fuzzing still needs loopback.
    policy = Policy.from_hosts([base_url.split("//", 1)[1].split(":", 1)[0]])
    ctx = ProbeContext(
        spec=spec,
        target=TargetClient(base_url=base_url, policy=policy),
        allow_remote_fuzz=allow_remote_fuzz,
    )
    return probe_bad_input(check, ctx)


def evidence(result: ProbeResult) -> dict[str, Any]:
    assert len(result.evidence) == 1
    return result.evidence[0].to_dict()


def strict_api(request: Request) -> Response:
    """Validates like a careful API: every malformed input is a 4xx."""
    if request.mimetype != "application/json":
        return Response("unsupported media type", status=415)
    try:
        body = json.loads(request.get_data())
    except ValueError:
        return Response("not JSON", status=400)
    if not isinstance(body, dict) or set(body) != set(EXAMPLE):
        return Response("wrong fields", status=422)
    if not all(type(body[k]) is type(v) for k, v in EXAMPLE.items()):
        return Response("wrong types", status=422)
    return Response("created", status=201)


def test_an_api_that_rejects_every_malformed_body_passes(server: LocalServer) -> None:
    server.route("/api/orders", strict_api)

    result = fuzz(server.url, max_examples=40)

    assert result.status is Status.PASSED, result.reason
    value = evidence(result)["value"]
    assert value["endpoints"]["POST /api/orders"] == {
        "requests": 40,
        "5xx": 0,
        "timeouts": 0,
        "dropped": 0,
    }
    assert value["requests"] == server.hits["/api/orders"] == 40
    assert value["stopped_by_deadline"] is False
    assert result.reason.startswith("no 5xx, hang or dropped connection in 40 malformed requests")


def test_a_500_on_a_missing_field_fails_with_the_example(server: LocalServer) -> None:
    def crashes(request: Request) -> Response:
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return Response("not JSON", status=400)
        if isinstance(body, dict) and "qty" not in body:
            return Response("KeyError: 'qty'", status=500)
        return Response("invalid", status=422)

    server.route("/api/orders", crashes)

    result = fuzz(server.url, max_examples=30)

    assert result.status is Status.FAILED
    assert result.reason.startswith("POST /api/orders answered 500 to a malformed body (removed")
    examples = evidence(result)["details"]["examples"]
    assert examples
    first = examples[0]
    assert first["answer"] == 500
    assert "qty" in first["input"]
    assert "qty" not in json.loads(first["body"])
    assert evidence(result)["value"]["5xx"] >= 1


def test_a_hang_on_malformed_input_fails(server: LocalServer) -> None:
    def hangs_on_garbage(request: Request) -> Response:
        try:
            json.loads(request.get_data())
        except ValueError:
            server.hang()
        return Response("invalid", status=422)

    server.route("/api/orders", hangs_on_garbage)

    result = fuzz(server.url, max_examples=25, request_timeout_s=0.2)

    assert result.status is Status.FAILED
    assert "gave no answer within 0.2s to a malformed body" in result.reason
    examples = evidence(result)["details"]["examples"]
    assert all(e["answer"] == "timeout" for e in examples)
    assert evidence(result)["value"]["timeouts"] >= 1


def test_a_non_loopback_target_is_refused_without_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELEASEGATE_LOOPBACK_ONLY", raising=False)
    sent: list[Any] = []
    monkeypatch.setattr(TargetClient, "request", lambda *args, **kwargs: sent.append(args))

    result = fuzz("http://192.0.2.10:8080")

    assert result.status is Status.ERROR
    assert result.reason.startswith("refusing to send bad-input fuzzing to '192.0.2.10'")
    assert sent == []


def test_remote_fuzzing_can_be_allowed_explicitly(server: LocalServer) -> None:
    server.route("/api/orders", strict_api)

    result = fuzz(server.url, allow_remote_fuzz=True, max_examples=3)

    assert result.status is Status.PASSED


def test_connection_refused_on_the_first_request_is_an_error() -> None:
    result = fuzz(closed_port_url(), max_examples=50)

    assert result.status is Status.ERROR
    assert result.reason.startswith("cannot fuzz: POST ")
    assert "connection refused" in result.reason
    assert evidence(result)["value"]["requests"] == 1


def test_max_examples_bounds_the_requests_per_endpoint(server: LocalServer) -> None:
    server.route("/api/orders", strict_api)
    server.route("/api/carts", strict_api)

    result = fuzz(server.url, "/api/orders", "/api/carts", max_examples=7)

    assert result.status is Status.PASSED
    assert server.hits == {"/api/orders": 7, "/api/carts": 7}
    assert evidence(result)["value"]["requests"] == 14


def test_the_deadline_bounds_the_time_and_is_shared_by_the_endpoints(server: LocalServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.05)
        return Response("invalid", status=422)

    server.route("/api/orders", slow)
    server.route("/api/carts", slow)

    started = time.monotonic()
    result = fuzz(server.url, "/api/orders", "/api/carts", max_examples=1000, deadline_s=0.6)
    elapsed = time.monotonic() - started

    assert result.status is Status.PASSED
    assert elapsed < 1.5
    assert 0 < server.hits["/api/orders"] < 20
    assert 0 < server.hits["/api/carts"] < 20
    assert evidence(result)["value"]["elapsed_s"] < 1.5
    assert evidence(result)["value"]["stopped_by_deadline"] is True


def test_runs_are_reproducible(server: LocalServer) -> None:
    def crashes_on_arrays(request: Request) -> Response:
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return Response("not JSON", status=400)
        return Response("boom", status=500 if isinstance(body, list) else 422)

    server.route("/api/orders", crashes_on_arrays)

    first = fuzz(server.url, max_examples=40)
    second = fuzz(server.url, max_examples=40)

    assert first.status is Status.FAILED
    assert first.reason == second.reason
    assert evidence(first)["details"] == evidence(second)["details"]


def test_secrets_in_the_example_do_not_reach_the_evidence(server: LocalServer) -> None:
    server.route("/api/login", lambda request: Response("boom", status=500))
    check = BadInputCheck.model_validate(
        {
            "name": "login",
            "type": "bad_input",
            "phases": ["t0h"],
            "endpoints": [{"path": "/api/login", "example": {"password": "pw-0123456789"}}],
            "max_examples": 10,
        }
    )
    spec = Spec.model_validate({"deployment": {"name": "shop"}, "target": {"base_url": server.url}})

    result = probe_bad_input(check, ProbeContext(spec, TargetClient(server.url)))

    assert result.status is Status.FAILED
    assert "pw-0123456789" not in json.dumps(evidence(result)) + result.reason
