"""The decision engine: outcomes in, decision out. Pure: no I/O, no pytest.

Rules, in order (the tests check with hypothesis that a worse outcome never gives a better
decision, and that the order of outcomes does not matter):

1. a failed critical check: NO-GO;
2. no outcome at all, or fewer outcomes than checks collected: INCONCLUSIVE (fail closed);
3. a critical check that errored or had no data: INCONCLUSIVE (fail closed), unless the
   evidence at hand already means NO-GO: the score is below the conditional threshold even
   if every check that could not measure had passed;
4. otherwise the weighted readiness score (0-10; a check that did not pass scores 0) gives GO
   at or above the go threshold, CONDITIONAL GO at or above the conditional threshold and
   NO-GO below it, except that a NO-GO owed only to checks that could not measure is
   INCONCLUSIVE.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import Action, Outcome, Severity, Status


class Verdict(str, enum.Enum):
    """The gate's answer, ordered by ``rank`` from worst (NO-GO) to best (GO)."""

    NO_GO = "NO-GO"
    INCONCLUSIVE = "INCONCLUSIVE"
    CONDITIONAL_GO = "CONDITIONAL GO"
    GO = "GO"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)

    @property
    def proceeds(self) -> bool:
        """Whether the rollout may go on (GO or CONDITIONAL GO)."""
        return self in (Verdict.GO, Verdict.CONDITIONAL_GO)


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """Thresholds on the 0-10 readiness score."""

    go: float = 9.0
    conditional: float = 7.5

    def __post_init__(self) -> None:
        if not 0 <= self.conditional <= self.go <= 10:
            raise ValueError(
                f"scoring thresholds must satisfy 0 <= conditional ({self.conditional})"
                f" <= go ({self.go}) <= 10"
            )


@dataclass(frozen=True, slots=True)
class Blocker:
    """A check that stands between this deployment and GO."""

    check: str
    severity: Severity
    status: Status
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "status": self.status.value,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class CategoryScore:
    category: str
    score: float
    met: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "score": self.score,
            "met": self.met,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gate decided and why."""

    verdict: Verdict
    score: float
    categories: tuple[CategoryScore, ...]
    met: int
    total: int
    blockers: tuple[Blocker, ...]
    reasons: tuple[str, ...]
    action: Action | None = None
    expected: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "score": self.score,
            "categories": [c.to_dict() for c in self.categories],
            "criteria_met": self.met,
            "criteria_total": self.total,
            "blockers": [b.to_dict() for b in self.blockers],
            "reasons": list(self.reasons),
            "action": self.action.value if self.action else None,
            "expected_checks": self.expected,
            "counts": dict(self.counts),
        }


def _score(outcomes: Iterable[Outcome]) -> tuple[float, int, int]:
    weight_total = 0.0
    weight_met = 0.0
    met = total = 0
    for outcome in outcomes:
        total += 1
        weight_total += outcome.check.weight
        if outcome.status.passed:
            met += 1
            weight_met += outcome.check.weight
    if weight_total <= 0:
        # Only zero-weight checks: score by count so that the score still means something.
        score = 10.0 * met / total if total else 0.0
    else:
        score = 10.0 * weight_met / weight_total
    return round(score, 2), met, total


def _band(score: float, policy: ScoringPolicy) -> Verdict:
    if score >= policy.go:
        return Verdict.GO
    if score >= policy.conditional:
        return Verdict.CONDITIONAL_GO
    return Verdict.NO_GO


def decide(
    outcomes: Iterable[Outcome],
    policy: ScoringPolicy | None = None,
    expected: int | None = None,
) -> Decision:
    """Decide on ``outcomes``; ``expected`` is the number of checks collected, if known."""
    policy = policy or ScoringPolicy()
    items = sorted(outcomes, key=lambda o: (o.check.name, o.check.nodeid))
    reasons: list[str] = []
    blockers: list[Blocker] = []

    critical = [o for o in items if o.check.severity is Severity.CRITICAL and not o.status.passed]
    failed_critical = [o for o in critical if o.status is Status.FAILED]
    unknown_critical = [o for o in critical if o.status is not Status.FAILED]
    blockers.extend(Blocker(o.check.name, o.check.severity, o.status, o.reason) for o in critical)
    missing = False
    if not items:
        reasons.append("no check reported an outcome: nothing to decide on")
        missing = True
    if expected is not None and expected != len(items):
        reasons.append(
            f"{expected} checks were collected but {len(items)} outcomes were reported"
            " (crashed worker, interrupted run or lost report)"
        )
        missing = True

    score, met, total = _score(items)
    # The score if every check that could not measure had passed: when even that is below
    # the conditional threshold, the evidence at hand already means NO-GO.
    optimistic, _, _ = _score(
        o if o.status in (Status.PASSED, Status.FAILED) else Outcome(o.check, Status.PASSED)
        for o in items
    )
    actual_band = _band(score, policy)
    optimistic_band = _band(optimistic, policy)
    already_no_go = optimistic_band is Verdict.NO_GO

    if failed_critical:
        reasons.append(f"{len(failed_critical)} critical check(s) failed")
    if unknown_critical:
        reasons.append(
            f"{len(unknown_critical)} critical check(s) could not measure"
            " (error or no data): failing closed"
        )
    if failed_critical:
        verdict = Verdict.NO_GO
    elif missing:
        # What the missing checks would have said is unknown, even their severity.
        verdict = Verdict.INCONCLUSIVE
    elif unknown_critical:
        verdict = Verdict.NO_GO if already_no_go else Verdict.INCONCLUSIVE
    elif actual_band is Verdict.NO_GO and not already_no_go:
        verdict = Verdict.INCONCLUSIVE
        reasons.append(
            "the score is below the conditional threshold only because of checks that could"
            " not measure"
        )
    else:
        verdict = actual_band
    if items and score < policy.go:
        band = "go" if score >= policy.conditional else "conditional"
        threshold = policy.go if band == "go" else policy.conditional
        reasons.append(f"readiness score {score:.2f} is below the {band} threshold {threshold}")
        blockers.extend(
            Blocker(o.check.name, o.check.severity, o.status, o.reason)
            for o in items
            if not o.status.passed and o.check.severity is not Severity.CRITICAL
        )

    categories: dict[str, list[Outcome]] = {}
    for outcome in items:
        categories.setdefault(outcome.check.category, []).append(outcome)
    category_scores = tuple(
        CategoryScore(name, *_score(group)) for name, group in sorted(categories.items())
    )

    action: Action | None = None
    if not verdict.proceeds:
        asked = [o.check.on_fail for o in items if o.check.on_fail and not o.status.passed]
        action = max(asked, key=lambda a: a.rank) if asked else None

    counts = {status.value: 0 for status in Status}
    for outcome in items:
        counts[outcome.status.value] += 1

    return Decision(
        verdict=verdict,
        score=score,
        categories=category_scores,
        met=met,
        total=total,
        blockers=tuple(blockers),
        reasons=tuple(reasons),
        action=action,
        expected=expected,
        counts=counts,
    )
