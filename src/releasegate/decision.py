"""The decision engine: outcomes in, decision out. Pure: no I/O, no pytest.

The outcomes are complete: every check the phase expected has one (the gate round turns the
ones that never reported into NOT_RUN before it calls ``decide``). Rules, in order (the tests
check with hypothesis that a worse outcome never gives a better decision, that the order of
outcomes does not matter, and that GO implies every check passed or was explicitly allowed):

1. a failed critical check: NO-GO;
2. an interrupted run, or no check that measured anything: INCONCLUSIVE;
3. any check that could not say (ERROR, NO_DATA, NOT_RUN), whatever its severity, unless the
   policy allows it (``max_errors``: that many ERROR/NO_DATA outcomes of non-critical checks;
   NOT_RUN is never allowed): INCONCLUSIVE, or NO-GO when the evidence at hand already means
   NO-GO (the score is below the conditional threshold even if every such check had passed);
4. otherwise the weighted readiness score (0-10; a check that did not pass scores 0, a declared
   skip does not count) gives GO at or above the go threshold, CONDITIONAL GO at or above the
   conditional threshold and NO-GO below it, except that a NO-GO owed only to allowed errors
   is INCONCLUSIVE. A GO or CONDITIONAL GO lists the failed (non-critical) checks it
   tolerated, so that every check a GO did not pass is named in the decision;
5. a check that passed with a caveat (``marginal``: a canary worse within its margin) makes a
   GO a CONDITIONAL GO, and is named.
"""

from __future__ import annotations

import enum
import math
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


class PolicyError(ValueError):
    """A policy that cannot decide anything sensible (NaN, negative, out of order)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How outcomes become a verdict: score thresholds (0-10) and allowances."""

    go: float = 9.0
    conditional: float = 7.5
    max_errors: int = 0

    def __post_init__(self) -> None:
        for name in ("go", "conditional"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PolicyError(f"scoring.{name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise PolicyError(f"scoring.{name} must be a finite number, not {value}")
        if not 0 < self.go <= 10:
            raise PolicyError(
                f"scoring.go ({self.go}) must be above 0 and at most 10: a GO threshold of 0"
                " would let a run where nothing passed say GO"
            )
        if not 0 <= self.conditional <= self.go:
            raise PolicyError(
                f"scoring thresholds must satisfy 0 <= conditional ({self.conditional})"
                f" <= go ({self.go})"
            )
        if isinstance(self.max_errors, bool) or not isinstance(self.max_errors, int):
            raise PolicyError(f"policy.max_errors must be a whole number, not {self.max_errors!r}")
        if self.max_errors < 0:
            raise PolicyError(f"policy.max_errors must be 0 or more, not {self.max_errors}")

    def to_dict(self) -> dict[str, Any]:
        return {"go": self.go, "conditional": self.conditional, "max_errors": self.max_errors}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        return cls(
            go=data.get("go", 9.0),
            conditional=data.get("conditional", 7.5),
            max_errors=data.get("max_errors", 0),
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
    counts: dict[str, int] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()
    #: failed non-critical checks that a GO or CONDITIONAL GO tolerated: the score allowed them
    tolerated: tuple[str, ...] = ()
    #: checks that passed with a caveat, which hold a GO down to CONDITIONAL GO
    marginal: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    interrupted: str | None = None

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
            "expected_checks": sum(self.counts.values()),
            "counts": dict(self.counts),
            "allowed": list(self.allowed),
            "tolerated": list(self.tolerated),
            "marginal": list(self.marginal),
            "policy": self.policy.to_dict(),
            "interrupted": self.interrupted,
        }


def _score(outcomes: Iterable[Outcome]) -> tuple[float, int, int]:
    weight_total = 0.0
    weight_met = 0.0
    met = total = 0
    for outcome in outcomes:
        if outcome.status is Status.SKIPPED:
            continue
        total += 1
        weight_total += outcome.check.weight
        if outcome.status.passed:
            met += 1
            weight_met += outcome.check.weight
    if weight_total <= 0 or not math.isfinite(weight_total):
        # Only zero-weight checks: score by count so that the score still means something.
        # (Weights are validated finite where they are read; this guards the engine itself.)
        score = 10.0 * met / total if total else 0.0
    else:
        score = 10.0 * weight_met / weight_total
    return round(score, 2), met, total


def _band(score: float, policy: Policy) -> Verdict:
    if score >= policy.go:
        return Verdict.GO
    if score >= policy.conditional:
        return Verdict.CONDITIONAL_GO
    return Verdict.NO_GO


def _blocker(outcome: Outcome) -> Blocker:
    return Blocker(outcome.check.name, outcome.check.severity, outcome.status, outcome.reason)


def decide(
    outcomes: Iterable[Outcome],
    policy: Policy | None = None,
    *,
    interrupted: str | None = None,
) -> Decision:
    """Decide on ``outcomes`` (one per expected check); ``interrupted`` says why a run ended
    before its checks did (a signal, a deadline), which alone makes it INCONCLUSIVE."""
    policy = policy or Policy()
    items = sorted(outcomes, key=lambda o: (o.check.name, o.check.nodeid, o.status.value))
    measured = [o for o in items if o.status is not Status.SKIPPED]
    reasons: list[str] = []

    failed_critical = [
        o for o in measured if o.check.severity is Severity.CRITICAL and o.status is Status.FAILED
    ]
    unknown = [o for o in measured if o.status.unknown]
    may_allow = [
        o
        for o in unknown
        if o.status in (Status.ERROR, Status.NO_DATA) and o.check.severity is not Severity.CRITICAL
    ]
    allowed = may_allow if 0 < len(may_allow) <= policy.max_errors else []
    allowed_ids = {id(o) for o in allowed}
    blocking = [o for o in unknown if id(o) not in allowed_ids]

    score, met, total = _score(items)
    # The score if every check that could not say had passed: when even that is below the
    # conditional threshold, the evidence at hand already means NO-GO.
    optimistic, _, _ = _score(
        o if not o.status.unknown else Outcome(o.check, Status.PASSED) for o in items
    )
    already_no_go = _band(optimistic, policy) is Verdict.NO_GO
    actual_band = _band(score, policy)

    if failed_critical:
        reasons.append(f"{len(failed_critical)} critical check(s) failed")
    if interrupted:
        reasons.append(f"the run was interrupted ({interrupted}): its checks did not all finish")
    if not measured:
        reasons.append(
            "no check reported an outcome: nothing to decide on"
            if not items
            else "every check was skipped: nothing was measured"
        )
    by_status: dict[Status, int] = {}
    for o in blocking:
        by_status[o.status] = by_status.get(o.status, 0) + 1
    if blocking:
        what = ", ".join(
            f"{n} {s.label}" for s, n in sorted(by_status.items(), key=lambda x: x[0].rank)
        )
        reasons.append(f"{len(blocking)} check(s) could not say ({what}): failing closed")
    if allowed:
        reasons.append(
            f"{len(allowed)} non-critical check(s) could not measure, allowed by"
            f" policy.max_errors = {policy.max_errors}"
        )

    if failed_critical:
        verdict = Verdict.NO_GO
    elif interrupted or not measured:
        verdict = Verdict.INCONCLUSIVE
    elif blocking:
        verdict = Verdict.NO_GO if already_no_go else Verdict.INCONCLUSIVE
    elif actual_band is Verdict.NO_GO and not already_no_go:
        verdict = Verdict.INCONCLUSIVE
        reasons.append(
            "the score is below the conditional threshold only because of checks that could"
            " not measure"
        )
    else:
        verdict = actual_band
    if verdict.proceeds and met == 0:
        # Only possible with a conditional threshold of 0: nothing passed is never a go. It is
        # a NO-GO when checks failed and none could have passed; otherwise nothing decides.
        failed = any(o.status is Status.FAILED for o in measured)
        verdict = Verdict.NO_GO if failed and not unknown else Verdict.INCONCLUSIVE
        reasons.append("no check passed")

    tolerated: list[str] = []
    if verdict.proceeds:
        tolerated = [o.check.name for o in measured if o.status is Status.FAILED]
        if tolerated:
            reasons.append(
                f"{len(tolerated)} non-critical check(s) failed, tolerated by the readiness score"
                f" {score:.2f} (GO at {policy.go:g}, CONDITIONAL GO at {policy.conditional:g})"
            )

    marginal = [o.check.name for o in measured if o.marginal and o.status is Status.PASSED]
    if marginal and verdict.proceeds:
        if verdict is Verdict.GO:
            verdict = Verdict.CONDITIONAL_GO
        reasons.append(
            f"{len(marginal)} check(s) passed with a caveat (marginal): at best CONDITIONAL GO"
        )

    blockers = [_blocker(o) for o in failed_critical]
    blockers.extend(_blocker(o) for o in blocking if o.check.severity is Severity.CRITICAL)
    blockers.extend(_blocker(o) for o in blocking if o.check.severity is not Severity.CRITICAL)
    if measured and score < policy.go:
        band = "go" if score >= policy.conditional else "conditional"
        threshold = policy.go if band == "go" else policy.conditional
        reasons.append(f"readiness score {score:.2f} is below the {band} threshold {threshold}")
        seen = {id(o) for o in failed_critical} | {id(o) for o in blocking}
        blockers.extend(_blocker(o) for o in measured if not o.status.passed and id(o) not in seen)

    categories: dict[str, list[Outcome]] = {}
    for outcome in items:
        categories.setdefault(outcome.check.category, []).append(outcome)
    category_scores = tuple(
        CategoryScore(name, *_score(group)) for name, group in sorted(categories.items())
    )

    action: Action | None = None
    if not verdict.proceeds:
        asked = [o.check.on_fail for o in measured if o.check.on_fail and not o.status.passed]
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
        counts=counts,
        allowed=tuple(o.check.name for o in allowed),
        tolerated=tuple(tolerated),
        marginal=tuple(marginal),
        policy=policy,
        interrupted=interrupted,
    )
