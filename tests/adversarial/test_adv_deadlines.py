"""No check gets past its own deadline into a GO: stopped in a sleep, in a busy loop, or
returning late after swallowing the stop, it is an ERROR; one that swallows every stop is ended
by the run's deadline. The runs are real processes (``python -m pytest``)."""

from __future__ import annotations

import time

import pytest
from _adversarial import (
    ALL_VERDICTS,
    assert_consistent,
    by_name,
    finish,
    fired,
    hooks_yaml,
    log_text,
    make_gate,
    popen_pytest,
    read_record,
)

CHECKS = """
import time
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
def test_fast():
    pass

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical", timeout=1)
def test_late():
    {body}
"""

BODIES = {
    "sleeps": "time.sleep(30)",
    "spins": "while True:\n        pass",
    "swallows-then-passes": "try:\n        time.sleep(30)\n    except BaseException:\n        pass",
    "swallows-then-fails": "try:\n        time.sleep(30)\n    except BaseException:\n"
    "        assert False, 'measured too late'",
}


def _run(pytester: pytest.Pytester, body: str, policy: str = "") -> tuple[int, float, str]:
    make_gate(
        pytester,
        CHECKS.format(body=body),
        policy=policy,
        hooks=hooks_yaml(rollback_on=ALL_VERDICTS),
    )
    started = time.monotonic()
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider")
    code = finish(proc, 40)
    return code, time.monotonic() - started, log_text(pytester.path)


@pytest.mark.parametrize("how", list(BODIES))
def test_a_critical_check_past_its_deadline_never_makes_a_go(
    pytester: pytest.Pytester, how: str
) -> None:
    code, elapsed, text = _run(pytester, BODIES[how])
    data = read_record(pytester.path)
    late = by_name(data)["test_late"]
    assert data["decision"] != "GO", text[-3000:]
    assert by_name(data)["test_fast"]["status"] == "passed"
    if how == "swallows-then-fails":
        # It measured a failure before it returned: that stands, and a critical one is NO-GO.
        assert late["status"] == "failed", late
        assert data["decision"] == "NO-GO"
    else:
        assert late["status"] == "error", late
        assert late["reason"].startswith("exceeded its deadline of 1s (timeout)"), late
        assert data["decision"] == "INCONCLUSIVE"
    assert late["duration_s"] < 2.5, late
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert [e["decision"] for e in fired(pytester.path)] == [data["decision"]]
    assert_consistent(data, code, pytester.path)


def test_a_check_that_swallows_every_stop_is_ended_by_the_runs_deadline(
    pytester: pytest.Pytester,
) -> None:
    body = (
        "while True:\n        try:\n            time.sleep(30)\n"
        "        except BaseException:\n            pass"
    )
    code, elapsed, text = _run(pytester, body, policy="{deadline: 3s}")
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert by_name(data)["test_late"]["status"] == "not_run"
    assert by_name(data)["test_fast"]["status"] == "passed"
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert fired(pytester.path) == [], text[-3000:]
    assert_consistent(data, code, pytester.path)
