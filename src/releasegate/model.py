"""Value objects shared by probes, the decision engine, the record and the reports.

Everything here is immutable and JSON-friendly (``to_dict``/``from_dict``) because outcomes
travel from xdist workers to the controller inside pytest reports.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .phases import Phase


class Severity(str, enum.Enum):
    """How much a failed check matters. A failed critical check alone means NO-GO."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"

    @property
    def default_weight(self) -> float:
        return {Severity.CRITICAL: 3.0, Severity.MAJOR: 2.0, Severity.MINOR: 1.0}[self]


class Status(str, enum.Enum):
    """What a check's run says: a closed set, used by the record, the reports and the terminal.

    Only PASSED is a measurement that meets its threshold. ERROR (could not measure), NO_DATA
    (measured nothing) and NOT_RUN (never ran: deselected, not collected, interrupted, lost
    worker) say nothing about the deployment: the decision fails closed on them. SKIPPED is a
    skip the check's author declared (a ``skip``/``skipif`` marker, ``skip_if`` in the spec).
    """

    PASSED = "passed"
    FAILED = "failed"
    NO_DATA = "no_data"
    ERROR = "error"
    NOT_RUN = "not_run"
    SKIPPED = "skipped"

    @property
    def rank(self) -> int:
        """Higher is better: when the parts of one check disagree, the lowest rank wins."""
        return _STATUS_RANK[self]

    @property
    def passed(self) -> bool:
        return self is Status.PASSED

    @property
    def unknown(self) -> bool:
        """The check could not say: an error, no data, or it never ran."""
        return self in (Status.ERROR, Status.NO_DATA, Status.NOT_RUN)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


_STATUS_RANK = {
    Status.PASSED: 5,
    Status.SKIPPED: 4,
    Status.NO_DATA: 3,
    Status.ERROR: 2,
    Status.NOT_RUN: 1,
    Status.FAILED: 0,
}

#: How the record and the reports order outcomes: the worst first.
STATUS_ORDER: tuple[Status, ...] = tuple(sorted(Status, key=lambda s: s.rank))

#: Kinds of check (``outcomes[].check.kind`` in the record); the pytest markers of the same name.
KINDS: dict[str, str] = {
    "smoke": "HTTP smoke checks: health, readiness, version probes and bad-input fuzzing",
    "slo": "service level objectives from metrics, endpoints, SQL and logs",
    "canary": "canary against baseline comparisons",
    "db": "database integrity checks",
    "load": "load and soak checks",
    "chaos": "steady state, fault, tolerance, recovery",
}


class Action(str, enum.Enum):
    """What a failing check asks the rollout to do, from mildest to most drastic."""

    GRADUAL_ROLLBACK = "gradual_rollback"
    IMMEDIATE_ROLLBACK = "immediate_rollback"
    EMERGENCY_STOP = "emergency_stop"

    @property
    def rank(self) -> int:
        return list(Action).index(self)


class Mode(str, enum.Enum):
    """``enforce`` acts on the decision; ``dark`` only records what it would do."""

    ENFORCE = "enforce"
    DARK = "dark"


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """What a check is, independent of how it ran."""

    name: str
    kind: str
    category: str = "general"
    severity: Severity = Severity.MAJOR
    weight: float = 2.0
    phases: tuple[Phase, ...] = ()
    on_fail: Action | None = None
    description: str = ""
    nodeid: str = ""
    source: str = "spec"

    @property
    def key(self) -> str:
        """How an expected check and its outcome are matched: spec checks by name (their node
        id depends on how pytest was invoked), Python checks by node id."""
        return f"spec:{self.name}" if self.source == "spec" else self.nodeid or self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "category": self.category,
            "severity": self.severity.value,
            "weight": self.weight,
            "phases": [p.value for p in self.phases],
            "on_fail": self.on_fail.value if self.on_fail else None,
            "description": self.description,
            "nodeid": self.nodeid,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckInfo:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            category=str(data.get("category", "general")),
            severity=Severity(data.get("severity", "major")),
            weight=float(data.get("weight", 2.0)),
            phases=tuple(Phase(p) for p in data.get("phases", ())),
            on_fail=Action(data["on_fail"]) if data.get("on_fail") else None,
            description=str(data.get("description", "")),
            nodeid=str(data.get("nodeid", "")),
            source=str(data.get("source", "spec")),
        )


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_LIMIT_TEXT = re.compile(
    r"^\s*(?P<subject>[A-Za-z_][\w .-]*?)?\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<value>-?\d+(?:\.\d+)?)\s*(?P<unit>ms|s|%|MB|KB|B)?\s*$"
)


@dataclass(frozen=True, slots=True)
class Limit:
    """A numeric threshold as a value, not text: ``latency <= 300 ms``.

    ``key`` says where the measured number sits when the evidence's value is an object
    (``latency_ms`` of an HTTP answer); without it the value itself is the number.
    """

    subject: str
    op: str
    value: float
    unit: str = ""
    key: str | None = None

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"limit operator {self.op!r}: one of {', '.join(_OPS)}")

    def holds(self, measured: float) -> bool:
        return bool(_OPS[self.op](measured, self.value))

    @property
    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.subject} {self.op} {self.value:g}{unit}".strip()

    def measured_in(self, value: Any) -> float | None:
        """The number this limit holds ``value`` to (the value, or its ``key``), if any."""
        if self.key is not None and isinstance(value, dict):
            value = value.get(self.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "op": self.op,
            "value": self.value,
            "unit": self.unit,
            # "field", not "key": a key named "key" is a secret to the redaction policy.
            "field": self.key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limit:
        return cls(
            subject=str(data.get("subject", "")),
            op=str(data["op"]),
            value=float(data["value"]),
            unit=str(data.get("unit") or ""),
            key=str(data["field"]) if data.get("field") else None,
        )

    @classmethod
    def parse(cls, text: str, value: Any = None) -> tuple[Limit, ...]:
        """The numeric limits in a threshold's text (``status 2xx; latency <= 300 ms``), for a
        Python check's free-text threshold, read once when it is recorded. Each points at the
        number it holds: ``value`` itself, or the key of ``value`` that starts with the limit's
        subject (``latency`` finds ``latency_ms``)."""
        found = []
        for part in text.split(";"):
            match = _LIMIT_TEXT.match(part)
            if match is None:
                continue
            subject = (match["subject"] or "").strip()
            key = None
            if isinstance(value, dict) and subject:
                word = subject.split()[0].lower()
                key = next((str(k) for k in value if str(k).lower().startswith(word)), None)
            found.append(cls(subject, match["op"], float(match["value"]), match["unit"] or "", key))
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a check measured, against what, and why it passed or not.

    ``measured`` says what was looked at (a request, a query, a window); ``value`` is the raw
    measurement (JSON-able), ``threshold`` what it was held to, ``reason`` one line for humans.
    """

    measured: str
    value: Any = None
    threshold: str | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    limits: tuple[Limit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured": self.measured,
            "value": self.value,
            "threshold": self.threshold,
            "limits": [limit.to_dict() for limit in self.limits],
            "reason": self.reason,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(
            measured=str(data.get("measured", "")),
            value=data.get("value"),
            threshold=data.get("threshold"),
            reason=str(data.get("reason", "")),
            details=dict(data.get("details") or {}),
            limits=tuple(Limit.from_dict(d) for d in data.get("limits") or ()),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's result: its identity, status, a one-line reason and the evidence."""

    check: CheckInfo
    status: Status
    reason: str = ""
    evidence: tuple[Evidence, ...] = ()
    duration_s: float = 0.0
    #: PASSED with a caveat (a canary regression inside its margin, a wider spread): the
    #: decision is at best CONDITIONAL GO. Only a PASSED outcome can be marginal.
    marginal: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = {
            "check": self.check.to_dict(),
            "status": self.status.value,
            "reason": self.reason,
            "evidence": [e.to_dict() for e in self.evidence],
            "duration_s": round(self.duration_s, 6),
        }
        if self.marginal:
            data["marginal"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            check=CheckInfo.from_dict(data["check"]),
            status=Status(data["status"]),
            reason=str(data.get("reason", "")),
            evidence=tuple(Evidence.from_dict(e) for e in data.get("evidence", ())),
            duration_s=float(data.get("duration_s", 0.0)),
            marginal=data.get("marginal") is True and data["status"] == Status.PASSED.value,
        )
