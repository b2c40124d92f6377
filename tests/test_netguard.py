"""The connection guard: which hosts and addresses the policy allows, that connections dial
the address that was judged (DNS rebinding), and that database URLs go nowhere else.

HTTP tests run against a real loopback server; names of the reserved ``.test`` domain resolve
through a stand-in for ``getaddrinfo`` (the only thing faked: a DNS server that changes its
answer). Database tests use the real PostgreSQL and MariaDB of the test environment.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from werkzeug.wrappers import Response

from _httpserver import LocalServer
from conftest import MARIADB_URL, PG_URL, _service_error, require_service
from releasegate.db.connect import dispose_engines, engine_for, read_only
from releasegate.db.state import DbState
from releasegate.errors import ProbeError, TargetRefused
from releasegate.netguard import LOOPBACK, Policy, literal_address, validate_allowed_hosts
from releasegate.spec import Spec
from releasegate.spec_db import Database
from releasegate.target import TargetClient

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def _spec_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests are about allowed_hosts: the suite-wide loopback-only switch stands aside.
    monkeypatch.delenv("RELEASEGATE_LOOPBACK_ONLY", raising=False)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.route("/", lambda request: Response(request.headers.get("Host", "")))
        yield srv


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """``name -> [answer, answer, ...]``: each lookup of ``name`` takes the next answer (the
    last one repeats); other names resolve for real. ``dns["calls"]`` lists the names asked."""
    answers: dict[str, list[list[str]]] = {}
    calls: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        key = str(host).lower().rstrip(".")
        if key not in answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        calls.append(key)
        queue = answers[key]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        result = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr: tuple[Any, ...] = (address, port or 0)
            if family == socket.AF_INET6:
                sockaddr = (address, port or 0, 0, 0)
            result.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    answers["calls"] = calls  # type: ignore[assignment]
    return answers


@pytest.fixture
def dialed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a Python socket connected (or tried to connect) to."""
    seen: list[Any] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        seen.append(address)
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def port_of(server: LocalServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


# --- the policy ---------------------------------------------------------------------------


def refused(policy: Policy, host: str) -> bool:
    try:
        policy.check_host(host, "traffic")
    except TargetRefused:
        return True
    return False


def test_loopback_is_always_allowed_and_nothing_else_by_default() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST.", "::ffff:127.0.0.1"):
        assert not refused(LOOPBACK, host), host
    for host in ("10.0.0.1", "192.0.2.1", "[2001:db8::1]", "0.0.0.0", "[::]", "169.254.169.254"):
        assert refused(LOOPBACK, host), host


@pytest.mark.parametrize(
    ("entry", "allowed", "refused_hosts"),
    [
        (
            "API.Example.com.",
            ["api.example.com", "API.EXAMPLE.COM."],
            ["example.com", "x.api.example.com"],
        ),
        ("exämple.com", ["xn--exmple-cua.com", "XN--EXMPLE-CUA.com."], ["example.com"]),
        ("xn--exmple-cua.com", ["exämple.com", "EXÄMPLE.com"], ["xn--exmple-cub.com"]),
        ("*.example.com", ["a.example.com", "a.b.example.com"], ["example.com", "badexample.com"]),
        ("10.1.2.3", ["10.1.2.3", "::ffff:10.1.2.3"], ["10.1.2.4"]),
        ("10.0.0.0/8", ["10.200.3.4", "[::ffff:10.0.0.1]"], ["11.0.0.1", "192.168.1.1"]),
        ("fd00::/8", ["[fd12::1]", "fdff::2"], ["[fe80::1]", "[2001:db8::1]"]),
    ],
)
def test_allowed_hosts_entries_match_as_documented(
    entry: str, allowed: list[str], refused_hosts: list[str], dns: dict[str, Any]
) -> None:
    policy = Policy.from_hosts([entry])
    for host in [*allowed, *refused_hosts]:
        if literal_address(host) is None:
            dns[host.lower().rstrip(".")] = [["192.0.2.77"]]  # names lead somewhere else
    for host in allowed:
        assert not refused(policy, host), (entry, host)
    for host in refused_hosts:
        assert refused(policy, host), (entry, host)


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        ("http://api.example.com", "write its host alone, e.g. 'api.example.com'"),
        ("*", "would allow every host"),
        ("*.com", "too broad"),
        ("api.example.com/v1", "has a path"),
        ("api example.com", "has spaces"),
        ("api.example.com:8443", "write 'api.example.com'"),
        ("10.0.0.1/8", "did you mean '10.0.0.0/8'"),
        ("127.1", "dotted form"),
        ("a.*.example.com", "a wildcard may only be a whole leading label"),
        ("user@api.example.com", "has a user part"),
        ("fe80::1%eth0", "write 'fe80::1'"),
    ],
)
def test_a_bad_entry_is_refused_at_spec_load_naming_the_fix(entry: str, fix: str) -> None:
    with pytest.raises(ValueError, match="entry"):
        validate_allowed_hosts([entry])
    with pytest.raises(ValidationError) as caught:
        Spec.model_validate(
            {
                "deployment": {"name": "shop"},
                "target": {"base_url": "http://127.0.0.1:8000"},
                "allowed_hosts": ["ok.example.com", entry],
            }
        )
    assert fix in str(caught.value)


def test_link_local_is_refused_even_for_an_allowed_name(dns: dict[str, Any]) -> None:
    dns["meta.test"] = [["169.254.169.254"]]
    dns["six.test"] = [["fe80::1"]]
    dns["zero.test"] = [["0.0.0.0"]]
    policy = Policy.from_hosts(["meta.test", "six.test", "zero.test", "0.0.0.0/0"])

    for host in ("meta.test", "six.test", "zero.test", "169.254.169.254", "[fe80::1%lo]"):
        with pytest.raises(TargetRefused) as caught:
            policy.resolve(host, 80, "gate traffic")
        assert "refused even for a host in allowed_hosts" in str(caught.value)
    assert "meta.test (resolves to 169.254.169.254)" in _refusal(policy, "meta.test")
    assert "cloud metadata" in _refusal(policy, "meta.test")

    explicit = Policy.from_hosts(["meta.test", "169.254.169.254"])
    assert explicit.resolve("meta.test", 80, "gate traffic")[0][4][0] == "169.254.169.254"


def _refusal(policy: Policy, host: str) -> str:
    with pytest.raises(TargetRefused) as caught:
        policy.resolve(host, 80, "gate traffic")
    return str(caught.value)


def test_embedded_ipv4_is_judged_as_the_ipv4_it_reaches() -> None:
    # IPv4-mapped: what the socket reaches is the IPv4 address, loopback or not.
    assert not refused(LOOPBACK, "[::ffff:127.0.0.1]")
    assert refused(LOOPBACK, "[::ffff:10.0.0.1]")
    assert not refused(Policy.from_hosts(["10.0.0.0/8"]), "[::ffff:10.0.0.1]")
    # 6to4 and NAT64 leave through a gateway: the IPv6 address and its IPv4 must both pass.
    assert refused(LOOPBACK, "[2002:7f00:1::]")
    assert refused(LOOPBACK, "[64:ff9b::7f00:1]")
    assert refused(Policy.from_hosts(["64:ff9b::/96"]), "[64:ff9b::a00:1]")  # 10.0.0.1: not listed
    assert refused(Policy.from_hosts(["10.0.0.0/8"]), "[64:ff9b::a00:1]")  # the gateway: not listed
    nat64 = Policy.from_hosts(["64:ff9b::/96", "0.0.0.0/0"])
    assert not refused(nat64, "[64:ff9b::a00:1]")
    assert "link-local" in _refusal(nat64, "[64:ff9b::a9fe:a9fe]")  # 169.254.169.254


def test_the_loopback_only_switch_overrides_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Policy.from_hosts(["10.0.0.0/8"])
    assert not refused(policy, "10.1.1.1")
    monkeypatch.setenv("RELEASEGATE_LOOPBACK_ONLY", "1")
    with pytest.raises(TargetRefused, match="RELEASEGATE_LOOPBACK_ONLY is set"):
        policy.check_host("10.1.1.1", "gate traffic")


def test_a_refusal_names_the_host_the_address_and_the_fix(dns: dict[str, Any]) -> None:
    dns["shop.test"] = [["192.0.2.10"]]
    policy = Policy.from_hosts(["api.example.com"])
    message = _refusal(policy, "shop.test")
    assert "'shop.test (resolves to 192.0.2.10)'" in message
    assert "add it to allowed_hosts in the spec" in message


# --- pinning: the connection goes where the check looked -----------------------------------


def test_dns_rebinding_cannot_move_a_connection(
    server: LocalServer, dns: dict[str, Any], dialed: list[Any]
) -> None:
    # The first answer is checked (loopback); a second lookup would get the metadata address.
    dns["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    client = TargetClient(
        f"http://rebind.test:{port_of(server)}", policy=Policy.from_hosts(["rebind.test"])
    )

    answer = client.get("/").response

    assert answer.status_code == 200
    assert answer.text == f"rebind.test:{port_of(server)}"  # the Host header keeps the name
    assert dns["calls"] == ["rebind.test"]  # looked up once
    assert dialed == [("127.0.0.1", port_of(server))]


def test_a_name_with_one_refused_address_is_never_dialled(
    server: LocalServer, dns: dict[str, Any], dialed: list[Any]
) -> None:
    # Allowed by name, so the early check looks nothing up; the connection's one lookup has
    # a metadata address beside loopback (and the next lookup would have only loopback).
    dns["flip.test"] = [["127.0.0.1", "169.254.169.254"], ["127.0.0.1"]]
    policy = Policy.from_hosts(["flip.test"])
    client = TargetClient(f"http://flip.test:{port_of(server)}", policy=policy)

    with pytest.raises(TargetRefused, match=r"flip.test \(resolves to 169.254.169.254\)"):
        client.get("/")
    assert dialed == []
    assert server.hits["/"] == 0


def test_the_connection_is_judged_even_when_the_url_check_is_bypassed(
    server: LocalServer, dialed: list[Any]
) -> None:
    client = TargetClient(server.url)

    with pytest.raises(TargetRefused, match=r"'192\.0\.2\.1'"):
        client.session.get("http://192.0.2.1:9/", timeout=2)
    assert dialed == []


def test_a_proxy_outside_the_policy_is_refused(
    monkeypatch: pytest.MonkeyPatch, dns: dict[str, Any], server: LocalServer, dialed: list[Any]
) -> None:
    dns["shop.test"] = [["127.0.0.1"]]
    dns["proxy.test"] = [["192.0.2.8"]]
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = TargetClient(
        f"http://shop.test:{port_of(server)}", policy=Policy.from_hosts(["shop.test"])
    )

    with pytest.raises(TargetRefused, match=r"to the proxy.*proxy.test \(resolves to 192.0.2.8\)"):
        client.get("/")
    assert dialed == []


def test_a_socks_proxy_is_refused(monkeypatch: pytest.MonkeyPatch, dns: dict[str, Any]) -> None:
    dns["shop.test"] = [["127.0.0.1"]]
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = TargetClient("http://shop.test:9", policy=Policy.from_hosts(["shop.test"]))

    with pytest.raises(TargetRefused, match="only http"):
        client.get("/")


def test_base_and_baseline_urls_are_checked_when_the_client_is_made() -> None:
    with pytest.raises(TargetRefused, match="baseline_url"):
        TargetClient("http://127.0.0.1:9", baseline_url="http://192.0.2.3:80")
    with pytest.raises(TargetRefused, match=r"'192\.0\.2\.3'"):
        TargetClient("http://192.0.2.3:80")
    TargetClient("http://192.0.2.3:80", policy=Policy.from_hosts(["192.0.2.0/24"])).close()


# --- databases ----------------------------------------------------------------------------


def service(kind: str) -> None:
    problem = _service_error(kind)
    if problem:
        require_service(kind, problem)


def scalar(url: str, policy: Policy = LOOPBACK) -> Any:
    state = DbState(policy=policy)
    try:
        with read_only("main", Database(url=url), state) as session:
            row = session.row("SELECT 1")
            return None if row is None else row[0]
    finally:
        dispose_engines(state)


def pg(query: str = "", host: str = "127.0.0.1:5432") -> str:
    base = sa.make_url(PG_URL)
    user = base.username or "postgres"
    return f"postgresql+psycopg://{user}@{host}/{base.database}" + (f"?{query}" if query else "")


def maria(host: str = "127.0.0.1:3306", query: str = "") -> str:
    base = sa.make_url(MARIADB_URL)
    user = base.username or "root"
    return f"mysql+pymysql://{user}@{host}/{base.database}" + (f"?{query}" if query else "")


@pytest.mark.parametrize("host", ["127.0.0.1:5432", "localhost:5432"])
def test_postgresql_connects_on_loopback_and_is_pinned(host: str) -> None:
    service("postgresql")
    state = DbState()
    try:
        engine = engine_for(Database(url=pg(host=host)), state)
        with engine.connect() as conn:
            info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            assert info.host == host.split(":")[0]  # the name, for TLS and authentication
            assert info.hostaddr in ("127.0.0.1", "::1")  # the checked address, dialed
    finally:
        dispose_engines(state)


@pytest.mark.parametrize("host", ["127.0.0.1:3306", "localhost:3306"])
def test_mariadb_connects_on_loopback_through_the_checked_address(
    host: str, dialed: list[Any]
) -> None:
    service("mariadb")
    assert scalar(maria(host)) == 1
    assert dialed and all(address[0] in ("127.0.0.1", "::1") for address in dialed)


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("postgresql+psycopg://u@192.0.2.5:5432/test", "'192.0.2.5'"),
        ("postgresql+psycopg://u@/test?host=127.0.0.1&host=192.0.2.6", "'192.0.2.6'"),
        ("postgresql+psycopg://u@/test?host=127.0.0.1,192.0.2.7", "'192.0.2.7'"),
        ("postgresql+psycopg://u@localhost/test?hostaddr=192.0.2.8", "'192.0.2.8'"),
        ("postgresql+psycopg://u@127.0.0.1/test?service=prod", "service= is refused"),
        ("postgresql+psycopg://u@127.0.0.1/test?servicefile=/tmp/x", "servicefile= is refused"),
        ("postgresql+psycopg://u@127.0.0.1/test?passfile=/tmp/x", "passfile= is refused"),
        ("postgresql+psycopg://u@127.0.0.1/test?conninfo=host%3D192.0.2.9", "conninfo="),
        ("postgresql+psycopg://u@/test?host=@abstract", "abstract socket"),
        ("mysql+pymysql://root@192.0.2.5:3306/test", "'192.0.2.5'"),
        ("mysql+pymysql://root@127.0.0.1/test?host=192.0.2.6", "'192.0.2.6'"),
        ("mysql+pymysql://root@127.0.0.1/test?read_default_file=~/.my.cnf", "read_default_file"),
        ("mysql+pymysql://root@127.0.0.1/test?read_default_group=client", "read_default_group"),
        ("mysql+pymysql://root@/test?unix_socket=run/mysqld.sock", "must be an absolute path"),
    ],
)
def test_a_database_url_that_leaves_the_policy_is_refused_before_connecting(
    url: str, what: str, dialed: list[Any]
) -> None:
    with pytest.raises(TargetRefused) as caught:
        scalar(url)
    assert what in str(caught.value)
    assert dialed == []


def test_an_allowed_database_host_is_dialed_at_its_checked_address(dialed: list[Any]) -> None:
    # Nothing listens on this loopback port: the dial is seen, and fails as a ProbeError.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProbeError, match="cannot connect"):
        scalar(maria(f"127.0.0.1:{port}"), Policy.from_hosts(["127.0.0.0/8"]))
    assert dialed == [("127.0.0.1", port)]


def test_multi_host_postgresql_urls_check_and_pin_every_host() -> None:
    service("postgresql")
    url = pg("host=localhost:5432&host=127.0.0.1:5432", host="")
    state = DbState()
    try:
        engine = engine_for(Database(url=url), state)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            assert conn.connection.dbapi_connection.info.hostaddr  # type: ignore[union-attr]
    finally:
        dispose_engines(state)


def test_pg_environment_cannot_redirect_a_url_without_host(monkeypatch: pytest.MonkeyPatch) -> None:
    service("postgresql")
    if not Path("/var/run/postgresql/.s.PGSQL.5432").exists():
        pytest.skip("no PostgreSQL unix socket at the default place")
    monkeypatch.setenv("PGHOST", "192.0.2.10")
    monkeypatch.setenv("PGHOSTADDR", "192.0.2.11")
    # No host: the default unix socket, whatever PGHOST and PGHOSTADDR say.
    assert scalar(pg(host="")) == 1
    monkeypatch.setenv("PGSERVICE", "prod")
    with pytest.raises(TargetRefused, match="PGSERVICE is set in the environment"):
        scalar(pg(host=""))


def test_unix_sockets_are_local_but_must_exist(tmp_path: Path) -> None:
    service("mariadb")
    sock = "/run/mysqld/mysqld.sock"
    if not os.path.exists(sock):
        pytest.skip("no MariaDB unix socket at /run/mysqld/mysqld.sock")
    assert scalar(maria("", f"unix_socket={sock}")) == 1
    not_a_socket = tmp_path / "plain.file"
    not_a_socket.write_text("")
    with pytest.raises(ProbeError, match="no unix socket at"):
        scalar(maria("", f"unix_socket={not_a_socket}"))


def test_sqlite_needs_no_network(tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "app.db").close()
    assert scalar(f"sqlite:///{tmp_path / 'app.db'}") == 1


@pytest.mark.parametrize("timeout_s", [0.5, 1.0])
def test_a_resolver_that_never_answers_cannot_outlast_the_request(
    monkeypatch: pytest.MonkeyPatch, timeout_s: float
) -> None:
    """The lookup is bounded by the request's deadline: a hung resolver is a timeout."""
    import time

    def hung(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).startswith("hung."):
            time.sleep(30)
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    client = TargetClient(
        base_url="http://hung.example.org",
        timeout_s=timeout_s,
        policy=Policy.from_hosts(["hung.example.org"]),
    )
    started = time.monotonic()
    with pytest.raises(ProbeError, match="did not complete within"):
        client.get("/")
    assert time.monotonic() - started < timeout_s + 1.0
