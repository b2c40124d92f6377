"""Under xdist only the controller decides, and it decides as a single process would."""

from __future__ import annotations

import json
from typing import Any

import pytest

SPEC = 'version: 1\ndeployment: {name: big}\ntarget: {base_url: "http://127.0.0.1:9"}\n'

THOUSAND = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(category="data", severity="minor")
@pytest.mark.parametrize("i", range(1000))
def test_many(i, rg_evidence):
    rg_evidence.measure(f"row {i}", i, "i % 8 != 1")
    assert i % 8 != 1, f"row {i} is bad"
"""


def decision(pytester: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (pytester.path / "reports/out/big/t24h/decision.json").read_text()
    )
    return data


def test_a_thousand_checks_decide_the_same_with_and_without_xdist(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", releasegate=SPEC)
    pytester.makepyfile(test_many=THOUSAND)

    single = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    alone = decision(pytester)
    distributed = pytester.runpytest_subprocess(
        "-m", "gate_t24h", "-n", "2", "-p", "no:cacheprovider"
    )
    spread = decision(pytester)

    assert single.ret == distributed.ret == 10  # 125 of 1000 fail: 8.75, CONDITIONAL GO
    for key in ("decision", "score"):
        assert alone[key] == spread[key]
    assert alone["summary"] == spread["summary"]
    assert len(spread["outcomes"]) == 1000
    assert spread["summary"]["expected_checks"] == 1000
    assert [o["check"]["nodeid"] for o in alone["outcomes"]] == [
        o["check"]["nodeid"] for o in spread["outcomes"]
    ]


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("os.kill(os.getpid(), signal.SIGKILL)", "worker was lost"),
        ("os._exit(0)", "called os._exit(0)"),
    ],
    ids=["sigkill", "os_exit"],
)
def test_a_check_that_ends_its_worker_is_not_run_and_the_decision_inconclusive(
    pytester: pytest.Pytester, how: str, said: str
) -> None:
    pytester.makefile(".yaml", releasegate=SPEC)
    pytester.makepyfile(
        f"""
        import os
        import signal
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.parametrize("i", range(6))
        def test_fine(i):
            pass

        @pytest.mark.gate_t24h
        def test_crash():
            {how}
        """
    )
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-n", "2", "-p", "no:cacheprovider")
    data = decision(pytester)
    assert result.ret == 12
    assert data["decision"] == "INCONCLUSIVE"
    crashed = [o for o in data["outcomes"] if o["status"] == "not_run"]
    assert len(crashed) == 1
    assert "test_crash" in crashed[0]["check"]["nodeid"]
    assert said in crashed[0]["reason"]
    assert sum(o["status"] == "passed" for o in data["outcomes"]) == 6


def test_ambiguous_run_is_refused_under_xdist_too(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", releasegate=SPEC)
    pytester.makepyfile(
        "import pytest\n@pytest.mark.gate_t24h\n@pytest.mark.gate_t48h\ndef test_x():\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    assert result.ret == 4
    assert "no phase to decide for" in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "reports").exists()
