"""The decision engine: rules by example, and its promises as hypothesis properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.decision import ScoringPolicy, Verdict, decide
from releasegate.model import Action, CheckInfo, Outcome, Severity, Status


def outcome(
    name: str,
    status: Status,
    severity: Severity = Severity.MAJOR,
    weight: float | None = None,
    category: str = "health",
    on_fail: Action | None = None,
) -> Outcome:
    info = CheckInfo(
        name=name,
        kind="smoke",
        category=category,
        severity=severity,
        weight=severity.default_weight if weight is None else weight,
        on_fail=on_fail,
    )
    return Outcome(info, status, reason=f"{name} {status.value}")


def test_all_passed_is_go_with_full_score() -> None:
    decision = decide([outcome("a", Status.PASSED), outcome("b", Status.PASSED)])
    assert decision.verdict is Verdict.GO
    assert decision.score == 10.0
    assert (decision.met, decision.total) == (2, 2)
    assert decision.blockers == ()


def test_failed_critical_is_no_go_even_with_high_score() -> None:
    outcomes = [outcome(f"ok{i}", Status.PASSED, weight=100) for i in range(10)]
    outcomes.append(outcome("version", Status.FAILED, Severity.CRITICAL, weight=0.1))
    decision = decide(outcomes)
    assert decision.verdict is Verdict.NO_GO
    assert decision.score > 9.9
    assert [b.check for b in decision.blockers] == ["version"]


@pytest.mark.parametrize("status", [Status.ERROR, Status.NO_DATA])
def test_critical_that_could_not_measure_is_inconclusive(status: Status) -> None:
    decision = decide([outcome("ok", Status.PASSED), outcome("probe", status, Severity.CRITICAL)])
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "failing closed" in " ".join(decision.reasons)


def test_an_unreachable_target_is_inconclusive_not_no_go() -> None:
    outcomes = [outcome(f"c{i}", Status.ERROR, Severity.CRITICAL) for i in range(3)]
    outcomes += [outcome(f"m{i}", Status.ERROR) for i in range(5)]
    decision = decide(outcomes)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.score == 0.0


def test_unknowns_that_alone_sink_the_score_are_inconclusive() -> None:
    outcomes = [outcome(f"p{i}", Status.PASSED) for i in range(5)]
    outcomes += [outcome(f"e{i}", Status.NO_DATA) for i in range(5)]
    assert decide(outcomes).verdict is Verdict.INCONCLUSIVE
    outcomes[0] = outcome("p0", Status.FAILED)
    outcomes[1] = outcome("p1", Status.FAILED)
    outcomes[2] = outcome("p2", Status.FAILED)
    assert decide(outcomes).verdict is Verdict.NO_GO  # 7.0 even if every unknown passed


def test_score_bands() -> None:
    policy = ScoringPolicy(go=9.0, conditional=7.5)
    # 8 of 10 equal-weight checks pass: 8.0 -> CONDITIONAL GO
    mixed = [outcome(f"p{i}", Status.PASSED) for i in range(8)]
    mixed += [outcome("f1", Status.FAILED), outcome("f2", Status.ERROR)]
    decision = decide(mixed, policy)
    assert decision.score == 8.0
    assert decision.verdict is Verdict.CONDITIONAL_GO
    assert {b.check for b in decision.blockers} == {"f1", "f2"}
    # 7 of 10: NO-GO on score alone
    low = [outcome(f"p{i}", Status.PASSED) for i in range(7)]
    low += [outcome(f"f{i}", Status.FAILED, Severity.MINOR, weight=2) for i in range(3)]
    assert decide(low, policy).verdict is Verdict.NO_GO


def test_category_scores() -> None:
    decision = decide(
        [
            outcome("a", Status.PASSED, category="health"),
            outcome("b", Status.FAILED, category="performance", weight=1),
            outcome("c", Status.PASSED, category="performance", weight=3),
        ]
    )
    by_name = {c.category: c for c in decision.categories}
    assert by_name["health"].score == 10.0
    assert by_name["performance"].score == 7.5
    assert (by_name["performance"].met, by_name["performance"].total) == (1, 2)


def test_no_outcomes_is_inconclusive() -> None:
    decision = decide([])
    assert decision.verdict is Verdict.INCONCLUSIVE


def test_count_mismatch_is_inconclusive_never_go() -> None:
    decision = decide([outcome("a", Status.PASSED)], expected=2)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "2 checks were collected but 1 outcomes" in decision.reasons[0]


def test_action_is_the_most_drastic_asked_for() -> None:
    decision = decide(
        [
            outcome("a", Status.FAILED, Severity.CRITICAL, on_fail=Action.GRADUAL_ROLLBACK),
            outcome("b", Status.FAILED, on_fail=Action.EMERGENCY_STOP),
            outcome("c", Status.PASSED, on_fail=Action.IMMEDIATE_ROLLBACK),
        ]
    )
    assert decision.action is Action.EMERGENCY_STOP
    assert decide([outcome("a", Status.PASSED, on_fail=Action.EMERGENCY_STOP)]).action is None


def test_policy_rejects_inverted_thresholds() -> None:
    with pytest.raises(ValueError, match="conditional"):
        ScoringPolicy(go=7.0, conditional=8.0)


statuses = st.sampled_from(list(Status))
outcome_lists = st.lists(
    st.tuples(
        statuses,
        st.sampled_from(list(Severity)),
        st.floats(min_value=0, max_value=10, allow_nan=False),
        st.sampled_from(["health", "performance", "data"]),
    ),
    min_size=0,
    max_size=12,
).map(
    lambda rows: [
        outcome(f"c{i}", status, severity, weight, category)
        for i, (status, severity, weight, category) in enumerate(rows)
    ]
)
policies = st.tuples(
    st.floats(min_value=0, max_value=10, allow_nan=False),
    st.floats(min_value=0, max_value=10, allow_nan=False),
).map(lambda t: ScoringPolicy(go=max(t), conditional=min(t)))


@settings(max_examples=300)
@given(outcome_lists, policies, st.data())
def test_a_worse_outcome_never_improves_the_decision(outcomes, policy, data) -> None:
    if not outcomes:
        return
    index = data.draw(st.integers(0, len(outcomes) - 1))
    current = outcomes[index]
    worse = data.draw(st.sampled_from([s for s in Status if s.rank <= current.status.rank]))
    changed = list(outcomes)
    changed[index] = Outcome(current.check, worse, current.reason)
    before = decide(outcomes, policy, expected=len(outcomes))
    after = decide(changed, policy, expected=len(changed))
    assert after.verdict.rank <= before.verdict.rank
    assert after.score <= before.score


@settings(max_examples=300)
@given(outcome_lists, policies)
def test_never_go_with_a_critical_check_not_passed(outcomes, policy) -> None:
    decision = decide(outcomes, policy)
    bad_critical = [
        o for o in outcomes if o.check.severity is Severity.CRITICAL and not o.status.passed
    ]
    if bad_critical:
        assert not decision.verdict.proceeds
    if any(o.status is Status.FAILED for o in bad_critical):
        assert decision.verdict is Verdict.NO_GO


@settings(max_examples=200)
@given(outcome_lists, policies, st.randoms(use_true_random=False))
def test_order_of_outcomes_does_not_matter(outcomes, policy, rnd: random.Random) -> None:
    shuffled = list(outcomes)
    rnd.shuffle(shuffled)
    assert decide(outcomes, policy) == decide(shuffled, policy)


@settings(max_examples=200)
@given(outcome_lists, policies)
def test_score_is_within_bounds_and_blockers_are_not_passed(outcomes, policy) -> None:
    decision = decide(outcomes, policy)
    assert 0.0 <= decision.score <= 10.0
    assert all(b.status is not Status.PASSED for b in decision.blockers)
    if decision.verdict is Verdict.GO:
        assert decision.score >= policy.go
