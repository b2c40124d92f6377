"""The record is written before any hook runs; a decision that cannot be recorded fires no hook,
exits 12 and leaves no report of an earlier run beside it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _adversarial import (
    ALL_VERDICTS,
    REPORT_FILES,
    assert_consistent,
    fired,
    hooks_yaml,
    make_gate,
    output,
    phase_dir,
    read_record,
    record_file,
)

FAILING = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical", on_fail="immediate_rollback")
def test_health():
    assert False, "GET /healthz: 500"

@pytest.mark.gate_t24h
def test_ok():
    pass
"""

PASSING = "import pytest\n\n@pytest.mark.gate_t24h\ndef test_ok():\n    pass\n"


@pytest.mark.parametrize(
    ("source", "decision", "code"),
    [(FAILING, "NO-GO", 11), (PASSING, "GO", 0)],
    ids=["no-go", "go"],
)
def test_the_hook_finds_the_record_already_written(
    pytester: pytest.Pytester, source: str, decision: str, code: int
) -> None:
    make_gate(pytester, source, hooks=hooks_yaml(rollback_on=ALL_VERDICTS))
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (code, decision)
    [entry] = fired(pytester.path)
    assert entry["payload_version"] == 2
    assert entry["decision"] == entry["env_decision"] == decision
    assert Path(entry["record_env"]) == record_file(pytester.path)
    assert entry["record_payload"] == entry["record_env"]
    assert entry["record_exists"] is True
    assert entry["record_decision"] == decision
    assert entry["record_actions_state"] == "pending"
    assert data["actions_state"] == "done"
    assert data["actions"][0]["fired"] is True
    assert_consistent(data, result.ret, pytester.path)


def test_a_hook_that_fails_is_exit_13_and_in_the_record(pytester: pytest.Pytester) -> None:
    make_gate(pytester, FAILING)
    (pytester.path / "hook.py").write_text("import sys\nsys.exit(3)\n")
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert data["decision"] == "NO-GO"
    assert result.ret == 13
    assert data["actions"][0]["ok"] is False
    assert data["actual_action"] is None


def _stale_reports(folder: Path) -> None:
    for name in REPORT_FILES:
        assert (folder / name).is_file(), f"the first run wrote no {name}"


def _assert_not_recorded(result: pytest.RunResult, root: Path, folder: Path) -> None:
    text = output(result)
    assert "INTERNALERROR" not in text, text[-3000:]
    assert "record: NOT WRITTEN" in text, text[-3000:]
    assert result.ret == 12, text[-3000:]
    assert fired(root) == [], text[-3000:]
    for name in REPORT_FILES:
        assert not (folder / name).exists(), f"stale {name} left beside an unwritten record"


def test_a_file_where_the_deployment_folder_should_be_fires_no_hook(
    pytester: pytest.Pytester,
) -> None:
    make_gate(pytester, FAILING)
    (pytester.path / "reports" / "out").mkdir(parents=True)
    (pytester.path / "reports" / "out" / "adv").write_text("not a folder\n")
    result = pytester.runpytest("-m", "gate_t24h")
    _assert_not_recorded(result, pytester.path, phase_dir(pytester.path))


def test_a_file_where_the_phase_folder_should_be_fires_no_hook_even_on_go(
    pytester: pytest.Pytester,
) -> None:
    make_gate(pytester, PASSING, hooks=hooks_yaml(rollback_on=ALL_VERDICTS))
    (pytester.path / "reports" / "out" / "adv").mkdir(parents=True)
    (pytester.path / "reports" / "out" / "adv" / "t24h").write_text("not a folder\n")
    result = pytester.runpytest("-m", "gate_t24h")
    _assert_not_recorded(result, pytester.path, phase_dir(pytester.path))


def test_an_unwritable_record_removes_the_earlier_runs_reports(
    pytester: pytest.Pytester,
) -> None:
    """The first run records NO-GO and renders its reports; then decision.json becomes a
    folder (a record that cannot be replaced). The second run must not fire, nor leave the
    first run's reports standing as if they were its own."""
    make_gate(pytester, FAILING)
    assert pytester.runpytest("-m", "gate_t24h").ret == 11
    folder = phase_dir(pytester.path)
    _stale_reports(folder)
    (pytester.path / "fired.jsonl").unlink()
    record = record_file(pytester.path)
    record.unlink()
    record.mkdir()
    (record / "occupied").write_text("x")
    make_gate(pytester, PASSING)
    result = pytester.runpytest("-m", "gate_t24h")
    _assert_not_recorded(result, pytester.path, folder)


def test_a_read_only_report_dir_fires_no_hook(pytester: pytest.Pytester) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the other cases cover this as root")
    make_gate(pytester, FAILING)
    parent = pytester.path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = pytester.runpytest("-m", "gate_t24h", "--rg-report-dir", str(parent / "out"))
        _assert_not_recorded(result, pytester.path, parent / "out" / "adv" / "t24h")
    finally:
        parent.chmod(0o755)


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    for name, size in (("filler", 65536), ("filler2", 1)):
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
        finally:
            os.close(fd)


def test_a_full_disk_fires_no_hook_and_leaves_no_stale_report(pytester: pytest.Pytester) -> None:
    make_gate(pytester, FAILING)
    with _tmpfs(pytester.path / "full", "256k") as out:
        folder = out / "adv" / "t24h"
        folder.mkdir(parents=True)
        for name in REPORT_FILES:
            (folder / name).write_text(f"<p>GO from an earlier run ({name})</p>\n")
        _fill(out)
        result = pytester.runpytest("-m", "gate_t24h", "--rg-report-dir", str(out))
        _assert_not_recorded(result, pytester.path, folder)
        assert not (folder / "decision.json").exists()


def test_a_disk_that_fills_after_an_earlier_run_fires_no_hook(
    pytester: pytest.Pytester,
) -> None:
    make_gate(pytester, FAILING)
    with _tmpfs(pytester.path / "full", "2m") as out:
        first = pytester.runpytest("-m", "gate_t24h", "--rg-report-dir", str(out))
        assert first.ret == 11, output(first)[-3000:]
        folder = out / "adv" / "t24h"
        _stale_reports(folder)
        (pytester.path / "fired.jsonl").unlink()
        _fill(out)
        result = pytester.runpytest("-m", "gate_t24h", "--rg-report-dir", str(out))
        _assert_not_recorded(result, pytester.path, folder)


BROKEN_TEMPLATES = {
    "syntax_error": "{% if %}broken\n",
    "undefined": "{{ no_such_thing.attribute.deeper }}\n",
    "type_error": '{{ "x" + 1 }}\n',
    "division": "{{ 1 // 0 }}\n",
}


@pytest.mark.parametrize("how", list(BROKEN_TEMPLATES))
def test_a_report_that_cannot_be_rendered_is_removed_and_the_decision_stands(
    pytester: pytest.Pytester, how: str
) -> None:
    """The first run renders its reports; the second one's scorecard template is broken. Its
    record is written, its decision's exit code stands, and none of the first run's reports
    is left beside the newer record."""
    make_gate(pytester, FAILING)
    assert pytester.runpytest("-m", "gate_t24h").ret == 11
    folder = phase_dir(pytester.path)
    _stale_reports(folder)
    first = read_record(pytester.path)
    templates = pytester.path / "templates"
    templates.mkdir()
    (templates / "scorecard.html.j2").write_text(BROKEN_TEMPLATES[how])
    make_gate(pytester, PASSING)
    result = pytester.runpytest("-m", "gate_t24h", "--rg-templates", str(templates))
    text = output(result)
    data = read_record(pytester.path)
    assert data["started_at"] != first["started_at"]
    assert data["decision"] == "GO"
    assert result.ret == 0, text[-3000:]
    assert "warning: reports not written" in text, text[-3000:]
    for name in REPORT_FILES:
        assert not (folder / name).exists(), f"stale {name} beside the newer record"
