"""The probe interface and the dispatch from a spec check's ``type`` to its probe."""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import deadlines
from ..db.state import DbState
from ..errors import ProbeError, ReleasegateError
from ..model import Evidence, Status
from ..phases import Phase
from ..spec import Spec
from ..target import TargetClient

if TYPE_CHECKING:
    # Only for annotations: importing them would load SQLAlchemy for every probe run.
    from ..db.measure import BundleKey, CachedBundle


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    #: PASSED with a caveat: the decision is at best CONDITIONAL GO (see ``Outcome.marginal``)
    marginal: bool = False

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

    Time is a parameter: ``clock`` (wall-clock seconds, the time axis of SLO samples) and
    ``sleep`` are what probes that observe over a window use, and ``time_scale`` (the
    ``--rg-time-scale`` option, times the spec's ``slo.time_scale``) runs their windows faster.
    ``cache`` holds what a probe shares across the checks of a run (a Prometheus client, a
    phase's prefetched queries), by a key of the probe's own.
    """

    spec: Spec
    target: TargetClient
    phase: Phase | None = None
    spec_dir: Path | None = None
    db: DbState = field(default_factory=DbState)
    bundles: dict[BundleKey, CachedBundle] = field(default_factory=dict)
    allow_remote_fuzz: bool = False
    time_scale: float = 1.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    cache: dict[str, Any] = field(default_factory=dict)


Probe = Callable[[Any, ProbeContext], ProbeResult]


@functools.cache
def probe_for(check_type: str) -> Probe | None:
    """The probe registered for ``check_type`` (see ``checktypes``), imported on first use."""
    from ..checktypes import REGISTRY

    entry = REGISTRY.get(check_type)
    if entry is None:
        return None
    module_name, _, function = entry.probe.partition(":")
    module = importlib.import_module(f"{__package__}.{module_name}")
    probe: Probe = getattr(module, function)
    return probe


def run_check(check: Any, context: ProbeContext) -> ProbeResult:
    """Run the probe for ``check.type`` under the check's deadline (its ``timeout``, else the
    default of its kind; never later than a deadline already running); a probe that raises
    is an ERROR, never a pass."""
    probe = probe_for(check.type)
    if probe is None:
        return ProbeResult.error(f"no probe for check type {check.type!r}")
    timeout = deadlines.Timeout.of(getattr(check, "timeout", None), check.kind)
    try:
        with deadlines.within(timeout.seconds):
            return probe(check, context)
    except ProbeError as err:
        return ProbeResult.error(str(err))
    except ReleasegateError as err:
        return ProbeResult.error(f"{type(err).__name__}: {err}")
