"""The probe interface and the dispatch from a spec check's ``type`` to its probe."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..db.state import DbState
from ..errors import ProbeError, ReleasegateError
from ..model import Evidence, Status
from ..phases import Phase
from ..spec import Spec
from ..target import TargetClient

if TYPE_CHECKING:
    # Only for annotations: importing them would load SQLAlchemy for every probe run.
    from ..db.measure import BundleKey
    from .sql import CachedBundle


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
    """What a probe may use, shared by every check of a run (of an xdist worker).

    ``phase`` is the phase being decided (the SQL probes bundle only checks of that phase and
    ``schema_drift`` captures its baseline in ``capture_at``); ``spec_dir`` is the spec's
    folder, against which relative baseline paths resolve (the working folder when None).
    ``db`` holds the demo's SQLite file and the engines, ``bundles`` the SQL probes' measured
    but not yet taken results of bundled checks. ``allow_remote_fuzz`` lets the bad-input
    probe fuzz a target that is not on loopback.
    """

    spec: Spec
    target: TargetClient
    phase: Phase | None = None
    spec_dir: Path | None = None
    db: DbState = field(default_factory=DbState)
    bundles: dict[BundleKey, CachedBundle] = field(default_factory=dict)
    allow_remote_fuzz: bool = False


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
