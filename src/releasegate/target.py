"""The deployment under test as probes see it: a base URL and a pooled HTTP session."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from . import netguard
from .errors import ProbeError
from .redact import redact_text


@dataclass(frozen=True, slots=True)
class Timed:
    response: requests.Response
    elapsed_ms: float


@dataclass
class TargetClient:
    """HTTP access to the target. One per process; connections are kept alive."""

    base_url: str
    timeout_s: float = 5.0
    verify_tls: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    baseline_url: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers.update(self.headers)
        self.session.headers.setdefault("User-Agent", "releasegate")
        if netguard.loopback_only():
            netguard.ensure_loopback(self.base_url, "gate traffic")
        host = urlsplit(self.base_url).hostname or ""
        if netguard.is_loopback_host(host):
            # An HTTP(S)_PROXY from the environment would send loopback traffic to the proxy,
            # whose own loopback is not ours; skipping the lookup also saves ~0.3 ms a request.
            self.session.trust_env = False

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def request(
        self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any
    ) -> Timed:
        """Send one request; any transport failure becomes a ``ProbeError`` with the reason."""
        url = self.url(path)
        timeout = timeout_s or self.timeout_s
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, url, timeout=timeout, verify=self.verify_tls, **kwargs
            )
        except requests.Timeout:
            raise ProbeError(
                f"{method} {redact_text(url)}: no answer within {timeout:g}s"
            ) from None
        except requests.ConnectionError as err:
            raise ProbeError(
                f"{method} {redact_text(url)}: cannot connect ({_root_cause(err)})"
            ) from None
        except requests.RequestException as err:
            raise ProbeError(f"{method} {redact_text(url)}: {redact_text(str(err))}") from None
        return Timed(response, (time.perf_counter() - started) * 1000.0)

    def get(self, path: str, **kwargs: Any) -> Timed:
        return self.request("GET", path, **kwargs)

    def close(self) -> None:
        self.session.close()


def _root_cause(err: BaseException) -> str:
    cause: BaseException = err
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    text = str(cause) or type(cause).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name does not resolve"
    return redact_text(text)[:200]
