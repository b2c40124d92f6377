"""The HTTP client's bounds against hostile servers: time, size, where requests go, who asks.

Every server is real and listens on a free loopback port; every test is bounded in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from _httpserver import LocalServer, RawServer, http_check, json_response
from releasegate import __version__, deadlines
from releasegate.errors import ProbeError, TargetRefused
from releasegate.model import Status
from releasegate.netguard import Policy
from releasegate.probes.base import ProbeContext, ProbeResult
from releasegate.probes.http import probe_http, probe_liveness
from releasegate.spec import LivenessCheck, Spec
from releasegate.target import USER_AGENT, TargetClient

MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def other() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def context(
    base_url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None
) -> ProbeContext:
    spec = Spec.model_validate({"deployment": {"name": "shop"}, "target": {"base_url": base_url}})
    client = TargetClient(base_url=base_url, timeout_s=timeout_s, headers=headers or {})
    return ProbeContext(spec=spec, target=client)


def http(
    base_url: str, path: str = "/api", ctx: ProbeContext | None = None, **fields: Any
) -> ProbeResult:
    return probe_http(http_check(path, **fields), ctx or context(base_url))


def details(result: ProbeResult) -> dict[str, Any]:
    return result.evidence[0].to_dict()


# --- time ---------------------------------------------------------------------------------


def drip_body(conn: Any, stopped: Any) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while not stopped.wait(0.5):
        conn.sendall(b"x")


def drip_headers(conn: Any, stopped: Any) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stopped.wait(0.5):
        conn.sendall(b"y")


@pytest.mark.parametrize("handler", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_server_cannot_keep_a_check_past_its_deadline(handler: Any) -> None:
    with RawServer(handler) as raw:
        started = time.monotonic()
        result = http(raw.url, ctx=context(raw.url, timeout_s=2.0))
        elapsed = time.monotonic() - started

    assert result.status is Status.ERROR
    assert "did not complete within 2s (total deadline" in result.reason
    assert 1.9 <= elapsed < 3.0


def test_retries_share_the_checks_deadline() -> None:
    with RawServer(drip_body) as raw:
        started = time.monotonic()
        retry = {"deadline_s": 1.0, "backoff_s": 0.05}
        result = http(raw.url, ctx=context(raw.url, timeout_s=30.0), retry=retry)
        elapsed = time.monotonic() - started

    assert result.status is Status.ERROR
    assert "the retry deadline" in result.reason
    assert elapsed < 2.0
    assert details(result)["value"]["attempts"] == 1


def test_a_dripping_server_is_a_timeout_to_the_caller() -> None:
    # The fuzz probe tells a hang from a refusal by the ProbeError's context.
    import requests

    with RawServer(drip_body) as raw:
        client = TargetClient(raw.url, timeout_s=0.5)
        with pytest.raises(ProbeError) as caught:
            client.get("/")

    assert isinstance(caught.value.__context__, requests.Timeout)


def drip_tls_handshake(conn: Any, stopped: Any) -> None:
    # A TLS record header announcing a 16 KiB handshake message, then its body, a byte every
    # 0.5 s: the handshake never ends, the request must end at its deadline all the same.
    record = b"\x16\x03\x03\x40\x00" + b"\x02" * 16384
    for byte in record:
        if stopped.wait(0.5):
            return
        conn.sendall(bytes([byte]))


def test_a_dripped_tls_handshake_cannot_keep_a_request_past_its_deadline() -> None:
    with RawServer(drip_tls_handshake) as raw:
        client = TargetClient(raw.url.replace("http://", "https://"), timeout_s=2.0)
        started = time.monotonic()
        with pytest.raises(ProbeError, match="did not complete within 2s"):
            client.get("/")
        elapsed = time.monotonic() - started

    assert 1.9 <= elapsed < 3.0


def drip_connect_answer(conn: Any, stopped: Any) -> None:
    # A proxy that answers CONNECT a byte at a time, never finishing its status line.
    for byte in b"HTTP/1.1 200 Connection established" + b" " * 1000:
        if stopped.wait(0.5):
            return
        conn.sendall(bytes([byte]))


def test_a_dripping_proxy_cannot_keep_a_tls_connection_past_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CONNECT answer is read before the TLS handshake, a socket read at a time (each
    # getting a byte before its timeout): only the deadline's watch ends it.
    with RawServer(drip_connect_answer) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        client = TargetClient(
            "https://shop.test", timeout_s=2.0, policy=Policy.from_hosts(["shop.test"])
        )
        started = time.monotonic()
        with pytest.raises(ProbeError, match="did not complete within 2s"):
            client.get("/")
        elapsed = time.monotonic() - started

    assert 1.9 <= elapsed < 3.0


def test_a_request_ends_by_the_checks_deadline() -> None:
    with RawServer(drip_body) as raw:
        client = TargetClient(raw.url, timeout_s=30.0)
        started = time.monotonic()
        with deadlines.within(1.0), pytest.raises(ProbeError, match="the check's deadline"):
            client.get("/")
        elapsed = time.monotonic() - started
        # A retry deadline earlier than the check's is the one that cuts.
        with deadlines.within(5.0), pytest.raises(ProbeError, match="the retry deadline"):
            client.get("/", deadline=time.monotonic() + 0.3)

    assert 0.9 <= elapsed < 2.0


# --- size ---------------------------------------------------------------------------------


def test_a_body_over_the_requests_limit_is_an_error(server: LocalServer) -> None:
    server.route("/api", lambda request: Response(b"z" * 5000))

    result = http(server.url, request={"max_body_bytes": 1000})

    assert result.status is Status.ERROR
    assert "over the limit of 1000 bytes" in result.reason
    assert http(server.url).status is Status.PASSED


def test_too_many_headers_are_a_malformed_answer() -> None:
    def many(conn: Any, stopped: Any) -> None:
        lines = "".join(f"X-H{i}: v\r\n" for i in range(150))
        conn.sendall(f"HTTP/1.1 200 OK\r\n{lines}Content-Length: 0\r\n\r\n".encode())

    with RawServer(many) as raw:
        result = http(raw.url)

    assert result.status is Status.ERROR
    assert "got more than 100 headers" in result.reason


CHILD = textwrap.dedent(
    """
    import json, sys
    from releasegate.errors import ProbeError
    from releasegate.target import TargetClient

    def hwm_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    client = TargetClient(sys.argv[1], timeout_s=30)
    client.get("/small")  # imports and first connection before the baseline
    before = hwm_kb()
    try:
        answer = client.get(sys.argv[2])
        outcome = f"answered {answer.response.status_code}, {len(answer.response.content)} bytes"
    except ProbeError as err:
        outcome = "ProbeError: " + str(err)
    print(json.dumps({"before_kb": before, "after_kb": hwm_kb(), "outcome": outcome}))
    """
)


def fetch_in_child(url: str, path: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, path],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RELEASEGATE_LOOPBACK_ONLY": "1"},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def big_body(chunks: int) -> Iterator[bytes]:
    block = b"x" * MiB
    for _ in range(chunks):
        yield block


def gzip_bomb(zeros: int) -> Iterator[bytes]:
    """``zeros`` bytes of zeros, gzipped as they are sent (1 GB is about 1 MB on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    for _ in range(zeros // MiB):
        out = compressor.compress(block)
        if out:
            yield out
    yield compressor.flush()


@pytest.fixture
def hostile(server: LocalServer) -> LocalServer:
    server.route("/small", lambda request: Response("ok"))
    server.route("/big", lambda request: Response(big_body(200)))
    server.route(
        "/big-declared",
        lambda request: Response(big_body(200), headers={"Content-Length": str(200 * MiB)}),
    )
    server.route(
        "/bomb",
        lambda request: Response(gzip_bomb(1024 * MiB), headers={"Content-Encoding": "gzip"}),
    )
    return server


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/big", "over the limit of 10485760 bytes"),
        ("/big-declared", "over the limit of 10485760 bytes"),
        ("/bomb", "decompression bomb"),
    ],
)
def test_huge_and_bomb_bodies_are_refused_in_bounded_memory(
    hostile: LocalServer, path: str, problem: str
) -> None:
    started = time.monotonic()
    measured = fetch_in_child(hostile.url, path)

    assert measured["outcome"].startswith("ProbeError: "), measured
    assert problem in measured["outcome"]
    growth_mb = (measured["after_kb"] - measured["before_kb"]) / 1024
    assert growth_mb < 50, measured
    assert time.monotonic() - started < 30


# --- where requests go --------------------------------------------------------------------


def recorder(server: LocalServer, seen: list[dict[str, Any]]) -> None:
    def record(request: Request) -> Response:
        seen.append({"headers": dict(request.headers), "body": request.get_data(as_text=True)})
        return json_response({"ok": True})

    server.route("/landing", record)


def redirect(to: str, status: int = 307) -> Any:
    return lambda request: Response("", status=status, headers={"Location": to})


def test_a_redirect_is_an_answer_unless_asked_to_follow(
    server: LocalServer, other: LocalServer
) -> None:
    seen: list[dict[str, Any]] = []
    recorder(other, seen)
    server.route("/api", redirect(f"{other.url}/landing", 302))

    result = http(server.url)

    assert result.status is Status.FAILED
    assert result.reason == "GET /api: status 302 not in [200]"
    assert http(server.url, expect={"status": 302}).status is Status.PASSED
    assert seen == []


def test_a_307_to_another_origin_gets_neither_body_nor_credentials(
    server: LocalServer, other: LocalServer
) -> None:
    seen: list[dict[str, Any]] = []
    recorder(other, seen)
    server.route("/api", redirect(f"{other.url}/landing"))
    ctx = context(server.url, headers={"Authorization": "Bearer t0ken", "X-Tenant": "t1"})
    post = {"method": "POST", "json": {"card": "4111"}, "headers": {"X-Api-Key": "k3y"}}

    # Not followed by default: the 307 is the answer.
    assert http(server.url, ctx=ctx, request=post).status is Status.FAILED
    # Followed on request, but never with the body to another origin.
    result = http(server.url, ctx=ctx, request={**post, "follow_redirects": True})
    assert result.status is Status.ERROR
    assert "would re-send the request body: not followed" in result.reason
    assert seen == []

    # A GET is followed there, carrying nothing the spec configured.
    get = {"headers": {"X-Api-Key": "k3y", "Cookie": "sid=1"}, "follow_redirects": True}
    result = http(server.url, ctx=ctx, request=get)

    assert result.status is Status.PASSED, result.reason
    assert len(seen) == 1
    sent = {name.lower(): value for name, value in seen[0]["headers"].items()}
    for name in ("authorization", "x-api-key", "cookie", "x-tenant"):
        assert name not in sent
    assert sent["user-agent"] == USER_AGENT


def test_a_307_on_the_same_origin_keeps_the_body_and_headers(server: LocalServer) -> None:
    seen: list[dict[str, Any]] = []
    recorder(server, seen)
    server.route("/api", redirect("/landing"))
    request = {
        "method": "POST",
        "json": {"n": 1},
        "headers": {"X-Api-Key": "k3y"},
        "follow_redirects": True,
    }

    result = http(server.url, request=request)

    assert result.status is Status.PASSED, result.reason
    assert json.loads(seen[0]["body"]) == {"n": 1}
    assert seen[0]["headers"]["X-Api-Key"] == "k3y"


def test_a_303_turns_a_post_into_a_get_without_body(server: LocalServer) -> None:
    seen: list[dict[str, Any]] = []
    recorder(server, seen)
    server.route("/api", redirect("/landing", 303))

    result = http(
        server.url, request={"method": "POST", "json": {"n": 1}, "follow_redirects": True}
    )

    assert result.status is Status.PASSED, result.reason
    assert seen[0]["body"] == ""
    assert "Content-Type" not in seen[0]["headers"]


def test_redirects_stop_after_five_hops(server: LocalServer) -> None:
    server.route("/api", redirect("/api", 302))

    result = http(server.url, request={"follow_redirects": True})

    assert result.status is Status.ERROR
    assert "more than 5 redirects" in result.reason
    assert server.hits["/api"] == 6


def test_a_redirect_off_loopback_is_refused(server: LocalServer) -> None:
    server.route("/api", redirect("http://192.0.2.1/steal", 302))

    result = http(server.url, request={"follow_redirects": True})

    assert result.status is Status.ERROR
    assert "only loopback targets" in result.reason


@pytest.mark.parametrize(
    "path",
    [
        "{other}/x",
        "//127.0.0.1:{port}/x",
        "/\\evil.example/x",
        "\\\\evil.example/x",
        "http:/x",
        "/x\r\nHost: evil",
    ],
)
def test_a_path_that_leaves_the_target_is_refused(
    server: LocalServer, other: LocalServer, path: str
) -> None:
    path = path.format(other=other.url, port=other.url.rsplit(":", 1)[1])
    client = TargetClient(server.url)

    with pytest.raises(TargetRefused):
        client.get(path)
    assert sum(other.hits.values()) == 0


def test_an_absolute_url_on_the_targets_own_origin_is_fine(server: LocalServer) -> None:
    server.route("/api", lambda request: Response("ok"))
    client = TargetClient(server.url + "/")

    assert client.get(f"{server.url}/api").response.status_code == 200
    assert client.get("api").response.status_code == 200
    assert client.url("/api?q=a:b") == f"{server.url}/api?q=a:b"


def test_a_probe_with_a_path_off_the_target_is_an_error(other: LocalServer) -> None:
    check = LivenessCheck.model_validate(
        {"name": "live", "type": "liveness", "phases": ["t0h"], "path": "//192.0.2.1/x"}
    )

    result = probe_liveness(check, context(other.url))

    assert result.status is Status.ERROR
    assert "a path must stay on the target" in result.reason


# --- who asks -----------------------------------------------------------------------------


def test_the_user_agent_is_releasegates(server: LocalServer) -> None:
    server.route("/ua", lambda request: Response(request.headers.get("User-Agent", "")))

    assert f"releasegate/{__version__}" == USER_AGENT
    assert TargetClient(server.url).get("/ua").response.text == USER_AGENT
    own = TargetClient(server.url, headers={"user-agent": "shop-bot/2"})
    assert own.get("/ua").response.text == "shop-bot/2"
    result = http(
        server.url,
        "/ua",
        request={"headers": {"User-Agent": "probe/1"}},
        expect={"body_regex": "^probe/1$"},
    )
    assert result.status is Status.PASSED, result.reason
