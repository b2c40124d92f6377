"""What a soak keeps on disk to survive a crash or a reboot, and to be resumed from.

A soak's folder (``<report dir>/soak/<deployment>/<phase>/``) holds:

* ``state.json``: the soak's settings and progress (elapsed soak time, totals, the next full
  gate, the gates run so far), rewritten atomically every interval (``files.write_atomic``):
  after a crash it is the last interval's, whole;
* ``timeline.jsonl``: one JSON line per closed timeline row, appended and fsynced as each row
  closes. A torn last line (a crash mid-write) is skipped on reading;
* the soak's ``decision.json`` and its reports once it ends; ``gates/<n>/`` for the full gates.

The row that was open at a crash is lost (at most one row width of data); the elapsed time is
the last interval's, so a resumed soak honours the duration to within one interval.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import write_atomic
from ..phases import Phase
from .timeline import Row

STATE_VERSION = 1
STATE_FILE = "state.json"
TIMELINE_FILE = "timeline.jsonl"


def soak_dir(report_dir: Path, deployment: str, phase: Phase) -> Path:
    """The soak's folder: its own, so it never overwrites the phase's record."""
    return report_dir / "soak" / deployment / phase.value


@dataclass(slots=True)
class SoakState:
    """The soak's settings (what ``--resume`` needs) and its progress."""

    run_id: str
    deployment: str
    phase: str
    spec: str
    duration_s: float
    guard_interval_s: float
    gate_every_s: float | None
    row_s: float
    #: how the load is made: locustfile, users, spawn_rate, thresholds, demo, fault_at, ...
    options: dict[str, Any]
    started_at: float  # wall clock of the first segment's start
    status: str = "running"  # running, finished
    elapsed_s: float = 0.0
    segments: int = 1
    requests: int = 0
    failures: int = 0
    rows: int = 0
    next_gate_at_s: float | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    last_interval_end: float | None = None
    #: the load generator's root process (pid and /proc start time) while it runs: a resumed
    #: soak kills what a killed soak left running
    child: dict[str, Any] | None = None
    #: wall clock when the demo's fault was switched on (``--fault-at``)
    fault_on_at: float | None = None
    version: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoakState:
        if data.get("version") != STATE_VERSION:
            raise UsageError(
                f"soak state version {data.get('version')!r}: this releasegate reads version"
                f" {STATE_VERSION}; start a new soak"
            )
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


class SoakFiles:
    """The soak folder's files: the state (atomic) and the timeline (append + fsync)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state_path = folder / STATE_FILE
        self.timeline_path = folder / TIMELINE_FILE

    def write_state(self, state: SoakState) -> None:
        write_atomic(self.state_path, json.dumps(state.to_dict(), sort_keys=True) + "\n")

    def read_state(self) -> SoakState:
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(
                f"no soak to resume: {self.state_path} does not exist (start one without --resume)"
            ) from None
        try:
            data = json.loads(text)
        except ValueError as err:
            raise UsageError(f"{self.state_path} is not JSON ({err}): start a new soak") from None
        if not isinstance(data, dict):
            raise UsageError(f"{self.state_path} is not a soak state: start a new soak")
        return SoakState.from_dict(data)

    def start_timeline(self) -> None:
        """A new soak: an empty timeline (an earlier soak's rows are not this one's)."""
        write_atomic(self.timeline_path, "")

    def append_row(self, row: Row) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(row.to_dict(), sort_keys=True) + "\n"
        with open(self.timeline_path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read_rows(self) -> list[Row]:
        """Every whole row on disk; a torn or unreadable line is skipped."""
        rows: list[Row] = []
        try:
            with open(self.timeline_path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rows.append(Row.from_dict(json.loads(line)))
                    except (ValueError, KeyError, TypeError):
                        continue
        except FileNotFoundError:
            pass
        return rows

    def truncate_torn_tail(self) -> None:
        """Before appending to a resumed timeline: drop a torn last line, so that the next row
        starts on a line of its own."""
        try:
            data = self.timeline_path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            write_atomic(self.timeline_path, data[:cut].decode("utf-8", "replace"))
