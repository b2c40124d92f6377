"""The full phase gate, run every N minutes of a soak: ``pytest -m gate_<phase>`` as a child.

It is the real gate (every check of the phase, the plugin's decision), with two differences
that keep it from acting behind the soak's back:

* it writes into the soak's own folder (``--rg-report-dir <soak>/gates/<n>``), so it never
  overwrites the phase's record, and each full gate's record is kept;
* it runs in dark mode (``--rg-mode dark``): its hooks are recorded as would-fire, never fired.
  The soak reads its record and, on NO-GO, ends and fires the phase's hooks itself, once, after
  writing its own record.

The child leads its own session and carries a run token (``proctree``), runs under a deadline
and is killed with everything it started when the soak ends first. Its output goes to
``pytest.log`` beside its record, cut to ``LOG_CAP_BYTES``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import proctree
from ..phases import Phase
from ..record import read_record, record_path

LOG_CAP_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class GateResult:
    """What one full gate said: its record's decision, or why there is none."""

    number: int
    verdict: str  # the record's decision, or INCONCLUSIVE when none was written
    record: str | None
    reason: str
    started_elapsed_s: float
    duration_s: float
    outcomes: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "verdict": self.verdict,
            "record": self.record,
            "reason": self.reason,
            "started_elapsed_s": round(self.started_elapsed_s, 3),
            "duration_s": round(self.duration_s, 3),
        }


class FullGate:
    """One full gate running in the background; ``result`` once it has ended."""

    def __init__(
        self,
        *,
        number: int,
        phase: Phase,
        deployment: str,
        spec: Path,
        folder: Path,
        env: Mapping[str, str],
        timeout_s: float,
        started_elapsed_s: float,
    ) -> None:
        self.number = number
        self.phase = phase
        self.deployment = deployment
        self.folder = folder
        self.timeout_s = timeout_s
        self.started_elapsed_s = started_elapsed_s
        self.result: GateResult | None = None
        self._token = secrets.token_hex(16)
        self._started = time.monotonic()
        self._stop = threading.Event()
        folder.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            phase.marker,
            "--rg-spec",
            str(spec),
            "--rg-report-dir",
            str(folder),
            "--rg-mode",
            "dark",
            "-q",
            "-p",
            "no:cacheprovider",
            # Never locust's pytest plugin in a pytest process: it monkey-patches it with gevent.
            "-p",
            "no:locust",
        ]
        self._log = open(folder / "pytest.log", "wb")  # noqa: SIM115 - closed by the thread
        full_env = {**os.environ, **env, proctree.TOKEN_VAR: self._token}
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=spec.parent,
            env=full_env,
            start_new_session=True,
        )
        self._tree = proctree.Tree(root=self.proc.pid, token=self._token)
        self._thread = threading.Thread(target=self._watch, name=f"soak-gate-{number}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self.result is None

    def _watch(self) -> None:
        reason = ""
        try:
            deadline = self._started + self.timeout_s
            while self.proc.poll() is None:
                if self._stop.is_set():
                    reason = "stopped: the soak ended first"
                    break
                if time.monotonic() >= deadline:
                    reason = f"no end within {self.timeout_s:g}s: killed"
                    break
                time.sleep(0.1)
        finally:
            # Whatever it left running (a demo target, Prometheus, a hook) goes with it.
            proctree.kill_tree(self._tree)
            self._tree.root_owned = False
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self._log.close()
            _cap(self.folder / "pytest.log")
        self.result = self._read(reason)

    def _read(self, problem: str) -> GateResult:
        took = time.monotonic() - self._started
        path = record_path(self.folder, self.deployment, self.phase)
        if problem or not path.exists():
            why = problem or f"no record was written (pytest exit {self.proc.returncode})"
            return GateResult(self.number, "INCONCLUSIVE", None, why, self.started_elapsed_s, took)
        try:
            data = read_record(path)
        except Exception as err:  # an unreadable record is no decision, whatever the cause
            why = f"its record cannot be read: {type(err).__name__}: {err}"
            return GateResult(
                self.number, "INCONCLUSIVE", str(path), why, self.started_elapsed_s, took
            )
        verdict = str(data.get("decision", "INCONCLUSIVE"))
        score = data.get("score")
        outcomes = tuple(o for o in data.get("outcomes", []) if isinstance(o, dict))
        return GateResult(
            self.number,
            verdict,
            str(path),
            f"{verdict} (score {score}) in {took:.1f}s",
            self.started_elapsed_s,
            took,
            outcomes,
        )

    def stop(self, wait_s: float = 10.0) -> None:
        """End it now (the soak is ending); its tree is killed."""
        self._stop.set()
        self._thread.join(wait_s)


def _cap(path: Path) -> None:
    """Keep the head and the tail of an over-long log."""
    try:
        size = path.stat().st_size
        if size <= LOG_CAP_BYTES:
            return
        half = LOG_CAP_BYTES // 2
        with open(path, "rb") as fh:
            head = fh.read(half)
            fh.seek(size - half)
            tail = fh.read()
        dropped = size - len(head) - len(tail)
        path.write_bytes(head + f"\n[... {dropped} bytes dropped ...]\n".encode() + tail)
    except OSError:
        pass
