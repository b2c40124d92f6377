"""Shared wiring of the adversarial suite: a gate spec with hooks that leave a trace, the record,
and the invariants every gate run must keep whatever went wrong.

The suite tries to get a GO, or a hook that fires when none may, out of every way a gate run can
go wrong. Every hook of these specs appends one JSON line to ``fired.jsonl`` beside the spec, with
what it saw when it ran (the decision on stdin, the record named by ``RELEASEGATE_RECORD`` and
whether that record already existed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from _fuzzbudget import examples, tried  # noqa: F401  (the fuzzers import them here)

DEPLOYMENT = "adv"
EXIT = {"GO": 0, "CONDITIONAL GO": 10, "NO-GO": 11, "INCONCLUSIVE": 12}
PROCEEDS = ("GO", "CONDITIONAL GO")
REPORT_FILES = ("scorecard.html", "executive.html", "summary.md")
ALL_VERDICTS = "[GO, CONDITIONAL GO, NO-GO, INCONCLUSIVE]"

HOOK_SCRIPT = """\
import json, os, sys
from pathlib import Path

payload = json.load(sys.stdin)
path = os.environ.get("RELEASEGATE_RECORD", "")
record = Path(path) if path else None
exists = bool(record and record.is_file())
seen = json.loads(record.read_text()) if exists else {}
entry = {
    "hook": sys.argv[1] if len(sys.argv) > 1 else "",
    "decision": payload.get("decision"),
    "payload_version": payload.get("payload_version"),
    "interrupted": payload.get("interrupted"),
    "env_decision": os.environ.get("RELEASEGATE_DECISION"),
    "record_env": path,
    "record_payload": payload.get("record"),
    "record_exists": exists,
    "record_decision": seen.get("decision"),
    "record_actions_state": seen.get("actions_state"),
}
with open(Path(__file__).with_name("fired.jsonl"), "a") as fh:
    fh.write(json.dumps(entry) + "\\n")
"""


def hooks_yaml(rollback_on: str = "[NO-GO, INCONCLUSIVE]", advance_on: str = "") -> str:
    """A rollback hook (and, if asked, an advance hook), both running ``hook.py``."""
    py = json.dumps(sys.executable)
    lines = [
        "hooks:",
        f"  - {{name: rollback, type: command, argv: [{py}, hook.py, rollback],"
        f" on: {rollback_on}, timeout_s: 20}}",
    ]
    if advance_on:
        lines.append(
            f"  - {{name: advance, type: command, argv: [{py}, hook.py, advance],"
            f" on: {advance_on}, timeout_s: 20}}"
        )
    return "\n".join(lines) + "\n"


def spec_yaml(
    *,
    checks: str = "",
    policy: str = "",
    scoring: str = "",
    hooks: str | None = None,
    base_url: str = "http://127.0.0.1:9",
) -> str:
    """A gate spec for deployment ``adv``; ``checks`` is the YAML list under ``checks:``."""
    text = (
        "version: 1\n"
        f'deployment: {{name: {DEPLOYMENT}, version: "1.0.0"}}\n'
        f'target: {{base_url: "{base_url}", timeout_s: 2}}\n'
    )
    if scoring:
        text += f"scoring: {scoring}\n"
    if policy:
        text += f"policy: {policy}\n"
    if checks:
        text += "checks:\n" + textwrap.indent(textwrap.dedent(checks).strip("\n"), "  ") + "\n"
    text += hooks_yaml() if hooks is None else hooks
    return text


def make_gate(
    pytester: pytest.Pytester,
    checks_py: str | dict[str, str] | None = None,
    *,
    spec: str | None = None,
    **spec_kwargs: Any,
) -> None:
    """Write ``releasegate.yaml``, ``hook.py`` and the Python checks (``test_checks.py``, or a
    mapping of module name to source)."""
    pytester.makefile(".yaml", releasegate=spec if spec is not None else spec_yaml(**spec_kwargs))
    (pytester.path / "hook.py").write_text(HOOK_SCRIPT)
    if checks_py is None:
        return
    modules = {"test_checks": checks_py} if isinstance(checks_py, str) else checks_py
    for name, source in modules.items():
        (pytester.path / f"{name}.py").write_text(textwrap.dedent(source))


def phase_dir(root: Path, phase: str = "t24h", report_dir: Path | None = None) -> Path:
    return (report_dir or root / "reports" / "out") / DEPLOYMENT / phase


def record_file(root: Path, phase: str = "t24h", report_dir: Path | None = None) -> Path:
    return phase_dir(root, phase, report_dir) / "decision.json"


def read_record(root: Path, phase: str = "t24h", report_dir: Path | None = None) -> dict[str, Any]:
    path = record_file(root, phase, report_dir)
    assert path.is_file(), f"no decision record at {path}"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def fired(root: Path) -> list[dict[str, Any]]:
    """What every hook that ran wrote, in order ([] when none ran)."""
    path = root / "fired.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["check"]["name"]: o for o in data["outcomes"]}


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def assert_consistent(data: dict[str, Any], ret: int, root: Path | None = None) -> None:
    """What holds for every record: the exit code says the decision; a decision that lets the
    rollout proceed rests on no check that could not say (unless allowed by policy) and on no
    critical check that did not pass (see ``unmeasured``); every outcome is counted; a hook that
    fired saw the record already written."""
    decision = data["decision"]
    assert ret == EXIT[decision], f"exit code {ret} for decision {decision}"
    summary = data["summary"]
    assert summary["expected_checks"] == len(data["outcomes"])
    if decision in PROCEEDS:
        assert not unmeasured(data), f"{decision} although {unmeasured(data)}"
        assert data["interrupted"] in (None, "")
        assert any(o["status"] == "passed" for o in data["outcomes"])
    if root is not None:
        for entry in fired(root):
            assert entry["decision"] == decision
            assert entry["record_exists"], entry


def unearned(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The outcomes a GO or CONDITIONAL GO may not rest on: anything but passed or skipped
    (declared), unless the decision names it: ``summary.allowed`` (errors the policy allows)
    or ``summary.tolerated`` (failed non-critical checks the score tolerated)."""
    allowed = set(data["summary"].get("allowed") or ()) | set(
        data["summary"].get("tolerated") or ()
    )
    return [
        (o["check"]["name"], o["status"], o["check"]["severity"])
        for o in data["outcomes"]
        if o["status"] not in ("passed", "skipped") and o["check"]["name"] not in allowed
    ]


def unmeasured(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What a GO or CONDITIONAL GO may never rest on, whatever the score: a check that did not
    measure (error, no data, not run) unless ``summary.allowed`` lists it, a NOT RUN check at
    all, and a critical check that did not pass."""
    allowed = set(data["summary"].get("allowed") or ())
    bad = []
    for o in data["outcomes"]:
        name, status, severity = o["check"]["name"], o["status"], o["check"]["severity"]
        if status in ("passed", "skipped"):
            continue
        if status == "failed" and severity != "critical":
            continue  # measured, and scored: the score decides
        if status in ("error", "no_data") and severity != "critical" and name in allowed:
            continue
        bad.append((name, status, severity))
    return bad


def run_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_WORKER_COUNT", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def popen_pytest(root: Path, *args: str, log: str = "run") -> subprocess.Popen[bytes]:
    """``python -m pytest ARGS`` in ``root``, its output to ``root/<log>.out``."""
    out = open(root / f"{log}.out", "wb")  # noqa: SIM115 - closed by the child's exit
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:randomly", *args],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=run_env(),
        )
    finally:
        out.close()


def wait_for(path: Path, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait (bounded) until ``path`` exists; fail early if ``proc`` ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {path.name} appeared")
        time.sleep(0.05)
    pytest.fail(f"{path.name} did not appear within {timeout}s")


def finish(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for ``proc``; kill it (and fail) if it does not end within ``timeout``."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pytest.fail(f"the run did not end within {timeout}s")


def log_text(root: Path, log: str = "run") -> str:
    path = root / f"{log}.out"
    return path.read_text(errors="replace") if path.exists() else ""


_CLI = "import sys; from releasegate.cli import main; sys.exit(main())"


def releasegate_cli(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=run_env(),
    )
