"""One soak's settings (``SoakConfig``): what the runner follows and ``state.json`` keeps to
resume it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..load.thresholds import Threshold
from ..model import CheckInfo
from ..phases import Phase
from .rules import rule_dict


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """One soak's settings; what ``state.json`` keeps to resume it."""

    spec_path: Path
    phase: Phase
    duration_s: float
    locustfile: Path
    host: str
    users: int
    spawn_rate: float
    rules: tuple[Threshold, ...]
    report_dir: Path
    guard_interval_s: float = 1.0
    window_s: float = 5.0
    gate_every_s: float | None = 600.0
    slo_every_s: float = 10.0
    #: how long an aborting SLO check must keep saying FAILED to end the soak
    slo_grace_s: float = 3.0
    workers: int = 0
    load_check: str = "soak-load"
    load_info: CheckInfo | None = None
    #: the demo's fault switched on at this soak time (``--fault-at 20s latency_ms=400``)
    fault_at_s: float | None = None
    fault: Mapping[str, str] = field(default_factory=dict)
    templates: tuple[Path, ...] = ()
    #: the soak runs against the embedded demo target (a resumed one starts a new one)
    demo: bool = False
    #: given to the full gate's pytest (the demo target's URL, its seed, ...)
    env: Mapping[str, str] = field(default_factory=dict)
    #: the spec's allowed hosts and the host's judged addresses: the connection guard inside
    #: the locust child lets the load through to them (loopback always)
    allowed_hosts: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        return {
            "locustfile": str(self.locustfile),
            "host": without_credentials(self.host),
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "rules": [rule_dict(r) for r in self.rules],
            "window_s": self.window_s,
            "slo_every_s": self.slo_every_s,
            "slo_grace_s": self.slo_grace_s,
            "workers": self.workers,
            "load_check": self.load_check,
            "fault_at_s": self.fault_at_s,
            "fault": dict(self.fault),
            "demo": self.demo,
        }


def without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part: what ``state.json`` keeps of the host (a
    resumed soak takes the credentials again from ``--host`` or the spec's target)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def with_credentials(saved: str, *candidates: str | None) -> str:
    """The first candidate that is ``saved`` with its credentials back, else ``saved``."""
    for candidate in candidates:
        if candidate and without_credentials(candidate) == saved:
            return candidate
    return saved
