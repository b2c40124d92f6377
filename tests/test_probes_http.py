"""The HTTP smoke probes against a real loopback server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from _httpserver import LocalServer, closed_port_url, http_check, json_response
from releasegate.model import Status
from releasegate.probes.base import ProbeContext, ProbeResult, run_check
from releasegate.probes.http import probe_http, probe_liveness, probe_readiness, probe_version
from releasegate.spec import HttpCheck, LivenessCheck, ReadinessCheck, Spec, VersionCheck
from releasegate.target import TargetClient


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def context(base_url: str, timeout_s: float = 2.0, **deployment: Any) -> ProbeContext:
    spec = Spec.model_validate(
        {"deployment": {"name": "shop", **deployment}, "target": {"base_url": base_url}}
    )
    return ProbeContext(spec=spec, target=TargetClient(base_url=base_url, timeout_s=timeout_s))


def http(
    server: LocalServer, path: str = "/api", ctx: ProbeContext | None = None, **fields: Any
) -> ProbeResult:
    return probe_http(http_check(path, **fields), ctx or context(server.url))


def evidence(result: ProbeResult) -> dict[str, Any]:
    assert len(result.evidence) == 1
    return result.evidence[0].to_dict()


ORDER = {
    "id": 7,
    "status": "paid",
    "paid": True,
    "customer": {"name": "Ada", "tier": "gold"},
    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
}


@pytest.fixture
def order_api(server: LocalServer) -> LocalServer:
    server.route("/api", lambda request: json_response(ORDER, headers={"X-Env": "prod"}))
    return server


def test_status_passes_and_evidence_says_what_was_measured(order_api: LocalServer) -> None:
    result = http(order_api, expect={"status": [200, 204], "max_latency_ms": 5000})

    assert result.status is Status.PASSED, result.reason
    ev = evidence(result)
    assert ev["measured"] == "GET /api"
    assert ev["value"]["status"] == 200
    assert ev["value"]["attempts"] == 1
    assert ev["threshold"] == "status in [200, 204]; latency <= 5000 ms"
    assert ev["details"]["request"]["url"] == f"{order_api.url}/api"
    assert ev["details"]["response"]["status"] == 200
    assert json.loads(ev["details"]["response"]["body"]) == ORDER


def test_status_fails(server: LocalServer) -> None:
    server.route("/api", lambda request: Response("boom", status=500))

    result = http(server)

    assert result.status is Status.FAILED
    assert result.reason == "GET /api: status 500 not in [200]"


def test_json_subset_passes_on_nested_objects_and_unordered_arrays(order_api: LocalServer) -> None:
    expected = {"customer": {"tier": "gold"}, "items": [{"sku": "B-2"}, {"sku": "A-1", "qty": 2}]}

    assert http(order_api, expect={"json": expected}).status is Status.PASSED


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        ({"customer": {"tier": "silver"}}, "json $.customer.tier is 'gold', expected 'silver'"),
        ({"customer": {"email": "a@b"}}, "json $.customer has no key 'email'"),
        ({"items": [{"sku": "C-3"}]}, "json $.items has no element matching {'sku': 'C-3'}"),
        ({"paid": 1}, "json $.paid is True, expected 1"),
        ({"status": {"code": 1}}, "json $.status is 'paid', expected an object"),
    ],
)
def test_json_subset_fails(order_api: LocalServer, expected: Any, problem: str) -> None:
    result = http(order_api, expect={"json": expected})

    assert result.status is Status.FAILED
    assert result.reason == f"GET /api: {problem}"


def test_jsonpath(order_api: LocalServer) -> None:
    passing = {"$.customer.name": "Ada", "$.items[?qty > 1].sku": "A-1", "$.items[*].qty": [2, 1]}
    assert http(order_api, expect={"jsonpath": passing}).status is Status.PASSED

    result = http(order_api, expect={"jsonpath": {"$.status": "shipped", "$.refund.id": 1}})

    assert result.status is Status.FAILED
    assert "jsonpath $.status is 'paid', expected 'shipped'" in result.reason
    assert "jsonpath $.refund.id matched nothing" in result.reason
    assert evidence(result)["value"]["jsonpath"] == {"$.status": "paid", "$.refund.id": None}


def test_body_regex(order_api: LocalServer) -> None:
    assert http(order_api, expect={"body_regex": r'"sku": "B-\d"'}).status is Status.PASSED

    result = http(order_api, expect={"body_regex": "refunded"})

    assert result.status is Status.FAILED
    assert result.reason == "GET /api: body does not match /refunded/"


def test_headers_are_matched_case_insensitively_by_name(order_api: LocalServer) -> None:
    ok = {"x-env": "prod", "CONTENT-TYPE": "application/json"}
    assert http(order_api, expect={"headers": ok}).status is Status.PASSED

    result = http(order_api, expect={"headers": {"X-Env": "staging", "X-Trace": "1"}})

    assert result.status is Status.FAILED
    assert "header X-Env is 'prod', expected 'staging'" in result.reason
    assert "header X-Trace is missing" in result.reason


def test_latency(server: LocalServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.2)
        return Response("ok")

    server.route("/slow", slow)

    assert http(server, "/slow", expect={"max_latency_ms": 5000}).status is Status.PASSED
    result = http(server, "/slow", expect={"max_latency_ms": 50})
    assert result.status is Status.FAILED
    assert "ms > 50 ms" in result.reason
    assert evidence(result)["value"]["latency_ms"] >= 200


def test_every_failed_expectation_is_listed(order_api: LocalServer) -> None:
    result = http(
        order_api,
        expect={
            "status": 201,
            "json": {"id": 8},
            "jsonpath": {"$.paid": False},
            "body_regex": "^nope",
            "headers": {"X-Env": "dev"},
            "max_latency_ms": 0.001,
        },
    )

    assert result.status is Status.FAILED
    problems = result.reason.removeprefix("GET /api: ").split("; ")
    assert [p.split(" ")[0] for p in problems] == [
        "status",
        "header",
        "body",
        "json",
        "jsonpath",
        "latency",
    ]


def test_a_body_that_is_not_json_fails_instead_of_crashing(server: LocalServer) -> None:
    server.route("/api", lambda request: Response("<html>Bad Gateway</html>", mimetype="text/html"))

    result = http(server, expect={"json": {"ok": True}, "jsonpath": {"$.ok": True}})

    assert result.status is Status.FAILED
    assert result.reason == "GET /api: body is not JSON: <html>Bad Gateway</html>"


def test_absurdly_nested_json_is_not_json_either(server: LocalServer) -> None:
    server.route("/api", lambda request: Response("[" * 100_000 + "]" * 100_000))

    result = http(server, expect={"json": []})

    assert result.status is Status.FAILED
    assert result.reason.startswith("GET /api: body is not JSON: [[[")


def test_request_carries_method_headers_params_and_json(server: LocalServer) -> None:
    def echo(request: Request) -> Response:
        return json_response(
            {
                "method": request.method,
                "q": request.args.get("q"),
                "tenant": request.headers.get("X-Tenant"),
                "body": request.get_json(silent=True),
            },
            status=201,
        )

    server.route("/echo", echo)
    request = {
        "method": "POST",
        "headers": {"X-Tenant": "t1"},
        "params": {"q": "shoes"},
        "json": {"n": 1},
    }
    expected = {"method": "POST", "q": "shoes", "tenant": "t1", "body": {"n": 1}}

    result = http(server, "/echo", request=request, expect={"status": 201, "json": expected})

    assert result.status is Status.PASSED, result.reason


def test_a_bad_expectation_pattern_is_an_error_before_sending(server: LocalServer) -> None:
    # The spec refuses such a pattern when it loads; the probe still must not send or crash.
    check = HttpCheck.model_validate(
        {"name": "api", "type": "http", "phases": ["t0h"], "request": {"path": "/api"}}
    )
    bad = check.expect.model_copy(update={"body_regex": "(unclosed"})
    result = probe_http(check.model_copy(update={"expect": bad}), context(server.url))

    assert result.status is Status.ERROR
    assert "expectation cannot be used" in result.reason
    assert server.hits["/api"] == 0


def test_connection_refused_is_an_error() -> None:
    url = closed_port_url()

    result = probe_liveness(liveness(), context(url))

    assert result.status is Status.ERROR
    assert "connection refused" in result.reason
    assert evidence(result)["details"]["request"]["url"] == f"{url}/healthz"


def test_no_answer_in_time_is_an_error(server: LocalServer) -> None:
    def hangs(request: Request) -> Response:
        server.hang()
        return Response("late")

    server.route("/api", hangs)

    result = http(server, request={"timeout_s": 0.2})

    assert result.status is Status.ERROR
    assert "did not complete within 0.2s (total deadline" in result.reason


def test_retry_until_the_answer_is_right(server: LocalServer) -> None:
    def flips(request: Request) -> Response:
        ready = server.hits["/api"] > 3
        return json_response({"state": "done" if ready else "pending"}, status=200)

    server.route("/api", flips)
    retry = {"deadline_s": 5, "backoff_s": 0.01, "factor": 2}

    result = http(server, expect={"json": {"state": "done"}}, retry=retry)

    assert result.status is Status.PASSED, result.reason
    assert evidence(result)["value"]["attempts"] == 4
    assert result.reason.endswith("(after 4 attempts)")


def test_retry_gives_up_at_the_deadline(server: LocalServer) -> None:
    server.route("/api", lambda request: Response("starting", status=503))
    retry = {"deadline_s": 0.5, "backoff_s": 0.05, "factor": 2, "max_backoff_s": 0.1}

    started = time.monotonic()
    result = http(server, retry=retry)
    elapsed = time.monotonic() - started

    assert result.status is Status.FAILED
    attempts = evidence(result)["value"]["attempts"]
    assert attempts == server.hits["/api"]
    assert 4 <= attempts <= 10
    assert 0.5 <= elapsed < 1.5
    assert result.reason == f"GET /api: status 503 not in [200] (after {attempts} attempts)"


def test_retry_recovers_from_a_transport_error(server: LocalServer) -> None:
    def first_hangs(request: Request) -> Response:
        if server.hits["/api"] == 1:
            server.hang(1.0)
        return Response("ok")

    server.route("/api", first_hangs)
    retry = {"deadline_s": 5, "backoff_s": 0.01}

    result = http(server, request={"timeout_s": 0.2}, retry=retry)

    assert result.status is Status.PASSED, result.reason
    assert evidence(result)["value"]["attempts"] == 2


def test_a_transport_error_on_the_last_attempt_is_an_error() -> None:
    check = LivenessCheck.model_validate(
        {
            "name": "live",
            "type": "liveness",
            "phases": ["t0h"],
            "retry": {"deadline_s": 0.3, "backoff_s": 0.05},
        }
    )

    result = probe_liveness(check, context(closed_port_url()))

    assert result.status is Status.ERROR
    assert "connection refused" in result.reason
    assert evidence(result)["value"]["attempts"] > 1


def liveness(**fields: Any) -> LivenessCheck:
    return LivenessCheck.model_validate(
        {"name": "live", "type": "liveness", "phases": ["t0h"], **fields}
    )


def test_liveness(server: LocalServer) -> None:
    server.route("/healthz", lambda request: Response("ok", status=204))
    server.route("/sick", lambda request: Response("no", status=500))
    ctx = context(server.url)

    assert probe_liveness(liveness(max_latency_ms=5000), ctx).status is Status.PASSED
    result = probe_liveness(liveness(path="/sick"), ctx)
    assert result.status is Status.FAILED
    assert result.reason == "GET /sick: status 500 is not 2xx"
    assert evidence(result)["threshold"] == "status 2xx"


def readiness(**fields: Any) -> ReadinessCheck:
    return ReadinessCheck.model_validate(
        {"name": "ready", "type": "readiness", "phases": ["t0h"], **fields}
    )


def test_readiness_passes_when_every_dependency_is_up(server: LocalServer) -> None:
    body = {"dependencies": {"db": "OK", "cache": {"status": "healthy", "primary": True}}}
    server.route("/readyz", lambda request: json_response(body))

    result = probe_readiness(readiness(required=["db"]), context(server.url))

    assert result.status is Status.PASSED, result.reason
    assert evidence(result)["value"]["dependencies"] == {"db": "OK", "cache": "healthy"}


def test_readiness_names_the_dependency_that_is_down(server: LocalServer) -> None:
    body = {"checks": {"db": {"status": "down"}, "cache": {"status": "up"}}}
    server.route("/readyz", lambda request: json_response(body, status=503))

    result = probe_readiness(
        readiness(dependencies_key="checks", required=["queue"]), context(server.url)
    )

    assert result.status is Status.FAILED
    assert result.reason == (
        "GET /readyz: status 503 is not 2xx; unhealthy dependencies: db=down;"
        " required dependencies missing: queue"
    )
    value = evidence(result)["value"]
    assert value["dependencies"] == {"db": "down", "cache": "up"}
    assert value["unhealthy"] == ["db"]


@pytest.mark.parametrize(
    ("mode", "body", "status", "expected"),
    [
        ("status", "anything at all", 200, Status.PASSED),
        ("status", "", 503, Status.FAILED),
        ("text", "ok\n", 200, Status.PASSED),  # Kubernetes /readyz
        ("text", "OK", 200, Status.PASSED),
        ("text", "not ready", 200, Status.FAILED),
        ("text", "ok", 503, Status.FAILED),
    ],
)
def test_readiness_of_services_that_answer_plain_text(
    server: LocalServer, mode: str, body: str, status: int, expected: Status
) -> None:
    server.route("/-/ready", lambda request: Response(body, status=status))
    result = probe_readiness(readiness(path="/-/ready", mode=mode), context(server.url))
    assert result.status is expected, result.reason


def test_a_component_without_a_name_is_an_error_not_dropped(server: LocalServer) -> None:
    body = {"dependencies": [{"name": "db", "status": "ok"}, {"status": "down"}]}
    server.route("/readyz", lambda request: json_response(body))

    result = probe_readiness(readiness(), context(server.url))

    assert result.status is Status.ERROR
    assert "entry 1 has no name" in result.reason


def test_the_deployed_version_reaches_the_record_whatever_its_key(server: LocalServer) -> None:
    from releasegate.model import CheckInfo, Outcome
    from releasegate.record import deployed_versions

    server.route(
        "/info", lambda request: json_response({"build": {"version": "3.1.0", "sha": SHA}})
    )
    check = version(path="/info", version_key="build.version", commit_key="build.sha")
    result = probe_version(check, context(server.url, version="3.1.0", commit=SHA[:7]))

    assert result.status is Status.PASSED, result.reason
    outcome = Outcome(CheckInfo("version", "smoke"), result.status, evidence=result.evidence)
    assert deployed_versions((outcome,)) == {"deployed": "3.1.0", "deployed_commit": SHA}


def test_readiness_that_cannot_be_read_is_an_error(server: LocalServer) -> None:
    server.route("/readyz", lambda request: Response("ready"))

    result = probe_readiness(readiness(), context(server.url))

    assert result.status is Status.ERROR
    assert "body is not JSON" in result.reason


def version(**fields: Any) -> VersionCheck:
    return VersionCheck.model_validate(
        {"name": "version", "type": "version", "phases": ["t0h"], **fields}
    )


SHA = "3f2c9e1d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"


@pytest.fixture
def version_api(server: LocalServer) -> LocalServer:
    server.route("/version", lambda request: json_response({"version": "2.0.1", "commit": SHA}))
    return server


def test_version_matches(version_api: LocalServer) -> None:
    result = probe_version(version(), context(version_api.url, version="2.0.1", commit=SHA))

    assert result.status is Status.PASSED, result.reason
    assert evidence(result)["value"]["commit"] == {
        "expected": SHA,
        "actual": SHA,
        "field": "commit",
        "match": "exact",
    }


def test_version_mismatch_fails(version_api: LocalServer) -> None:
    result = probe_version(version(), context(version_api.url, version="2.0.2"))

    assert result.status is Status.FAILED
    assert result.reason == "GET /version: version is '2.0.1', expected '2.0.2'"


def test_commit_matches_by_prefix_and_says_so(version_api: LocalServer) -> None:
    result = probe_version(version(), context(version_api.url, commit=SHA[:7]))

    assert result.status is Status.PASSED, result.reason
    assert "matches 3f2c9e1 by prefix" in result.reason
    assert evidence(result)["value"]["commit"]["match"] == "prefix"

    short = probe_version(version(), context(version_api.url, commit=SHA[:6]))
    assert short.status is Status.FAILED


def test_version_without_anything_to_compare_is_an_error(version_api: LocalServer) -> None:
    result = probe_version(version(), context(version_api.url))

    assert result.status is Status.ERROR
    assert result.reason == (
        "the spec declares no deployment.version or deployment.commit to compare with"
    )
    assert version_api.hits["/version"] == 0


def test_the_registry_dispatches_to_these_probes(version_api: LocalServer) -> None:
    result = run_check(version(), context(version_api.url, version="2.0.1"))

    assert result.status is Status.PASSED


SECRETS = ["s3cr3t-bearer-value", "hunter2-query-pw", "tok-9f8e7d6c5b4a", "cookie-abc-123"]


def test_secrets_never_reach_the_evidence(server: LocalServer) -> None:
    def leaky(request: Request) -> Response:
        body = {"user": "ada", "token": SECRETS[2], "session": {"access_token": SECRETS[2]}}
        response = json_response(body, status=500)
        response.set_cookie("sid", SECRETS[3])
        return response

    server.route("/login", leaky)
    request = {
        "method": "POST",
        "headers": {"Authorization": f"Bearer {SECRETS[0]}"},
        "params": {"user": "ada", "password": SECRETS[1]},
    }
    expect = {"json": {"token": "other"}, "jsonpath": {"$.session.access_token": "x"}}

    result = http(server, "/login", request=request, expect=expect)

    assert result.status is Status.FAILED
    dumped = json.dumps(evidence(result)) + result.reason
    assert "password=***" in dumped
    for secret in SECRETS:
        assert secret not in dumped


def test_a_password_in_the_base_url_is_masked(server: LocalServer) -> None:
    server.route("/healthz", lambda request: Response("ok"))
    url = server.url.replace("http://", "http://ops:pa55-in-url@")

    result = probe_liveness(liveness(), context(url))

    assert result.status is Status.PASSED
    assert "pa55-in-url" not in json.dumps(evidence(result))


def test_the_body_excerpt_is_bounded(server: LocalServer) -> None:
    server.route("/big", lambda request: Response("x" * 50_000))

    result = http(server, "/big", expect={"body_regex": "y"})

    body = evidence(result)["details"]["response"]["body"]
    assert len(body) == 2000
    assert body.endswith("…")
    assert evidence(result)["details"]["response"]["bytes"] == 50_000


def test_a_proxy_from_the_environment_never_gets_loopback_traffic(
    order_api: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy's own loopback is not ours: this one does not even exist.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    result = http(order_api)

    assert result.status is Status.PASSED, result.reason
    assert TargetClient("http://127.0.0.1:8000").session.trust_env is False


VERSION_SOURCES = [
    # (route answer, version_from, commit_from)
    (
        lambda request: Response("ok", headers={"X-App-Version": "4.2.0", "X-Commit": SHA}),
        {"header": "X-App-Version"},
        {"header": "x-commit"},
    ),
    (
        lambda request: json_response({"build": {"info": [{"v": "4.2.0", "git": {"sha": SHA}}]}}),
        {"jsonpath": "$.build.info[0].v"},
        {"jsonpath": "$.build.info[0].git.sha"},
    ),
    (
        lambda request: Response(f"shop v4.2.0 (build {SHA[:12]}) up 3d\n", mimetype="text/plain"),
        {"regex": r"\bv(\d+\.\d+\.\d+)\b"},
        {"regex": r"build ([0-9a-f]{7,40})"},
    ),
    (
        lambda request: Response(f"<html><p>4.2.0</p><p>{SHA}</p></html>", mimetype="text/html"),
        {"regex": r"\d+\.\d+\.\d+"},  # no group: the whole match
        {"regex": r"[0-9a-f]{40}"},
    ),
]


@pytest.mark.parametrize(("answer", "version_from", "commit_from"), VERSION_SOURCES)
@pytest.mark.parametrize("deployed", ["4.2.0", "4.1.9"])
def test_the_version_is_read_from_a_header_a_jsonpath_or_a_regex(
    server: LocalServer,
    answer: Any,
    version_from: dict[str, str],
    commit_from: dict[str, str],
    deployed: str,
) -> None:
    from releasegate.model import CheckInfo, Outcome
    from releasegate.record import deployed_versions

    server.route("/about", answer)
    check = version(path="/about", version_from=version_from, commit_from=commit_from)
    result = probe_version(check, context(server.url, version=deployed, commit=SHA))

    # The expected version is 4.2.0 or not: the same answer passes or fails by it alone.
    assert result.status is (Status.PASSED if deployed == "4.2.0" else Status.FAILED), result.reason
    outcome = Outcome(CheckInfo("version", "smoke"), result.status, evidence=result.evidence)
    versions = deployed_versions((outcome,))
    assert versions["deployed"] == "4.2.0"
    assert SHA.startswith(versions["deployed_commit"])
    if deployed != "4.2.0":
        assert "'4.2.0', expected '4.1.9'" in result.reason


@pytest.mark.parametrize(
    ("answer", "version_from", "message"),
    [
        (lambda request: Response("ok"), {"header": "X-App-Version"}, "no X-App-Version header"),
        (lambda request: Response("v-none"), {"regex": r"v(\d+)"}, "matches nothing"),
        (lambda request: Response("plain"), {"jsonpath": "$.v"}, "not a JSON object"),
        (lambda request: json_response({"v": [1, 2]}), {"jsonpath": "$.v[*]"}, "2 values"),
        (lambda request: json_response({"v": {"a": 1}}), {"key": "v"}, "has no 'v'"),
    ],
)
def test_a_version_that_cannot_be_read_is_an_error(
    server: LocalServer, answer: Any, version_from: dict[str, str], message: str
) -> None:
    server.route("/about", answer)
    check = version(path="/about", version_from=version_from)
    result = probe_version(check, context(server.url, version="1.0.0"))

    assert result.status is Status.ERROR
    assert message in result.reason


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version_from": {}}, "give exactly one of key, jsonpath, header or regex"),
        (
            {"version_from": {"header": "X-V", "regex": "v(.*)"}},
            "give exactly one of key, jsonpath, header or regex (got header, regex)",
        ),
        ({"version_from": {"regex": "v(("}}, "is not a valid regular expression"),
        ({"version_from": {"regex": "(a)(b)"}}, "has several groups"),
        ({"version_from": {"jsonpath": "$..[?("}}, "is not a valid JSONPath"),
        ({"version_key": "v", "version_from": {"header": "X-V"}}, "version_key or version_from"),
    ],
)
def test_a_version_source_is_checked_when_the_spec_loads(
    fields: dict[str, Any], message: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        version(**fields)
    assert message in str(err.value)
