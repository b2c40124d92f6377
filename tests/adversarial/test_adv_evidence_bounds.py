"""A check cannot flood the record: evidence per outcome is bounded in count and bytes, a huge
item keeps its (redacted) start and says what was left out, and no secret is cut in two."""

from __future__ import annotations

import base64
import json

import pytest
from _adversarial import assert_consistent, by_name, make_gate, read_record, spec_yaml

from releasegate.evidence import (
    MAX_EVIDENCE_BYTES,
    MAX_EVIDENCE_ITEMS,
    MAX_OUTCOME_EVIDENCE_BYTES,
    EvidenceList,
)
from releasegate.model import Evidence

SECRET = "s3cr3t-Canary-7fd2a9"

CHECKS = f"""
import os
import pytest

@pytest.mark.gate_t24h
def test_many(rg_evidence):
    for i in range(5000):
        rg_evidence.measure(f"probe {{i}}", i, "value >= 0")

@pytest.mark.gate_t24h
def test_huge(rg_evidence):
    # A secret sits exactly where a naive cut would split it in two.
    filler = "x" * ({MAX_EVIDENCE_BYTES} // 4 - 20)
    rg_evidence.measure("dump", filler + os.environ["RG_CANARY_TOKEN"] + "y" * 50_000_000)

@pytest.mark.gate_t24h
def test_unserialisable(rg_evidence):
    rg_evidence.measure("object", object())
"""


def test_a_check_cannot_flood_the_record(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RG_CANARY_TOKEN", SECRET)
    # The spec sends the token as a header: it is a secret the redaction policy knows.
    spec = spec_yaml().replace(
        "timeout_s: 2}", 'timeout_s: 2, headers: {X-Api-Key: "${RG_CANARY_TOKEN}"}}'
    )
    assert "RG_CANARY_TOKEN" in spec
    make_gate(pytester, CHECKS, spec=spec)
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert_consistent(data, result.ret, pytester.path)
    outcomes = by_name(data)

    many = outcomes["test_many"]["evidence"]
    assert len(many) == MAX_EVIDENCE_ITEMS + 1
    assert many[-1]["value"] == 5000 - MAX_EVIDENCE_ITEMS
    assert "left out" in many[-1]["reason"]

    huge = outcomes["test_huge"]["evidence"][0]
    assert huge["value"]["bytes"] > 50_000_000
    assert len(huge["value"]["truncated"]) == huge["value"]["kept_bytes"] <= MAX_EVIDENCE_BYTES
    assert "evidence truncated" in huge["reason"]
    assert outcomes["test_unserialisable"]["status"] == "passed"

    raw = (pytester.path / "reports/out/adv/t24h/decision.json").read_text()
    assert len(raw) < 2 * MAX_OUTCOME_EVIDENCE_BYTES
    for form in (SECRET, SECRET[:12], base64.b64encode(SECRET.encode()).decode()[:12]):
        assert form not in raw


def test_the_bounds_hold_for_any_mix_of_items() -> None:
    kept = EvidenceList()
    for size in [10, 70_000, 10, 200_000, 10] * 40:
        kept.add(Evidence("m", "v" * size))
    assert len(kept) <= MAX_EVIDENCE_ITEMS + 1
    total = sum(len(json.dumps(e.to_dict())) for e in kept)
    assert total <= MAX_OUTCOME_EVIDENCE_BYTES + 1024
    assert kept[-1].measured == "evidence left out"
