"""The gate round, without pytest: inventory + outcomes + policy + mode -> decision -> record ->
actions -> reports -> exit code.

The pytest plugin gathers outcomes and calls ``run_round`` once; the soak runner, canary and
rollout controllers call it as often as they decide. The order is the contract:

1. every expected check gets an outcome: one that never reported is NOT_RUN, with the reason;
2. ``decide`` (pure);
3. a partial run stops here: it shows the decision it would take and writes nothing;
4. the record is written atomically **before** any hook acts; a record that cannot be written
   means no hook fires and the round ends INCONCLUSIVE;
5. the hooks run (dark mode: none, only recorded as would-fire; an interrupted run fires them
   only when its policy says so), and the record is rewritten with what they did;
6. the reports are rendered from the record; one that cannot be rendered is removed, never
   left stale beside a newer record;
7. the exit code.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from . import exitcodes
from .actions import ActionResult, plan_actions, run_actions
from .actions.base import HookSpec
from .decision import Decision, Policy, Verdict, decide
from .model import CheckInfo, Mode, Outcome, Severity, Status
from .phases import Phase
from .record import DecisionRecord, record_path, write_record
from .redact import redact_text

#: The JSON a hook reads on stdin (documented in docs/hooks.md). 2: ``decision`` (the record's
#: word) besides the deprecated ``verdict``; ``record``; ``interrupted``.
HOOK_PAYLOAD_VERSION = 2
REPORT_FILES = ("scorecard.html", "executive.html", "summary.md")


class RunKind(str, enum.Enum):
    """A ``gate`` run records and acts; a ``partial`` run only shows what it would decide."""

    GATE = "gate"
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class RoundInput:
    deployment: str
    phase: Phase
    mode: Mode
    policy: Policy
    expected: tuple[CheckInfo, ...]
    outcomes: tuple[Outcome, ...]
    report_dir: Path
    started_at: datetime
    kind: RunKind = RunKind.GATE
    #: CheckInfo.key -> why that expected check did not run (deselected, not collected, ...)
    not_run: Mapping[str, str] = field(default_factory=dict)
    #: why the run ended before its checks did (a signal, the deadline), if it did
    interrupted: str | None = None
    #: fire the INCONCLUSIVE hooks of an interrupted run (``policy.on_interrupt: hooks``)
    hooks_when_interrupted: bool = False
    hooks: Sequence[HookSpec] = ()
    hook_dir: Path = Path(".")
    templates: tuple[Path, ...] = ()
    expected_version: str | None = None
    expected_commit: str | None = None
    target: str = ""
    spec_path: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: pytest's own exit status when it is one that must be kept (3 internal error, 4 usage)
    kept_exit: int | None = None


@dataclass(slots=True)
class RoundResult:
    decision: Decision
    outcomes: tuple[Outcome, ...]
    kind: RunKind
    exit_code: int
    record_path: Path | None = None
    record_error: str | None = None
    actions: list[ActionResult] = field(default_factory=list)
    actions_note: str = ""
    report_paths: list[Path] = field(default_factory=list)
    report_error: str | None = None
    removed: list[Path] = field(default_factory=list)


class RoundListener(Protocol):
    """What a caller may hear of a round (the pytest plugin turns these into its hooks)."""

    def decided(self, decision: Decision) -> Decision | None: ...
    def acted(self, result: ActionResult) -> None: ...
    def recorded(self, record: DecisionRecord, path: Path) -> None: ...


class _Silent:
    def decided(self, decision: Decision) -> Decision | None:
        return None

    def acted(self, result: ActionResult) -> None:
        return None

    def recorded(self, record: DecisionRecord, path: Path) -> None:
        return None


def complete_outcomes(
    expected: Iterable[CheckInfo],
    outcomes: Iterable[Outcome],
    not_run: Mapping[str, str] = {},
    default_reason: str = "no outcome was reported for this check",
) -> tuple[Outcome, ...]:
    """Every expected check with its outcome; a check that never reported is NOT_RUN."""
    reported = list(outcomes)
    seen = {o.check.key for o in reported}
    missing = [
        Outcome(info, Status.NOT_RUN, not_run.get(info.key, default_reason))
        for info in expected
        if info.key not in seen
    ]
    return tuple(reported + missing)


def hook_payload(
    inp: RoundInput, decision: Decision, would_action: str | None, path: Path
) -> dict[str, Any]:
    return {
        "payload_version": HOOK_PAYLOAD_VERSION,
        "deployment": inp.deployment,
        "phase": inp.phase.value,
        "mode": inp.mode.value,
        "decision": decision.verdict.value,
        **decision.to_dict(),
        "would_action": would_action,
        "record": str(path),
    }


def run_round(inp: RoundInput, listener: RoundListener | None = None) -> RoundResult:
    """Decide, record, act, report; see the module docstring for the order and its reasons."""
    listener = listener or _Silent()
    default_reason = (
        f"not run: the run was interrupted ({inp.interrupted})"
        if inp.interrupted
        else "no outcome was reported (the run stopped early: -x/--maxfail, a crash, or a lost"
        " worker)"
    )
    outcomes = complete_outcomes(inp.expected, inp.outcomes, inp.not_run, default_reason)
    decision = decide(outcomes, inp.policy, interrupted=inp.interrupted)
    replaced = listener.decided(decision)
    if replaced is not None:
        decision = replaced

    if inp.kind is RunKind.PARTIAL:
        return RoundResult(decision, outcomes, inp.kind, exit_code=_exit_code(inp, decision, []))

    dark = inp.mode is Mode.DARK
    would_action: str | None = None
    if not decision.verdict.proceeds:
        would_action = decision.action.value if decision.action else "rollback"
    hooks = plan_actions(inp.hooks, decision.verdict)
    withheld = bool(inp.interrupted) and not inp.hooks_when_interrupted and bool(hooks)
    if withheld:
        hooks = []
    state = "dark" if dark and hooks else ("pending" if hooks else "none")
    if withheld:
        state = "withheld"
    record = DecisionRecord(
        deployment=inp.deployment,
        phase=inp.phase,
        mode=inp.mode,
        decision=decision,
        outcomes=outcomes,
        started_at=inp.started_at,
        finished_at=datetime.now(timezone.utc),
        expected_version=inp.expected_version,
        expected_commit=inp.expected_commit,
        target=inp.target,
        spec_path=inp.spec_path,
        would_action=would_action,
        actions_state=state,
        actions_planned=tuple(h.name for h in hooks),
        extra=dict(inp.extra),
    )
    result = RoundResult(decision, outcomes, inp.kind, exit_code=0)
    try:
        data = record.to_dict()
        path = write_record(record, inp.report_dir, data)
    except (OSError, ValueError) as err:
        # No record, no action: a rollback nobody can audit is worse than none. Reports of an
        # earlier run must not stand beside this one's terminal output either.
        folder = record_path(inp.report_dir, inp.deployment, inp.phase).parent
        result.record_error = redact_text(f"{type(err).__name__}: {err}")
        result.removed = _remove_stale(folder, with_record=True)
        result.decision = _unrecorded(decision, result.record_error)
        result.actions_note = "no hook fired: the decision could not be recorded"
        result.exit_code = exitcodes.BY_VERDICT[Verdict.INCONCLUSIVE]
        return result
    result.record_path = path

    if withheld:
        result.actions_note = (
            "no hook fired: the run was interrupted and policy.on_interrupt is 'none'"
        )
    if hooks:
        env = {
            "RELEASEGATE_DECISION": decision.verdict.value,
            "RELEASEGATE_PHASE": inp.phase.value,
            "RELEASEGATE_DEPLOYMENT": inp.deployment,
            "RELEASEGATE_SCORE": f"{decision.score:.2f}",
            "RELEASEGATE_ACTION": would_action or "",
            "RELEASEGATE_MODE": inp.mode.value,
            "RELEASEGATE_RECORD": str(path),
        }
        payload = hook_payload(inp, decision, would_action, path)
        result.actions = run_actions(hooks, payload, env, dark=dark, base_dir=inp.hook_dir)
        for action in result.actions:
            listener.acted(action)
        record = replace(
            record,
            actions=tuple(result.actions),
            actions_state="dark" if dark else "done",
            # Taken only if a hook that fired for it succeeded; a failed hook is in ``actions``.
            actual_action=(
                would_action if not dark and any(a.fired and a.ok for a in result.actions) else None
            ),
        )
        try:
            data = record.to_dict()
            write_record(record, inp.report_dir, data, keep_previous=False)
        except (OSError, ValueError) as err:
            result.record_error = redact_text(
                f"the hooks ran but their results could not be added to the record"
                f" ({type(err).__name__}: {err}); it says actions_state 'pending'"
            )
    listener.recorded(record, path)

    result.report_paths, result.report_error, removed = _write_reports(
        data, path.parent, inp.templates
    )
    result.removed.extend(removed)
    result.exit_code = _exit_code(inp, decision, result.actions)
    return result


def _unrecorded(decision: Decision, why: str) -> Decision:
    reasons = (*decision.reasons, f"the decision could not be recorded ({why})")
    return replace(decision, verdict=Verdict.INCONCLUSIVE, reasons=reasons, action=None)


def _remove_stale(folder: Path, *, with_record: bool) -> list[Path]:
    """Remove an earlier run's reports (and record) from ``folder``; returns what went."""
    names = [*REPORT_FILES, "decision.json"] if with_record else list(REPORT_FILES)
    removed = []
    for name in names:
        path = folder / name
        with contextlib.suppress(OSError):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


def _write_reports(
    data: dict[str, Any], folder: Path, templates: tuple[Path, ...]
) -> tuple[list[Path], str | None, list[Path]]:
    from jinja2 import TemplateError

    from .errors import ReleasegateError
    from .report import write_reports

    try:
        return write_reports(data, folder, templates, redacted=True), None, []
    except Exception as err:  # a user's template can raise anything (TypeError, 1 // 0, ...)
        # The record is the audit trail and it is written; a report that cannot be rendered is
        # a warning, but never left over from an earlier run to contradict this one.
        known = isinstance(err, (ReleasegateError, TemplateError, OSError, ValueError))
        what = str(err) if known else f"{type(err).__name__}: {err}"
        return [], redact_text(what), _remove_stale(folder, with_record=False)


def _exit_code(inp: RoundInput, decision: Decision, actions: Sequence[ActionResult]) -> int:
    if inp.kept_exit is not None:
        return inp.kept_exit
    if inp.interrupted:
        return exitcodes.BY_VERDICT[Verdict.INCONCLUSIVE]
    if inp.kind is RunKind.GATE and inp.mode is Mode.DARK:
        return 0
    if any(not a.ok for a in actions):
        return exitcodes.HOOK_FAILED
    return exitcodes.BY_VERDICT[decision.verdict]


def lost_check(nodeid: str, reason: str) -> CheckInfo:
    """The identity of a check known only by its node id (a module that did not collect, a
    report without an outcome): treated as critical, since what it would have said is unknown."""
    return CheckInfo(
        name=nodeid.rsplit("::", 1)[-1] if "::" in nodeid else nodeid,
        kind="smoke",
        category="general",
        severity=Severity.CRITICAL,
        weight=Severity.CRITICAL.default_weight,
        nodeid=nodeid,
        source="python",
        description=reason,
    )
