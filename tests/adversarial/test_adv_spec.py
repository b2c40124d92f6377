"""Specs (and check markers) that would make the score meaningless are refused: by
``releasegate validate`` (exit 2) and by the gate run itself (pytest's usage error, exit 4),
which then writes no record and fires no hook. Never a NaN score."""

from __future__ import annotations

import json

import pytest
from _adversarial import (
    ALL_VERDICTS,
    files_under,
    fired,
    hooks_yaml,
    make_gate,
    output,
    releasegate_cli,
    spec_yaml,
)

OK = "import pytest\n\n@pytest.mark.gate_t24h\ndef test_ok():\n    pass\n"

LIVE = "- {{name: live, type: liveness, phases: [t24h]{extra}}}"

BAD_SPECS = {
    "go_zero": {"scoring": "{go: 0}"},
    "go_zero_conditional_zero": {"scoring": "{go: 0, conditional: 0}"},
    "go_negative": {"scoring": "{go: -1, conditional: -2}"},
    "go_nan": {"scoring": "{go: .nan}"},
    "go_inf": {"scoring": "{go: .inf}"},
    "conditional_nan": {"scoring": "{conditional: .nan}"},
    "conditional_above_go": {"scoring": "{go: 8, conditional: 9}"},
    "go_above_ten": {"scoring": "{go: 11}"},
    "weight_inf": {"checks": LIVE.format(extra=", weight: .inf")},
    "weight_nan": {"checks": LIVE.format(extra=", weight: .nan")},
    "weight_negative": {"checks": LIVE.format(extra=", weight: -1")},
    "kind_chaoss": {"checks": LIVE.format(extra=", kind: chaoss")},
    "max_errors_negative": {"policy": "{max_errors: -1}"},
    "max_errors_fraction": {"policy": "{max_errors: 0.5}"},
    "deadline_inf": {"policy": "{deadline: .inf}"},
    "deadline_zero": {"policy": "{deadline: 0}"},
    "on_interrupt_unknown": {"policy": "{on_interrupt: always}"},
    "skip_if_without_reason": {"checks": LIVE.format(extra=", skip_if: {condition: true}")},
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_validate_rejects_a_spec_that_cannot_score(pytester: pytest.Pytester, case: str) -> None:
    make_gate(pytester, OK, **BAD_SPECS[case])
    done = releasegate_cli(["validate", "releasegate.yaml"], pytester.path)
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "nan" not in done.stdout.lower(), text
    assert "Traceback" not in text, text


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_gate_run_on_such_a_spec_is_a_usage_error_and_decides_nothing(
    pytester: pytest.Pytester, case: str
) -> None:
    make_gate(pytester, OK, hooks=hooks_yaml(rollback_on=ALL_VERDICTS), **BAD_SPECS[case])
    result = pytester.runpytest("-m", "gate_t24h")
    text = output(result)
    assert result.ret == 4, text[-3000:]
    assert "INTERNALERROR" not in text
    assert files_under(pytester.path / "reports") == []
    assert fired(pytester.path) == []


BAD_MARKERS = {
    "weight_nan": 'weight=float("nan")',
    "weight_inf": 'weight=float("inf")',
    "weight_negative": "weight=-1",
    "weight_text": 'weight="heavy"',
    "severity_unknown": 'severity="blocker"',
    "unknown_argument": 'sevrity="critical"',
}


@pytest.mark.parametrize("case", list(BAD_MARKERS))
def test_a_python_check_with_a_bad_marker_is_a_usage_error(
    pytester: pytest.Pytester, case: str
) -> None:
    make_gate(
        pytester,
        OK
        + "\n\n@pytest.mark.gate_t24h\n"
        + f"@pytest.mark.releasegate({BAD_MARKERS[case]})\ndef test_bad():\n    pass\n",
        hooks=hooks_yaml(rollback_on=ALL_VERDICTS),
    )
    result = pytester.runpytest("-m", "gate_t24h")
    text = output(result)
    assert result.ret == 4, text[-3000:]
    assert "INTERNALERROR" not in text
    assert "test_bad" in text
    # Whatever the run left behind says no GO and holds no NaN score.
    reports = pytester.path / "reports"
    for name in files_under(reports):
        written = (reports / name).read_text(errors="replace")
        assert "NaN" not in written and "Infinity" not in written, name
    record = reports / "out" / "adv" / "t24h" / "decision.json"
    if record.exists():
        assert json.loads(record.read_text())["decision"] not in ("GO", "CONDITIONAL GO")
    assert all(e["decision"] not in ("GO", "CONDITIONAL GO") for e in fired(pytester.path))


def test_zero_weights_everywhere_never_give_a_nan_score(pytester: pytest.Pytester) -> None:
    """Legal but degenerate: every weight 0. The score must still be a number."""
    make_gate(
        pytester,
        "import pytest\n\n@pytest.mark.gate_t24h\n@pytest.mark.releasegate(weight=0)\n"
        "def test_a():\n    pass\n\n@pytest.mark.gate_t24h\n"
        "@pytest.mark.releasegate(weight=0, severity='minor')\ndef test_b():\n    assert False\n",
        hooks=hooks_yaml(rollback_on=ALL_VERDICTS),
    )
    result = pytester.runpytest("-m", "gate_t24h")
    path = pytester.path / "reports/out/adv/t24h/decision.json"
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert isinstance(data["score"], (int, float))
    assert 0 <= data["score"] <= 10
    assert data["decision"] != "GO" or all(o["status"] == "passed" for o in data["outcomes"])
    assert (
        result.ret
        == {"GO": 0, "CONDITIONAL GO": 10, "NO-GO": 11, "INCONCLUSIVE": 12}[data["decision"]]
    )


def test_the_valid_baseline_spec_validates(pytester: pytest.Pytester) -> None:
    """The control for the cases above: the same suite with a sane spec is valid."""
    pytester.makefile(
        ".yaml",
        releasegate=spec_yaml(
            checks=LIVE.format(extra=", weight: 2"),
            scoring="{go: 9, conditional: 7.5}",
            policy="{max_errors: 1, deadline: 30s}",
        ),
    )
    pytester.makepyfile(test_checks=OK)
    done = releasegate_cli(["validate", "releasegate.yaml"], pytester.path)
    assert done.returncode == 0, done.stdout + done.stderr
