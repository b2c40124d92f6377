"""The watchdog: a child process that records a gate run whose process died without deciding.

A run killed outright (SIGKILL, the OOM killer, a segfault in a C extension) runs no code of
its own after that, so the record would be missing and the phase's previous record would stand.
The gate session starts this watchdog in its own session; it is told the run's identity, the
checks the phase expects and each outcome as it arrives, over a pipe. When the pipe closes
without ``done``, the gate process is gone: the watchdog takes the phase lock and runs the gate
round itself on what it was told: INCONCLUSIVE, ``interrupted``, every check that did not report
NOT_RUN. Hooks fire only if ``policy.on_interrupt: hooks`` (as for any interrupted run).

Usage (by the gate session only): ``python -m releasegate.watchdog`` with the protocol on stdin:
one JSON header line, then ``expect <json CheckInfo>``, ``part <json outcome part>`` and
finally ``done``.
"""

from __future__ import annotations

import contextlib
import json

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

DONE = "done"
DIED = "the gate process ended without deciding (killed, or it crashed)"


PIPE_BYTES = 1 << 20


def _widen(stream: IO[bytes] | None) -> None:
    """A pipe of 1 MiB (Linux's default cap) instead of 64 KiB: the run never waits for the
    watchdog to read, even while the watchdog is still starting."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if stream is None or set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), set_size, PIPE_BYTES)


class Watchdog:
    """The gate session's end of the pipe; every write is best effort (a dead watchdog must
    never break the run it watches)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(cls, header: dict[str, Any]) -> Watchdog | None:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "releasegate.watchdog"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C or kill of the run's group must spare it
            )
        except OSError:
            return None
        _widen(proc.stdin)
        watchdog = cls(proc)
        watchdog._send(json.dumps(header, default=str))
        return watchdog

    def _send(self, line: str) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            return
        try:
            stdin.write(line.encode("utf-8") + b"\n")
            stdin.flush()
        except (OSError, ValueError):
            self.proc.stdin = None

    def expect(self, check: dict[str, Any]) -> None:
        self._send("expect " + json.dumps(check, default=str))

    def part(self, nodeid: str, part_json: str) -> None:
        self._send(f"part {json.dumps(nodeid)}\t{part_json}")

    def done(self) -> None:
        """The run decided: the watchdog ends without writing anything."""
        self._send(DONE)
        stdin, self.proc.stdin = self.proc.stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


Parts = list[tuple[str, dict[str, Any]]]


def _read(stream: IO[bytes]) -> tuple[dict[str, Any], list[dict[str, Any]], Parts, bool]:
    header: dict[str, Any] = {}
    expected: list[dict[str, Any]] = []
    parts: Parts = []
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line == DONE:
            return header, expected, parts, True
        try:
            if not header:
                header = json.loads(line)
            elif line.startswith("expect "):
                expected.append(json.loads(line[7:]))
            elif line.startswith("part "):
                nodeid, _, part = line[5:].partition("\t")
                parts.append((json.loads(nodeid), json.loads(part)))
        except ValueError:
            continue  # a line cut short by the death of the writer
    return header, expected, parts, False


def record_death(header: dict[str, Any], expected: list[dict[str, Any]], parts: Parts) -> int:
    """Run the gate round on what the dead run had said; returns its exit code."""
    from datetime import datetime

    from .decision import Policy
    from .files import PhaseLock
    from .gate import RoundInput, run_round
    from .model import CheckInfo, Mode
    from .outcomes import merge_parts
    from .phases import Phase

    phase = Phase(header["phase"])
    report_dir = Path(header["report_dir"])
    hooks: list[Any] = []
    if header.get("hooks_when_interrupted") and header.get("spec_path"):
        from .loader import load_spec

        hooks = list(load_spec(header["spec_path"]).spec.hooks)
    inp = RoundInput(
        deployment=header["deployment"],
        phase=phase,
        mode=Mode(header["mode"]),
        policy=Policy.from_dict(header["policy"]),
        expected=tuple(CheckInfo.from_dict(c) for c in [*header.get("expected", []), *expected]),
        outcomes=tuple(merge_parts(parts)),
        report_dir=report_dir,
        started_at=datetime.fromisoformat(header["started_at"]),
        interrupted=DIED,
        hooks_when_interrupted=bool(header.get("hooks_when_interrupted")),
        hooks=hooks,
        hook_dir=Path(header.get("hook_dir") or "."),
        templates=tuple(Path(t) for t in header.get("templates", ())),
        expected_version=header.get("expected_version"),
        expected_commit=header.get("expected_commit"),
        target=header.get("target", ""),
        spec_path=header.get("spec_path", ""),
        extra=header.get("extra") or {},
    )
    folder = report_dir / inp.deployment / phase.value
    lock = PhaseLock(folder, f"{inp.deployment} phase {phase.value}")
    lock.acquire(wait_s=30.0)  # the dead run's lock went with it; a newer run may hold it
    try:
        result = run_round(inp)
    finally:
        lock.release()
    where = result.record_path or f"nowhere ({result.record_error})"
    print(
        f"releasegate watchdog: {DIED}: recorded {result.decision.verdict.value} in {where}",
        file=sys.stderr,
        flush=True,
    )
    return result.exit_code


def main() -> int:
    header, expected, parts, finished = _read(sys.stdin.buffer)
    if finished or not header:
        return 0
    try:
        return record_death(header, expected, parts)
    except Exception as err:  # the last word of a dead run: say what went wrong, never hang
        print(f"releasegate watchdog: could not record the dead run: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
