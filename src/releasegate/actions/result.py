"""What one action did: fired (or would have fired, in dark mode) and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    #: bytes of each stream dropped between the head and the tail that ``stdout``/``stderr`` keep
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    #: processes of the hook's tree killed: all of it on a timeout, what it left running otherwise
    killed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
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
        if self.fired:  # what only a hook that ran can tell
            data["stdout_dropped"] = self.stdout_dropped
            data["stderr_dropped"] = self.stderr_dropped
            data["killed"] = self.killed
        return data

    @property
    def summary(self) -> str:
        if not self.fired:
            return f"{self.name}: would fire (dark mode)"
        if self.ok:
            return f"{self.name}: fired, exit {self.returncode} in {self.duration_s:.2f}s"
        return f"{self.name}: FAILED ({self.error or f'exit {self.returncode}'})"
