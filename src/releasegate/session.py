"""The gate session: collects outcomes, decides at session end, acts, records, summarises.

Registered as a plugin on the controller only (never on an xdist worker), like xdist's
``DSession``: workers run checks, the controller decides and writes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from . import exitcodes
from .actions import ActionResult, plan_actions, run_actions
from .decision import Decision, ScoringPolicy, Verdict, decide
from .errors import ReleasegateError
from .model import Mode
from .outcomes import OutcomeCollector
from .phases import PHASE_DESCRIPTIONS, Phase
from .record import DecisionRecord, write_record
from .redact import redact_text
from .settings import RunSettings


class GateSession:
    """Decides for one phase; one instance per controller process."""

    def __init__(self, config: pytest.Config, settings: RunSettings, phase: Phase) -> None:
        self.config = config
        self.settings = settings
        self.phase = phase
        self.collector = OutcomeCollector()
        self.expected: int | None = None
        self.started_at = datetime.now(timezone.utc)
        self.decision: Decision | None = None
        self.actions: list[ActionResult] = []
        self.record_path: Path | None = None
        self.report_paths: list[Path] = []
        self.report_error: str | None = None
        self.exit_code: int | None = None
        self.mode = settings.mode()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expected = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Every worker collects the same items; the first one to finish tells the count.
        if self.expected is None:
            self.expected = len(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        spec = self.settings.require_spec()
        outcomes = self.collector.outcomes()
        policy = ScoringPolicy(go=spec.scoring.go, conditional=spec.scoring.conditional)
        decision = decide(outcomes, policy, expected=self.expected)
        replaced = self.config.hook.pytest_releasegate_decision(
            config=self.config, decision=decision
        )
        if replaced is not None:
            decision = replaced
        self.decision = decision

        dark = self.mode is Mode.DARK
        hooks = plan_actions(spec.hooks, decision.verdict)
        would_action = None
        if not decision.verdict.proceeds:
            would_action = decision.action.value if decision.action else "rollback"
        payload = {
            "deployment": spec.deployment.name,
            "phase": self.phase.value,
            "mode": self.mode.value,
            **decision.to_dict(),
            "would_action": would_action,
        }
        env = {
            "RELEASEGATE_DECISION": decision.verdict.value,
            "RELEASEGATE_PHASE": self.phase.value,
            "RELEASEGATE_DEPLOYMENT": spec.deployment.name,
            "RELEASEGATE_SCORE": f"{decision.score:.2f}",
            "RELEASEGATE_ACTION": would_action or "",
            "RELEASEGATE_MODE": self.mode.value,
        }
        base_dir = self.settings.loaded.path.parent if self.settings.loaded else Path.cwd()
        self.actions = run_actions(hooks, payload, env, dark=dark, base_dir=base_dir)
        for result in self.actions:
            self.config.hook.pytest_releasegate_action(config=self.config, result=result)

        record = DecisionRecord(
            deployment=spec.deployment.name,
            phase=self.phase,
            mode=self.mode,
            decision=decision,
            outcomes=tuple(outcomes),
            started_at=self.started_at,
            finished_at=datetime.now(timezone.utc),
            expected_version=spec.deployment.version,
            expected_commit=spec.deployment.commit,
            target=spec.target.base_url,
            spec_path=str(self.settings.loaded.path) if self.settings.loaded else "",
            actions=tuple(self.actions),
            would_action=would_action,
            # Taken only if a hook that fired for it succeeded; a failed hook is in ``actions``.
            actual_action=(
                would_action if not dark and any(a.fired and a.ok for a in self.actions) else None
            ),
            extra={"scoring": {"go": spec.scoring.go, "conditional": spec.scoring.conditional}},
        )
        data = record.to_dict()
        self.record_path = write_record(record, self.settings.report_dir, data)
        self.config.hook.pytest_releasegate_record(
            config=self.config, record=record, path=self.record_path
        )
        self._write_reports(data)

        if int(exitstatus) in exitcodes.KEPT_PYTEST_CODES:
            self.exit_code = int(exitstatus)
        elif dark:
            self.exit_code = 0
        elif any(not a.ok for a in self.actions):
            self.exit_code = exitcodes.HOOK_FAILED
        else:
            self.exit_code = exitcodes.BY_VERDICT[decision.verdict]
        session.exitstatus = self.exit_code

    def _write_reports(self, data: dict[str, Any]) -> None:
        # The record is the audit trail: a report that cannot be rendered (a broken user
        # template, a full disk) is a warning, never a lost record or a changed exit code.
        from jinja2 import TemplateError

        from .report import write_reports

        if self.record_path is None:
            return
        try:
            self.report_paths = write_reports(
                data, self.record_path.parent, self.settings.templates, redacted=True
            )
        except (ReleasegateError, TemplateError, OSError) as err:
            self.report_error = redact_text(str(err))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        decision = self.decision
        if decision is None:
            return
        tr = terminalreporter
        spec = self.settings.require_spec()
        tr.write_sep("=", f"releasegate: phase {self.phase.value}")
        version = f" {spec.deployment.version}" if spec.deployment.version else ""
        tr.write_line(
            f"deployment {spec.deployment.name}{version} · phase {self.phase.value}"
            f" ({PHASE_DESCRIPTIONS[self.phase]}) · mode {self.mode.value}"
        )
        colour = {
            Verdict.GO: {"green": True},
            Verdict.CONDITIONAL_GO: {"yellow": True},
        }.get(decision.verdict, {"red": True})
        tr.write_line(
            f"decision: {decision.verdict.value}   score {decision.score:.2f}/10"
            f"   criteria met {decision.met}/{decision.total}",
            bold=True,
            **colour,
        )
        for reason in decision.reasons:
            tr.write_line(f"  why: {reason}")
        if decision.blockers:
            tr.write_line("blockers:")
            for blocker in decision.blockers[:20]:
                tr.write_line(
                    f"  - {blocker.check} [{blocker.severity.value}, {blocker.status.value}]:"
                    f" {redact_text(blocker.reason)[:200]}"
                )
            if len(decision.blockers) > 20:
                tr.write_line(f"  ... and {len(decision.blockers) - 20} more (see the record)")
        if self.actions:
            tr.write_line("hooks:")
            for action in self.actions:
                tr.write_line(f"  - {action.summary}")
        elif not decision.verdict.proceeds:
            tr.write_line("hooks: none configured for this decision")
        if self.record_path is not None:
            tr.write_line(f"record: {self.record_path}")
        for path in self.report_paths:
            tr.write_line(f"{path.name.split('.')[0]}: {path}")
        if self.report_error is not None:
            tr.write_line(f"warning: reports not written: {self.report_error}", yellow=True)
        if self.exit_code is not None:
            meaning = "dark mode" if self.mode is Mode.DARK else exitcodes.describe(self.exit_code)
            tr.write_line(f"exit code: {self.exit_code} ({meaning})")


class PhaseGuard:
    """On an xdist controller: report a worker's refusal of a run without a phase."""

    OUTPUT_KEY = "releasegate_refused"

    def __init__(self) -> None:
        self.message: str | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self.message = self.message or output.get(self.OUTPUT_KEY)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.message:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.message:
            terminalreporter.write_line(f"ERROR: {self.message}", red=True, bold=True)
