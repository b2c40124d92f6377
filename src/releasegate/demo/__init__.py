"""The embedded demo target: a small real HTTP service with fault knobs, run as a child process.

    with DemoTarget(faults={"latency_ms": 300}, fault_seed=7) as target:
        requests.get(f"{target.url}/healthz")
        target.set_faults({"error_rate": 0.02})
        target.log_path, target.fault_seed

Gate checks run against it to show every check kind passing, and blocking once a fault is on.
While it runs it serves itself background traffic and writes an application log, so that
metrics, the metrics JSON and the log have live data. See ``releasegate.demo.faults.FAULTS``
for the knobs and docs/demo.md for the endpoints, metrics and log lines.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

from ..errors import ReleasegateError, UsageError
from .faults import Faults, FaultValue
from .traffic import DEFAULT_RPS as DEFAULT_TRAFFIC_RPS

__all__ = ["BASELINE_VERSION", "DEMO_COMMIT", "DEMO_VERSION", "DemoTarget"]

DEMO_VERSION = "1.4.2"
#: What the demo's canary baseline serves: the release before ``DEMO_VERSION``.
BASELINE_VERSION = "1.4.1"
DEMO_COMMIT = "3f2c1ab"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
STDERR_TAIL_BYTES = 4000

# The directory holding the releasegate package, so that the child imports this very copy
# even when releasegate is not installed (a source checkout run with PYTHONPATH=src).
_IMPORT_ROOT = Path(__file__).resolve().parents[2]


def _cli_value(value: FaultValue) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class DemoTarget:
    """The demo server in a child process on a free loopback port; a context manager."""

    def __init__(
        self,
        faults: Mapping[str, FaultValue] | None = None,
        redis_url: str | None = None,
        workdir: Path | None = None,
        *,
        fault_seed: int | None = None,
        traffic_rps: float = DEFAULT_TRAFFIC_RPS,
        log_file: Path | None = None,
        log_max_bytes: int | None = None,
        metrics_window_s: float | None = None,
        version: str | None = None,
    ) -> None:
        """``fault_seed``: seed of the random faults (None: a fresh one per start, see
        ``fault_seed`` once started); ``traffic_rps``: background requests a second (0: none);
        ``log_file``: the application log (default ``demo.log`` in the workdir); ``version``:
        the version it serves (default ``DEMO_VERSION``; a canary's baseline serves an older
        one)."""
        self._faults = dict(faults or {})
        Faults.from_mapping(self._faults)  # a typo should fail here, not in the child
        self._redis_url = redis_url
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.traffic_rps = traffic_rps
        self._options: list[str] = ["--traffic-rps", str(traffic_rps)]
        if fault_seed is not None:
            self._options += ["--fault-seed", str(fault_seed)]
        if log_file is not None:
            self._options += ["--log-file", str(Path(log_file).resolve())]
        if log_max_bytes is not None:
            self._options += ["--log-max-bytes", str(log_max_bytes)]
        if metrics_window_s is not None:
            self._options += ["--metrics-window-s", str(metrics_window_s)]
        self.version = version or DEMO_VERSION
        self._options += ["--version", self.version]
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._url: str | None = None
        self._fault_seed: int | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._url is None:
            raise UsageError("the demo target is not running: call start() or use `with`")
        return self._url

    @property
    def fault_seed(self) -> int:
        """The seed the running target draws its random faults from (keep it in the record)."""
        if self._fault_seed is None:
            raise UsageError("the demo target is not running: call start() or use `with`")
        return self._fault_seed

    @property
    def log_path(self) -> Path:
        """The application log the running target writes (rotated to ``<name>.1`` ...)."""
        if self._log_path is None:
            raise UsageError("the demo target is not running: call start() or use `with`")
        return self._log_path

    @property
    def db_path(self) -> Path:
        """The SQLite database the target serves from."""
        if self.workdir is None:
            raise UsageError("the demo target has no database yet: call start() or use `with`")
        return self.workdir / "demo.sqlite3"

    def start(self) -> DemoTarget:
        """Launch the server and wait until it listens; raise ``ReleasegateError`` if it cannot."""
        if self._process is not None:
            raise UsageError("the demo target is already running; stop() it first")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="releasegate-demo-"))
        command = [
            sys.executable,
            "-m",
            "releasegate.demo.server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(self.db_path),
            "--stop-on-stdin-eof",
            *self._options,
        ]
        if self._redis_url is not None:
            command += ["--redis-url", self._redis_url]
        for name, value in self._faults.items():
            command += ["--fault", f"{name}={_cli_value(value)}"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_IMPORT_ROOT), env.get("PYTHONPATH")) if p
        )
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        # stdin stays open for the child's lifetime: it exits when it sees EOF, i.e. when we die.
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        announced = self._read_announcement(self._process)
        self._url = str(announced["url"])
        self._fault_seed = int(announced["fault_seed"])
        self._log_path = Path(announced["log_file"])
        return self

    def _read_announcement(self, process: subprocess.Popen[bytes]) -> dict[str, Any]:
        stdout = process.stdout
        assert stdout is not None  # Popen(stdout=PIPE) always sets it
        lines: queue.Queue[bytes] = queue.Queue()
        # A thread rather than select(): pipes cannot be selected on Windows.
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        started = time.monotonic()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self._fail(f"did not report its URL within {START_TIMEOUT_S:.0f} s")
        try:
            announced = json.loads(line)
            if isinstance(announced, dict) and {"url", "fault_seed", "log_file"} <= set(announced):
                return announced
        except ValueError:
            pass
        waited = time.monotonic() - started
        self._fail(f"exited after {waited:.1f} s without reporting its URL (got {line!r})")

    def _fail(self, what: str) -> NoReturn:
        tail = self._stderr_tail()
        self.stop()
        raise ReleasegateError(
            f"the demo target {what}. Its stderr ends with:\n{tail or '(nothing)'}"
        )

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - STDERR_TAIL_BYTES))
        return self._stderr.read().decode(errors="replace").strip()

    def set_faults(self, faults: Mapping[str, FaultValue]) -> dict[str, Any]:
        """Change the named faults at runtime (others stay); return all current faults."""
        Faults.from_mapping(faults)
        return self._call_faults("POST", dict(faults))

    def clear_faults(self) -> dict[str, Any]:
        """Switch every fault off; return the (default) faults."""
        return self._call_faults("DELETE", None)

    def _call_faults(self, method: str, body: dict[str, FaultValue] | None) -> dict[str, Any]:
        payload = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_faults",
            data=payload,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                faults: dict[str, Any] = json.load(response)["faults"]
        except urllib.error.HTTPError as err:
            raise UsageError(f"the demo target refused the faults: {err.read().decode()}") from err
        except OSError as err:
            raise ReleasegateError(f"cannot reach the demo target at {self.url}: {err}") from err
        return faults

    def stop(self) -> None:
        """Terminate the server (kill it after 5 s) and remove the temporary workdir."""
        process, self._process, self._url = self._process, None, None
        self._fault_seed = self._log_path = None
        if process is not None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> DemoTarget:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
