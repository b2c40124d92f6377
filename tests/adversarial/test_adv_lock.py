"""Two gate runs of one deployment and phase at once: the second refuses at once, naming the
first, unless it was told to wait (--rg-lock-wait)."""

from __future__ import annotations

import subprocess
import time

import pytest
from _adversarial import (
    ALL_VERDICTS,
    finish,
    fired,
    hooks_yaml,
    log_text,
    make_gate,
    popen_pytest,
    read_record,
    record_file,
    wait_for,
)

HOLDER = """
import time
from pathlib import Path
import pytest

@pytest.mark.gate_t24h
def test_holds_the_phase():
    Path("started").touch()
    end = time.monotonic() + 20
    while not Path("release").exists() and time.monotonic() < end:
        time.sleep(0.05)
"""


def _start_holder(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    make_gate(pytester, HOLDER, hooks=hooks_yaml(rollback_on=ALL_VERDICTS))
    first = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider", log="first")
    wait_for(pytester.path / "started", 30, first)
    return first


def test_a_second_run_of_the_same_phase_is_refused_at_once(pytester: pytest.Pytester) -> None:
    first = _start_holder(pytester)
    try:
        began = time.monotonic()
        second = popen_pytest(
            pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider", log="second"
        )
        code = finish(second, 20)
        elapsed = time.monotonic() - began
        text = log_text(pytester.path, "second")
        assert code == 4, text[-3000:]
        assert elapsed < 10, f"refusing took {elapsed:.1f}s"
        assert "another gate run" in text, text[-3000:]
        assert f"pid {first.pid}" in text, text[-3000:]
        assert "--rg-lock-wait" in text
        # The refused run wrote nothing and fired nothing; the first one is still going.
        assert not record_file(pytester.path).exists()
        assert fired(pytester.path) == []
        assert first.poll() is None
    finally:
        (pytester.path / "release").touch()
        first_code = finish(first, 30)
    assert first_code == 0, log_text(pytester.path, "first")[-3000:]
    assert read_record(pytester.path)["decision"] == "GO"
    assert [e["decision"] for e in fired(pytester.path)] == ["GO"]


def test_a_second_run_under_xdist_is_refused_too(pytester: pytest.Pytester) -> None:
    first = _start_holder(pytester)
    try:
        second = popen_pytest(
            pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider", "-n", "2", log="second"
        )
        code = finish(second, 30)
        text = log_text(pytester.path, "second")
        assert code == 4, text[-3000:]
        assert "another gate run" in text, text[-3000:]
        assert not record_file(pytester.path).exists()
        assert fired(pytester.path) == []
    finally:
        (pytester.path / "release").touch()
        finish(first, 30)


def test_with_lock_wait_the_second_run_waits_and_then_decides(pytester: pytest.Pytester) -> None:
    first = _start_holder(pytester)
    try:
        second = popen_pytest(
            pytester.path,
            "-m",
            "gate_t24h",
            "-p",
            "no:cacheprovider",
            "--rg-lock-wait",
            "25",
            log="second",
        )
        time.sleep(1.5)
        assert second.poll() is None, log_text(pytester.path, "second")[-3000:]
    finally:
        (pytester.path / "release").touch()
        first_code = finish(first, 30)
    second_code = finish(second, 30)
    assert first_code == 0, log_text(pytester.path, "first")[-3000:]
    assert second_code == 0, log_text(pytester.path, "second")[-3000:]
    assert read_record(pytester.path)["decision"] == "GO"
    assert [e["decision"] for e in fired(pytester.path)] == ["GO", "GO"]
    # Both decisions are kept: the first one's record went to archive/.
    assert list((record_file(pytester.path).parent / "archive").glob("decision-*.json"))


def test_another_phase_of_the_same_deployment_is_not_blocked(pytester: pytest.Pytester) -> None:
    first = _start_holder(pytester)
    try:
        pytester.makepyfile(
            test_other="import pytest\n\n@pytest.mark.gate_t48h\ndef test_x():\n    pass\n"
        )
        second = popen_pytest(
            pytester.path, "-m", "gate_t48h", "-p", "no:cacheprovider", log="second"
        )
        code = finish(second, 30)
        assert code == 0, log_text(pytester.path, "second")[-3000:]
        assert read_record(pytester.path, "t48h")["decision"] == "GO"
    finally:
        (pytester.path / "release").touch()
        finish(first, 30)


def test_a_lock_left_by_a_killed_run_does_not_block_the_next(pytester: pytest.Pytester) -> None:
    """A run killed outright (SIGKILL) leaves its lock files behind; the operating system's
    lock went with the process, so the next run must go ahead."""
    first = _start_holder(pytester)
    first.kill()
    first.wait()
    second = popen_pytest(pytester.path, "-m", "gate_t24h", "-p", "no:cacheprovider", log="second")
    (pytester.path / "release").touch()
    code = finish(second, 30)
    assert code == 0, log_text(pytester.path, "second")[-3000:]
    assert read_record(pytester.path)["decision"] == "GO"
