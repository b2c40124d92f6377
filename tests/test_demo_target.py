"""The demo target, exercised as a real child process over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import releasegate
from releasegate.demo import DEMO_COMMIT, DEMO_VERSION, DemoTarget
from releasegate.demo.faults import FAULTS, FaultDraws, Faults, parse_fault
from releasegate.errors import ReleasegateError, UsageError

REDIS_URL = "redis://127.0.0.1:6379"
SERVER = [sys.executable, "-m", "releasegate.demo.server"]


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoTarget]:
    with DemoTarget() as target:
        yield target


@pytest.fixture
def target(demo: DemoTarget) -> Iterator[DemoTarget]:
    """The shared demo target, with every fault off before and after the test."""
    demo.clear_faults()
    yield demo
    demo.clear_faults()


def get(target: DemoTarget, path: str) -> requests.Response:
    return requests.get(f"{target.url}{path}", timeout=10)


def sample_value(target: DemoTarget, name: str, **labels: str) -> float:
    """The value of the one sample ``name{labels}`` at /metrics (0 when it is not there yet)."""
    found = [
        sample.value
        for family in text_string_to_metric_families(get(target, "/metrics").text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    assert len(found) <= 1, found
    return found[0] if found else 0.0


def post_order(target: DemoTarget, body: bytes) -> requests.Response:
    return requests.post(
        f"{target.url}/api/orders",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def orphan_count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM risk_log WHERE episode_id NOT IN (SELECT id FROM episodes)"
        ).fetchone()
    return int(count)


def server_env() -> dict[str, str]:
    """The environment for running the server module from this source tree, installed or not."""
    root = str(Path(releasegate.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def start_server(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [*SERVER, "--port", "0", "--db", str(tmp_path / "demo.sqlite3"), "--stop-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(),
    )
    assert process.stdout is not None
    line = json.loads(process.stdout.readline())
    assert line["pid"] == process.pid
    assert line["log_file"] == str(tmp_path / "demo.log")  # next to --db by default
    assert isinstance(line["fault_seed"], int)  # a fresh one, as none was given
    return process, str(line["url"])


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# Healthy answers


def test_healthz(target: DemoTarget) -> None:
    response = get(target, "/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database_and_no_redis_when_none_is_configured(
    target: DemoTarget,
) -> None:
    response = get(target, "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "dependencies": {"database": {"status": "ok"}}}


def test_version(target: DemoTarget) -> None:
    assert get(target, "/version").json() == {"version": DEMO_VERSION, "commit": DEMO_COMMIT}


def test_products_list_and_item(target: DemoTarget) -> None:
    listing = get(target, "/api/products").json()
    assert listing["count"] == len(listing["items"]) == 12
    first = listing["items"][0]
    assert set(first) == {"id", "sku", "name", "price_cents", "stock"}
    assert get(target, f"/api/products/{first['id']}").json() == first


@pytest.mark.parametrize("path", ["/api/products/999", f"/api/products/{2**70}", "/nope"])
def test_missing_things_are_json_404s(target: DemoTarget, path: str) -> None:
    response = get(target, path)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "error" in response.json()


def test_wrong_method_is_a_json_405_with_allow(target: DemoTarget) -> None:
    response = requests.delete(f"{target.url}/api/orders", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "error" in response.json()


def test_order_is_created_and_counted_in_metrics(target: DemoTarget) -> None:
    created = {"route": "/api/orders", "method": "POST", "status": "201"}
    orders_before = sample_value(target, "demo_orders_total")
    before = sample_value(target, "http_requests_total", **created, version=DEMO_VERSION)
    response = post_order(target, b'{"product_id": 2, "quantity": 3}')
    assert response.status_code == 201
    order = response.json()
    assert order["product_id"] == 2 and order["quantity"] == 3 and order["id"] > 0
    # Background traffic orders too: the counters grow by at least our one order.
    assert sample_value(target, "demo_orders_total") >= orders_before + 1
    assert sample_value(target, "http_requests_total", **created, version=DEMO_VERSION) >= (
        before + 1
    )
    assert f"order {order['id']} created (product: 2, quantity: 3)" in target.log_path.read_text()


def test_metrics_exposition(target: DemoTarget) -> None:
    get(target, "/healthz")
    response = get(target, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.text
    assert 'http_requests_total{method="GET",route="/healthz",status="200",version="1.4.2"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"' in text
    # The name the demo suite's metrics-exposed check looks for stays.
    assert 'demo_http_requests_total{method="GET",path="/healthz",status="200"}' in text
    assert f'demo_build_info{{commit="{DEMO_COMMIT}",version="{DEMO_VERSION}"}} 1.0' in text
    (mean_line,) = [line for line in text.splitlines() if line.startswith("demo_risk_gate_mean")]
    assert 0.0 < float(mean_line.split()[1]) < 0.2  # seeded scores are mostly 0.0


def test_recent_episodes(target: DemoTarget) -> None:
    body = get(target, "/api/episodes/recent").json()
    assert body["count"] == len(body["items"]) == 20
    newest = body["items"][0]
    assert set(newest) == {"id", "created_at", "summary", "risk_score", "action"}
    assert [item["id"] for item in get(target, "/api/episodes/recent?limit=3").json()["items"]] == [
        200,
        199,
        198,
    ]
    for bad in ("0", "101", "x", "%C2%B2", "0" * 5000):
        assert get(target, f"/api/episodes/recent?limit={bad}").status_code == 400, bad


# Bad input never gets a 5xx


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"", 400),
        (b"\xff\xfe\x00", 400),
        (b"[" * 50_000, 400),
        (b"[1, 2]", 422),
        (b'"order"', 422),
        (b'{"product_id": 1}', 422),
        (b'{"product_id": 1, "quantity": true}', 422),
        (b'{"product_id": 1, "quantity": "2"}', 422),
        (b'{"product_id": 1, "quantity": 2.0}', 422),
        (b'{"product_id": 1, "quantity": null}', 422),
        (b'{"product_id": 1, "quantity": 0}', 422),
        (b'{"product_id": 1, "quantity": 101}', 422),
        (b'{"product_id": NaN, "quantity": 1}', 422),
        (b'{"product_id": 999, "quantity": 1}', 422),
        (b'{"product_id": -1, "quantity": 1}', 422),
        (b'{"product_id": 1180591620717411303424, "quantity": 1}', 422),
        (b'{"product_id": 1, "quantity": 1, "coupon": "FREE"}', 422),
    ],
)
def test_bad_orders_get_a_4xx_with_a_json_error(
    target: DemoTarget, body: bytes, status: int
) -> None:
    response = post_order(target, body)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]


def pad(size: int) -> bytes:
    """A valid order of exactly ``size`` bytes."""
    head, tail = b'{"product_id": 1, "quantity": 1, "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_order_body_is_413(target: DemoTarget, chunked: bool) -> None:
    def send(body: bytes) -> requests.Response:
        # A generator makes requests send the body with chunked transfer encoding.
        data = iter([body]) if chunked else body
        return requests.post(f"{target.url}/api/orders", data=data, timeout=10)

    assert send(pad(100 * 1024)).status_code == 413
    assert send(pad(64 * 1024 + 1)).status_code == 413
    # At the limit the body is read, and rejected only for its unknown field.
    assert send(pad(64 * 1024)).status_code == 422


# Faults


def test_error_rate_one_set_at_start_fails_every_eligible_request() -> None:
    with DemoTarget(faults={"error_rate": 1}) as target:
        for path in ("/healthz", "/readyz", "/version", "/api/products"):
            assert get(target, path).status_code == 500, path
        assert get(target, "/metrics").status_code == 200
        assert get(target, "/_faults").json()["faults"]["error_rate"] == 1.0


def test_error_rate_fails_the_requests_the_seed_draws() -> None:
    # No background traffic: our requests take the draws in order, so the seed predicts them.
    with DemoTarget(faults={"error_rate": 0.5}, fault_seed=20240611, traffic_rps=0) as target:
        statuses = [get(target, "/healthz").status_code for _ in range(40)]
        draws = FaultDraws(20240611)
        assert statuses == [500 if draws.fails(0.5) else 200 for _ in range(40)]
        assert 10 <= statuses.count(500) <= 30  # random, not every second one
        # Changing the faults restarts the draws from the seed.
        target.set_faults({"error_rate": 0.5})
        assert [get(target, "/version").status_code for _ in range(40)] == statuses
        # The controls never take a draw: the next draw is still the 41st.
        assert get(target, "/metrics").status_code == get(target, "/_faults").status_code == 200
        assert get(target, "/readyz").status_code == (500 if draws.fails(0.5) else 200)


def test_latency_delays_requests_but_not_the_controls(target: DemoTarget) -> None:
    target.set_faults({"latency_ms": 300})
    assert get(target, "/healthz").elapsed.total_seconds() >= 0.3
    assert get(target, "/metrics").elapsed.total_seconds() < 0.3
    assert get(target, "/_faults").elapsed.total_seconds() < 0.3


def test_wrong_version(target: DemoTarget) -> None:
    target.set_faults({"wrong_version": "9.9.9"})
    assert get(target, "/version").json() == {"version": "9.9.9", "commit": DEMO_COMMIT}


@pytest.mark.parametrize("dependency", ["database", "redis"])
def test_dependency_down_makes_readiness_503(target: DemoTarget, dependency: str) -> None:
    target.set_faults({"dependency_down": dependency})
    response = get(target, "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["dependencies"][dependency]["status"] == "down"
    assert dependency in body["dependencies"][dependency]["reason"]


def test_bad_input_5xx(target: DemoTarget) -> None:
    target.set_faults({"bad_input_5xx": True})
    assert post_order(target, b"{not json").status_code == 500
    assert post_order(target, b'{"product_id": 1, "quantity": 0}').status_code == 500
    assert post_order(target, b'{"product_id": 1, "quantity": 1}').status_code == 201


def test_orphans_follow_the_fault(target: DemoTarget) -> None:
    assert orphan_count(target.db_path) == 0
    target.set_faults({"orphans": 3})
    assert orphan_count(target.db_path) == 3
    target.set_faults({"orphans": 5})
    assert orphan_count(target.db_path) == 5
    target.clear_faults()
    assert orphan_count(target.db_path) == 0


def test_orphans_at_start_and_a_kept_workdir(tmp_path: Path) -> None:
    with DemoTarget(faults={"orphans": "4"}, workdir=tmp_path) as target:
        assert target.db_path == tmp_path / "demo.sqlite3"
    assert orphan_count(tmp_path / "demo.sqlite3") == 4


def test_runtime_faults_merge_and_delete_clears(target: DemoTarget) -> None:
    url = f"{target.url}/_faults"
    assert requests.post(url, json={"latency_ms": 5}, timeout=10).status_code == 200
    response = requests.post(url, json={"wrong_version": "2.0.0"}, timeout=10)
    assert response.json()["faults"] == {
        **Faults().to_dict(),
        "latency_ms": 5,
        "wrong_version": "2.0.0",
    }
    assert requests.delete(url, timeout=10).json() == {
        "faults": Faults().to_dict(),
        "fault_seed": target.fault_seed,
    }
    assert get(target, "/version").json()["version"] == DEMO_VERSION


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"latncy_ms": 5}', "did you mean 'latency_ms'?"),
        (b'{"error_rate": 2}', "expected a number between 0 and 1"),
        (b'{"dependency_down": "cache"}', "one of 'database', 'redis'"),
        (b"[1]", "send a JSON object of faults"),
        (b"{", "not valid JSON"),
    ],
)
def test_runtime_faults_are_validated(target: DemoTarget, body: bytes, message: str) -> None:
    response = requests.post(f"{target.url}/_faults", data=body, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert get(target, "/_faults").json()["faults"] == Faults().to_dict()


# Parsing faults


def test_unknown_fault_names_suggest_the_right_one() -> None:
    with pytest.raises(UsageError, match=r"unknown fault 'eror_rate': did you mean 'error_rate'\?"):
        Faults.from_mapping({"eror_rate": 1})
    with pytest.raises(UsageError, match="did you mean 'latency_ms'"):
        DemoTarget(faults={"latency": 300})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("error_rate=0.25", ("error_rate", 0.25)),
        ("latency_ms=300", ("latency_ms", 300)),
        ("wrong_version=9.9.9", ("wrong_version", "9.9.9")),
        ("dependency_down=redis", ("dependency_down", "redis")),
        ("bad_input_5xx=1", ("bad_input_5xx", True)),
        ("bad_input_5xx=False", ("bad_input_5xx", False)),
        ("orphans=0", ("orphans", 0)),
        ("latency_jitter_ms=50", ("latency_jitter_ms", 50)),
        ("log_spike=600", ("log_spike", 600)),
    ],
)
def test_parse_fault(spec: str, expected: tuple[str, object]) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("latency_ms", "write it as NAME=VALUE"),
        ("latency_ms=abc", "expected an integer >= 0"),
        ("latency_ms=-1", "expected an integer >= 0"),
        ("error_rate=nan", "expected a number between 0 and 1"),
        ("bad_input_5xx=maybe", "expected one of 1, 0, true, false"),
        ("wrong_version=", "expected a non-empty string"),
        ("log_spike=6001", "expected an integer 0..6000"),
        ("latency_jitter_ms=1.5", "expected an integer >= 0"),
    ],
)
def test_parse_fault_rejects_bad_values(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_fault(spec)


def test_every_fault_has_help() -> None:
    assert set(FAULTS) == set(Faults().to_dict())


# The server process


@pytest.mark.parametrize("host", ["192.0.2.1", "0.0.0.0"])
def test_server_refuses_a_non_loopback_host(tmp_path: Path, host: str) -> None:
    db = tmp_path / "demo.sqlite3"
    result = subprocess.run(
        [*SERVER, "--host", host, "--port", "0", "--db", str(db)],
        capture_output=True,
        env=server_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "not a loopback address" in lines[0]
    assert not db.exists()


def test_server_stops_cleanly_on_sigterm_without_access_logs(tmp_path: Path) -> None:
    process, url = start_server(tmp_path)
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr == b""


def test_server_stops_when_its_parent_closes_stdin(tmp_path: Path) -> None:
    process, _ = start_server(tmp_path)
    with process:
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(timeout=10) == 0


def test_a_failed_start_raises_with_the_servers_stderr() -> None:
    with pytest.raises(ReleasegateError, match="redis url 'http://x' is not of the form"):
        DemoTarget(redis_url="http://x").start()
    with pytest.raises(ReleasegateError, match="only loopback targets"):
        DemoTarget(redis_url="redis://192.0.2.1:6379").start()


def test_readiness_reports_a_database_it_cannot_open(tmp_path: Path) -> None:
    with DemoTarget(workdir=tmp_path) as target:
        target.db_path.rename(tmp_path / "moved.sqlite3")
        response = get(target, "/readyz")
    assert response.status_code == 503
    assert response.json()["dependencies"]["database"]["status"] == "down"
    assert response.json()["dependencies"]["database"]["reason"].startswith("sqlite: ")


# Redis readiness


def test_readiness_with_a_live_redis() -> None:
    if not redis_reachable():
        reason = f"no Redis answering PING at {REDIS_URL}"
        if os.environ.get("RELEASEGATE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and RELEASEGATE_REQUIRE_SERVICES=1 requires it")
        pytest.skip(reason)
    with DemoTarget(redis_url=REDIS_URL) as target:
        response = get(target, "/readyz")
    assert response.status_code == 200
    assert response.json()["dependencies"] == {
        "database": {"status": "ok"},
        "redis": {"status": "ok"},
    }


def test_readiness_with_redis_on_a_closed_port() -> None:
    # Bound but not listening: connections are refused for as long as we hold the port.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with DemoTarget(redis_url=f"redis://127.0.0.1:{port}") as target:
            response = get(target, "/readyz")
    assert response.status_code == 503
    redis = response.json()["dependencies"]["redis"]
    assert redis["status"] == "down"
    assert f"127.0.0.1:{port}" in redis["reason"]
