"""The demo target's application log: the line shapes of runbook 004, rotated by rename.

Every line is ``<UTC time> [<LEVEL>] <message>``; docs/demo.md lists the shapes, e.g.::

    2026-01-21T18:00:01.123Z [INFO] GET /api/products -> 200 in 3.1 ms (route ..., version 1.4.2)
    2026-01-21T18:00:02.456Z [WARNING] slow request: GET /healthz -> 200 in 412.0 ms (...)
    2026-01-21T18:00:03.789Z [ERROR] GET /healthz -> 500 in 0.4 ms (...): InjectedFault: ...
    2026-01-21T18:00:04.000Z [CRITICAL] unhandled exception in worker inventory-sync: ...

and its level says how a log-pattern gate should read it (``LINE_CLASSES``): INFO is GOOD,
WARNING is CONCERNING, ERROR and CRITICAL are BAD. Runbook 004 files one-off ``[ERROR]`` lines
under CONCERNING; here an ERROR line is a request that failed (5xx), which is what an error-rate
gate counts.

A reader must expect what real logs do: each line reaches the file whole (one ``write`` of an
``O_APPEND`` descriptor, so a reader never sees half a line), and the file is rotated by rename
(``demo.log`` -> ``demo.log.1`` -> ... -> ``demo.log.<backups>``, the oldest dropped) once it
would grow past ``max_bytes``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3
MAX_MESSAGE_CHARS = 1000  # a request path is the client's to choose; a log line is not
SLOW_REQUEST_MS = 250.0  # runbook 002 holds catalogue reads to 300 ms; warn before that


class Level(str, Enum):
    """Log levels, most to least severe is CRITICAL, ERROR, WARNING, INFO."""

    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LineClass(str, Enum):
    """How runbook 004 reads a log line."""

    GOOD = "GOOD"
    CONCERNING = "CONCERNING"
    BAD = "BAD"


LINE_CLASSES: dict[Level, LineClass] = {
    Level.INFO: LineClass.GOOD,
    Level.WARNING: LineClass.CONCERNING,
    Level.ERROR: LineClass.BAD,
    Level.CRITICAL: LineClass.BAD,
}

# A whole line as written, for readers and tests: time, level, message.
LINE_PATTERN = (
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(INFO|WARNING|ERROR|CRITICAL)\] \S[^\r\n]*$"
)


def _printable(message: str) -> str:
    # A newline in a request path would forge a second log line: escape control characters.
    cut = message[:MAX_MESSAGE_CHARS]
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return text + ("..." if len(message) > MAX_MESSAGE_CHARS else "")


def format_line(level: Level, message: str, now: datetime | None = None) -> str:
    """One log line with its newline; the message's control characters escaped."""
    moment = now or datetime.now(timezone.utc)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp} [{level.value}] {_printable(message)}\n"


class AppLog:
    """An append-only log file, rotated by rename past ``max_bytes`` (0: never). Thread-safe."""

    def __init__(
        self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, level: Level, message: str) -> None:
        """Append one line; a full disk or a closed log loses the line, never the request."""
        data = format_line(level, message).encode("utf-8", errors="replace")
        with self._lock:
            if self._fd is None:
                return
            try:
                if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
                    self._rotate()
                written = os.write(self._fd, data)
                self._size += written
            except OSError:
                pass

    def info(self, message: str) -> None:
        self.write(Level.INFO, message)

    def warning(self, message: str) -> None:
        self.write(Level.WARNING, message)

    def error(self, message: str) -> None:
        self.write(Level.ERROR, message)

    def critical(self, message: str) -> None:
        self.write(Level.CRITICAL, message)

    def _rotate(self) -> None:
        fd, self._fd = self._fd, None
        assert fd is not None  # write() checked
        os.close(fd)
        try:
            for number in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{number}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        finally:
            # Reopened even when a rename failed: the log goes on, in one file if it must.
            self._fd = self._open()
            self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class ExceptionSpike:
    """The ``log_spike`` fault: a worker that logs ``per_minute()`` CRITICAL exceptions a minute.

    It reads the rate on every tick, so a change through ``POST /_faults`` takes effect at once;
    the lines are spread evenly over the minute, the first one as soon as the spike starts.
    """

    def __init__(self, log: AppLog, per_minute: Callable[[], int], tick_s: float = 0.05) -> None:
        self._log = log
        self._per_minute = per_minute
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-log-spike", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        due: float | None = None
        while not self._stop.wait(self._tick_s):
            rate = self._per_minute()
            if rate <= 0:
                due = None
                continue
            now = time.monotonic()
            if due is None or due < now - 1.0:  # a new spike, or a stall: no burst of catch-up
                due = now
            while due <= now:
                self._log.critical(
                    "unhandled exception in worker inventory-sync: InjectedFault:"
                    f" log_spike={rate} ({rate} exceptions/min)"
                )
                due += 60.0 / rate
