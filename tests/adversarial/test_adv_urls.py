"""Whatever a URL looks like, a socket is only opened to an address the policy allows.

Hypothesis spells hosts that mean loopback and hosts that mean elsewhere every way it can
(userinfo, backslashes, IPv6 zones, IPv4-mapped and 6to4/NAT64 addresses, decimal, octal, hex
and short IPv4, trailing dots, IDNA, mixed case, percent-encoding, odd ports, junk around them)
and hands each to the HTTP client three ways: as a path or URL to request, as the target's base
URL, and as the ``Location`` of a redirect from a real loopback server.

The property, for each spelling and each policy: every address a socket connects to is allowed
(loopback, or 10.0.0.0/8 where ``allowed_hosts`` lists it, never link-local), observed at
``socket.socket.connect``; and a refusal is a ``TargetRefused`` or a ``ProbeError``, never
another exception. Dials to allowed addresses off loopback are recorded and refused right there:
nothing leaves the machine. Names of the reserved ``.test`` domain resolve through a stand-in
DNS (one of them changes its answer at every lookup); no real DNS is asked.

The long mode (``bench/fuzz_long.py``) multiplies the examples and reads the tally of URL
spellings tried (``tried("urls")``; ``SPELLINGS_TRIED`` here).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request, Response

from _fuzzbudget import examples, tried
from _httpserver import LocalServer
from releasegate.errors import ProbeError, TargetRefused
from releasegate.netguard import Policy
from releasegate.target import TargetClient

SPELLINGS_TRIED = 0

TEN = ipaddress.ip_network("10.0.0.0/8")
ALLOWED_HOSTS = ["allowed.test", "*.wild.test", "10.0.0.0/8"]

# The stand-in DNS. rebind.test answers loopback and the metadata address by turns.
NAMES: dict[str, list[str]] = {
    "loop.test": ["127.0.0.1"],
    "loop6.test": ["::1"],
    "evil.test": ["192.0.2.66"],
    "mixed.test": ["127.0.0.1", "192.0.2.67"],
    "allowed.test": ["10.0.0.5"],
    "x.wild.test": ["10.7.7.7"],
    "meta.wild.test": ["169.254.169.254"],
    "mapped.wild.test": ["::ffff:169.254.169.254"],
    "xn--exmple-cua.test": ["10.1.1.1"],
    "xn--lcal-5qa.test": ["127.0.0.1"],
}
REBIND = itertools.cycle(["127.0.0.1", "169.254.169.254"])

LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.0.0.1.",
    "127.9.8.7",
    "127.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f.1",
    "0x7f000001",
    "017700000001",
    "localhost",
    "localhost.",
    "LOCALHOST",
    "\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34",  # fullwidth LOCALHOST
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::1%25lo]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "%31%32%37.0.0.1",
    "%6c%6f%63%61%6c%68%6f%73%74",
    "loop.test",
    "loop6.test",
    "lócal.test",
]
ELSEWHERE_HOSTS = [
    "10.0.0.1",
    "10.1",
    "167772161",
    "012.0.0.1",
    "0xa.1",
    "192.0.2.66",
    "169.254.169.254",
    "0251.0376.0251.0376",
    "0.0.0.0",
    "0",
    "[::]",
    "[::ffff:10.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[fe80::1%25eth0]",
    "[fe80::1%25lo]",
    "[2002:7f00:1::]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[::127.0.0.1]",
    "evil.test",
    "mixed.test",
    "rebind.test",
    "allowed.test",
    "x.wild.test",
    "wild.test",
    "meta.wild.test",
    "mapped.wild.test",
    "exämple.test",
    "nowhere.test",
]
SCHEMES = [
    "http://",
    "https://",
    "HTTP://",
    "hTTp://",
    "//",
    "http:/",
    "http:\\\\",
    "\\\\",
    " http://",
]
USERINFO = ["", "evil@", "127.0.0.1@", "u:p@", "127.0.0.1:{port}@", "a%40b@", "@", "10.0.0.1@"]
PORTS = ["", ":{port}", ":80", ":0", ":99999", ":", ":0{port}", ":+1", ":{port}:{port}"]
TAILS = [
    "",
    "/",
    "/x",
    "\\@10.0.0.1/",
    "#@10.0.0.1",
    "?@10.0.0.1",
    "/\\10.0.0.1",
    "@10.0.0.1",
    ":{port}@10.0.0.1/",
    "%00",
    "\t/x",
    "\r\nHost: 10.0.0.1",
]
JUNK = st.text(alphabet=st.sampled_from(list(":/@\\.%[]?#0123456789abcdefx")), max_size=20)


@st.composite
def hosts(draw: st.DrawFn) -> str:
    host = draw(st.sampled_from(LOOPBACK_HOSTS + ELSEWHERE_HOSTS))
    how = draw(st.sampled_from(["as is", "upper", "mixed", "dot", "percent"]))
    if how == "upper":
        return host.upper()
    if how == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(host), max_size=len(host)))
        return "".join(c.upper() if f else c for c, f in zip(host, flips, strict=True))
    if how == "dot" and not host.endswith("]"):
        return host + "."
    if how == "percent" and host and not host.startswith("["):
        index = draw(st.integers(0, len(host) - 1))
        return host[:index] + quote(host[index], safe="") + host[index + 1 :]
    return host


@st.composite
def spellings(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK)  # now and then, anything at all
    parts = [
        draw(st.sampled_from(SCHEMES)),
        draw(st.sampled_from(USERINFO)),
        draw(hosts()),
        draw(st.sampled_from(PORTS)),
        draw(st.sampled_from(TAILS)),
    ]
    if draw(st.booleans()):
        parts.append(draw(JUNK))
    return "".join(parts)


SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
POLICIES = st.sampled_from(["loopback", "allowed", "allowed, forced to loopback"])


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.route("/", lambda request: Response("ok"))
        srv.route("/x", lambda request: Response("ok"))
        srv.route("/go", _redirect)
        yield srv


def _redirect(request: Request) -> Response:
    return Response("", status=302, headers={"Location": request.args.get("to", "/")})


@pytest.fixture
def dialed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Addresses sockets connect to; off loopback, recorded and refused (nothing leaves)."""
    seen: list[str] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = str(address[0])
        seen.append(host)
        if not _reaches_loopback(host):
            raise ConnectionRefusedError(111, f"test: {host} is not dialed for real")
        original(self, address)

    def getaddrinfo(host: Any, port: Any, family: int = 0, kind: int = 0, *args: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        key = name.lower().rstrip(".")
        if key == "rebind.test":
            addresses = [next(REBIND)]
        elif key in NAMES:
            addresses = NAMES[key]
        else:
            # A numeric host is parsed as the C library would; a name is not looked up.
            flags = (args[1] if len(args) > 1 else 0) | socket.AI_NUMERICHOST
            proto = args[0] if args else 0
            return REAL_GETADDRINFO(host, port, family, kind, proto, flags)
        result = []
        for address in addresses:
            v6 = ":" in address
            sockaddr = (address, port or 0, 0, 0) if v6 else (address, port or 0)
            result.append((socket.AF_INET6 if v6 else socket.AF_INET, kind or 1, 6, "", sockaddr))
        return result

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return seen


REAL_GETADDRINFO = socket.getaddrinfo


def _reaches_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def allowed(host: str, policy: str) -> bool:
    """The oracle, written apart from netguard: may a socket connect to ``host``?"""
    if _reaches_loopback(host):
        return True
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return policy == "allowed" and address in TEN


def _policy(name: str, monkeypatch: pytest.MonkeyPatch) -> Policy:
    if name == "allowed, forced to loopback":
        monkeypatch.setenv("RELEASEGATE_LOOPBACK_ONLY", "1")
    else:
        monkeypatch.delenv("RELEASEGATE_LOOPBACK_ONLY", raising=False)
    return Policy() if name == "loopback" else Policy.from_hosts(ALLOWED_HOSTS)


def _count() -> None:
    global SPELLINGS_TRIED
    SPELLINGS_TRIED += 1
    tried("urls")


def _attempt(call: Any) -> None:
    """Run ``call``; a refusal must be one of ours."""
    with contextlib.suppress(TargetRefused, ProbeError):
        call()


def _check(dialed: list[str], policy: str, spelling: str) -> None:
    bad = [host for host in dialed if not allowed(host, policy)]
    assert not bad, f"{spelling!r} under {policy}: connected to {bad}"
    dialed.clear()


@settings(SETTINGS, max_examples=examples(300))
@example(spelling="http://127.0.0.1@10.0.0.1/", policy="loopback")
@example(spelling="http://127.0.0.1:{port}\\@10.0.0.1/", policy="loopback")
@example(spelling="//10.0.0.1/x", policy="loopback")
@given(spelling=spellings(), policy=POLICIES)
def test_a_requested_path_or_url_never_connects_elsewhere(
    server: LocalServer,
    dialed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
    policy: str,
) -> None:
    spelling = spelling.replace("{port}", server.url.rsplit(":", 1)[1])
    _count()
    client = TargetClient(server.url, timeout_s=2.0, policy=_policy(policy, monkeypatch))
    try:
        _attempt(lambda: client.get(spelling))
    finally:
        client.close()
    _check(dialed, policy, spelling)


@settings(SETTINGS, max_examples=examples(300))
@example(spelling="http://rebind.test:{port}/", policy="loopback")
@example(spelling="http://meta.wild.test/", policy="allowed")
@example(spelling="http://[::ffff:10.0.0.1]/", policy="allowed")
@example(spelling="http://evil@127.0.0.1:{port}/", policy="loopback")
@given(spelling=spellings(), policy=POLICIES)
def test_a_target_spelt_any_way_never_connects_elsewhere(
    server: LocalServer,
    dialed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
    policy: str,
) -> None:
    spelling = spelling.replace("{port}", server.url.rsplit(":", 1)[1])
    _count()

    def run() -> None:
        client = TargetClient(spelling, timeout_s=2.0, policy=_policy(policy, monkeypatch))
        try:
            client.get("/x")
            client.get("/x")  # a kept-alive connection, or a new one: judged all the same
        finally:
            client.close()

    _attempt(run)
    _check(dialed, policy, spelling)


@settings(SETTINGS, max_examples=examples(200))
@example(spelling="http://169.254.169.254/latest/meta-data/", policy="allowed")
@example(spelling="http://[::ffff:127.0.0.1]:{port}/x", policy="loopback")
@given(spelling=spellings(), policy=POLICIES)
def test_a_redirect_spelt_any_way_never_connects_elsewhere(
    server: LocalServer,
    dialed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
    policy: str,
) -> None:
    spelling = spelling.replace("{port}", server.url.rsplit(":", 1)[1])
    _count()
    client = TargetClient(server.url, timeout_s=2.0, policy=_policy(policy, monkeypatch))
    try:
        _attempt(lambda: client.get("/go?to=" + quote(spelling, safe=""), follow_redirects=True))
    finally:
        client.close()
    _check(dialed, policy, spelling)


def test_the_spellings_mean_what_the_lists_say() -> None:
    # The lists are the test's premise: check a few against the C library's own parser.
    for host in ("127.1", "2130706433", "0177.0.0.1", "0x7f.1", "0x7f000001"):
        assert REAL_GETADDRINFO(host, 80, socket.AF_INET)[0][4][0] == "127.0.0.1"
    for host in ("10.1", "167772161", "012.0.0.1", "0xa.1"):
        assert REAL_GETADDRINFO(host, 80, socket.AF_INET)[0][4][0] == "10.0.0.1"
