"""Where traffic may go. Load, fault and fuzz traffic, tests and demos stay on loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from .errors import TargetRefused

LOOPBACK_ONLY_ENV = "RELEASEGATE_LOOPBACK_ONLY"


def loopback_only() -> bool:
    """Whether every probe must refuse non-loopback targets (tests and demos set this)."""
    return os.environ.get(LOOPBACK_ONLY_ENV, "") not in ("", "0", "false", "no")


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def ensure_loopback(url: str, purpose: str) -> None:
    """Raise ``TargetRefused`` unless ``url`` points at 127.0.0.0/8 or ::1."""
    host = urlsplit(url).hostname or ""
    if not is_loopback_host(host):
        raise TargetRefused(
            f"refusing to send {purpose} to {host or url!r}: only loopback targets"
            " (127.0.0.0/8, ::1, localhost) are allowed here. Point the target at a local"
            " deployment or a network namespace you created."
        )
