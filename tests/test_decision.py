"""The decision engine: rules by example, and its promises as hypothesis properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasegate.decision import Policy, PolicyError, Verdict, decide
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


UNKNOWN = [Status.ERROR, Status.NO_DATA, Status.NOT_RUN]


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("status", UNKNOWN)
def test_any_check_that_could_not_say_blocks_go(status: Status, severity: Severity) -> None:
    outcomes = [outcome(f"ok{i}", Status.PASSED, weight=100) for i in range(10)]
    outcomes.append(outcome("probe", status, severity, weight=0.1))
    decision = decide(outcomes)
    assert decision.score > 9.9
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "failing closed" in " ".join(decision.reasons)
    assert [b.check for b in decision.blockers] == ["probe"]


def test_max_errors_allows_errors_of_non_critical_checks_only() -> None:
    outcomes = [outcome(f"ok{i}", Status.PASSED, weight=100) for i in range(10)]
    outcomes += [outcome("e", Status.ERROR, Severity.MINOR), outcome("n", Status.NO_DATA)]
    allowing = Policy(max_errors=2)
    decision = decide(outcomes, allowing)
    assert decision.verdict is Verdict.GO
    assert decision.allowed == ("e", "n")
    assert "allowed by policy.max_errors = 2" in " ".join(decision.reasons)
    # one more than allowed: none is allowed
    assert decide([*outcomes, outcome("x", Status.ERROR)], allowing).verdict is Verdict.INCONCLUSIVE
    # critical checks and checks that did not run are never allowed
    critical = [*outcomes[:10], outcome("c", Status.ERROR, Severity.CRITICAL)]
    assert decide(critical, allowing).verdict is Verdict.INCONCLUSIVE
    not_run = [*outcomes[:10], outcome("r", Status.NOT_RUN, Severity.MINOR)]
    assert decide(not_run, allowing).verdict is Verdict.INCONCLUSIVE


def test_declared_skips_do_not_count_but_a_run_of_skips_decides_nothing() -> None:
    decision = decide([outcome("a", Status.PASSED), outcome("s", Status.SKIPPED)])
    assert decision.verdict is Verdict.GO
    assert (decision.met, decision.total) == (1, 1)
    assert decide([outcome("s", Status.SKIPPED)]).verdict is Verdict.INCONCLUSIVE


def test_an_interrupted_run_is_inconclusive_even_if_all_passed() -> None:
    decision = decide([outcome("a", Status.PASSED)], interrupted="SIGTERM received")
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "SIGTERM received" in decision.reasons[0]


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
    policy = Policy(go=9.0, conditional=7.5)
    # 8 of 10 equal-weight checks pass: 8.0 -> CONDITIONAL GO
    mixed = [outcome(f"p{i}", Status.PASSED) for i in range(8)]
    mixed += [outcome("f1", Status.FAILED), outcome("f2", Status.FAILED, Severity.MINOR)]
    decision = decide(mixed, policy)
    assert decision.score == 8.42
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


def test_a_check_that_did_not_run_is_inconclusive_never_go() -> None:
    decision = decide([outcome("a", Status.PASSED), outcome("b", Status.NOT_RUN)])
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "1 not run" in decision.reasons[0]
    assert decision.counts["not_run"] == 1


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"go": 7.0, "conditional": 8.0}, "conditional"),
        ({"go": 0.0, "conditional": 0.0}, "above 0"),
        ({"go": float("nan")}, "finite"),
        ({"go": float("inf")}, "finite"),
        ({"conditional": -1.0}, "conditional"),
        ({"max_errors": -1}, "max_errors"),
        ({"max_errors": 1.5}, "whole number"),
    ],
)
def test_policy_rejects_what_cannot_decide(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        Policy(**kwargs)  # type: ignore[arg-type]


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
    st.floats(min_value=0.01, max_value=10, allow_nan=False),
    st.floats(min_value=0, max_value=10, allow_nan=False),
    st.integers(0, 3),
).map(lambda t: Policy(go=max(t[0], t[1]), conditional=min(t[0], t[1]), max_errors=t[2]))

#: Among the statuses that could not say, each is at least as bad as the one before it.
UNKNOWN_ORDER = [Status.NO_DATA, Status.ERROR, Status.NOT_RUN]


@settings(max_examples=300)
@given(outcome_lists, policies, st.data())
def test_losing_a_pass_never_improves_the_decision(outcomes, policy, data) -> None:
    passed = [i for i, o in enumerate(outcomes) if o.status is Status.PASSED]
    if not passed:
        return
    index = data.draw(st.sampled_from(passed))
    worse = data.draw(
        st.sampled_from([s for s in Status if s not in (Status.PASSED, Status.SKIPPED)])
    )
    changed = list(outcomes)
    changed[index] = Outcome(outcomes[index].check, worse, "worse")
    before, after = decide(outcomes, policy), decide(changed, policy)
    assert after.verdict.rank <= before.verdict.rank
    assert after.score <= before.score


@settings(max_examples=300)
@given(outcome_lists, policies, st.data())
def test_a_worse_unknown_never_improves_the_decision(outcomes, policy, data) -> None:
    unknown = [i for i, o in enumerate(outcomes) if o.status in UNKNOWN_ORDER]
    if not unknown:
        return
    index = data.draw(st.sampled_from(unknown))
    at = UNKNOWN_ORDER.index(outcomes[index].status)
    worse = data.draw(st.sampled_from(UNKNOWN_ORDER[at:]))
    changed = list(outcomes)
    changed[index] = Outcome(outcomes[index].check, worse, "worse")
    assert decide(changed, policy).verdict.rank <= decide(outcomes, policy).verdict.rank


@settings(max_examples=500)
@given(outcome_lists, policies)
def test_go_implies_every_check_passed_or_was_explicitly_allowed(outcomes, policy) -> None:
    decision = decide(outcomes, policy)
    if not decision.verdict.proceeds:
        return
    allowed, tolerated = set(decision.allowed), set(decision.tolerated)
    assert len(allowed) <= policy.max_errors
    assert any(o.status is Status.PASSED for o in outcomes)
    for o in outcomes:
        if o.status not in (Status.PASSED, Status.SKIPPED):
            assert o.check.name in allowed | tolerated  # every exception is named
        if o.status.unknown:
            assert o.check.name in allowed
            assert o.status is not Status.NOT_RUN
            assert o.check.severity is not Severity.CRITICAL
        if o.status is Status.FAILED:
            assert o.check.name in tolerated
        if o.check.severity is Severity.CRITICAL:
            assert o.status in (Status.PASSED, Status.SKIPPED)


@settings(max_examples=300)
@given(outcome_lists, policies)
def test_never_go_with_a_critical_check_not_passed(outcomes, policy) -> None:
    decision = decide(outcomes, policy)
    bad_critical = [
        o
        for o in outcomes
        if o.check.severity is Severity.CRITICAL and o.status not in (Status.PASSED, Status.SKIPPED)
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


def test_a_marginal_pass_holds_go_down_to_conditional_go() -> None:
    healthy = [outcome(f"c{i}", Status.PASSED) for i in range(5)]
    assert decide(healthy).verdict is Verdict.GO
    caveat = Outcome(healthy[0].check, Status.PASSED, "canary 4% slower", marginal=True)
    decision = decide([caveat, *healthy[1:]])
    assert decision.verdict is Verdict.CONDITIONAL_GO
    assert decision.marginal == ("c0",)
    assert decision.score == 10.0  # it passed: the score does not change, the verdict does
    assert any("caveat" in reason for reason in decision.reasons)
    assert decision.to_dict()["marginal"] == ["c0"]


def test_a_marginal_pass_does_not_lift_a_no_go_or_an_inconclusive() -> None:
    caveat = Outcome(outcome("c", Status.PASSED).check, Status.PASSED, "x", marginal=True)
    failed = outcome("crit", Status.FAILED, Severity.CRITICAL)
    assert decide([caveat, failed]).verdict is Verdict.NO_GO
    unknown = outcome("nd", Status.NO_DATA)
    assert decide([caveat, unknown]).verdict is Verdict.INCONCLUSIVE


def test_marginal_survives_the_record_round_trip_only_on_a_pass() -> None:
    check = outcome("c", Status.PASSED).check
    marginal = Outcome(check, Status.PASSED, "x", marginal=True)
    assert Outcome.from_dict(marginal.to_dict()) == marginal
    assert "marginal" not in Outcome(check, Status.PASSED).to_dict()
    forged = {**Outcome(check, Status.FAILED, "x").to_dict(), "marginal": True}
    assert Outcome.from_dict(forged).marginal is False


@settings(max_examples=300)
@given(outcome_lists, policies, st.data())
def test_a_caveat_on_a_pass_never_improves_the_decision(outcomes, policy, data) -> None:
    passed = [i for i, o in enumerate(outcomes) if o.status is Status.PASSED]
    if not passed:
        return
    index = data.draw(st.sampled_from(passed))
    changed = list(outcomes)
    changed[index] = Outcome(outcomes[index].check, Status.PASSED, "caveat", marginal=True)
    before, after = decide(outcomes, policy), decide(changed, policy)
    assert after.verdict.rank <= before.verdict.rank
    assert after.verdict is not Verdict.GO
