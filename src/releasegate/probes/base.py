"""The probe interface and the dispatch from a spec check's ``type`` to its probe."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProbeError, ReleasegateError
from ..model import Evidence, Status
from ..spec import Spec
from ..target import TargetClient


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()

    @classmethod
    def passed(cls, reason: str, *evidence: Evidence) -> ProbeResult:
        return cls(Status.PASSED, reason, evidence)

    @classmethod
    def failed(cls, reason: str, *evidence: Evidence) -> ProbeResult:
        return cls(Status.FAILED, reason, evidence)

    @classmethod
    def error(cls, reason: str, *evidence: Evidence) -> ProbeResult:
        return cls(Status.ERROR, reason, evidence)


@dataclass
class ProbeContext:
    """What a probe may use: the spec and the target client."""

    spec: Spec
    target: TargetClient
    extras: dict[str, Any] = field(default_factory=dict)


Probe = Callable[[Any, ProbeContext], ProbeResult]


# type -> (module, function); modules are imported on first use (the fuzz probe imports
# hypothesis, which costs a second that a run without bad-input checks should not pay).
PROBES: dict[str, tuple[str, str]] = {
    "http": ("http", "probe_http"),
    "liveness": ("http", "probe_liveness"),
    "readiness": ("http", "probe_readiness"),
    "version": ("http", "probe_version"),
    "bad_input": ("fuzz", "probe_bad_input"),
    "orphans": ("sql", "probe_integrity"),
    "not_null": ("sql", "probe_integrity"),
    "unique": ("sql", "probe_integrity"),
    "accepted_values": ("sql", "probe_integrity"),
    "value_range": ("sql", "probe_integrity"),
    "row_count": ("sql", "probe_row_count"),
    "freshness": ("sql", "probe_freshness"),
    "schema_drift": ("sql", "probe_schema_drift"),
    "migration_head": ("sql", "probe_migration_head"),
    "sql": ("sql", "probe_sql"),
}


@functools.cache
def probe_for(check_type: str) -> Probe | None:
    where = PROBES.get(check_type)
    if where is None:
        return None
    module = importlib.import_module(f"{__package__}.{where[0]}")
    probe: Probe = getattr(module, where[1])
    return probe


def run_check(check: Any, context: ProbeContext) -> ProbeResult:
    """Run the probe for ``check.type``; a probe that raises is an ERROR, never a pass."""
    probe = probe_for(check.type)
    if probe is None:
        return ProbeResult.error(f"no probe for check type {check.type!r}")
    try:
        return probe(check, context)
    except ProbeError as err:
        return ProbeResult.error(str(err))
    except ReleasegateError as err:
        return ProbeResult.error(f"{type(err).__name__}: {err}")
