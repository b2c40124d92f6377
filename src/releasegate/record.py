"""The decision record: the audit file a release manager attaches to a change ticket.

Written to ``<report dir>/<deployment>/<phase>/decision.json``, redacted, atomically.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .actions import ActionResult
from .decision import Decision
from .files import archive, write_atomic
from .model import STATUS_ORDER, Mode, Outcome
from .phases import PHASE_DESCRIPTIONS, Phase
from .redact import redact_value

#: 2: statuses not_run and skipped; ``policy``, ``interrupted``, ``actions_state`` and
#: ``check.source``; every expected check has an outcome. Readers accept 1 and 2.
SCHEMA_VERSION = 2
READABLE_SCHEMAS = frozenset({1, 2})


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    deployment: str
    phase: Phase
    mode: Mode
    decision: Decision
    outcomes: tuple[Outcome, ...]
    started_at: datetime
    finished_at: datetime
    expected_version: str | None = None
    expected_commit: str | None = None
    target: str = ""
    spec_path: str = ""
    actions: tuple[ActionResult, ...] = ()
    would_action: str | None = None
    actual_action: str | None = None
    #: ``pending`` (written before the hooks run), ``done``, ``none`` (no hook for this
    #: decision), ``withheld`` (an interrupted run whose policy fires nothing), ``dark``.
    actions_state: str = "none"
    actions_planned: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        order = {status: i for i, status in enumerate(STATUS_ORDER)}
        ordered = sorted(self.outcomes, key=lambda o: (order[o.status], o.check.name))
        data = {
            "schema_version": SCHEMA_VERSION,
            "releasegate_version": __version__,
            "deployment": self.deployment,
            "phase": self.phase.value,
            "phase_description": PHASE_DESCRIPTIONS[self.phase],
            "mode": self.mode.value,
            "versions": {
                "expected": self.expected_version,
                "commit": self.expected_commit,
                **deployed_versions(self.outcomes),
            },
            "target": self.target,
            "spec": self.spec_path,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 3),
            "host": platform.node(),
            "decision": self.decision.verdict.value,
            "score": self.decision.score,
            "summary": self.decision.to_dict(),
            "policy": self.decision.policy.to_dict(),
            "interrupted": self.decision.interrupted,
            "would_action": self.would_action,
            "actual_action": self.actual_action,
            "actions_state": self.actions_state,
            "actions_planned": list(self.actions_planned),
            "actions": [a.to_dict() for a in self.actions],
            "outcomes": [o.to_dict() for o in ordered],
            **self.extra,
        }
        redacted: dict[str, Any] = redact_value(data)
        return redacted


def deployed_versions(outcomes: tuple[Outcome, ...]) -> dict[str, str]:
    """What the version probe saw deployed (``deployed``, ``deployed_commit``), if it ran."""
    found: dict[str, str] = {}
    for outcome in outcomes:
        for evidence in outcome.evidence:
            value = evidence.value
            if not isinstance(value, dict):
                continue
            for key, name in (("version", "deployed"), ("commit", "deployed_commit")):
                seen = value.get(key)
                if isinstance(seen, dict) and seen.get("actual") not in (None, ""):
                    found.setdefault(name, str(seen["actual"]))
    return found


def record_path(report_dir: Path, deployment: str, phase: Phase) -> Path:
    return report_dir / deployment / phase.value / "decision.json"


def write_record(
    record: DecisionRecord,
    report_dir: Path,
    data: dict[str, Any] | None = None,
    *,
    keep_previous: bool = True,
) -> Path:
    """Write the record atomically and durably (temp file, fsync, rename) and return its path.

    The phase's previous record is kept under ``archive/`` beside it first (``keep_previous``),
    so the folder holds every decision taken for the phase. ``data`` is ``record.to_dict()``
    when the caller has it already (it is not cheap). Raises ``OSError`` when it cannot.
    """
    path = record_path(report_dir, record.deployment, record.phase)
    payload = record.to_dict() if data is None else data
    text = dumps_record(payload)
    if keep_previous:
        archive(path, record.started_at.strftime("%Y%m%dT%H%M%S.%fZ"))
    write_atomic(path, text)
    return path


def dumps_record(payload: dict[str, Any]) -> str:
    """The record as strict JSON: indented, but one line per outcome.

    A line per outcome greps and diffs well, and keeps the encoding in C: ``json.dumps``
    with ``indent`` falls back to pure Python, ten times slower on a 10,000-check record.
    NaN and infinities are not JSON: a measurement that is one is written as a string.
    """
    try:
        return _dumps(payload)
    except ValueError:
        return _dumps(_finite(payload))


def _dumps(payload: dict[str, Any]) -> str:
    fields = []
    for key, value in payload.items():
        if key == "outcomes" and isinstance(value, list) and value:
            lines = ",\n    ".join(json.dumps(o, default=str, allow_nan=False) for o in value)
            text = f"[\n    {lines}\n  ]"
        else:
            text = json.dumps(value, indent=2, default=str, allow_nan=False)
            text = text.replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_record(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
