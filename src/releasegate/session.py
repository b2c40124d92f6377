"""The gate session: gathers what a pytest run expected and what it reported, and hands both to
the gate round (``gate.py``) at session end.

Registered as a plugin on the controller only (never on an xdist worker), like xdist's
``DSession``: workers run checks, the controller decides and writes. It is registered only for
runs that decide: a listing run (``--collect-only``, ``--fixtures``, ``--setup-plan``, ...)
never gets one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import exitcodes
from .actions import ActionResult
from .decision import Decision, Policy, Verdict
from .gate import RoundInput, RoundResult, RunKind, lost_check, run_round
from .inventory import WORKER_OUTPUT_KEY, InventoryTracker
from .model import CheckInfo, Mode
from .outcomes import PROPERTY, OutcomeCollector
from .phases import PHASE_DESCRIPTIONS, Phase
from .record import DecisionRecord
from .redact import redact_text
from .runguard import Interrupts
from .settings import RunSettings
from .watchdog import Watchdog

if TYPE_CHECKING:
    from .runtime import DemoServices  # noqa: F401  (the stash key's type, below)

#: What the embedded demo gave the run (its fault seed, log, Prometheus), set by the plugin.
DEMO_KEY = pytest.StashKey["DemoServices"]()


def _skip_exit_collection(config: pytest.Config) -> None:
    """At its end, pytest walks every object alive (``gc.collect``) looking for errors raised
    in finalizers. A gate run holds a spec's models, the items and the record: that walk was a
    tenth of a 500-check run, and the run has decided by then. pytest keeps the number of
    walks in a stash item (for pytester); a gate run sets it to none. Only this run's config
    is touched: an outer test process still walks at its own end."""
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:  # another pytest: keep its behaviour
        return
    config.stash[gc_collect_iterations_key] = 0


class _PytestListener:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def decided(self, decision: Decision) -> Decision | None:
        replaced: Decision | None = self.config.hook.pytest_releasegate_decision(
            config=self.config, decision=decision
        )
        return replaced

    def acted(self, result: ActionResult) -> None:
        self.config.hook.pytest_releasegate_action(config=self.config, result=result)

    def recorded(self, record: DecisionRecord, path: Path) -> None:
        self.config.hook.pytest_releasegate_record(config=self.config, record=record, path=path)


class GateSession:
    """Decides for one phase; one instance per controller process."""

    def __init__(
        self,
        config: pytest.Config,
        settings: RunSettings,
        phase: Phase,
        kind: RunKind,
        tracker: InventoryTracker,
        partial_why: str = "",
    ) -> None:
        self.config = config
        self.settings = settings
        self.phase = phase
        self.kind = kind
        self.partial_why = partial_why
        self.tracker = tracker
        self.collector = OutcomeCollector()
        self.started_at = datetime.now(timezone.utc)
        self.mode = settings.mode()
        spec = settings.require_spec()
        self.policy = Policy(
            go=spec.scoring.go,
            conditional=spec.scoring.conditional,
            max_errors=spec.policy.max_errors,
        )
        self.spec_expected = [check.info() for check in spec.checks_for(phase)]
        self.worker_expected: dict[str, dict[str, Any]] = {}
        self.worker_deselected: dict[str, str] = {}
        self.worker_dropped: dict[str, str] = {}
        self.collected_ids: set[str] = set()
        self.spec_collected = False
        self.collect_problems: dict[str, str] = {}
        # The grace after the deadline scales with it: 1 s for a 10 s deadline, 30 s at most.
        grace = min(30.0, max(1.0, spec.policy.deadline / 10))
        self.interrupts = Interrupts(spec.policy.deadline, self._emergency, grace_s=grace)
        self.result: RoundResult | None = None
        self.watchdog: Watchdog | None = None
        self.left_out = 0
        self._finished = False
        _skip_exit_collection(config)

    # -- gathering ---------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.kind is RunKind.GATE:
            self.interrupts.start()
            self.watchdog = self._start_watchdog()

    def _extra(self) -> dict[str, Any]:
        """Record fields beside the outcomes: the scoring bands and, when the embedded demo
        ran, its faults and their seed (so that a detection trial can be told from another)."""
        spec = self.settings.require_spec()
        extra: dict[str, Any] = {
            "scoring": {"go": spec.scoring.go, "conditional": spec.scoring.conditional}
        }
        services = self.config.stash.get(DEMO_KEY, None)
        if services is None:
            from .runtime import DemoServices

            services = DemoServices.from_env(os.environ)
        extra.update(services.record())
        return extra

    def _start_watchdog(self) -> Watchdog | None:
        spec = self.settings.require_spec()
        header = {
            "deployment": spec.deployment.name,
            "phase": self.phase.value,
            "mode": self.mode.value,
            "policy": self.policy.to_dict(),
            "report_dir": str(self.settings.report_dir),
            "started_at": self.started_at.isoformat(),
            "expected": [info.to_dict() for info in self.spec_expected],
            "hooks_when_interrupted": spec.policy.on_interrupt == "hooks",
            "hook_dir": str(self.settings.loaded.path.parent) if self.settings.loaded else "",
            "templates": [str(t) for t in self.settings.templates],
            "expected_version": spec.deployment.version,
            "expected_commit": spec.deployment.commit,
            "target": spec.target.base_url,
            "spec_path": str(self.settings.loaded.path) if self.settings.loaded else "",
            "extra": self._extra(),
        }
        capture = self.config.pluginmanager.getplugin("capturemanager")
        # The watchdog's last word goes to the real stderr, not to pytest's capture.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            return Watchdog.start(header)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.watchdog is not None:
            for check in self.tracker.expected.values():
                self.watchdog.expect(check)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.passed:
            if self.settings.loaded and report.nodeid.endswith(self.settings.loaded.path.name):
                self.spec_collected = True
            return
        text = _first_line(report.longrepr)
        what = "was skipped at collection" if report.skipped else "could not be collected"
        self.collect_problems[report.nodeid or "<session>"] = (
            f"not run: {report.nodeid or 'the session'} {what}: {text}"
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.watchdog is not None and not self.collected_ids:
            for nodeid in ids:
                if "::check[" not in nodeid:
                    self.watchdog.expect(
                        lost_check(nodeid, "reported by an xdist worker").to_dict()
                    )
        self.collected_ids.update(ids)
        if any("::check[" in nodeid for nodeid in ids):
            self.spec_collected = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = (getattr(node, "workeroutput", None) or {}).get(WORKER_OUTPUT_KEY) or {}
        self.worker_expected.update(output.get("expected") or {})
        self.worker_deselected.update(output.get("deselected") or {})
        self.worker_dropped.update(output.get("dropped") or {})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)
        if self.watchdog is not None and report.outcome != "rerun":  # type: ignore[comparison-overlap]
            for key, value in report.user_properties:
                if key == PROPERTY and isinstance(value, str):
                    self.watchdog.part(report.nodeid, value)

    # -- deciding ----------------------------------------------------------------------------

    def _expected(self) -> tuple[tuple[CheckInfo, ...], dict[str, str]]:
        deselected = {**self.worker_deselected, **self.tracker.deselected}
        if self.kind is RunKind.PARTIAL:
            # Asked for: the checks left out are not expected; the decision is on the rest.
            self.left_out = len(deselected)
        else:
            deselected = {}
        expected: list[CheckInfo] = [
            info for info in self.spec_expected if info.key not in deselected
        ]
        python = {**self.worker_expected, **self.tracker.expected}
        expected.extend(
            CheckInfo.from_dict(d) for key, d in python.items() if key not in deselected
        )
        known = set(python)
        for nodeid in sorted(self.collected_ids - known):
            if "::check[" not in nodeid:
                expected.append(lost_check(nodeid, "a gate check reported by an xdist worker"))
        not_run = {**self.worker_deselected, **self.tracker.deselected}
        for key in deselected:
            not_run.pop(key, None)
        not_run.update({**self.worker_dropped, **self.tracker.dropped})
        for nodeid, reason in self.collect_problems.items():
            expected.append(lost_check(nodeid, reason))
            not_run[nodeid] = reason
        if self.settings.loaded and not self.spec_collected and not self.collector.has_spec():
            for info in self.spec_expected:
                not_run.setdefault(
                    info.key,
                    "not run: the spec file was not among this run's paths (run it with the"
                    f" spec, e.g. pytest -m {self.phase.marker})",
                )
        return tuple(expected), not_run

    def _round_input(self, exitstatus: int, interrupted: str | None) -> RoundInput:
        spec = self.settings.require_spec()
        expected, not_run = self._expected()
        code = int(exitstatus)
        kept = code if code in exitcodes.KEPT_PYTEST_CODES else None
        if code == pytest.ExitCode.INTERRUPTED and self.collect_problems and not interrupted:
            # pytest runs nothing once a module fails to import (unless told to go on).
            for info in expected:
                not_run.setdefault(
                    info.key,
                    "not run: collection errors stopped the run before the checks ran"
                    " (see --continue-on-collection-errors)",
                )
        return RoundInput(
            deployment=spec.deployment.name,
            phase=self.phase,
            mode=self.mode,
            policy=self.policy,
            expected=expected,
            outcomes=tuple(self.collector.outcomes()),
            report_dir=self.settings.report_dir,
            started_at=self.started_at,
            kind=self.kind,
            not_run=not_run,
            interrupted=interrupted,
            hooks_when_interrupted=spec.policy.on_interrupt == "hooks",
            hooks=spec.hooks,
            hook_dir=self.settings.loaded.path.parent if self.settings.loaded else Path.cwd(),
            templates=self.settings.templates,
            expected_version=spec.deployment.version,
            expected_commit=spec.deployment.commit,
            target=spec.target.base_url,
            spec_path=str(self.settings.loaded.path) if self.settings.loaded else "",
            extra=self._extra(),
            kept_exit=kept,
        )

    def _interrupted(self, session: pytest.Session, exitstatus: int) -> str | None:
        if self.interrupts.reason:
            return self.interrupts.reason
        if int(exitstatus) == pytest.ExitCode.INTERNAL_ERROR:
            return "pytest stopped with an internal error"
        if int(exitstatus) == pytest.ExitCode.INTERRUPTED and not self.collect_problems:
            why = session.shouldstop or session.shouldfail
            return str(why) if why else "the run was interrupted (Ctrl-C or pytest.exit)"
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.interrupts.hold()  # until pytest_unconfigure: teardown may still follow
        if int(exitstatus) == pytest.ExitCode.USAGE_ERROR:
            # A run pytest refused (a bad marker, a bad option) decides nothing.
            self._finished = True
            if self.watchdog is not None:
                self.watchdog.done()
            return
        try:
            inp = self._round_input(exitstatus, self._interrupted(session, exitstatus))
            self.result = run_round(inp, _PytestListener(self.config))
        finally:
            self._finished = True
            if self.watchdog is not None:
                self.watchdog.done()
        if self.kind is RunKind.GATE:
            session.exitstatus = self.result.exit_code

    def _emergency(self, reason: str) -> int:
        """From the deadline's timer thread, when the main thread does not wind down: record
        (unless the round already did) and return the exit code the process ends with."""
        if self._finished:
            return (
                self.result.exit_code if self.result else exitcodes.BY_VERDICT[Verdict.INCONCLUSIVE]
            )
        inp = self._round_input(pytest.ExitCode.INTERRUPTED, reason)
        self.result = run_round(inp)
        if self.watchdog is not None:
            self.watchdog.done()
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)  # the process ends next: say why
        where = self.result.record_path or f"nowhere ({self.result.record_error})"
        print(
            f"\nreleasegate: {reason}: recorded {self.result.decision.verdict.value} in {where};"
            f" exiting {self.result.exit_code}",
            file=sys.stderr,
            flush=True,
        )
        return self.result.exit_code

    def pytest_unconfigure(self) -> None:
        self.interrupts.stop()

    # -- telling -----------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        result = self.result
        if result is None:
            return
        decision = result.decision
        tr = terminalreporter
        spec = self.settings.require_spec()
        title = f"releasegate: phase {self.phase.value}"
        if self.kind is RunKind.PARTIAL:
            title += " (partial run: nothing recorded, no hook)"
        tr.write_sep("=", title)
        version = f" {spec.deployment.version}" if spec.deployment.version else ""
        tr.write_line(
            f"deployment {spec.deployment.name}{version} · phase {self.phase.value}"
            f" ({PHASE_DESCRIPTIONS[self.phase]}) · mode {self.mode.value}"
        )
        colour = {
            Verdict.GO: {"green": True},
            Verdict.CONDITIONAL_GO: {"yellow": True},
        }.get(decision.verdict, {"red": True})
        label = "would decide" if self.kind is RunKind.PARTIAL else "decision"
        tr.write_line(
            f"{label}: {decision.verdict.value}   score {decision.score:.2f}/10"
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
                    f"  - {blocker.check} [{blocker.severity.value}, {blocker.status.label}]:"
                    f" {redact_text(blocker.reason)[:200]}"
                )
            if len(decision.blockers) > 20:
                tr.write_line(f"  ... and {len(decision.blockers) - 20} more (see the record)")
        if self.kind is RunKind.PARTIAL:
            left = f", {self.left_out} check(s) of the phase left out" if self.left_out else ""
            tr.write_line(
                f"partial run ({self.partial_why}{left}): the phase's record was not written and"
                " no hook fired; run the whole phase to decide"
            )
            return
        if result.actions:
            tr.write_line("hooks:")
            for action in result.actions:
                tr.write_line(f"  - {action.summary}")
        elif result.actions_note:
            tr.write_line(f"hooks: {result.actions_note}")
        elif not decision.verdict.proceeds:
            tr.write_line("hooks: none configured for this decision")
        if result.record_error is not None:
            tr.write_line(f"record: NOT WRITTEN: {result.record_error}", red=True, bold=True)
        if result.record_path is not None:
            tr.write_line(f"record: {result.record_path}")
        for path in result.report_paths:
            tr.write_line(f"{path.name.split('.')[0]}: {path}")
        if result.report_error is not None:
            tr.write_line(f"warning: reports not written: {result.report_error}", yellow=True)
        if result.removed:
            shown = ", ".join(p.name for p in result.removed)
            tr.write_line(f"removed stale files of an earlier run: {shown}", yellow=True)
        meaning = "dark mode" if self.mode is Mode.DARK else exitcodes.describe(result.exit_code)
        tr.write_line(f"exit code: {result.exit_code} ({meaning})")


def _first_line(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2]).removeprefix("Skipped: ")
    else:
        text = str(longrepr or "")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E ")]
    return redact_text((errors[-1][1:].strip() if errors else lines[-1] if lines else "")[:300])


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
