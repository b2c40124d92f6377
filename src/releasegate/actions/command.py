"""The command hook: an argv list run with the decision as JSON on stdin and in the environment.

The argv comes from the spec, never from target data, and is never given to a shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..redact import redact_text
from ..spec import CommandHook
from .result import ActionResult

_TAIL = 4000


def _tail(data: bytes | str | None) -> str:
    if not data:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return redact_text(text[-_TAIL:])


def run_command(
    hook: CommandHook, payload: dict[str, Any], env: dict[str, str], *, base_dir: Path
) -> ActionResult:
    """Run ``hook.argv`` under its timeout; any way it can go wrong ends up in the result."""
    cwd = base_dir / hook.cwd if hook.cwd else base_dir
    full_env = {**os.environ, **env, **hook.env}
    started = time.perf_counter()
    try:
        # Its own process group: on timeout the hook and whatever it started are killed
        # together (a left-over child holding the output pipes would hang the gate).
        proc = subprocess.Popen(
            hook.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
        )
        try:
            out, errs = proc.communicate(
                json.dumps(payload, default=str).encode(), timeout=hook.timeout_s
            )
        except subprocess.TimeoutExpired:
            out, errs = _kill_group(proc)
            return ActionResult(
                name=hook.name,
                type=hook.type,
                fired=True,
                ok=False,
                timed_out=True,
                duration_s=time.perf_counter() - started,
                stdout=_tail(out),
                stderr=_tail(errs),
                error=f"no exit within {hook.timeout_s:g}s: killed with its child processes",
            )
    except OSError as err:
        return ActionResult(
            name=hook.name,
            type=hook.type,
            fired=True,
            ok=False,
            duration_s=time.perf_counter() - started,
            error=f"cannot run {hook.argv[0]!r} (cwd {cwd}): {err.strerror or err}",
        )
    return ActionResult(
        name=hook.name,
        type=hook.type,
        fired=True,
        ok=proc.returncode == 0,
        returncode=proc.returncode,
        duration_s=time.perf_counter() - started,
        stdout=_tail(out),
        stderr=_tail(errs),
        error="" if proc.returncode == 0 else f"exit status {proc.returncode}",
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Kill the hook's process group and collect what it wrote, without waiting forever."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # Something escaped the group (its own session) and still holds the pipes.
        proc.kill()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()
        return b"", b""
