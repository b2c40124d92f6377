"""Choosing which hooks a decision fires, and running them (or, in dark mode, not)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..decision import Verdict
from ..spec import CommandHook


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What one hook did: fired or would have fired, and how it ended."""

    name: str
    type: str
    fired: bool
    ok: bool
    returncode: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "fired": self.fired,
            "ok": self.ok,
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "duration_s": round(self.duration_s, 3),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
        }

    @property
    def summary(self) -> str:
        if not self.fired:
            return f"{self.name}: would fire (dark mode)"
        if self.ok:
            return f"{self.name}: fired, exit {self.returncode} in {self.duration_s:.2f}s"
        return f"{self.name}: FAILED ({self.error or f'exit {self.returncode}'})"


def plan_actions(hooks: list[CommandHook], verdict: Verdict) -> list[CommandHook]:
    """The hooks that this verdict selects, in spec order."""
    return [hook for hook in hooks if verdict.value in hook.on]


def run_actions(
    hooks: list[CommandHook],
    payload: dict[str, Any],
    env: dict[str, str],
    *,
    dark: bool,
    base_dir: Path,
) -> list[ActionResult]:
    """Run each hook in turn; in dark mode report what would fire and run nothing."""
    from .command import run_command

    results: list[ActionResult] = []
    for hook in hooks:
        if dark:
            results.append(ActionResult(name=hook.name, type=hook.type, fired=False, ok=True))
            continue
        results.append(run_command(hook, payload, env, base_dir=base_dir))
    return results
