"""A gate run that is interrupted (SIGTERM, SIGINT, its deadline) records INCONCLUSIVE, exits 12
and fires no hook unless its policy says ``on_interrupt: hooks``.

The runs are real processes (``python -m pytest``); the check touches ``started`` and then
sleeps, and the signal is sent once ``started`` exists.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

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
    wait_for,
)

SLEEPER = """
import time
from pathlib import Path
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
def test_fast():
    pass

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="minor")
def test_slow():
    Path("started").touch()
    {body}
"""

SLEEP = "time.sleep(30)"
# A check that swallows the interrupt and passes: the run was still interrupted.
SWALLOW = "try:\n        time.sleep(30)\n    except BaseException:\n        pass"


def _gate(pytester: pytest.Pytester, *, policy: str = "", body: str = SLEEP) -> None:
    make_gate(
        pytester,
        SLEEPER.format(body=body),
        policy=policy,
        hooks=hooks_yaml(rollback_on=ALL_VERDICTS),
    )


def _interrupt(
    pytester: pytest.Pytester, signum: int, *extra: str, timeout: float = 25.0
) -> tuple[int, str]:
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider", *extra)
    try:
        wait_for(pytester.path / "started", 30, proc)
        time.sleep(0.2)
        proc.send_signal(signum)
        code = finish(proc, timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, log_text(pytester.path)


SIGNALS = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_records_inconclusive_and_fires_no_hook(
    pytester: pytest.Pytester, name: str
) -> None:
    _gate(pytester)
    code, text = _interrupt(pytester, SIGNALS[name])
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert by_name(data)["test_slow"]["status"] == "not_run"
    assert fired(pytester.path) == [], text[-3000:]
    assert_consistent(data, code, pytester.path)


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_with_on_interrupt_hooks_fires_the_inconclusive_hook(
    pytester: pytest.Pytester, name: str
) -> None:
    _gate(pytester, policy="{on_interrupt: hooks}")
    code, text = _interrupt(pytester, SIGNALS[name])
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"]
    assert code == 12, text[-3000:]
    hooks = fired(pytester.path)
    assert [e["decision"] for e in hooks] == ["INCONCLUSIVE"], text[-3000:]
    assert hooks[0]["record_exists"]
    assert_consistent(data, code, pytester.path)


def test_sigterm_to_an_xdist_controller_records_inconclusive_and_fires_no_hook(
    pytester: pytest.Pytester,
) -> None:
    _gate(pytester)
    code, text = _interrupt(pytester, signal.SIGTERM, "-n", "2")
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert by_name(data)["test_slow"]["status"] == "not_run"
    assert fired(pytester.path) == [], text[-3000:]


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_check_that_swallows_the_interrupt_does_not_make_it_a_go(
    pytester: pytest.Pytester, name: str
) -> None:
    _gate(pytester, body=SWALLOW)
    code, text = _interrupt(pytester, SIGNALS[name])
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert fired(pytester.path) == [], text[-3000:]


def test_the_deadline_ends_a_hanging_run_inconclusive_within_seconds(
    pytester: pytest.Pytester,
) -> None:
    _gate(pytester, policy="{deadline: 2s}")
    started = time.monotonic()
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider")
    code = finish(proc, 25)
    elapsed = time.monotonic() - started
    text = log_text(pytester.path)
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert by_name(data)["test_slow"]["status"] == "not_run"
    assert fired(pytester.path) == [], text[-3000:]


def test_the_deadline_is_not_beaten_by_a_check_that_swallows_it(
    pytester: pytest.Pytester,
) -> None:
    _gate(pytester, policy="{deadline: 2s}", body=SWALLOW)
    started = time.monotonic()
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider")
    code = finish(proc, 25)
    elapsed = time.monotonic() - started
    text = log_text(pytester.path)
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert fired(pytester.path) == [], text[-3000:]


def test_the_deadline_under_xdist_ends_inconclusive_within_seconds(
    pytester: pytest.Pytester,
) -> None:
    _gate(pytester, policy="{deadline: 2s}")
    started = time.monotonic()
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider", "-n", "2")
    code = finish(proc, 40)
    elapsed = time.monotonic() - started
    text = log_text(pytester.path)
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"], text[-3000:]
    assert code == 12, text[-3000:]
    assert _recorded_after(data) < 10, data["duration_s"]
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert fired(pytester.path) == [], text[-3000:]


def _recorded_after(data: dict[str, Any]) -> float:
    """Seconds from the run's start to its record."""
    started = datetime.fromisoformat(data["started_at"])
    return (datetime.fromisoformat(data["finished_at"]) - started).total_seconds()


SLOW_TEARDOWN = """
import time
from pathlib import Path
import pytest

@pytest.fixture(scope="session")
def service():
    yield
    Path("teardown").touch()
    time.sleep(2)

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
def test_fast(service):
    pass

@pytest.mark.gate_t24h
def test_slow(service):
    Path("started").touch()
    time.sleep(30)
"""


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_second_signal_during_teardown_still_ends_inconclusive_with_12(
    pytester: pytest.Pytester, name: str
) -> None:
    """A CI runner that cancels a job signals again if the first signal does not end it at
    once; the second one lands while the fixtures are torn down."""
    make_gate(pytester, SLOW_TEARDOWN, hooks=hooks_yaml(rollback_on=ALL_VERDICTS))
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider")
    try:
        wait_for(pytester.path / "started", 30, proc)
        time.sleep(0.2)
        proc.send_signal(SIGNALS[name])
        wait_for(pytester.path / "teardown", 15, proc)
        time.sleep(0.3)
        proc.send_signal(SIGNALS[name])
        code = finish(proc, 25)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_text(pytester.path)
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    assert data["interrupted"]
    assert fired(pytester.path) == []
    assert code == 12, f"exit status {code}\n{text[-3000:]}"


def test_a_run_killed_while_its_hook_runs_leaves_a_record_saying_pending(
    pytester: pytest.Pytester,
) -> None:
    """The record is written before the hook runs: a gate killed during its hook leaves a
    record that says which hooks were about to run."""
    make_gate(
        pytester,
        "import pytest\n\n@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='critical')\n"
        "def test_bad():\n    assert False\n",
    )
    (pytester.path / "hook.py").write_text(
        "import os, signal, sys\nsys.stdin.read()\nos.kill(os.getppid(), signal.SIGKILL)\n"
    )
    proc = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider")
    code = finish(proc, 30)
    assert code == -signal.SIGKILL, log_text(pytester.path)[-3000:]
    data = read_record(pytester.path)
    assert data["decision"] == "NO-GO"
    assert data["actions_state"] == "pending"
    assert data["actions_planned"] == ["rollback"]
