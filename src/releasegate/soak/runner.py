"""``releasegate soak``: load for hours, a fast guard every interval, the full gate every N
minutes, and one decision at the end (or at the first sustained breach).

The loop, once a guard interval:

1. new intervals from the load generator (``LocustRun.poll``) go to the guard (thresholds over
   a sliding window, held for their grace) and the timeline (folded into fixed rows);
2. the SLO checks' latest results (``SloWatch``, a background thread) go to the guard too;
3. the state is written atomically (``state.json``): a crash loses at most this interval;
4. a full gate is started when one is due, and its record read when it has ended;
5. the soak ends at its duration, at the first sustained breach, at a full gate's NO-GO, when
   the load generator stops on its own (ERROR), or on SIGINT/SIGTERM (INCONCLUSIVE, nothing
   fired).

The end is one gate round (``gate.run_round``): the outcomes (the load guard's, kind ``load``;
each SLO check's last, kind ``slo``; the last full gate's others) are decided, the record is
written atomically **before** any hook fires, then the hooks, then the reports. The record
carries ``"kind": "soak"`` and a ``soak`` section (the breach with its interval and evidence,
the gates, the totals); the timeline report is written beside it.
"""

from __future__ import annotations

import contextlib
import gc
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from ..decision import Policy
from ..errors import UsageError
from ..files import PhaseLock
from ..gate import RoundInput, RoundResult, run_round
from ..model import Status
from .config import SoakConfig
from .fullgate import FullGate, GateResult
from .guard import Breach, Guard, GuardState, Tick, parts
from .outcomes import soak_outcomes
from .progress import Progress, Snapshot, make_progress
from .rules import rule_dict
from .state import SoakFiles, SoakState, soak_dir
from .timeline import Timeline, row_width

#: How often the loop looks for new intervals, as a share of the guard interval.
POLLS_PER_INTERVAL = 5
#: The load generator's own run time is the soak's remaining time plus this: the soak stops it.
RUN_TIME_SLACK_S = 30.0
#: A full garbage collection this often. Every interval's histograms (hdrh's histogram and its
#: encoder refer to each other) are freed only by the cyclic collector, and once promoted they
#: wait for a full collection, which Python runs rarely in a process this size: measured at
#: 500 req/s, RSS grew ~180 MB/h without this and stayed flat with it (docs/benchmarks.md).
GC_EVERY_S = 10.0


class LoadRun(Protocol):
    """What the soak needs of the load generator (``load.runner.LocustRun``)."""

    def start(self) -> Any: ...
    def poll(self) -> Sequence[Any]: ...
    @property
    def running(self) -> bool: ...
    def stop(self, reason: str) -> Any: ...
    def wait(self, timeout_s: float | None = None) -> Any: ...


LoadFactory = Callable[["SoakConfig", float, Path], LoadRun]


@dataclass(slots=True)
class SoakResult:
    """How a soak ended."""

    exit_code: int
    verdict: str
    ended: str
    folder: Path
    record: Path | None
    breach: Breach | None = None
    round: RoundResult | None = None
    reports: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0


def locust_factory(config: SoakConfig, run_time_s: float, workdir: Path) -> LoadRun:
    """The real load generator: locust as a child under proctree."""
    from ..load.runner import LocustRun

    return LocustRun(
        locustfile=config.locustfile,
        host=config.host,
        users=config.users,
        spawn_rate=config.spawn_rate,
        run_time_s=run_time_s,
        workers=config.workers,
        interval_s=config.guard_interval_s,
        workdir=workdir,
        deadline_s=run_time_s + RUN_TIME_SLACK_S,
        allowed_hosts=config.allowed_hosts,
        pinned=config.pinned,
    )


class Soak:
    """One soak run (a new one or a resumed one); ``run()`` returns its ``SoakResult``."""

    def __init__(
        self,
        config: SoakConfig,
        *,
        spec: Any,
        deployment: str,
        mode: Any,
        policy: Policy,
        hooks: Sequence[Any],
        slo_checks: Sequence[Any] = (),
        slo_context: Any = None,
        resume: bool = False,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        load_factory: LoadFactory = locust_factory,
        set_faults: Callable[[Mapping[str, str]], Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.spec = spec
        self.deployment = deployment
        self.mode = mode
        self.policy = policy
        self.hooks = hooks
        self.slo_checks = list(slo_checks)
        self.slo_context = slo_context
        self.resume = resume
        self.stop_event = stop or threading.Event()
        self.stop_reason = "interrupted"
        self.progress = progress or make_progress()
        self.load_factory = load_factory
        self.set_faults = set_faults
        self.extra = dict(extra or {})
        self.clock = clock
        self.sleep = sleep
        self.folder = soak_dir(config.report_dir, deployment, config.phase)
        self.files = SoakFiles(self.folder)

    def interrupt(self, reason: str) -> None:
        """Ask the soak to end as interrupted (a signal handler calls this)."""
        self.stop_reason = reason
        self.stop_event.set()

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> SoakResult:
        lock = PhaseLock(self.folder, f"the soak of {self.deployment} {self.config.phase.value}")
        with lock.held():
            return self._run()

    def _new_state(self) -> SoakState:
        cfg = self.config
        state = SoakState(
            run_id=secrets.token_hex(6),
            deployment=self.deployment,
            phase=cfg.phase.value,
            spec=str(cfg.spec_path),
            duration_s=cfg.duration_s,
            guard_interval_s=cfg.guard_interval_s,
            gate_every_s=cfg.gate_every_s,
            row_s=row_width(cfg.duration_s),
            options=cfg.options(),
            started_at=self.clock(),
            next_gate_at_s=cfg.gate_every_s,
        )
        self.files.start_timeline()
        return state

    def _resumed_state(self) -> SoakState:
        state = self.files.read_state()
        # "interrupted" too: a soak stopped by SIGINT/SIGTERM (a reboot) goes on from its
        # last interval, as one killed outright does.
        if state.status not in ("running", "interrupted"):
            raise UsageError(
                f"the soak in {self.folder} has {state.status}: there is nothing to resume"
                " (start a new one without --resume)"
            )
        _kill_left_over(state.child)
        state.child = None
        state.segments += 1
        self.files.truncate_torn_tail()
        return state

    def _run(self) -> SoakResult:
        cfg = self.config
        state = self._resumed_state() if self.resume else self._new_state()
        self.state = state
        guard = Guard(
            cfg.rules, window_s=cfg.window_s, check_name=cfg.load_check, slo_grace_s=cfg.slo_grace_s
        )
        timeline = Timeline(state.row_s)
        every = f"every {cfg.gate_every_s:g}s" if cfg.gate_every_s else "never"
        if self.resume:
            timeline_note = f"resumed at {state.elapsed_s:.0f}s (segment {state.segments})"
        else:
            timeline_note = "started"
        self.progress.note(
            f"{timeline_note}: {self.deployment} {cfg.phase.value} for {cfg.duration_s:g}s,"
            f" guard every {cfg.guard_interval_s:g}s over {cfg.window_s:g}s,"
            f" full gate {every}; folder {self.folder}"
        )
        self.files.write_state(state)

        return self._loop(state, guard, timeline, timeline_note)

    def _loop(self, state: SoakState, guard: Guard, timeline: Timeline, first: str) -> SoakResult:
        cfg = self.config
        remaining = max(cfg.duration_s - state.elapsed_s, 0.0)
        workdir = self.folder / "load" / f"segment-{state.segments}"
        from .slowatch import SloWatch

        watch = SloWatch(self.slo_checks, self.slo_context, every_s=cfg.slo_every_s)
        pending: list[str] = [first]
        gate: FullGate | None = None
        last_gate: GateResult | None = None
        breach: Breach | None = None
        load_error: str | None = None
        ended = "duration"
        last_tick: Tick | None = None
        base = state.elapsed_s
        seg_t0 = self.clock()
        run: LoadRun | None = None
        stopping: threading.Thread | None = None
        try:
            run = self.load_factory(cfg, remaining + 2 * cfg.guard_interval_s + 5.0, workdir)
            run.start()
            state.child = _child_info(run)
            seg_t0 = self.clock()
            # Users spawn for users/spawn_rate seconds; one more interval lets the last settle.
            guard.warmup_until = (
                seg_t0 + cfg.users / max(cfg.spawn_rate, 1e-9) + cfg.guard_interval_s
            )
            watch.start()
            collected = time.monotonic()
            while True:
                if time.monotonic() - collected >= GC_EVERY_S:
                    gc.collect()
                    collected = time.monotonic()
                now = self.clock()
                elapsed = base + (now - seg_t0)
                changed = False
                for interval in run.poll():
                    changed = True
                    tick = guard.observe(interval)
                    last_tick = tick
                    requests, failures, _ = parts(interval)
                    state.requests += requests
                    state.failures += failures
                    row = timeline.add(interval, base + (interval.end - seg_t0), tick)
                    if row is not None:
                        self.files.append_row(row)
                        state.rows += 1
                    for event in pending:
                        timeline.mark(event)
                    pending.clear()
                    state.last_interval_end = interval.end
                    if tick.breach is not None and breach is None:
                        breach = tick.breach
                for found in watch.drain():
                    status = found.outcome.status
                    timeline.note_slo(found.name, status.value)
                    slo_breach = guard.note_slo(
                        found.name, status, found.outcome.reason, found.at, aborts=found.aborts
                    )
                    if slo_breach is not None and breach is None:
                        breach = slo_breach
                elapsed = base + (self.clock() - seg_t0)
                state.elapsed_s = min(elapsed, max(cfg.duration_s, state.elapsed_s))
                if (
                    cfg.fault_at_s is not None
                    and state.fault_on_at is None
                    and self.set_faults is not None
                    and elapsed >= cfg.fault_at_s
                ):
                    self.set_faults(dict(cfg.fault))
                    state.fault_on_at = self.clock()
                    shown = ", ".join(f"{k}={v}" for k, v in cfg.fault.items())
                    pending.append(f"fault on: {shown}")
                    self.progress.note(f"{elapsed:.1f}s: the demo's fault is on ({shown})")
                    changed = True
                if gate is None and self._gate_due(state, elapsed):
                    gate = self._start_gate(state, elapsed)
                    pending.append(f"full gate #{gate.number} started")
                    changed = True
                if gate is not None and gate.result is not None:
                    last_gate = gate.result
                    gate = None
                    state.gates.append(last_gate.to_dict())
                    pending.append(f"full gate #{last_gate.number}: {last_gate.verdict}")
                    self.progress.note(f"full gate #{last_gate.number}: {last_gate.reason}")
                    changed = True
                    if last_gate.verdict == "NO-GO":
                        ended = f"full gate #{last_gate.number} said NO-GO"
                if changed:
                    self.files.write_state(state)
                    self.progress.update(self._snapshot(state, guard, last_tick))
                if breach is not None:
                    ended = "breach"
                    break
                if ended != "duration":
                    break
                if self.stop_event.is_set():
                    ended = "interrupted"
                    break
                if elapsed >= cfg.duration_s:
                    break
                if not run.running:
                    if elapsed < cfg.duration_s - 2 * cfg.guard_interval_s - 5.0:
                        load_error = (
                            f"the load generator stopped on its own at {elapsed:.1f}s of"
                            f" {cfg.duration_s:g}s"
                        )
                        ended = "load generator stopped"
                    break
                self.sleep(cfg.guard_interval_s / POLLS_PER_INTERVAL)
        except Exception as err:  # the load generator could not start or broke: ERROR
            from ..redact import redact_text

            load_error = redact_text(f"{type(err).__name__}: {err}")
            ended = "load generator error"
        finally:
            if run is not None:
                # The load ends first (its SIGTERM goes now): a breached deployment gets no more
                # traffic from us. Waiting for locust to quit (seconds) runs beside the round,
                # so that it never delays the record and the rollback.
                stopping = threading.Thread(
                    target=_stop_quietly, args=(run, ended), name="soak-load-stop", daemon=True
                )
                stopping.start()
            watch.stop(wait_s=0.0)
            if gate is not None:
                # Killed with its tree; kept in the record as what it was: no decision.
                gate.stop(wait_s=10.0)
                if gate.result is not None:
                    state.gates.append(gate.result.to_dict())
                pending.append(f"full gate #{gate.number} stopped: the soak ended")
                gate = None
        return self._finish(
            state,
            guard,
            timeline,
            pending,
            run,
            stopping,
            watch,
            gate,
            last_gate,
            breach,
            load_error,
            ended,
        )

    def _gate_due(self, state: SoakState, elapsed: float) -> bool:
        return (
            self.config.gate_every_s is not None
            and state.next_gate_at_s is not None
            and elapsed >= state.next_gate_at_s
            and elapsed < self.config.duration_s
        )

    def _start_gate(self, state: SoakState, elapsed: float) -> FullGate:
        cfg = self.config
        number = len(state.gates) + 1
        every = cfg.gate_every_s or 0.0
        state.next_gate_at_s = (state.next_gate_at_s or 0.0) + every
        deadline = float(getattr(getattr(self.spec, "policy", None), "deadline", 1800.0))
        self.progress.note(f"{elapsed:.0f}s: full gate #{number} ({cfg.phase.marker}) started")
        return FullGate(
            number=number,
            phase=cfg.phase,
            deployment=self.deployment,
            spec=cfg.spec_path.resolve(),
            folder=self.folder / "gates" / str(number),
            env=cfg.env,
            timeout_s=min(deadline + 30.0, max(every, 60.0)),
            started_elapsed_s=elapsed,
        )

    def _snapshot(self, state: SoakState, guard: Guard, tick: Tick | None) -> Snapshot:
        window = guard.window
        requests, failures = window.counts(None)
        span = window.span_s
        reason = ""
        if tick is not None:
            worst = [m for m in tick.measurements if m.status is not Status.PASSED]
            reason = (
                (worst[0] if worst else tick.measurements[0]).reason if tick.measurements else ""
            )
        next_gate = None
        if self.config.gate_every_s and state.next_gate_at_s is not None:
            next_gate = max(state.next_gate_at_s - state.elapsed_s, 0.0)
        return Snapshot(
            elapsed_s=state.elapsed_s,
            duration_s=self.config.duration_s,
            rps=requests / span if span > 0 else 0.0,
            p95_ms=window.percentile_ms(None, 95.0),
            error_rate=failures / requests if requests else None,
            requests=state.requests,
            failures=state.failures,
            users=window.users,
            guard=tick.state if tick is not None else GuardState.WARMUP,
            guard_reason=reason,
            next_gate_in_s=next_gate,
            slo=tuple((name, s[0].value) for name, s in guard.slo.items()),
        )

    # -- the end ------------------------------------------------------------------------------

    def _finish(
        self,
        state: SoakState,
        guard: Guard,
        timeline: Timeline,
        pending: list[str],
        run: LoadRun | None,
        stopping: threading.Thread | None,
        watch: Any,
        gate: FullGate | None,
        last_gate: GateResult | None,
        breach: Breach | None,
        load_error: str | None,
        ended: str,
    ) -> SoakResult:
        cfg = self.config
        interrupted = self.stop_reason if ended == "interrupted" else None
        if breach is not None:
            pending.append(f"breach: {breach.check}: {breach.rule}")
        for event in pending:
            timeline.mark(event)
        row = timeline.close()
        if row is not None:
            self.files.append_row(row)
            state.rows += 1
        state.child = None
        self.files.write_state(state)

        outcomes, expected, not_run = soak_outcomes(
            cfg,
            state,
            guard,
            self.slo_checks,
            watch.latest,
            last_gate,
            breach,
            load_error,
        )
        soak = {
            "run_id": state.run_id,
            "ended": ended,
            "duration_s": cfg.duration_s,
            "elapsed_s": round(state.elapsed_s, 3),
            "segments": state.segments,
            "started_at": datetime.fromtimestamp(state.started_at, timezone.utc).isoformat(),
            "guard_interval_s": cfg.guard_interval_s,
            "window_s": cfg.window_s,
            "gate_every_s": cfg.gate_every_s,
            "slo_every_s": cfg.slo_every_s,
            "slo_grace_s": cfg.slo_grace_s,
            "row_s": state.row_s,
            "rows": state.rows,
            "timeline": "timeline.jsonl",
            "locustfile": str(cfg.locustfile),
            "users": cfg.users,
            "spawn_rate": cfg.spawn_rate,
            "rules": [rule_dict(r) for r in cfg.rules],
            "requests": state.requests,
            "failures": state.failures,
            "guard_worst": guard.worst.value,
            "breach": breach.to_dict() if breach is not None else None,
            "gates": list(state.gates),
            "fault": (
                {"at_s": cfg.fault_at_s, "faults": dict(cfg.fault), "on_at": state.fault_on_at}
                if cfg.fault_at_s is not None
                else None
            ),
        }
        inp = RoundInput(
            deployment=self.deployment,
            phase=cfg.phase,
            mode=self.mode,
            policy=self.policy,
            expected=expected,
            outcomes=outcomes,
            report_dir=cfg.report_dir / "soak",
            started_at=datetime.fromtimestamp(state.started_at, timezone.utc),
            not_run=not_run,
            interrupted=interrupted,
            hooks_when_interrupted=_on_interrupt_hooks(self.spec),
            hooks=self.hooks,
            hook_dir=cfg.spec_path.resolve().parent,
            templates=cfg.templates,
            expected_version=getattr(getattr(self.spec, "deployment", None), "version", None),
            expected_commit=getattr(getattr(self.spec, "deployment", None), "commit", None),
            target=cfg.host,
            spec_path=str(cfg.spec_path),
            extra={**self.extra, "kind": "soak", "soak": soak},
        )
        result = run_round(inp)
        # An interrupted soak (a reboot's SIGTERM) can be resumed; a decided one cannot.
        state.status = "interrupted" if interrupted else "finished"
        self.files.write_state(state)
        if stopping is not None:
            stopping.join(30.0)
        if run is not None:
            with contextlib.suppress(Exception):
                run.wait(timeout_s=10.0)
        reports: list[Path] = []
        if result.record_path is not None:
            reports = self._soak_reports(result.record_path)
        verdict = result.decision.verdict.value
        fired = ", ".join(
            f"{a.name} ({'ok' if a.ok else 'failed'})" for a in result.actions if a.fired
        )
        self.progress.note(
            f"ended ({ended}) after {state.elapsed_s:.1f}s: {verdict}"
            + (f"; breach: {breach.reason}" if breach else "")
            + (f"; hooks: {fired}" if fired else "")
            + (f"; {result.actions_note}" if result.actions_note else "")
            + (f"; record {result.record_path}" if result.record_path else "")
        )
        self.progress.close()
        return SoakResult(
            exit_code=result.exit_code,
            verdict=verdict,
            ended=ended,
            folder=self.folder,
            record=result.record_path,
            breach=breach,
            round=result,
            reports=[*result.report_paths, *reports],
            elapsed_s=state.elapsed_s,
        )

    def _soak_reports(self, path: Path) -> list[Path]:
        from ..record import read_record
        from .report import write_soak_reports

        try:
            written: list[Path] = write_soak_reports(
                read_record(path), self.files.read_rows(), path.parent
            )
            return written
        except Exception as err:  # the record stands; a report that cannot render is a warning
            self.progress.note(f"the soak report could not be written: {type(err).__name__}: {err}")
            return []


def _stop_quietly(run: LoadRun, reason: str) -> None:
    with contextlib.suppress(Exception):
        run.stop(reason)


def _on_interrupt_hooks(spec: Any) -> bool:
    return getattr(getattr(spec, "policy", None), "on_interrupt", "none") == "hooks"


def _child_info(run: Any) -> dict[str, Any] | None:
    """The load generator's root process, to kill it if this soak is killed and resumed."""
    pid = getattr(run, "pid", None)
    if not isinstance(pid, int):
        proc = getattr(run, "proc", None) or getattr(run, "_proc", None)
        pid = getattr(proc, "pid", None)
    if not isinstance(pid, int):
        return None
    from .. import proctree

    stat = proctree.read_stat(pid)
    if stat is None:
        return None
    token = getattr(run, "token", None)
    return {"pid": pid, "start": stat.start, "token": token if isinstance(token, str) else ""}


def _kill_left_over(child: Mapping[str, Any] | None) -> None:
    """Kill what a killed soak left running (its locust tree), if it is still that process."""
    if not child:
        return
    from .. import proctree

    pid = int(child.get("pid", 0))
    stat = proctree.read_stat(pid) if pid > 0 else None
    if stat is None or stat.start != child.get("start"):
        return
    token = str(child.get("token") or "") or secrets.token_hex(16)
    proctree.kill_tree(proctree.Tree(root=pid, token=token))
