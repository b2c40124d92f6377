"""The deployment under test as probes see it: a base URL and a pooled HTTP session.

Every request is bounded, whatever the server does:

* **Time.** ``timeout_s`` is a *total* deadline for connect, headers and body. Each socket read
  and write may only take what is left of it, so a server that drips one byte a second cannot
  keep a request alive past its deadline. A caller (a probe's ``retry``) may pass a shorter
  absolute ``deadline`` that several attempts share.
* **Size.** The body is streamed and counted after decompression: past ``max_body_bytes``
  (default 10 MiB), or decompressing to more than ``MAX_DECOMPRESSION_RATIO`` times what came
  over the wire, the request is a ``ProbeError``. Headers are bounded by ``http.client``: at most
  100 of them (``_MAXHEADERS``), each line at most 64 KiB (``_MAXLINE``).
* **Where.** Paths are joined to the base URL here, never parsed as URLs by requests: an
  absolute URL, ``//host`` or a backslash is refused (``TargetRefused``) unless it names the
  target's own origin. Redirects are not followed unless asked (``follow_redirects``); then at
  most ``MAX_REDIRECTS`` hops, and a hop to another origin carries none of the configured
  headers, no cookies, no credentials and never a body.
* **Allowed hosts.** The client's ``netguard.Policy`` (the spec's ``allowed_hosts``) judges the
  base and baseline URLs, every absolute URL and redirect hop as urllib3 parses it (early,
  clear errors), and every connection as it is made: the host the socket would dial (target or
  proxy) is looked up once, every address judged, and the socket connects to a judged address
  (no second lookup to rebind), while Host, TLS SNI and certificate checks keep the name. The
  TLS handshake and a proxy's CONNECT answer end at the request's deadline too.
* **The check's deadline.** A request made while a check runs ends by that check's deadline
  (``deadlines.earliest``), whatever its own timeout.
* **Who.** ``User-Agent: releasegate/<version>`` unless the target's headers set one.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import re
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from . import __version__, deadlines, netguard
from .errors import ProbeError, TargetRefused
from .redact import redact_text

USER_AGENT = f"releasegate/{__version__}"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_DECOMPRESSION_RATIO = 100
# Small bodies are not held to the ratio: a short, very repetitive answer is no bomb.
RATIO_CHECKED_FROM_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
READ_CHUNK_BYTES = 64 * 1024
# Never sent to another origin than the target's, whatever follows a redirect.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_BODY_HEADERS = ("Content-Length", "Content-Type", "Transfer-Encoding")
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True, slots=True)
class Timed:
    response: requests.Response
    elapsed_ms: float


# The deadline of the request this thread is sending, and the bytes it has received so far.
# Sockets of TargetClient connections read both at every recv/send (see _DeadlineSocket).
_state = threading.local()


def _arm(sock: Any) -> None:
    """Give ``sock`` what is left of the thread's deadline as its timeout, or time it out."""
    deadline: float | None = getattr(_state, "deadline", None)
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's total deadline has passed")
    sock.settimeout(left)


def _count(received: int) -> int:
    if getattr(_state, "deadline", None) is not None:
        _state.received = getattr(_state, "received", 0) + received
    return received


class _DeadlineIO:
    """Every read and write of the socket it is mixed into is bounded by the thread's deadline."""

    __slots__ = ()

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        _arm(self)
        return _count(super().recv_into(*args, **kwargs))  # type: ignore[misc]

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        _arm(self)
        data: bytes = super().recv(*args, **kwargs)  # type: ignore[misc]
        _count(len(data))
        return data

    def send(self, *args: Any, **kwargs: Any) -> int:
        _arm(self)
        sent: int = super().send(*args, **kwargs)  # type: ignore[misc]
        return sent

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        _arm(self)
        super().sendall(*args, **kwargs)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineIO, socket.socket):
    """A plain socket under the deadline."""

    __slots__ = ()


class _DeadlineSSLSocket(_DeadlineIO, ssl.SSLSocket):
    """The same for a TLS socket (the handshake itself is bounded by the connect timeout)."""


def _bound(sock: Any) -> None:
    # Same memory layout, other methods: the socket urllib3 made now checks the deadline.
    if type(sock) is socket.socket:
        sock.__class__ = _DeadlineSocket
    elif type(sock) is ssl.SSLSocket:
        sock.__class__ = _DeadlineSSLSocket


class _Watch:
    """Shuts a socket down at the thread's deadline while a TLS connection is set up.

    Until ``connect`` returns the socket is not yet under ``_DeadlineIO``: a proxy's CONNECT
    answer is read a line at a time, each read with the whole timeout, and the handshake runs
    inside OpenSSL. A server dripping bytes must not keep either past the request's deadline.
    A duplicate of the socket is shut down (shutdown acts on the connection, whichever
    descriptor asks), so the timer never touches a descriptor number reused later.
    """

    __slots__ = ("_sock", "_timer")

    def __init__(self, sock: socket.socket, left: float) -> None:
        self._sock = sock.dup()
        self._timer = threading.Timer(left, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        self._timer.join()
        self._sock.close()


class _GuardedConnection(HTTPConnection):
    """Dials only what ``policy`` allows, at the very address it judged (module doc).

    urllib3 would look ``_dns_host`` (the target, or the proxy) up itself in
    ``create_connection``; here it is looked up once, every address is judged, and the socket
    connects to one of those addresses. ``self.host`` stays the name: Host header, TLS SNI and
    certificate checks use it.
    """

    policy: ClassVar[netguard.Policy] = netguard.LOOPBACK

    def _new_conn(self) -> socket.socket:
        purpose = "gate traffic" if self.proxy is None else "gate traffic (to the proxy)"
        timeout: Any = self.timeout
        if timeout is _DEFAULT_TIMEOUT:
            timeout = socket.getdefaulttimeout()
        try:
            infos = self.policy.resolve(
                self._dns_host, self.port, purpose, allowed_gai_family(), timeout=timeout
            )
            sock = netguard.dial(infos, timeout, self.source_address, self.socket_options or ())
        except socket.gaierror as err:
            raise NameResolutionError(self.host, self, err) from err
        except TimeoutError as err:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={timeout})"
            ) from err
        except OSError as err:
            raise NewConnectionError(self, f"Failed to establish a new connection: {err}") from err
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _HTTPConnection(_GuardedConnection):
    def connect(self) -> None:
        super().connect()
        _bound(self.sock)


class _HTTPSConnection(_GuardedConnection, HTTPSConnection):
    _watch: _Watch | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline: float | None = getattr(_state, "deadline", None)
        if deadline is not None:
            self._watch = _Watch(sock, deadline - time.monotonic())
        return sock

    def connect(self) -> None:
        try:
            super().connect()
        finally:
            watch, self._watch = self._watch, None
            if watch is not None:
                watch.stop()
        _bound(self.sock)


@functools.lru_cache(maxsize=32)
def _pool_classes(policy: netguard.Policy) -> dict[str, type[HTTPConnectionPool]]:
    """Pools whose connections are judged by ``policy`` (one set per policy)."""

    class Plain(_HTTPConnection):
        pass

    class Secure(_HTTPSConnection):
        pass

    Plain.policy = Secure.policy = policy

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


class _Adapter(HTTPAdapter):
    """requests' adapter, with connections that honour the deadline and the policy."""

    def __init__(self, policy: netguard.Policy) -> None:
        self.pool_classes = _pool_classes(policy)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self.pool_classes

    def proxy_manager_for(self, proxy: Any, **kwargs: Any) -> Any:
        if not str(proxy).lower().startswith(("http://", "https://")):
            # A SOCKS proxy resolves and dials on its own: nothing here could judge where.
            raise TargetRefused(
                f"refusing to send gate traffic through the proxy {redact_text(str(proxy))}:"
                " only http(s) proxies can be checked against allowed_hosts. Fix: unset"
                " ALL_PROXY/HTTPS_PROXY for the gate, or use an http:// proxy"
            )
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = self.pool_classes
        return manager


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in) of ``url`` as urllib3 parses it (the
    parser requests sends with); empty for what it cannot parse."""
    try:
        parts = parse_url(url)
    except LocationParseError:
        return "", "", None
    scheme = (parts.scheme or "").lower()
    port = parts.port if parts.port is not None else {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.host or "").lower(), port


@dataclass
class TargetClient:
    """HTTP access to the target. One per process; connections are kept alive.

    ``policy`` says where traffic may go (the spec's ``allowed_hosts``; loopback only by
    default): the base and baseline URLs are checked here, each redirect hop before it is
    followed, and every connection (to the target or to a proxy) when it is made.
    """

    base_url: str
    timeout_s: float = 5.0
    verify_tls: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    baseline_url: str | None = None
    session: requests.Session = field(default_factory=requests.Session)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    policy: netguard.Policy = netguard.LOOPBACK

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers.update(self.headers)
        if not any(name.lower() == "user-agent" for name in self.headers):
            self.session.headers["User-Agent"] = USER_AGENT
        adapter = _Adapter(self.policy)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        host = self.policy.check_url(self.base_url, "gate traffic")
        if self.baseline_url:
            self.policy.check_url(self.baseline_url, "gate traffic (baseline_url)")
        if netguard.is_loopback_literal(host):
            # An HTTP(S)_PROXY from the environment would send loopback traffic to the proxy,
            # whose own loopback is not ours; skipping the lookup also saves ~0.3 ms a request.
            self.session.trust_env = False

    def url(self, path: str) -> str:
        """``path`` below the base URL; ``TargetRefused`` for a URL elsewhere (module doc)."""
        if _UNSAFE_IN_PATH.search(path):
            raise TargetRefused(
                f"refusing path {redact_text(path)[:200]!r}: a backslash or a control character"
                " could send the request elsewhere (write a backslash as %5C)"
            )
        head = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith("//") or ":" in head.split("/", 1)[0]:
            full = (urlsplit(self.base_url).scheme + ":" + path) if path.startswith("//") else path
            here = origin(full)
            if here != origin(self.base_url) or not here[1]:
                raise TargetRefused(
                    f"refusing {redact_text(path)[:200]!r}: a path must stay on the target"
                    f" ({redact_text(self.base_url)}); give a path such as /api/orders"
                )
            # The base URL's own host, judged in __post_init__; judged again all the same
            # (cheap: no lookup for an address or an allowed name) should the spellings differ.
            self.policy.check_url(full, "gate traffic")
            return full
        return self.base_url + "/" + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        timeout_s: float | None = None,
        deadline: float | None = None,
        max_body_bytes: int | None = None,
        follow_redirects: bool = False,
        lean: bool = False,
        **kwargs: Any,
    ) -> Timed:
        """Send one request and read its whole body within ``timeout_s`` (total) and before
        ``deadline`` (a ``time.monotonic()`` value) if given.

        ``lean``: for many small API reads (Prometheus queries), send through the connection
        pool directly rather than through requests' session machinery (cookies, hooks,
        environment settings), a millisecond less a request. The same guarded connections,
        deadline and body bounds apply; it is used only where the session would add nothing
        (plain http, no proxy from the environment, no cookie, no redirect to follow, only
        ``params`` and ``headers``), else the request goes the usual way.

        Any transport failure, a deadline passed or a body over ``max_body_bytes`` is a
        ``ProbeError`` with the reason; a path or redirect off the target is ``TargetRefused``.
        ``allow_redirects=True`` (requests' spelling) means ``follow_redirects=True``.
        """
        url = self.url(path)
        follow = bool(kwargs.pop("allow_redirects", False)) or follow_redirects
        kwargs.pop("stream", None)  # the body is always read here, within bounds
        budget = timeout_s or self.timeout_s
        started = time.perf_counter()
        now = time.monotonic()
        until, why = now + budget, "total deadline"
        given, deadline = deadline, deadlines.earliest(deadline)
        if deadline is not None and deadline < until:
            until = deadline
            why = "the retry deadline" if deadline == given else "the check's deadline"
            budget = max(deadline - now, 0.0)
        limit = max_body_bytes or self.max_body_bytes
        outer = getattr(_state, "deadline", None), getattr(_state, "received", 0)
        _state.deadline, _state.received = until, 0
        failure: ProbeError | None = None
        try:
            if lean and not follow and url.startswith("http://") and self._lean_fits(kwargs):
                response = self._lean_exchange(method, url, until, kwargs)
            else:
                response = self._exchange(method, url, until, follow, kwargs)
            self._read_body(response, method, url, limit, until)
        except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError) as err:
            failure = _deadline_error(method, url, budget, why, err)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
            if time.monotonic() >= until:
                failure = _deadline_error(method, url, budget, why, err)
            else:
                failure = _transport_error(method, url, err)
        except ValueError as err:
            # What cannot even be sent: credentials outside Latin-1, a control character in
            # a URL (http.client), an invalid header value.
            failure = ProbeError(
                f"{method} {redact_text(url)}: cannot send the request"
                f" ({redact_text(str(err) or type(err).__name__)[:200]})"
            )
        finally:
            _state.deadline, _state.received = outer
        if failure is not None:
            raise failure
        return Timed(response, (time.perf_counter() - started) * 1000.0)

    def get(self, path: str, **kwargs: Any) -> Timed:
        return self.request("GET", path, **kwargs)

    def close(self) -> None:
        self.session.close()

    def _timeout(self, until: float) -> tuple[float, float]:
        left = until - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's total deadline has passed")
        return left, left

    def _lean_fits(self, kwargs: dict[str, Any]) -> bool:
        return (
            not self.session.trust_env
            and not self.session.cookies
            and not self.session.auth
            and set(kwargs) <= {"params", "headers"}
        )

    def _lean_exchange(
        self, method: str, url: str, until: float, kwargs: dict[str, Any]
    ) -> requests.Response:
        """One request through the guarded pool, answered as a ``requests.Response`` whose
        body ``_read_body`` then reads within the bounds."""
        params = kwargs.get("params")
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        headers = dict(self.session.headers)
        headers.update(kwargs.get("headers") or {})
        adapter = self.session.get_adapter(url)
        assert isinstance(adapter, _Adapter)
        pool = adapter.poolmanager.connection_from_url(url)
        left, _ = self._timeout(until)
        parts = urlsplit(url)
        raw = pool.urlopen(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=left, read=left),
        )
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.raw = raw
        response.url = url
        response.reason = raw.reason or ""
        return response

    def _exchange(
        self, method: str, url: str, until: float, follow: bool, kwargs: dict[str, Any]
    ) -> requests.Response:
        """The response whose body is the answer: the first, or the last of its redirects."""
        response = self.session.request(
            method,
            url,
            timeout=self._timeout(until),
            verify=self.verify_tls,
            stream=True,
            allow_redirects=False,
            **kwargs,
        )
        hops = 0
        while follow and response.is_redirect:
            hops += 1
            status, location = response.status_code, response.headers["Location"]
            previous = response.request
            response.close()
            if hops > MAX_REDIRECTS:
                raise ProbeError(
                    f"{method} {redact_text(url)}: more than {MAX_REDIRECTS} redirects"
                    f" (the last to {redact_text(location)[:200]})"
                )
            target = urljoin(str(previous.url), location)
            if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
                raise ProbeError(
                    f"{method} {redact_text(url)}: redirect {status} to"
                    f" {redact_text(location)[:200]!r} is not an http(s) URL"
                )
            self.policy.check_url(target, f"a redirect ({status} from {redact_text(url)})")
            verb = str(previous.method)
            keeps_body = status in (307, 308)
            if not keeps_body and verb != "HEAD" and (status == 303 or verb == "POST"):
                verb = "GET"
            has_body = keeps_body and previous.body is not None
            if origin(target) == origin(self.base_url):
                prepared = previous.copy()
                prepared.method = verb
                prepared.prepare_url(target, None)
                if not keeps_body:
                    prepared.body = None
                    for name in _BODY_HEADERS:
                        prepared.headers.pop(name, None)
                prepared.headers.pop("Cookie", None)
                prepared.prepare_cookies(self.session.cookies)
            elif has_body:
                raise ProbeError(
                    f"{method} {redact_text(url)}: redirect {status} to another origin"
                    f" ({redact_text(target)[:200]}) would re-send the request body: not followed"
                )
            else:
                # Nothing the spec configured, no cookie, no credential: only who is asking.
                headers = {
                    "User-Agent": self.session.headers.get("User-Agent", USER_AGENT),
                    "Accept": "*/*",
                }
                prepared = requests.Request(verb, target, headers=headers).prepare()
            settings = self.session.merge_environment_settings(
                target, {}, True, self.verify_tls, None
            )
            settings["stream"] = True
            response = self.session.send(
                prepared, timeout=self._timeout(until), allow_redirects=False, **settings
            )
        return response

    def _read_body(
        self, response: requests.Response, method: str, url: str, limit: int, until: float
    ) -> None:
        """Read the whole (decoded) body into ``response.content``, within the bounds."""
        try:
            declared = int(response.headers.get("Content-Length", ""))
        except ValueError:
            declared = -1
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if declared > limit and not encoded and method != "HEAD":
            response.close()
            raise ProbeError(
                f"{method} {redact_text(url)}: the answer's body ({declared} bytes, its"
                f" Content-Length) is over the limit of {limit} bytes (max_body_bytes)"
            )
        if 0 <= declared <= READ_CHUNK_BYTES and not encoded and method != "HEAD":
            # The common small answer: one read (each socket read is bounded by the deadline).
            try:
                body = response.raw.read(declared + 1, decode_content=False)
            except BaseException:
                response.close()
                raise
            if len(body) <= declared:
                response._content = body
                response._content_consumed = True  # type: ignore[attr-defined]
                response.raw.release_conn()
                return
            response.close()
            raise ProbeError(
                f"{method} {redact_text(url)}: the answer's body is longer than its"
                f" Content-Length ({declared} bytes): refused"
            )
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.raw.stream(READ_CHUNK_BYTES, decode_content=True):
                total += len(chunk)
                if total > limit:
                    raise ProbeError(
                        f"{method} {redact_text(url)}: the answer's body is over the limit of"
                        f" {limit} bytes (max_body_bytes): {total} bytes read"
                        + (f", Content-Length {declared}" if declared >= 0 else "")
                        + ", refused"
                    )
                received = getattr(_state, "received", 0)
                if total > RATIO_CHECKED_FROM_BYTES and total > received * MAX_DECOMPRESSION_RATIO:
                    raise ProbeError(
                        f"{method} {redact_text(url)}: the answer decompresses to more than"
                        f" {MAX_DECOMPRESSION_RATIO}x its size ({total} bytes from {received}"
                        " received): refused as a decompression bomb"
                    )
                if time.monotonic() >= until:
                    raise TimeoutError("the request's total deadline has passed")
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]
        # Read to the end: the connection goes back to the pool for the next request (a
        # streamed response is not released by itself, and each request would connect anew).
        response.raw.release_conn()


def _deadline_error(
    method: str, url: str, budget: float, why: str, err: BaseException
) -> ProbeError:
    error = ProbeError(
        f"{method} {redact_text(url)}: did not complete within {budget:.3g}s ({why}:"
        " connect, headers and body)"
    )
    # Kept as the context, as a requests timeout: callers tell a hang from a refusal by it.
    error.__context__ = err if isinstance(err, requests.Timeout) else requests.ReadTimeout(err)
    error.__suppress_context__ = True
    return error


def _transport_error(method: str, url: str, err: BaseException) -> ProbeError:
    root = _root(err)
    if isinstance(root, http.client.HTTPException) and not isinstance(
        root, http.client.RemoteDisconnected
    ):
        what = f"malformed answer ({redact_text(str(root) or type(root).__name__)[:200]})"
    elif isinstance(err, requests.ConnectionError):
        what = f"cannot connect ({_describe(root)})"
    elif isinstance(err, requests.RequestException):
        what = redact_text(str(err))
    else:
        what = f"the answer broke off ({_describe(root)})"
    error = ProbeError(f"{method} {redact_text(url)}: {what}")
    error.__context__ = err
    error.__suppress_context__ = True
    return error


def _root(err: BaseException) -> BaseException:
    cause: BaseException = err
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    # urllib3 keeps the underlying error as an argument rather than as a cause.
    while cause.args and isinstance(cause.args[-1], BaseException):
        cause = cause.args[-1]
    return cause


def _root_cause(err: BaseException) -> str:
    return _describe(_root(err))


def _describe(cause: BaseException) -> str:
    text = str(cause) or type(cause).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name does not resolve"
    return redact_text(text)[:200]
