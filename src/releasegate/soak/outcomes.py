"""The outcomes a soak's decision is taken on: the load guard's (kind ``load``), each SLO
check's last result (kind ``slo``) and the last finished full gate's other checks.

The load outcome is FAILED with the breach (its interval and evidence) when the guard ended the
soak, ERROR when the load generator failed or stopped on its own, NO_DATA when nothing was
measured or a threshold never had the samples it needs, and PASSED otherwise. An SLO check
without a result is NOT_RUN, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..model import CheckInfo, Evidence, Outcome, Severity, Status
from .fullgate import GateResult
from .guard import UNMEASURED_END_S, Breach, Guard, unmeasured_at_end
from .slowatch import SloResult
from .state import SoakState

if TYPE_CHECKING:
    from .config import SoakConfig


def soak_outcomes(
    cfg: SoakConfig,
    state: SoakState,
    guard: Guard,
    slo_checks: Sequence[Any],
    slo_latest: Mapping[str, SloResult],
    last_gate: GateResult | None,
    breach: Breach | None,
    load_error: str | None,
) -> tuple[tuple[Outcome, ...], tuple[CheckInfo, ...], dict[str, str]]:
    """Every outcome the soak's decision is taken on, the expected checks, and why any expected
    check has none."""
    info = cfg.load_info or CheckInfo(
        name=cfg.load_check,
        kind="load",
        category="performance",
        severity=Severity.CRITICAL,
        weight=Severity.CRITICAL.default_weight,
        phases=(cfg.phase,),
        description="the soak's load thresholds, held over a sliding window for their grace",
        source="spec",
    )
    evidence = [
        Evidence(
            measured=f"{m.rule} over the last {cfg.window_s:g}s at the end",
            value=m.measured,
            threshold=m.rule,
            reason=m.reason,
            details={"requests": m.requests, "ticks_measured": guard.measured[m.rule]},
        )
        for m in guard.last.values()
    ]
    evidence.append(
        Evidence(
            measured=f"the whole soak: {state.elapsed_s:.1f}s of {cfg.duration_s:g}s",
            value={"requests": state.requests, "failures": state.failures},
            reason=f"{state.requests} requests, {state.failures} failed",
        )
    )
    if breach is not None and breach.source == "load":
        evidence.insert(
            0,
            Evidence(
                measured=f"breach from {_clock(breach.onset)} to {_clock(breach.confirmed_at)}",
                value=breach.measured,
                threshold=breach.rule,
                reason=breach.reason,
                details=breach.to_dict(),
            ),
        )
        load = Outcome(info, Status.FAILED, f"sustained breach: {breach.reason}", tuple(evidence))
    elif load_error is not None:
        load = Outcome(info, Status.ERROR, load_error, tuple(evidence))
    elif state.requests == 0:
        load = Outcome(
            info, Status.NO_DATA, "the load generator measured no request", tuple(evidence)
        )
    else:
        never = [text for text, n in guard.measured.items() if n == 0]
        # A target that stops answering leaves every later window empty: NO DATA neither
        # starts nor ends a breach, so without this the soak would pass on its healthy start.
        stale = unmeasured_at_end(guard)
        if never:
            load = Outcome(
                info,
                Status.NO_DATA,
                f"never enough requests to measure: {', '.join(never)}",
                tuple(evidence),
            )
        elif stale:
            load = Outcome(
                info,
                Status.NO_DATA,
                "not measured at the end of the soak (the target stopped answering?):"
                f" {', '.join(stale)} last judged on data more than {UNMEASURED_END_S:.0f}s"
                f" before the end; {guard.last[stale[0]].reason}",
                tuple(evidence),
            )
        else:
            load = Outcome(
                info,
                Status.PASSED,
                f"every threshold held over {state.elapsed_s:.0f}s"
                f" ({state.requests} requests, {state.failures} failed)",
                tuple(evidence),
            )
    outcomes: list[Outcome] = [load]
    expected: list[CheckInfo] = [info]
    not_run: dict[str, str] = {}
    for check in slo_checks:
        slo_info = check.info()
        expected.append(slo_info)
        found = slo_latest.get(check.name)
        if found is not None:
            outcome = found.outcome
            if breach is not None and breach.source == "slo" and breach.check == check.name:
                outcome = replace(outcome, reason=f"ended the soak: {outcome.reason}")
            outcomes.append(outcome)
        else:
            not_run[slo_info.key] = "the soak ended before this SLO check's first result"
    if last_gate is not None and last_gate.record is None:
        # The last full gate decided nothing (timed out, crashed): the soak's decision must not
        # silently leave it out. Its checks are unknown, so it stands as one ERROR.
        gate_info = CheckInfo(
            name=f"full-gate-{last_gate.number}",
            kind="load",
            category="performance",
            severity=Severity.CRITICAL,
            weight=Severity.CRITICAL.default_weight,
            phases=(cfg.phase,),
            description="the phase's full gate, run during the soak",
            nodeid=f"soak::full-gate[{last_gate.number}]",
            source="soak",
        )
        expected.append(gate_info)
        outcomes.append(
            Outcome(
                gate_info,
                Status.ERROR,
                f"full gate #{last_gate.number} decided nothing: {last_gate.reason}",
            )
        )
    elif last_gate is not None:
        seen = {o.check.key for o in outcomes}
        for data in last_gate.outcomes:
            try:
                gated = Outcome.from_dict(data)
            except (KeyError, TypeError, ValueError):
                continue
            if gated.check.key in seen:
                continue
            seen.add(gated.check.key)
            outcomes.append(replace(gated, reason=f"full gate #{last_gate.number}: {gated.reason}"))
    return tuple(outcomes), tuple(expected), not_run


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
