"""Records are checked when read: their shape, and their stored verdict against their outcomes."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _report_records import as_schema_1, healthy_outcomes, make_record, nogo_outcomes, outcome
from releasegate.decision import Policy, Verdict
from releasegate.model import Severity, Status
from releasegate.report.verify import (
    INCONSISTENT,
    UNVERIFIED,
    load_record,
    shown_record,
    verify_record,
)

Record = dict[str, Any]


def from_json(record: Record) -> Any:
    """The record as a reader gets it: through JSON, as the writer wrote it."""
    return json.loads(json.dumps(record))


def test_a_record_the_gate_wrote_is_consistent() -> None:
    for outcomes in (healthy_outcomes(), nogo_outcomes()):
        record = from_json(make_record(outcomes))
        check = verify_record(record)
        assert check.readable and check.consistent, check.problems + check.disagreements
        assert check.shown == record["decision"] == check.recomputed_verdict
        assert shown_record(record, check) == record


def set_key(path: str, value: Any) -> Callable[[Record], None]:
    """A mutation that sets the key at ``path`` (dots and list indexes) to ``value``."""

    def mutate(record: Record) -> None:
        *parents, last = path.split(".")
        target: Any = record
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def drop_key(key: str) -> Callable[[Record], None]:
    def mutate(record: Record) -> None:
        del record[key]

    return mutate


def drop_nested(path: str, key: str) -> Callable[[Record], None]:
    def mutate(record: Record) -> None:
        target: Any = record
        for part in path.split("."):
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[key]

    return mutate


MALFORMED: list[tuple[str, Callable[[Record], None], str]] = [
    ("bad status", set_key("outcomes.0.status", "passd"), 'outcomes[0].status: "passd"'),
    ("status of another type", set_key("outcomes.1.status", ["passed"]), "outcomes[1].status"),
    ("missing outcomes", drop_key("outcomes"), "outcomes: missing"),
    ("outcomes an object", set_key("outcomes", {}), "outcomes: an object is not a list"),
    ("outcome not an object", set_key("outcomes.2", "passed"), 'outcomes[2]: "passed"'),
    ("check not an object", set_key("outcomes.0.check", None), "outcomes[0].check: null"),
    ("check without a name", drop_nested("outcomes.0.check", "name"), "outcomes[0].check.name"),
    ("bad severity", set_key("outcomes.0.check.severity", "huge"), "outcomes[0]: cannot be read"),
    ("NaN weight", set_key("outcomes.0.check.weight", math.nan), "outcomes[0].check.weight: nan"),
    ("evidence a string", set_key("outcomes.0.evidence", "x"), "outcomes[0].evidence"),
    ("NaN score", set_key("score", math.nan), "score: nan is not a finite number"),
    ("infinite duration", set_key("duration_s", math.inf), "duration_s: inf"),
    ("score a string", set_key("score", "9.5"), 'score: "9.5" is not a number'),
    ("unknown verdict", set_key("decision", "MAYBE"), "decision: 'MAYBE' is not a verdict"),
    ("missing decision", drop_key("decision"), "decision: missing"),
    ("summary a list", set_key("summary", []), "summary: a list of 0 is not an object"),
    ("blocker a string", set_key("summary.blockers", ["x"]), "summary.blockers[0]"),
    (
        "category met a string",
        set_key("summary.categories.0.met", "3"),
        "summary.categories[0].met",
    ),
    ("bad policy", set_key("policy.go", 0), "policy: scoring.go (0) must be above 0"),
    ("policy a string", set_key("policy", "strict"), 'policy: "strict" is not an object'),
    ("interrupted a number", set_key("interrupted", 15), "interrupted: 15 is not a string"),
    ("schema 99", set_key("schema_version", 99), "schema_version: 99 is not one"),
    ("schema a string", set_key("schema_version", "2"), "schema_version: '2' is not one"),
    ("no schema", drop_key("schema_version"), "schema_version: missing"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_a_malformed_record_is_unreadable_and_says_where(
    mutate: Callable[[Record], None], expected: str
) -> None:
    record = from_json(make_record(nogo_outcomes()))
    mutate(record)
    check = verify_record(record)
    assert not check.readable and check.shown == UNVERIFIED
    assert any(expected in problem for problem in check.problems), check.problems
    assert "\n" not in check.problem_line()


@pytest.mark.parametrize("data", [[], "GO", 3, None, True])
def test_json_that_is_not_an_object_is_not_a_record(data: Any) -> None:
    check = verify_record(data)
    assert not check.readable and "not an object" in check.problems[0]


def test_many_problems_make_one_line() -> None:
    record = from_json(make_record(nogo_outcomes()))
    for item in record["outcomes"]:
        item["status"] = "bogus"
    check = verify_record(record)
    assert len(check.problems) == len(record["outcomes"])
    line = check.problem_line()
    assert "\n" not in line and "(and 5 more problem(s))" in line and "archive/" in line


def test_an_edited_verdict_is_inconsistent_and_not_shown() -> None:
    record = from_json(make_record(nogo_outcomes()))
    record["decision"] = "GO"
    check = verify_record(record)
    assert check.readable and not check.consistent
    assert check.shown == INCONSISTENT and check.stored == "GO"
    assert check.recomputed_verdict == "NO-GO"
    assert check.disagreements == (
        "stored verdict GO disagrees with its outcomes, which give NO-GO",
    )
    shown = shown_record(record, check)
    assert shown["decision"] == INCONSISTENT
    assert shown["summary"]["verdict"] == INCONSISTENT
    assert shown["summary"]["reasons"][0] == "1 critical check(s) failed"
    assert record["decision"] == "GO"  # the caller's record is left alone


def test_a_decision_replaced_by_a_hook_is_inconsistent() -> None:
    # What session.py writes when pytest_releasegate_decision returns another verdict: the
    # replaced Decision fills both the decision and the summary.
    record = from_json(make_record(nogo_outcomes()))
    record["decision"] = record["summary"]["verdict"] = "CONDITIONAL GO"
    check = verify_record(record)
    assert check.shown == INCONSISTENT
    assert check.disagreements == (
        "stored verdict CONDITIONAL GO disagrees with its outcomes, which give NO-GO",
    )
    assert "pytest_releasegate_decision" in check.disagreement_line()


def test_an_edited_score_summary_or_policy_is_inconsistent() -> None:
    record = from_json(make_record(nogo_outcomes()))
    record["score"] = 9.5
    assert verify_record(record).disagreements == (
        "stored score 9.5 disagrees with its outcomes, which give 6.84",
    )
    record = from_json(make_record(nogo_outcomes()))
    record["summary"]["verdict"] = "GO"
    assert verify_record(record).shown == INCONSISTENT
    # A lowered threshold makes the stored GO agree with the outcomes; the summary's copy of
    # the policy gives it away.
    record = from_json(make_record(nogo_outcomes()[:5] + healthy_outcomes()[5:]))
    assert record["decision"] == "CONDITIONAL GO" and record["score"] == 8.95
    record["policy"]["go"] = 8.5
    record["decision"] = record["summary"]["verdict"] = "GO"
    check = verify_record(record)
    assert check.recomputed_verdict == "GO" and check.shown == INCONSISTENT
    assert "disagrees with summary.policy" in check.disagreements[0]


def test_the_policy_comes_from_policy_then_scoring_then_defaults() -> None:
    # One non-critical error: allowed by max_errors 1, failing closed without it.
    outcomes = healthy_outcomes()
    outcomes[7] = outcome("metrics-exposed", "observability", Severity.MINOR, Status.ERROR, "x")
    record = from_json(make_record(outcomes, policy=Policy(9.0, 7.5, max_errors=1)))
    assert record["decision"] == "GO" and record["summary"]["allowed"] == ["metrics-exposed"]
    assert verify_record(record).consistent
    del record["policy"]  # scoring has no max_errors: the error is not allowed
    assert verify_record(record).recomputed_verdict == "INCONCLUSIVE"
    record = from_json(make_record(healthy_outcomes(), policy=Policy(9.5, 9.0)))
    del record["policy"], record["scoring"], record["summary"]["policy"]
    assert verify_record(record).consistent  # defaults 9 / 7.5 give GO too


def test_an_interrupted_run_verifies_with_its_interruption() -> None:
    record = from_json(make_record(healthy_outcomes(), interrupted="SIGTERM"))
    assert record["decision"] == "INCONCLUSIVE"
    assert verify_record(record).consistent
    record["interrupted"] = None  # the interruption removed: the outcomes give GO
    assert verify_record(record).shown == INCONSISTENT


def test_a_schema_1_record_verifies_under_its_own_rules() -> None:
    assert verify_record(from_json(as_schema_1(make_record(nogo_outcomes())))).consistent
    assert verify_record(from_json(as_schema_1(make_record(healthy_outcomes())))).consistent
    # Schema 1 failed closed only on critical checks: a minor check's error cost its weight
    # (score 9.47, GO). Today the same outcomes are INCONCLUSIVE; nobody edited anything.
    outcomes = healthy_outcomes()
    outcomes[7] = outcome("metrics-exposed", "observability", Severity.MINOR, Status.ERROR, "x")
    record = from_json(as_schema_1(make_record(outcomes)))
    record["decision"] = record["summary"]["verdict"] = "GO"
    check = verify_record(record)
    assert check.consistent and check.shown == "GO"
    assert check.note.startswith("written by an older releasegate (schema 1)")
    assert "today's rules give INCONCLUSIVE" in check.note
    # A failed critical check was NO-GO under both rules: a GO there is an edit.
    record = from_json(as_schema_1(make_record(nogo_outcomes())))
    record["decision"] = "GO"
    check = verify_record(record)
    assert check.shown == INCONSISTENT and not check.note


def test_schema_1_knows_only_its_own_statuses() -> None:
    outcomes = healthy_outcomes()
    outcomes[7] = outcome("metrics-exposed", "observability", Severity.MINOR, Status.SKIPPED, "")
    check = verify_record(from_json(as_schema_1(make_record(outcomes))))
    assert check.problems == (
        'outcomes[0].status: "skipped" is not a schema 1 status (passed, failed, no_data, error)',
    )


# -- reading files --------------------------------------------------------------------------


def test_load_reads_a_record(tmp_path: Path) -> None:
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(make_record(nogo_outcomes())), encoding="utf-8")
    loaded = load_record(path)
    assert loaded.problem is None and loaded.data["decision"] == "NO-GO"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"schema_version": 2, "outco', "is not valid JSON (Unterminated string"),
        (b'{"decision": "GO\xff"}', "is not UTF-8 text (byte 0xff at offset 16)"),
        (b"", "is not valid JSON (Expecting value at line 1 column 1)"),
        (b"[" * 100_000 + b"]" * 100_000, "nests JSON deeper than any record"),
        (b"1" * 5000, "is not JSON releasegate can read (Exceeds the limit"),
    ],
    ids=["truncated", "not UTF-8", "empty", "deeply nested", "huge integer"],
)
def test_load_reports_what_it_cannot_read(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "decision.json"
    path.write_bytes(content)
    loaded = load_record(path)
    assert loaded.data is None and loaded.problem is not None
    assert loaded.problem.startswith(expected), loaded.problem


def test_load_refuses_a_file_over_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(make_record(healthy_outcomes())), encoding="utf-8")
    loaded = load_record(path, max_bytes=1000)
    assert loaded.problem is not None and "more than the 0 MB a record may be" in loaded.problem
    with path.open("r+b") as handle:
        handle.truncate(201 * 1024 * 1024)  # sparse: costs no disk
    loaded = load_record(path)
    assert loaded.problem is not None
    assert loaded.problem.startswith("is 201 MB, more than the 200 MB a record may be")


def test_load_reports_a_missing_file_or_a_folder(tmp_path: Path) -> None:
    loaded = load_record(tmp_path / "nope.json")
    assert loaded.problem is not None and loaded.problem.startswith("cannot be read (")
    folder = tmp_path / "decision.json"
    folder.mkdir()
    loaded = load_record(folder)
    assert loaded.problem is not None and loaded.problem.startswith("cannot be read (")


# -- properties -----------------------------------------------------------------------------

NAMES = st.sampled_from([f"check-{i}" for i in range(12)])
OUTCOMES = st.lists(
    st.tuples(
        NAMES,
        st.sampled_from(["health", "performance", "data"]),
        st.sampled_from(list(Severity)),
        st.sampled_from(list(Status)),
    ),
    max_size=12,
    unique_by=lambda t: t[0],
)


def records_of(items: list[tuple[str, str, Severity, Status]]) -> Record:
    outcomes = [
        outcome(name, cat, sev, status, f"{status.value}") for name, cat, sev, status in items
    ]
    return from_json(make_record(outcomes))


@settings(max_examples=200, deadline=None)
@given(OUTCOMES, st.sampled_from(list(Verdict)), st.booleans())
def test_a_written_record_verifies_and_any_other_verdict_is_caught(
    items: list[tuple[str, str, Severity, Status]], other: Verdict, with_summary: bool
) -> None:
    record = records_of(items)
    check = verify_record(record)
    assert check.consistent, check.problems + check.disagreements
    if other.value == record["decision"]:
        return
    edited = copy.deepcopy(record)
    edited["decision"] = other.value
    if with_summary:  # as a replacing hook writes it: the summary agrees with the decision
        edited["summary"]["verdict"] = other.value
    check = verify_record(edited)
    assert check.shown == INCONSISTENT and check.stored == other.value
    assert check.recomputed_verdict == record["decision"]
    assert shown_record(edited, check)["decision"] == INCONSISTENT
