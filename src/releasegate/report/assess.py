"""The executive report's judgements: key metrics, risk, recommendation and rollback plan.

Each is derived from the record alone, by rules stated here, so that two people reading the same
record get the same report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..phases import Phase
from .charts import num
from .verify import INCONSISTENT, UNVERIFIED
from .view import STATUS_LABELS, UNKNOWN_STATUSES, VERDICT_CSS, CheckRow, Comparison, Integrity

# Failures in these categories do not reach users directly (a missing dashboard is not an
# outage); everything else counts towards user impact.
INTERNAL_CATEGORIES = frozenset({"observability", "monitoring", "documentation", "process"})
NAMES_SHOWN = 4


@dataclass(frozen=True, slots=True)
class Metric:
    label: str
    value: str
    note: str
    css: str


@dataclass(frozen=True, slots=True)
class Risk:
    label: str
    level: str
    why: str

    @property
    def css(self) -> str:
        return {"LOW": "go", "MINIMAL": "go", "MEDIUM": "cond", "MODERATE": "cond"}.get(
            self.level, "nogo"
        )


@dataclass(frozen=True, slots=True)
class Recommendation:
    headline: str
    detail: str
    css: str


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    summary: str
    steps: tuple[str, ...]
    triggers: tuple[str, ...]


def names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMES_SHOWN])
    return shown + (f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else "")


def key_metrics(
    record: dict[str, Any], rows: Sequence[CheckRow], comparisons: Sequence[Comparison]
) -> tuple[Metric, ...]:
    summary = record.get("summary") or {}
    scoring = record.get("scoring") or {}
    score = float(record.get("score") or 0.0)
    met, total = int(summary.get("criteria_met", 0)), int(summary.get("criteria_total", 0))
    critical = [r for r in rows if r.severity == "critical" and r.status == "failed"]
    unknown = [r for r in rows if r.status in UNKNOWN_STATUSES]
    bands = (
        f"GO at ≥ {num(scoring['go'])}, conditional at ≥ {num(scoring['conditional'])}"
        if {"go", "conditional"} <= set(scoring)
        else "weighted by severity"
    )
    metrics = [
        Metric("Readiness score", f"{num(score)}/10", bands, _verdict_css(record)),
        Metric(
            "Criteria met",
            f"{met}/{total}",
            f"{total - met} not met" if total - met else "every check passed",
            "go" if met == total else "cond",
        ),
        Metric(
            "Critical failures",
            str(len(critical)),
            names([r.name for r in critical]) or "none",
            "nogo" if critical else "go",
        ),
        Metric(
            "Could not measure",
            str(len(unknown)),
            names([r.name for r in unknown]) or "every check measured",
            "inc" if unknown else "go",
        ),
    ]
    for c in sorted(comparisons, key=lambda c: (c.passed, -c.pressure))[:2]:
        unit = f" {c.unit}" if c.unit else ""
        metrics.append(
            Metric(
                f"{c.check}",
                f"{num(c.value)}{unit}",
                f"{c.subject}, limit {c.op_text} {num(c.limit)}{unit}",
                "go" if c.passed else "nogo",
            )
        )
    return tuple(metrics)


def _verdict_css(record: dict[str, Any]) -> str:
    return VERDICT_CSS.get(str(record.get("decision")), "inc")


def risks(
    record: dict[str, Any], rows: Sequence[CheckRow], integrity: Integrity | None = None
) -> tuple[Risk, ...]:
    return (_technical(record, rows, integrity), _user_impact(rows), _rollback_complexity(record))


def _technical(
    record: dict[str, Any], rows: Sequence[CheckRow], integrity: Integrity | None
) -> Risk:
    label = "Technical risk"
    decision = str(record.get("decision"))
    failed_critical = [r.name for r in rows if r.severity == "critical" and r.status == "failed"]
    unknown = [r.name for r in rows if r.status in UNKNOWN_STATUSES]
    failed = [r.name for r in rows if r.status == "failed"]
    if integrity is not None and decision in (INCONSISTENT, UNVERIFIED):
        return Risk(label, "HIGH", integrity.detail)
    if failed_critical:
        return Risk(label, "HIGH", f"critical check(s) failed: {names(failed_critical)}")
    if decision == "INCONCLUSIVE":
        interrupted = record.get("interrupted")
        if interrupted:
            why = f"the run was interrupted ({interrupted})"
        else:
            why = f"could not measure: {names(unknown)}" if unknown else "checks are missing"
        return Risk(label, "HIGH", f"{why}; the gate fails closed")
    if decision == "NO-GO":
        return Risk(
            label,
            "HIGH",
            f"readiness score {num(float(record.get('score') or 0))}"
            " is below the conditional threshold",
        )
    if failed or unknown:
        return Risk(label, "MEDIUM", f"non-critical checks did not pass: {names(failed + unknown)}")
    return Risk(label, "LOW", "all automated criteria met")


def _user_impact(rows: Sequence[CheckRow]) -> Risk:
    label = "User impact"
    facing = [r for r in rows if r.status == "failed" and r.category not in INTERNAL_CATEGORIES]
    if any(r.severity == "critical" for r in facing):
        hit = [r.name for r in facing if r.severity == "critical"]
        return Risk(label, "HIGH", f"user-facing critical checks failed: {names(hit)}")
    if any(r.severity == "major" for r in facing):
        hit = [r.name for r in facing if r.severity == "major"]
        return Risk(label, "MODERATE", f"user-facing checks failed: {names(hit)}")
    if facing:
        return Risk(
            label, "MINIMAL", f"minor user-facing checks failed: {names([r.name for r in facing])}"
        )
    return Risk(label, "MINIMAL", "no user-facing check failed")


def _rollback_complexity(record: dict[str, Any]) -> Risk:
    label = "Rollback complexity"
    actions = [a for a in record.get("actions") or () if isinstance(a, dict)]
    broken = [a for a in actions if not a.get("ok")]
    action = (record.get("summary") or {}).get("action") or record.get("would_action")
    if broken:
        return Risk(
            label, "HIGH", f"rollback hook failed: {names([str(a.get('name')) for a in broken])}"
        )
    if action == "emergency_stop":
        return Risk(label, "HIGH", "an emergency stop was asked for")
    if actions:
        how = "fired" if any(a.get("fired") for a in actions) else "would fire (dark mode)"
        return Risk(
            label, "LOW", f"automated: {names([str(a.get('name')) for a in actions])} {how}"
        )
    if record.get("would_action"):
        return Risk(label, "HIGH", "no rollback hook is configured for this decision: manual")
    return Risk(label, "LOW", "nothing to roll back at this decision")


def next_phase(phase: str) -> str | None:
    order = [p.value for p in Phase]
    if phase in order and order.index(phase) + 1 < len(order):
        return order[order.index(phase) + 1]
    return None


def recommendation(
    record: dict[str, Any], rows: Sequence[CheckRow], integrity: Integrity | None = None
) -> Recommendation:
    decision = str(record.get("decision"))
    phase = str(record.get("phase"))
    nxt = next_phase(phase)
    dark = record.get("mode") == "dark"
    blockers = [str(b.get("check")) for b in (record.get("summary") or {}).get("blockers") or ()]
    if integrity is not None and decision == INCONSISTENT:
        return Recommendation(
            "DO NOT PROCEED: THE RECORD DISAGREES WITH ITS OUTCOMES",
            f"it says {integrity.stored}, its outcomes give {integrity.recomputed}: find out"
            " who or what changed the record (or which hook replaced the decision), and re-run"
            " the gate",
            "bad",
        )
    if integrity is not None and decision == UNVERIFIED:
        return Recommendation(
            "DO NOT PROCEED: THE RECORD CANNOT BE VERIFIED", integrity.detail, "bad"
        )
    if decision == "GO":
        if nxt is None:
            return Recommendation(
                "APPROVE PERMANENT DEPLOYMENT", "every gate of the final phase passed", "go"
            )
        return Recommendation(f"PROCEED TO {nxt.upper()}", f"the {phase} gate is met", "go")
    if decision == "CONDITIONAL GO":
        where = f"before {nxt}" if nxt else "before sign-off"
        return Recommendation(
            "PROCEED WITH CONDITIONS",
            f"resolve {where}: {names(blockers) or 'the checks that did not pass'}",
            "cond",
        )
    action = (record.get("summary") or {}).get("action") or record.get("would_action") or "rollback"
    if decision == "NO-GO":
        done = "dark mode: nothing was run" if dark else f"{action.replace('_', ' ')}"
        return Recommendation(
            "DO NOT PROCEED: ROLL BACK",
            f"{done}; blockers: {names(blockers) or 'see scorecard'}",
            "nogo",
        )
    unknown = [r.name for r in rows if r.status in UNKNOWN_STATUSES]
    interrupted = record.get("interrupted")
    why = f"interrupted: {interrupted}" if interrupted else names(unknown) or "checks missing"
    return Recommendation(
        "HOLD: RE-RUN THE GATE", f"the gate could not decide ({why}); fix and re-run", "inc"
    )


def rollback_plan(record: dict[str, Any], rows: Sequence[CheckRow]) -> RollbackPlan:
    actions = [a for a in record.get("actions") or () if isinstance(a, dict)]
    would, actual = record.get("would_action"), record.get("actual_action")
    if actual:
        summary = f"{actual.replace('_', ' ')} carried out by hook(s)"
    elif would and record.get("mode") == "dark":
        summary = f"dark mode: would {would.replace('_', ' ')}; nothing was run"
    elif would:
        summary = f"{would.replace('_', ' ')} asked for"
    else:
        summary = "not needed at this decision"
    steps = tuple(_action_line(a) for a in actions)
    by_action: dict[str, list[str]] = {}
    for row in rows:
        if row.on_fail:
            by_action.setdefault(row.on_fail, []).append(row.name)
    triggers = tuple(
        f"{action.replace('_', ' ')} if {names(checks)} fail"
        for action, checks in sorted(by_action.items())
    )
    return RollbackPlan(summary, steps, triggers)


def _action_line(action: dict[str, Any]) -> str:
    name = str(action.get("name"))
    if not action.get("fired"):
        return f"{name}: would fire (dark mode)"
    if action.get("ok"):
        return f"{name}: fired, exit {action.get('returncode')}"
    return f"{name}: FAILED ({action.get('error') or 'exit ' + str(action.get('returncode'))})"


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)
