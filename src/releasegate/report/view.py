"""What the scorecard shows, worked out from a decision record into value objects.

Templates only lay these out; every choice (order, grouping, what counts as a measured value
against a threshold) is made here, where it is typed and tested.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import model
from .ecdf import CanaryView, read_canary
from .sparkline import Sparkline, draw, sparklines
from .verify import INCONSISTENT, UNVERIFIED, RecordCheck

#: Worst first, as the record orders outcomes: failed, not run, error, no data, skipped, passed.
STATUS_ORDER = {status.value: i for i, status in enumerate(model.STATUS_ORDER)}
STATUS_LABELS = {status.value: status.label for status in model.Status}
#: Statuses of checks that could not say (error, no data, not run).
UNKNOWN_STATUSES = frozenset(status.value for status in model.Status if status.unknown)
# A status the record does not know sorts with the errors: it said nothing usable either.
_OTHER_STATUS = STATUS_ORDER[model.Status.ERROR.value]
SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2}
VERDICT_CSS = {
    "GO": "go",
    "CONDITIONAL GO": "cond",
    "NO-GO": "nogo",
    "INCONCLUSIVE": "inc",
    INCONSISTENT: "bad",
    UNVERIFIED: "bad",
}

# Enough to judge a request at a glance; the decision record keeps the whole excerpt.
BODY_CHARS = 2000
VALUE_CHARS = 300

# Half a column of the one-page report: its labels stay as large as the text's.
EXECUTIVE_SPARK = (320.0, 46.0)

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True, slots=True)
class Comparison:
    """A numeric measurement held to a numeric limit, e.g. latency 412 ms <= 300 ms."""

    check: str
    subject: str
    value: float
    op: str
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        """Whether the value keeps its limit (the check may still fail on something else)."""
        return bool(_OPS[self.op](self.value, self.limit))

    @property
    def pressure(self) -> float:
        """How hard the value pushes on its limit: 1 is at the limit, above 1 breaks it."""
        high, low = (self.value, self.limit) if self.op in ("<", "<=") else (self.limit, self.value)
        if low == 0:
            return 0.0 if high <= 0 else float("inf")
        return high / low

    @property
    def op_text(self) -> str:
        return {"<=": "≤", ">=": "≥"}.get(self.op, self.op)


@dataclass(frozen=True, slots=True)
class Section:
    """A labelled block of evidence text: the request, the response, a query, a window."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class EvidenceView:
    measured: str
    value: str
    threshold: str
    reason: str
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckRow:
    name: str
    kind: str
    category: str
    cat_id: str
    severity: str
    status: str
    reason: str
    description: str
    nodeid: str
    on_fail: str
    duration_s: float
    value: str
    threshold: str
    evidence: tuple[EvidenceView, ...]
    comparison: Comparison | None
    #: SLO windows (``details.steps``) drawn small, worst first; ``more_sparklines`` not drawn.
    sparklines: tuple[Sparkline, ...] = ()
    more_sparklines: int = 0
    #: PASSED with a caveat (``outcomes[].marginal``): holds the decision to CONDITIONAL GO.
    marginal: bool = False
    #: A canary check's judgement, metric by metric (``kind: canary`` only).
    canary: CanaryView | None = None

    @property
    def status_text(self) -> str:
        """The status as the reports name it: ``passed · marginal`` for a marginal pass."""
        label = STATUS_LABELS.get(self.status, self.status)
        return f"{label} · marginal" if self.marginal else label


@dataclass(frozen=True, slots=True)
class Integrity:
    """Why a report does not show a record's verdict as the record states it, or cannot vouch
    for it; ``recomputed`` is set only when the reports show it in place of ``stored``."""

    headline: str
    detail: str
    stored: str
    recomputed: str
    css: str


def integrity(check: RecordCheck) -> Integrity | None:
    """The banner for a record whose verdict cannot be shown as stored; None if it can."""
    if not check.readable:
        return Integrity(
            "UNVERIFIED RECORD: its verdict is not shown",
            check.problem_line(),
            check.stored,
            "",
            "bad",
        )
    if check.disagreements:
        return Integrity(
            "INCONSISTENT RECORD: do not act on its stored verdict",
            check.disagreement_line(),
            check.stored,
            check.recomputed_verdict,
            "bad",
        )
    if check.note:
        # The stored verdict is shown: today's, named in the note, is not set against it.
        return Integrity("VERDICT NOT RECOMPUTED", check.note, check.stored, "", "inc")
    return None


def decision_notes(record: dict[str, Any]) -> tuple[str, ...]:
    """What qualified the decision besides its reasons: the interruption (and whether it kept
    the hooks from firing), the checks that ``policy.max_errors`` allowed not to measure and
    the checks that passed with a caveat (marginal), named (the reasons only count them)."""
    summary = record.get("summary") or {}
    notes: list[str] = []
    interrupted = record.get("interrupted") or summary.get("interrupted")
    if interrupted:
        withheld = record.get("actions_state") == "withheld"
        notes.append(
            f"interrupted: {interrupted}"
            + ("; no hook fired (policy.on_interrupt is 'none')" if withheld else "")
        )
    policy = record.get("policy") or summary.get("policy") or {}
    allowed = [str(name) for name in summary.get("allowed") or ()]
    max_errors = policy.get("max_errors") if isinstance(policy, dict) else None
    if allowed:
        notes.append(
            f"allowed by policy.max_errors = {max_errors}: {', '.join(allowed)}"
            " (could not measure; not held against the decision)"
        )
    elif max_errors:
        notes.append(
            f"policy.max_errors = {max_errors}: up to {max_errors} non-critical check(s) may"
            " fail to measure; none was allowed this run"
        )
    given = summary.get("marginal")
    marginal = [str(name) for name in given] if isinstance(given, list) else []
    if marginal:
        notes.append(
            f"passed with a caveat (marginal): {', '.join(marginal)}"
            " (each holds the decision to CONDITIONAL GO at best)"
        )
    return tuple(notes)


@dataclass(frozen=True, slots=True)
class CategoryRow:
    name: str
    cat_id: str
    score: float
    met: int
    total: int
    status: str
    notes: str


def compact(value: Any, limit: int = VALUE_CHARS) -> str:
    """A short one-line text for a measured value: ``k=v, k=v`` for objects, JSON otherwise."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={_json(v)}" for k, v in value.items())
    else:
        text = _json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)  # what json.dumps gives for a finite number, at a tenth of the cost
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _headers(raw: Any) -> list[str]:
    if not isinstance(raw, dict):
        return []
    return [f"{k}: {_json(v)}" for k, v in raw.items()]


def evidence_view(
    data: dict[str, Any], steps_drawn: bool = False, shapes_drawn: frozenset[int] = frozenset()
) -> EvidenceView:
    """One piece of evidence; its details become plain-text sections, one ``<pre>`` each.

    Text rather than nested markup keeps a row to a handful of elements, which is what lets
    a 10,000-check scorecard open in a browser in about a second. ``steps_drawn``: the row
    draws the window's steps, so the text names them instead of spending its space on them;
    ``shapes_drawn``: the same for the canary metrics (by index) whose ECDFs the row draws.
    """
    details = dict(data.get("details") or {})
    if steps_drawn and isinstance(details.get("steps"), list):
        count = len(details["steps"])
        details["steps"] = f"{count} recorded, drawn in the sparkline; all in decision.json"
    if shapes_drawn and isinstance(details.get("metrics"), list):
        details["metrics"] = [
            {**m, "shape": "drawn in the chart; all in decision.json"} if i in shapes_drawn else m
            for i, m in enumerate(details["metrics"])
        ]
    sections: list[Section] = []
    request = details.pop("request", None)
    if isinstance(request, dict):
        line = f"{request.get('method', '')} {request.get('url', '')}".strip()
        sections.append(Section("request", "\n".join([line, *_headers(request.get("headers"))])))
    response = details.pop("response", None)
    if isinstance(response, dict):
        size = response.get("bytes")
        label = f"response {response.get('status', '')}" + (
            f", {size} bytes" if size is not None else ""
        )
        lines = _headers(response.get("headers"))
        body = response.get("body")
        if body is not None:
            lines += ["", compact(body, BODY_CHARS)]
        sections.append(Section(label, "\n".join(lines)))
    for key in ("query", "window"):
        if details.get(key) is not None:
            sections.append(Section(key, compact(details.pop(key), BODY_CHARS)))
    if details:
        text = json.dumps(details, indent=1, default=str, ensure_ascii=False)
        sections.append(Section("details", text[:BODY_CHARS]))
    return EvidenceView(
        measured=str(data.get("measured") or ""),
        value=compact(data.get("value")),
        threshold=str(data.get("threshold") or ""),
        reason=str(data.get("reason") or ""),
        sections=tuple(sections),
    )


def comparison(name: str, evidence: Iterable[dict[str, Any]]) -> Comparison | None:
    """The most pressing numeric limit of a check's evidence held against its measured value.

    Limits are structured in the record (``evidence[].limits``: subject, op, value, unit and
    the key of the measured number); a record written before they were (schema 1) has only
    the threshold's text, read with the same parser the evidence recorder uses.
    """
    found: list[Comparison] = []
    for item in evidence:
        value = item.get("value")
        for limit in _limits_of(item, value):
            measured = limit.measured_in(value)
            if measured is None or limit.op not in _OPS:
                continue
            found.append(
                Comparison(
                    check=name,
                    subject=limit.subject or name,
                    value=measured,
                    op=limit.op,
                    limit=limit.value,
                    unit=limit.unit,
                )
            )
    if not found:
        return None
    return max(found, key=lambda c: (not c.passed, c.pressure))


def _limits_of(item: dict[str, Any], value: Any) -> tuple[model.Limit, ...]:
    raw = item.get("limits")
    if isinstance(raw, list) and raw:
        limits = []
        for entry in raw:
            if not isinstance(entry, dict):
                continue
            try:
                limits.append(model.Limit.from_dict(entry))
            except (KeyError, TypeError, ValueError):
                continue
        return tuple(limits)
    return model.Limit.parse(str(item.get("threshold") or ""), value)


def check_rows(outcomes: Iterable[dict[str, Any]], cat_ids: dict[str, str]) -> tuple[CheckRow, ...]:
    """One row per outcome, worst status first (``STATUS_ORDER``), a marginal pass before a
    plain one; critical first within."""
    rows: list[CheckRow] = []
    for outcome in outcomes:
        given = outcome.get("check")
        check: dict[str, Any] = given if isinstance(given, dict) else {}
        evidence = [e for e in outcome.get("evidence") or () if isinstance(e, dict)]
        name = str(check.get("name", "?"))
        status = str(outcome.get("status", "error"))
        category = str(check.get("category", "general"))
        first = evidence[0] if evidence else {}
        drawn, more = sparklines(name, evidence) if _has_steps(evidence) else ((), 0)
        kind = str(check.get("kind", ""))
        canary = read_canary(evidence) if kind == "canary" else None
        shapes = canary.drawn if canary is not None else frozenset()
        rows.append(
            CheckRow(
                name=name,
                kind=kind,
                category=category,
                cat_id=cat_ids.setdefault(category, f"c{len(cat_ids)}"),
                severity=str(check.get("severity", "major")),
                status=status,
                reason=str(outcome.get("reason") or ""),
                description=str(check.get("description") or ""),
                nodeid=str(check.get("nodeid") or ""),
                on_fail=str(check.get("on_fail") or ""),
                duration_s=float(outcome.get("duration_s") or 0.0),
                value=compact(first.get("value")),
                threshold=str(first.get("threshold") or ""),
                evidence=tuple(
                    [
                        evidence_view(e, bool(drawn), shapes if i == 0 else frozenset())
                        for i, e in enumerate(evidence)
                    ]
                ),
                comparison=comparison(name, evidence),
                sparklines=drawn,
                more_sparklines=more,
                # Only a pass can be marginal (as ``model.Outcome.from_dict`` reads it).
                marginal=outcome.get("marginal") is True and status == model.Status.PASSED.value,
                canary=canary,
            )
        )
    rows.sort(
        key=lambda r: (
            STATUS_ORDER.get(r.status, _OTHER_STATUS),
            not r.marginal,  # a pass with a caveat before a plain one: it holds the decision
            SEVERITY_ORDER.get(r.severity, 3),
            r.name,
        )
    )
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class SloFocus:
    """The failed SLO check the one-page report draws, and its worst window drawn small."""

    check: CheckRow
    sparkline: Sparkline


def _has_steps(evidence: list[dict[str, Any]]) -> bool:
    """Whether any evidence records steps: a quick look, so that a row without them costs
    next to nothing (``sparklines`` reads them)."""
    for item in evidence:
        details = item.get("details")
        if type(details) is dict and type(details.get("steps")) is list:
            return True
    return False


def worst_slo(rows: Iterable[CheckRow]) -> SloFocus | None:
    """The failed check with a sparkline that matters most: the most severe, then the one
    furthest past its limit, then the one with the most breaching steps."""
    failed = [r for r in rows if r.status == model.Status.FAILED.value and r.sparklines]
    row = min(
        failed,
        key=lambda r: (
            SEVERITY_ORDER.get(r.severity, 3),
            -(r.comparison.pressure if r.comparison else 0.0),
            -r.sparklines[0].breach_count,
        ),
        default=None,
    )
    if row is None:
        return None
    worst = row.sparklines[0]
    return SloFocus(row, draw(worst.trace, EXECUTIVE_SPARK[0], EXECUTIVE_SPARK[1], worst.series))


def category_ids(summary: dict[str, Any], outcomes: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Short, CSS-safe ids for categories (names are user text and never go into a selector)."""
    names = {str(c.get("category")) for c in summary.get("categories") or ()}
    names |= {str((o.get("check") or {}).get("category", "general")) for o in outcomes}
    return {name: f"c{index}" for index, name in enumerate(sorted(names))}


def category_rows(
    summary: dict[str, Any], rows: Iterable[CheckRow], cat_ids: dict[str, str]
) -> tuple[CategoryRow, ...]:
    by_category: dict[str, list[CheckRow]] = {}
    for row in rows:
        by_category.setdefault(row.category, []).append(row)
    scores = {str(c.get("category")): c for c in summary.get("categories") or ()}
    result: list[CategoryRow] = []
    for name in sorted(set(scores) | set(by_category)):
        members = by_category.get(name, [])
        given = scores.get(name, {})
        met = int(given.get("met", sum(r.status == "passed" for r in members)))
        total = int(given.get("total", len(members)))
        score = float(given.get("score", 10.0 * met / total if total else 0.0))
        worst = min(
            (r.status for r in members),
            key=lambda s: STATUS_ORDER.get(s, _OTHER_STATUS),
            default="",
        )
        result.append(
            CategoryRow(name, cat_ids[name], score, met, total, worst or "no_data", _notes(members))
        )
    return tuple(result)


def _notes(members: list[CheckRow]) -> str:
    bad = [r for r in members if r.status != "passed"]  # already worst first
    if not members:
        return "no checks reported"
    caveats = [r.name for r in members if r.marginal]
    marginal = f" ({len(caveats)} marginal: {', '.join(caveats[:3])})" if caveats else ""
    if not bad:
        return f"all {len(members)} check(s) passed{marginal}"
    shown = ", ".join(f"{r.name} ({STATUS_LABELS.get(r.status, r.status)})" for r in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return f"{len(members) - len(bad)}/{len(members)} passed{marginal}; {shown}{more}"
