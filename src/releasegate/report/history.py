"""The other phases and earlier runs of the same deployment, for the executive report.

Records live at ``<report dir>/<deployment>/<phase>/decision.json``; each phase keeps only its
latest record, so every rendered run also leaves one line in ``<deployment>/runs.jsonl``: that
is what the "across runs" chart reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..phases import PHASE_DESCRIPTIONS, Phase
from .verify import load_record, shown_record, verify_record

RUNS_FILE = "runs.jsonl"
RECORD_FILE = "decision.json"


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One phase of the cadence: its latest decision, or ``None`` if it has not run yet."""

    phase: str
    description: str
    hours: int
    decision: str | None = None
    score: float | None = None
    mode: str | None = None
    finished_at: str | None = None
    current: bool = False
    upcoming: bool = False


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One gate run: which phase, what it decided, when."""

    phase: str
    decision: str
    score: float
    mode: str
    finished_at: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> RunEntry:
        return cls(
            phase=str(record.get("phase", "")),
            decision=str(record.get("decision", "")),
            score=float(record.get("score") or 0.0),
            mode=str(record.get("mode", "")),
            finished_at=str(record.get("finished_at", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "decision": self.decision,
            "score": self.score,
            "mode": self.mode,
            "finished_at": self.finished_at,
        }


def deployment_dir(record: dict[str, Any], record_dir: Path) -> Path | None:
    """The deployment folder holding ``record_dir``, if the record sits in the standard layout."""
    if record_dir.name == record.get("phase") and record_dir.parent.name == record.get(
        "deployment"
    ):
        return record_dir.parent
    return None


def _read(path: Path) -> dict[str, Any] | None:
    """Another phase's record as the reports may show it, or None if it cannot be read.

    A half-written or foreign file must not stop the report of the run at hand; an edited one
    shows INCONSISTENT here as it does in its own reports.
    """
    loaded = load_record(path)
    if loaded.problem is not None:
        return None
    check = verify_record(loaded.data)
    return shown_record(loaded.data, check) if check.readable else None


def _same_release(earlier: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether ``earlier`` decided for the deployment and version that ``record`` decides for.

    Records are kept per deployment name and phase, so the t8h record on disk may be the
    previous release's: it is not a phase this release has completed.
    """
    if earlier.get("deployment") != record.get("deployment"):
        return False
    mine, theirs = record.get("versions"), earlier.get("versions")
    if not isinstance(mine, dict) or not isinstance(theirs, dict):
        return True  # an older or sparse record: nothing to compare
    return all(
        not mine.get(key) or mine.get(key) == theirs.get(key) for key in ("expected", "commit")
    )


def phase_results(record: dict[str, Any], deployment: Path | None) -> tuple[PhaseResult, ...]:
    """Every phase of the cadence, in order, with the latest decision of those that ran.

    The record being rendered stands for its own phase (it may be newer than the file on disk);
    phases after it are marked ``upcoming`` whether or not an older record of them exists, and
    an earlier phase's record counts only if it is of the same version and commit.
    """
    current = str(record.get("phase", ""))
    order = [p.value for p in Phase]
    position = order.index(current) if current in order else len(order)
    results: list[PhaseResult] = []
    for index, phase in enumerate(Phase):
        base = PhaseResult(phase.value, PHASE_DESCRIPTIONS[phase], phase.hours)
        if phase.value == current:
            data: dict[str, Any] | None = record
        elif index < position and deployment is not None:
            data = _read(deployment / phase.value / RECORD_FILE)
        else:
            data = None
        if data is None or not _same_release(data, record):
            results.append(replace(base, upcoming=index > position))
            continue
        results.append(
            replace(
                base,
                decision=str(data.get("decision", "")),
                score=float(data.get("score") or 0.0),
                mode=str(data.get("mode", "")),
                finished_at=str(data.get("finished_at", "")),
                current=phase.value == current,
            )
        )
    return tuple(results)


def read_runs(deployment: Path | None) -> tuple[RunEntry, ...]:
    """The runs logged for this deployment, oldest first (unreadable lines are skipped)."""
    if deployment is None:
        return ()
    try:
        lines = (deployment / RUNS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ()
    runs: list[RunEntry] = []
    for line in lines:
        try:
            data = json.loads(line)
            runs.append(RunEntry.of(data))
        except (ValueError, TypeError, AttributeError):
            continue
    return tuple(sorted(runs, key=lambda r: r.finished_at))


def log_run(record: dict[str, Any], deployment: Path | None) -> tuple[RunEntry, ...]:
    """Add this run to ``runs.jsonl`` unless it is there already (re-rendering adds nothing)."""
    runs = read_runs(deployment)
    entry = RunEntry.of(record)
    if entry in runs:
        return runs
    if deployment is not None:
        # One short line in append mode: concurrent gate runs of other phases do not clobber it.
        with (deployment / RUNS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry.to_dict()) + "\n")
    return tuple(sorted((*runs, entry), key=lambda r: r.finished_at))
