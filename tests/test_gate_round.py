"""The gate round without pytest: the order of its effects and how it fails closed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from releasegate.decision import Policy, Verdict
from releasegate.gate import RoundInput, RunKind, run_round
from releasegate.model import CheckInfo, Mode, Outcome, Severity, Status
from releasegate.phases import Phase

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Hook:
    name: str
    argv: list[str]
    on: tuple[str, ...] = ("NO-GO", "INCONCLUSIVE")
    type: str = "command"
    timeout_s: float = 10.0
    env: dict[str, str] | None = None
    cwd: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", self.env or {})


def info(name: str, severity: Severity = Severity.MAJOR, source: str = "spec") -> CheckInfo:
    return CheckInfo(
        name=name,
        kind="smoke",
        severity=severity,
        weight=severity.default_weight,
        nodeid=f"test_x.py::{name}" if source == "python" else "",
        source=source,
    )


def hook_writing_what_it_sees(tmp_path: Path) -> Hook:
    """A hook that notes whether the record existed when it ran, and what it was told."""
    script = tmp_path / "hook.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            payload = json.load(sys.stdin)
            record = os.environ["RELEASEGATE_RECORD"]
            seen = {
                "record_exists": os.path.exists(record),
                "record_decision": json.load(open(record))["decision"],
                "actions_state": json.load(open(record))["actions_state"],
                "payload": payload,
            }
            open(os.path.join(os.path.dirname(__file__), "fired.json"), "w").write(
                json.dumps(seen)
            )
            """
        )
    )
    return Hook(name="rollback", argv=[sys.executable, str(script)])


def round_input(tmp_path: Path, outcomes: list[Outcome], **kwargs: object) -> RoundInput:
    fields: dict[str, object] = {
        "deployment": "shop",
        "phase": Phase.T24H,
        "mode": Mode.ENFORCE,
        "policy": Policy(),
        "expected": tuple(o.check for o in outcomes),
        "outcomes": tuple(outcomes),
        "report_dir": tmp_path / "out",
        "started_at": NOW,
        "hook_dir": tmp_path,
    }
    fields.update(kwargs)
    return RoundInput(**fields)  # type: ignore[arg-type]


def test_the_record_exists_before_the_hook_runs(tmp_path: Path) -> None:
    failed = Outcome(info("version", Severity.CRITICAL), Status.FAILED, "9.9.9")
    result = run_round(round_input(tmp_path, [failed], hooks=[hook_writing_what_it_sees(tmp_path)]))
    assert result.decision.verdict is Verdict.NO_GO
    assert result.exit_code == 11
    seen = json.loads((tmp_path / "fired.json").read_text())
    assert seen["record_exists"] and seen["record_decision"] == "NO-GO"
    assert seen["actions_state"] == "pending"  # written before the hook, rewritten after
    assert seen["payload"]["payload_version"] == 2
    assert seen["payload"]["decision"] == "NO-GO"
    assert seen["payload"]["record"] == str(result.record_path)
    record = json.loads(result.record_path.read_text())  # type: ignore[union-attr]
    assert record["actions_state"] == "done"
    assert record["actions"][0]["ok"] is True
    assert record["actual_action"] == "rollback"


def test_expected_checks_without_an_outcome_are_not_run(tmp_path: Path) -> None:
    passed = Outcome(info("a"), Status.PASSED)
    missing = info("b", Severity.MINOR)
    gone = info("c", source="python")
    result = run_round(
        round_input(
            tmp_path,
            [passed],
            expected=(passed.check, missing, gone),
            not_run={"spec:b": "not run: deselected"},
        )
    )
    assert result.decision.verdict is Verdict.INCONCLUSIVE
    statuses = {o.check.name: (o.status, o.reason) for o in result.outcomes}
    assert statuses["b"] == (Status.NOT_RUN, "not run: deselected")
    assert statuses["c"][0] is Status.NOT_RUN
    assert "no outcome was reported" in statuses["c"][1]


def test_a_record_that_cannot_be_written_fires_nothing_and_leaves_nothing_stale(
    tmp_path: Path,
) -> None:
    failed = Outcome(info("version", Severity.CRITICAL), Status.FAILED, "9.9.9")
    ok = run_round(round_input(tmp_path, [Outcome(info("version"), Status.PASSED)]))
    folder = ok.record_path.parent  # type: ignore[union-attr]
    assert (folder / "executive.html").exists()
    # The next run cannot write: the folder where the record goes is now a file's name.
    blocker = tmp_path / "out" / "shop" / "t24h" / "decision.json"
    blocker.unlink()
    blocker.mkdir()  # os.replace onto a folder fails
    result = run_round(round_input(tmp_path, [failed], hooks=[hook_writing_what_it_sees(tmp_path)]))
    assert result.record_path is None and result.record_error
    assert result.decision.verdict is Verdict.INCONCLUSIVE
    assert result.exit_code == 12
    assert not (tmp_path / "fired.json").exists()
    assert "could not be recorded" in result.decision.reasons[-1]
    for name in ("scorecard.html", "executive.html", "summary.md"):
        assert not (folder / name).exists(), name


def test_a_partial_round_writes_nothing_and_fires_nothing(tmp_path: Path) -> None:
    failed = Outcome(info("version", Severity.CRITICAL), Status.FAILED, "9.9.9")
    result = run_round(
        round_input(
            tmp_path, [failed], kind=RunKind.PARTIAL, hooks=[hook_writing_what_it_sees(tmp_path)]
        )
    )
    assert result.decision.verdict is Verdict.NO_GO
    assert result.record_path is None
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "fired.json").exists()


@pytest.mark.parametrize(("on_interrupt", "fires"), [(False, False), (True, True)])
def test_an_interrupted_round_fires_hooks_only_if_the_policy_says_so(
    tmp_path: Path, on_interrupt: bool, fires: bool
) -> None:
    passed = Outcome(info("a"), Status.PASSED)
    result = run_round(
        round_input(
            tmp_path,
            [passed],
            expected=(passed.check, info("b")),
            interrupted="SIGTERM received",
            hooks_when_interrupted=on_interrupt,
            hooks=[hook_writing_what_it_sees(tmp_path)],
        )
    )
    assert result.decision.verdict is Verdict.INCONCLUSIVE
    assert result.exit_code == 12
    assert (tmp_path / "fired.json").exists() is fires
    record = json.loads(result.record_path.read_text())  # type: ignore[union-attr]
    assert record["interrupted"] == "SIGTERM received"
    assert record["actions_state"] == ("done" if fires else "withheld")


def test_every_record_is_archived_before_it_is_replaced(tmp_path: Path) -> None:
    passed = Outcome(info("a"), Status.PASSED)
    for _ in range(3):
        result = run_round(round_input(tmp_path, [passed]))
    archive = result.record_path.parent / "archive"  # type: ignore[union-attr]
    assert len(list(archive.glob("decision-*.json"))) == 2


def test_a_nan_measurement_never_makes_invalid_json(tmp_path: Path) -> None:
    from releasegate.model import Evidence

    odd = Outcome(info("a"), Status.PASSED, evidence=(Evidence("x", float("nan")),))
    result = run_round(round_input(tmp_path, [odd]))
    json.loads(
        result.record_path.read_text(),  # type: ignore[union-attr]
        parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"),
    )


def gate_in_a_child(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gate_t24h", "-p", "no:cacheprovider", "-q"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_check_that_ignores_the_deadline_is_recorded_by_the_watchdog(tmp_path: Path) -> None:
    """Past the deadline and its grace, the record is written from the timer thread."""
    (tmp_path / "releasegate.yaml").write_text(
        "version: 1\ndeployment: {name: shop}\ntarget: {base_url: 'http://127.0.0.1:9'}\n"
        "policy: {deadline: 1s}\n"
    )
    (tmp_path / "test_stubborn.py").write_text(
        textwrap.dedent(
            """
            import time, pytest

            @pytest.mark.gate_t24h
            def test_stubborn():
                end = time.monotonic() + 20
                while time.monotonic() < end:
                    try:
                        time.sleep(0.05)
                    except KeyboardInterrupt:
                        pass  # a check that swallows the interruption
            """
        )
    )
    started = time.monotonic()
    proc = gate_in_a_child(tmp_path)
    assert time.monotonic() - started < 10
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "did not stop within" in proc.stderr
    record = json.loads((tmp_path / "reports/out/shop/t24h/decision.json").read_text())
    assert record["decision"] == "INCONCLUSIVE"
    assert record["outcomes"][0]["status"] == "not_run"


def test_a_run_killed_outright_is_recorded_by_its_watchdog(tmp_path: Path) -> None:
    """SIGKILL leaves no code of the run to record anything: its watchdog process does."""
    (tmp_path / "releasegate.yaml").write_text(
        "version: 1\ndeployment: {name: shop}\ntarget: {base_url: 'http://127.0.0.1:9'}\n"
    )
    (tmp_path / "test_killed.py").write_text(
        textwrap.dedent(
            """
            import os, signal, pytest

            @pytest.mark.gate_t24h
            def test_first():
                pass

            @pytest.mark.gate_t24h
            def test_killer():
                os.kill(os.getpid(), signal.SIGKILL)

            @pytest.mark.gate_t24h
            def test_never_reached():
                pass
            """
        )
    )
    record = tmp_path / "reports/out/shop/t24h/decision.json"
    assert gate_in_a_child(tmp_path).returncode == -9
    deadline = time.monotonic() + 15
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the watchdog writes once it sees its parent gone
    data = json.loads(record.read_text())
    assert data["decision"] == "INCONCLUSIVE"
    assert "ended without deciding" in data["interrupted"]
    statuses = {o["check"]["name"]: o["status"] for o in data["outcomes"]}
    assert statuses == {
        "test_first": "passed",
        "test_killer": "not_run",
        "test_never_reached": "not_run",
    }
