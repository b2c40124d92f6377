"""The ``log_pattern`` sources besides a plain file: a real command's output read for the window
(and killed with everything it started), and the systemd journal, through journalctl or a
``journalctl -o json`` export being written and rotated."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from releasegate import proctree
from releasegate.model import Status
from releasegate.phases import Phase
from releasegate.probes import logs
from releasegate.probes.base import ProbeContext, ProbeResult, probe_for, run_check
from releasegate.spec import Spec
from releasegate.target import TargetClient

PATTERNS = {
    "good": [r"\[INFO\]"],
    "concerning": [r"\[WARNING\]"],
    "bad": [r"\[(ERROR|CRITICAL)\]"],
}


def spec(check: dict[str, Any]) -> Spec:
    data = {
        "deployment": {"name": "shop"},
        "target": {"base_url": "http://127.0.0.1:9"},
        "checks": [{"name": "log", "phases": ["t24h"], "type": "log_pattern", **check}],
    }
    return Spec.model_validate(data)


def probe(check: dict[str, Any]) -> ProbeResult:
    parsed = spec({"patterns": PATTERNS, "for": "1s", **check})
    ctx = ProbeContext(
        spec=parsed,
        target=TargetClient(base_url="http://127.0.0.1:9", timeout_s=3),
        phase=Phase.T24H,
    )
    return run_check(parsed.checks[0], ctx)


def python(code: str, *args: str) -> list[str]:
    """The argv of a Python program (this interpreter), with ``args`` as its sys.argv[1:]."""
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def evidence(result: ProbeResult) -> dict[str, Any]:
    return result.evidence[0].to_dict()


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie left to an init that does not reap is gone)."""
    found = proctree.read_stat(pid)
    return found is None or found.dead


LOOP = """
import sys, time
while True:
    for line in sys.argv[1:]:
        print(line, flush=True)
    time.sleep(0.05)
"""


# ------------------------------------------------------------------------------- a command


@pytest.mark.parametrize(
    ("lines", "extra", "expected"),
    [
        (["2026 [INFO] GET /api 200"], {}, Status.PASSED),
        (["2026 [INFO] ok", "2026 [ERROR] boom"], {}, Status.FAILED),
        (["2026 [WARNING] slow"], {"concerning_rate": "<= 20/hr"}, Status.FAILED),
        (["2026 [WARNING] slow", "2026 [INFO] ok"], {"concerning_rate": "<= 100/s"}, Status.PASSED),
    ],
)
def test_a_commands_lines_are_classed_over_the_window(
    lines: list[str], extra: dict[str, Any], expected: Status
) -> None:
    started = time.monotonic()
    result = probe({"command": python(LOOP, *lines), **extra})
    took = time.monotonic() - started
    assert result.status is expected, result.reason
    assert 1.0 <= took < 4.0
    found = evidence(result)
    assert found["value"]["lines"] >= 5
    details = found["details"]
    assert details["source"] == {"command": python(LOOP, *lines)}
    assert details["exit_status"] is None  # still running at the window's end: killed
    assert details["processes_killed"] >= 1
    assert details["bytes_read"] > 0 and details["capped"] is False
    if expected is Status.FAILED and "2026 [ERROR] boom" in lines:
        assert details["examples"]["bad"][0] == "2026 [ERROR] boom"


def test_a_child_that_ignores_sigterm_and_leaves_the_session_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = """
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        # Leave the command's session and pipes: only the run token in its environment is left
        # to tell that it belongs to the command.
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open(sys.argv[1], "w") as fh:
            fh.write(str(os.getpid()))
        while True:
            time.sleep(1)
    while True:
        print("2026 [INFO] ok", flush=True)
        time.sleep(0.05)
    """
    result = probe({"command": python(code, str(pid_file))})
    assert result.status is Status.PASSED, result.reason
    assert evidence(result)["details"]["processes_killed"] >= 2
    child = int(pid_file.read_text())
    assert gone(child)


def test_the_check_deadline_ends_the_window_and_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "cmd.pid"
    code = """
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(sys.argv[1], "w") as fh:
        fh.write(str(os.getpid()))
    while True:
        print("2026 [INFO] ok", flush=True)
        time.sleep(0.05)
    """
    started = time.monotonic()
    result = probe({"command": python(code, str(pid_file)), "for": "30s", "timeout": "1.5s"})
    assert time.monotonic() - started < 3.0
    assert result.status is Status.ERROR, result.reason
    assert "the check's deadline ended the window" in result.reason
    assert evidence(result)["value"]["good"] >= 5  # what it read is kept
    assert gone(int(pid_file.read_text()))


def test_a_command_failing_before_the_window_ends_is_an_error_with_its_stderr() -> None:
    code = """
    import sys
    print("2026 [INFO] starting", flush=True)
    print("fatal: cannot reach the API server, token=s3cr3t-value", file=sys.stderr)
    sys.exit(3)
    """
    started = time.monotonic()
    result = probe({"command": python(code), "for": "10s"})
    assert time.monotonic() - started < 5  # not waiting out a window nothing can come in
    assert result.status is Status.ERROR, result.reason
    assert "exited with status 3: fatal: cannot reach the API server" in result.reason
    assert "s3cr3t-value" not in json.dumps(evidence(result))
    details = evidence(result)["details"]
    assert details["exit_status"] == 3
    assert evidence(result)["value"]["good"] == 1


@pytest.mark.parametrize(("printed", "expected"), [(3, Status.PASSED), (0, Status.NO_DATA)])
def test_a_command_exiting_0_early_ends_the_source(printed: int, expected: Status) -> None:
    code = (
        """
    import sys
    for _ in range(int(sys.argv[1])):
        print("2026 [INFO] ok")
    sys.stdout.write("2026 [INFO] last, without a newline")
    """
        if printed
        else "pass"
    )
    started = time.monotonic()
    result = probe({"command": python(code, str(printed)), "for": "10s"})
    assert time.monotonic() - started < 5
    assert result.status is expected, result.reason
    assert "exited with status 0" in result.reason
    assert evidence(result)["details"]["exit_status"] == 0
    assert evidence(result)["value"]["good"] == (printed + 1 if printed else 0)


def test_a_silent_command_is_no_data_and_a_missing_one_an_error() -> None:
    silent = probe({"command": python("import time; time.sleep(60)"), "for": "0.5s"})
    assert silent.status is Status.NO_DATA, silent.reason
    assert evidence(silent)["details"]["exit_status"] is None
    missing = probe({"command": ["releasegate-no-such-program", "-f"]})
    assert missing.status is Status.ERROR
    assert "command not found: 'releasegate-no-such-program'" in missing.reason


@pytest.mark.parametrize(
    ("line", "expected"), [("2026 [INFO] ok", Status.ERROR), ("2026 [ERROR] boom", Status.FAILED)]
)
def test_reading_stops_at_max_read_bytes_and_the_check_cannot_pass(
    line: str, expected: Status
) -> None:
    code = """
    import sys
    chunk = (sys.argv[1] + "\\n") * 1000
    while True:
        sys.stdout.write(chunk)
        sys.stdout.flush()
    """
    started = time.monotonic()
    result = probe({"command": python(code, line), "for": "10s", "max_read_bytes": 100_000})
    assert time.monotonic() - started < 5
    assert result.status is expected, result.reason
    assert "read max_read_bytes (100000 bytes)" in result.reason
    details = evidence(result)["details"]
    assert details["bytes_read"] == 100_000
    assert details["capped"] is True
    assert evidence(result)["value"]["lines"] == 100_000 // (len(line) + 1)


def test_an_overlong_line_is_cut_and_counted_once() -> None:
    code = """
    import sys, time
    out = sys.stdout.buffer
    out.write(b"2026 [ERROR] " + b"x" * 100_000)
    out.flush()
    time.sleep(0.2)
    out.write(b"y" * 100_000 + b"\\n2026 [INFO] after it\\n")
    out.flush()
    time.sleep(60)
    """
    result = probe({"command": python(code), "max_line_bytes": 1000})
    assert result.status is Status.FAILED, result.reason
    found = evidence(result)
    counted = {k: found["value"][k] for k in ("bad", "good", "other", "lines")}
    assert counted == {"bad": 1, "good": 1, "other": 0, "lines": 2}
    assert found["details"]["overlong_lines"] == 1
    assert found["details"]["examples"]["bad"][0] == "2026 [ERROR] " + "x" * 287


@pytest.mark.parametrize(("merge", "expected"), [(False, Status.PASSED), (True, Status.FAILED)])
def test_stderr_is_read_only_when_asked(merge: bool, expected: Status) -> None:
    code = """
    import sys, time
    while True:
        print("2026 [INFO] ok", flush=True)
        print("2026 [ERROR] on stderr", file=sys.stderr, flush=True)
        time.sleep(0.05)
    """
    result = probe({"command": python(code), "stderr": merge})
    assert result.status is expected, result.reason
    value = evidence(result)["value"]
    assert value["good"] >= 5
    assert (value["bad"] >= 5) is merge


# ------------------------------------------------------------------------------ the journal


def entry(message: Any, **fields: str) -> str:
    return json.dumps({"__CURSOR": "s=1", "PRIORITY": "6", **fields, "MESSAGE": message})


def test_a_journal_export_is_followed_across_rotation(tmp_path: Path) -> None:
    export = tmp_path / "shop.json"
    export.write_text(entry("2026 [ERROR] before the window: not counted") + "\n")
    after_rotation = [
        entry(list(b"2026 [ERROR] binary \xff payload")),
        entry("2026 [INFO] ok"),
        "-- not a journal entry --",
        json.dumps({"__CURSOR": "s=2"}),  # no MESSAGE: skipped
    ]
    stop = threading.Event()

    def write() -> None:
        stop.wait(0.2)  # the window has started: every entry written is the window's
        for i in range(1000):
            if stop.is_set():
                return
            if i == 7:  # rotate by rename, as logrotate does
                export.rename(export.with_suffix(".1"))
            line = entry("2026 [INFO] ok") if i < 7 else after_rotation[i % 4]
            with export.open("a") as fh:
                fh.write(line + "\n")
            stop.wait(0.05)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        result = probe({"journald": {"file": str(export)}, "for": "2s"})
    finally:
        stop.set()
        thread.join()
    assert result.status is Status.FAILED, result.reason  # only the new file has ERRORs
    found = evidence(result)
    assert found["value"]["good"] >= 8
    assert found["details"]["examples"]["bad"][0] == "2026 [ERROR] binary \ufffd payload"
    assert found["details"]["not_json"] >= 1
    assert found["value"]["other"] == 0  # entries without a MESSAGE are not lines
    assert found["details"]["source"] == {"journald": {"file": str(export)}}


def test_a_journal_export_without_entries_says_why_it_is_no_data(tmp_path: Path) -> None:
    export = tmp_path / "shop.json"
    export.write_text("2026 [ERROR] written with -o cat, not -o json\n")
    result = probe({"journald": {"file": str(export)}, "from_start": True, "for": "0.3s"})
    assert result.status is Status.NO_DATA, result.reason
    assert "1 line(s) were not journal JSON entries" in result.reason


def _journalctl_works() -> str | None:
    """Why the live journald form cannot be tried here, or None when it can."""
    if shutil.which("journalctl") is None:
        return "journalctl is not installed"
    try:
        done = subprocess.run(
            ["journalctl", "--lines=0", "-o", "json"], capture_output=True, timeout=10, check=False
        )
    except subprocess.TimeoutExpired:
        return "journalctl --lines=0 -o json did not answer"
    return None if done.returncode == 0 else f"journalctl --lines=0 fails: {done.stderr[:200]!r}"


def test_a_unit_is_followed_through_journalctl() -> None:
    why_not = _journalctl_works()
    if why_not is not None:
        pytest.skip(why_not)
    unit = "releasegate-test-no-such.service"
    result = probe({"journald": {"unit": unit, "identifier": "shop"}, "for": "0.5s"})
    # A unit that never logged: the real journalctl followed it for the window, then was killed.
    assert result.status is Status.NO_DATA, result.reason
    details = evidence(result)["details"]
    assert details["source"] == {
        "journald": {
            "unit": unit,
            "identifier": "shop",
            "command": [
                "journalctl",
                "--follow",
                "--lines=0",
                "--output=json",
                "--quiet",
                f"--unit={unit}",
                "--identifier=shop",
            ],
        }
    }
    assert details["exit_status"] is None
    assert details["processes_killed"] >= 1


def test_no_journalctl_is_an_error_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # the command's PATH: an empty folder
    result = probe({"journald": {"unit": "shop.service"}})
    assert result.status is Status.ERROR
    assert result.reason.startswith("journalctl not found")


# --------------------------------------------------------------------- the spec, the splitter


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"command": "kubectl logs -f deploy/shop"}, "give the command as an argv list"),
        ({"file": "a.log", "command": ["tail"]}, "exactly one source: file, command or journald"),
        ({}, "give exactly one source: file, command or journald"),
        ({"command": [""]}, "the program (the first item) is empty"),
        ({"file": "a.log", "stderr": True}, "stderr: applies to a command source only"),
        ({"command": ["tail"], "from_start": True}, "from_start: applies to a file"),
        ({"journald": {"unit": "shop.service"}, "from_start": True}, "from_start: applies"),
        ({"journald": {"unit": "a", "file": "x.json"}}, "not both"),
        ({"journald": {}}, "give unit: (e.g. shop.service) and/or identifier:, or file:"),
        ({"journald": {"unit": "a\nb"}}, "must be one line"),
    ],
)
def test_the_spec_takes_exactly_one_well_formed_source(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        spec({"patterns": PATTERNS, "for": "1s", **fields})
    assert message in str(raised.value)
    if "file" in fields and "command" in fields:
        assert "(got file, command)" in str(raised.value)


def test_the_probe_is_registered_in_its_module() -> None:
    assert probe_for("log_pattern") is logs.probe_log_pattern


def test_the_splitter_completes_cuts_and_caps_lines() -> None:
    split = logs.LineSplitter(max_line=8, max_bytes=40)
    assert split.feed(b"ab") == []
    assert split.feed(b"c\r\nde") == ["abc"]  # a line across reads, once complete
    assert split.feed(b"fghijklmnop") == ["defghijk"]  # cut at 8 bytes...
    assert split.feed(b"qrs\nok\n") == ["ok"]  # ...and its rest is not another line
    assert split.overlong == 1
    assert split.feed(b"tail") == []
    assert split.flush() == ["tail"]
    assert (split.bytes_read, split.room, split.capped) == (29, 11, False)
    split.feed(b"x" * 11)
    assert split.capped and split.room == 0
