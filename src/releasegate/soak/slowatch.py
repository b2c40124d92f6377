"""The phase's SLO checks, re-run in the background of a soak, their results queued for the
guard.

Cadence: one round of every SLO check of the phase, back to back, then a pause so that rounds
start at most every ``every_s`` seconds (10 s by default). Not every second: an SLO check
observes a window (``for: 5m`` over steps of 15 s, Prometheus rates over minutes), so its result
cannot change faster than its step, and a round takes seconds of its own. Its ``for:`` window
is its grace: a FAILED result is a sustained breach already. The fast guard on the live load
stats is what reacts within seconds.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..model import Outcome, Severity, Status
from ..probes.base import ProbeContext, ProbeResult, run_check


@dataclass(frozen=True, slots=True)
class SloResult:
    name: str
    outcome: Outcome
    at: float
    #: a FAILED result ends the soak: the check is critical or asks for a rollback
    aborts: bool


def aborts_on_failure(check: Any) -> bool:
    """An SLO check ends a soak when it is critical or has an ``on_fail`` action."""
    return bool(check.severity is Severity.CRITICAL or getattr(check, "on_fail", None))


class SloWatch:
    """A daemon thread running ``checks`` round after round until ``stop``."""

    def __init__(
        self,
        checks: Sequence[Any],
        context: ProbeContext,
        *,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.checks = list(checks)
        self.context = context
        self.every_s = every_s
        self.clock = clock
        self.results: queue.Queue[SloResult] = queue.Queue(maxsize=10_000)
        self.latest: dict[str, SloResult] = {}
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-slo", daemon=True)

    def start(self) -> None:
        if self.checks:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            for check in self.checks:
                if self._stop.is_set():
                    return
                started = time.monotonic()
                try:
                    result = run_check(check, self.context)
                    if result.status is Status.SKIPPED:
                        # As in the gate: an optional source that is absent measured nothing.
                        result = ProbeResult(
                            Status.NO_DATA,
                            f"the check skipped itself, measuring nothing: {result.reason}",
                            result.evidence,
                        )
                    outcome = Outcome(
                        check.info(),
                        result.status,
                        result.reason,
                        result.evidence,
                        time.monotonic() - started,
                        result.marginal,
                    )
                except Exception as err:  # a probe must not raise; if it does, it is ERROR
                    outcome = Outcome(check.info(), Status.ERROR, f"{type(err).__name__}: {err}")
                found = SloResult(check.name, outcome, self.clock(), aborts_on_failure(check))
                self.latest[check.name] = found
                with contextlib.suppress(queue.Full):  # far behind: ``latest`` still has it
                    self.results.put_nowait(found)
            self.rounds += 1
            self._stop.wait(max(self.every_s - (time.monotonic() - began), 0.0))

    def drain(self) -> list[SloResult]:
        """Results since the last call, in order."""
        found = []
        while True:
            try:
                found.append(self.results.get_nowait())
            except queue.Empty:
                return found

    def stop(self, wait_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(wait_s)
