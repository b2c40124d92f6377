"""The command hook: an argv list run with the decision as JSON on stdin and in the environment.

The argv comes from the spec, never from target data, and is never given to a shell.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from ..redact import redact_text
from ..spec import CommandHook
from .base import ActionResult

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
        done = subprocess.run(
            hook.argv,
            input=json.dumps(payload, default=str).encode(),
            capture_output=True,
            cwd=cwd,
            env=full_env,
            timeout=hook.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        return ActionResult(
            name=hook.name,
            type=hook.type,
            fired=True,
            ok=False,
            timed_out=True,
            duration_s=time.perf_counter() - started,
            stdout=_tail(err.stdout),
            stderr=_tail(err.stderr),
            error=f"no exit within {hook.timeout_s:g}s: killed",
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
        ok=done.returncode == 0,
        returncode=done.returncode,
        duration_s=time.perf_counter() - started,
        stdout=_tail(done.stdout),
        stderr=_tail(done.stderr),
        error="" if done.returncode == 0 else f"exit status {done.returncode}",
    )
