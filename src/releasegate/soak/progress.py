"""What a running soak shows: a rich live panel on a terminal, plain throttled lines elsewhere.

A CI log gets one line every ``every_s`` seconds (10 by default: 17,280 lines for 48 hours,
not 172,800) plus one line at once for each event (a breach, a full gate, the end); a terminal
gets a panel redrawn twice a second. Both read the same ``Snapshot``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

from .guard import GuardState


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The soak now: what both displays show."""

    elapsed_s: float
    duration_s: float
    rps: float
    p95_ms: float | None
    error_rate: float | None
    requests: int
    failures: int
    users: int
    guard: GuardState
    guard_reason: str
    next_gate_in_s: float | None
    slo: tuple[tuple[str, str], ...] = ()

    @property
    def eta_s(self) -> float:
        return max(self.duration_s - self.elapsed_s, 0.0)


class Progress(Protocol):
    def update(self, snap: Snapshot) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


def clock_text(seconds: float | None) -> str:
    """``1h02m03s`` / ``4m05s`` / ``6s``."""
    if seconds is None:
        return "-"
    total = int(max(seconds, 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def line(snap: Snapshot) -> str:
    """The plain one-line form of a snapshot."""
    p95 = f"{snap.p95_ms:.0f}ms" if snap.p95_ms is not None else "-"
    err = f"{snap.error_rate:.2%}" if snap.error_rate is not None else "-"
    gate = clock_text(snap.next_gate_in_s) if snap.next_gate_in_s is not None else "none"
    return (
        f"soak {clock_text(snap.elapsed_s)}/{clock_text(snap.duration_s)}"
        f" eta {clock_text(snap.eta_s)} | {snap.rps:.1f} req/s p95 {p95} errors {err}"
        f" ({snap.failures}/{snap.requests}) users {snap.users} | guard {snap.guard.value}"
        f" | next gate {gate}"
    )


class PlainProgress:
    """One line every ``every_s`` seconds of the caller's clock; events at once."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stdout
        self.every_s = every_s
        self.clock = clock
        self._last: float | None = None

    def update(self, snap: Snapshot) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        self._write(line(snap))

    def note(self, text: str) -> None:
        self._write(f"soak: {text}")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not end the soak

    def close(self) -> None:
        return None


class LiveProgress:
    """A rich panel: elapsed and ETA, rps, p95, errors, guard, SLO states, the next gate."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stdout)
        self.live = Live(console=self.console, refresh_per_second=2, transient=False)
        self.live.start()

    def _render(self, snap: Snapshot) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        colour = {
            GuardState.OK: "green",
            GuardState.WARMUP: "cyan",
            GuardState.NO_DATA: "yellow",
            GuardState.BREACHING: "yellow",
            GuardState.BREACHED: "bold red",
        }[snap.guard]
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        done = snap.elapsed_s / snap.duration_s if snap.duration_s else 1.0
        table.add_row("soak", ProgressBar(total=1.0, completed=min(done, 1.0), width=40))
        table.add_row(
            "elapsed",
            f"{clock_text(snap.elapsed_s)} of {clock_text(snap.duration_s)}"
            f"  (ETA {clock_text(snap.eta_s)})",
        )
        p95 = f"{snap.p95_ms:.1f} ms" if snap.p95_ms is not None else "-"
        err = f"{snap.error_rate:.2%}" if snap.error_rate is not None else "-"
        table.add_row("load", f"{snap.rps:.1f} req/s, {snap.users} users")
        table.add_row("p95", p95)
        table.add_row("errors", f"{err} ({snap.failures} of {snap.requests})")
        table.add_row("guard", f"[{colour}]{snap.guard.value}[/] {snap.guard_reason}")
        for name, status in snap.slo:
            table.add_row(f"  {name}", status.replace("_", " "))
        gate = clock_text(snap.next_gate_in_s) if snap.next_gate_in_s is not None else "none"
        table.add_row("next full gate", gate)
        return table

    def update(self, snap: Snapshot) -> None:
        self.live.update(self._render(snap))

    def note(self, text: str) -> None:
        self.console.print(f"soak: {text}", markup=False, highlight=False)

    def close(self) -> None:
        self.live.stop()


def make_progress(stream: IO[str] | None = None, *, plain: bool | None = None) -> Progress:
    """A live panel on a terminal, plain lines when not a tty, in CI or when asked."""
    out = stream or sys.stdout
    if plain is None:
        plain = bool(os.environ.get("CI")) or not (hasattr(out, "isatty") and out.isatty())
    if plain:
        return PlainProgress(out)
    return LiveProgress(out)
