"""Log lines watched over a window: the ``log_pattern`` probe and the sources of its lines.

Each source is a ``LineSource``, giving the complete lines that appeared since it was last
asked:

* ``FileTail``: a log file, from its end (or its start), across a rotation by rename or by
  truncation;
* ``CommandLines``: what a command prints during the window (``kubectl logs -f``,
  ``docker logs -f``, ``journalctl -f``), run in its own session and killed with every process
  it started (``proctree``) when the window ends;
* ``JournalLines``: the ``MESSAGE`` of each systemd journal entry, from a ``journalctl -o json``
  stream (a ``CommandLines``) or export file (a ``FileTail``).

All of them cut bytes into lines with a ``LineSplitter``: a line split across reads counts once
complete, a line over ``max_line_bytes`` is cut (and counted as such), and reading stops at
``max_read_bytes`` a window (past which the check cannot pass: its rest was not read).

The window runs on ``ctx.clock`` and, for a file, waits with ``ctx.sleep``; a command's output
is read as it comes in real time (a command runs in real time whatever the clock says).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import selectors
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from .. import deadlines, proctree
from ..errors import ProbeError
from ..model import Evidence, Limit, Status
from ..redact import redact_text
from ..slo.units import format_duration
from .base import ProbeContext, ProbeResult
from .slo import _error, _result, _scale

#: Bytes of a file read per look at it; the rest waits for the next look.
FILE_READ_BYTES = 8 * 1024 * 1024
#: Bytes of a command's output read per look (or per wait) before its lines are classified.
PUMP_BYTES = 8 * 1024 * 1024
#: The end of a command's stderr kept for the reason when it fails.
ERR_TAIL_BYTES = 4 * 1024
#: The window ends this long before the check's deadline (at most a 10th of what is left when
#: it starts), to stop the command and return the evidence before the deadline stops the check.
DEADLINE_MARGIN_S = 0.5
_PIPE_READ = 64 * 1024
#: Waking up this often to see whether a command exited, where there is no pidfd to tell.
_POLL_S = 0.05
_EXAMPLES = 5
_EXAMPLE_CHARS = 300


class LineSplitter:
    """Bytes into complete lines, in bounded memory.

    A line longer than ``max_line`` bytes is cut to that length and counted in ``overlong``;
    the rest of it is skipped up to its newline, so that it is one line, not several. Bytes
    fed are counted against ``max_bytes``: a source reads at most ``room`` more.
    """

    def __init__(self, max_line: int, max_bytes: int) -> None:
        self.max_line = max_line
        self.max_bytes = max_bytes
        self.bytes_read = 0
        self.overlong = 0
        self._pending = bytearray()
        self._skipping = False

    @property
    def room(self) -> int:
        return max(self.max_bytes - self.bytes_read, 0)

    @property
    def capped(self) -> bool:
        return self.bytes_read >= self.max_bytes

    def feed(self, data: bytes) -> list[str]:
        """The lines ``data`` completes; a partial last line waits for the rest of it."""
        self.bytes_read += len(data)
        out: list[str] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False  # the end of an overlong line already taken
            else:
                self._pending += data[start:end]
                out.append(self._take())
            start = end + 1
        if not self._skipping:
            self._pending += data[start:]
            if len(self._pending) > self.max_line:
                out.append(self._take())
                self._skipping = True
        return out

    def flush(self) -> list[str]:
        """The last line of a stream that ended without a newline (a file rotated away, a
        command that exited)."""
        self._skipping = False
        return [self._take()] if self._pending else []

    def _take(self) -> str:
        raw = bytes(self._pending)
        self._pending.clear()
        if len(raw) > self.max_line:
            self.overlong += 1
            raw = raw[: self.max_line]
        return raw.decode("utf-8", errors="replace").rstrip("\r")


@dataclass(frozen=True, slots=True)
class Ended:
    """Why a source gives no more lines before the window ends; ``failed``: it broke (the
    check cannot pass), rather than simply finished."""

    reason: str
    failed: bool


class LineSource(Protocol):
    """Where a ``log_pattern`` check's lines come from."""

    split: LineSplitter

    @property
    def ended(self) -> Ended | None: ...

    def open(self) -> None:
        """Start reading at the window's start; ``ProbeError`` when it cannot."""

    def lines(self) -> list[str]:
        """The complete lines that appeared since the last call, without waiting."""
        ...

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass (reading meanwhile, for a source that must be drained)."""

    def close(self) -> None:
        """Release everything; safe to call whatever ``open`` did."""

    def details(self) -> dict[str, Any]:
        """What the record says of the source (JSON-able, redacted)."""
        ...


# ----------------------------------------------------------------------------------- a file


class FileTail:
    """New complete lines of a file, across rotation (rename, then a new file; truncation)."""

    def __init__(
        self,
        path: Path,
        split: LineSplitter,
        *,
        from_start: bool,
        sleep: Callable[[float], None],
    ) -> None:
        self.path = path
        self.split = split
        self.from_start = from_start
        self._sleep = sleep
        self._handle: IO[bytes] | None = None
        self._inode: int | None = None

    @property
    def ended(self) -> Ended | None:
        return None  # a file may always grow

    def open(self) -> None:
        self._open(from_start=self.from_start)

    def _open(self, from_start: bool) -> None:
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across reads
        except OSError as err:
            raise ProbeError(f"cannot read the log file {self.path}: {err.strerror}") from None
        self._inode = os.fstat(self._handle.fileno()).st_ino
        if not from_start:
            self._handle.seek(0, os.SEEK_END)

    def lines(self) -> list[str]:
        out = self._drain(to_end=False)
        try:
            current = os.stat(self.path)
        except OSError:
            return out  # rotated away and not yet recreated: read the old one to its end
        assert self._handle is not None
        rotated = current.st_ino != self._inode
        truncated = not rotated and current.st_size < self._handle.tell()
        if rotated or truncated:
            out += self._drain(to_end=True)
            out += self.split.flush()
            self._handle.close()
            self._open(from_start=True)
            out += self._drain(to_end=False)
        return out

    def _drain(self, *, to_end: bool) -> list[str]:
        assert self._handle is not None
        out: list[str] = []
        while data := self._handle.read(min(FILE_READ_BYTES, self.split.room)):
            out += self.split.feed(data)
            if not to_end:
                break
        return out

    def wait(self, seconds: float) -> None:
        self._sleep(seconds)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def details(self) -> dict[str, Any]:
        return {"source": {"file": str(self.path)}, "file": str(self.path)}


# -------------------------------------------------------------------------------- a command


class CommandLines:
    """The lines a command prints on stdout (and stderr, merged, with ``merge_stderr``) while
    the window lasts.

    The command inherits the environment plus ``proctree``'s run token, and starts its own
    session: when the window ends, it and everything it started (even what left its session)
    are killed, whether it honours SIGTERM or not. Its output is read without blocking; its
    stderr, when not merged, is drained and only its end kept, for the reason should it fail.
    An exit before the window ends ends the source: status 0 simply, any other is a failure.
    """

    def __init__(
        self,
        argv: list[str],
        split: LineSplitter,
        *,
        merge_stderr: bool = False,
        cwd: Path | None = None,
        not_found: str | None = None,
    ) -> None:
        self.argv = argv
        self.split = split
        self.merge_stderr = merge_stderr
        self.cwd = cwd
        self.not_found = not_found
        self.exit_status: int | None = None
        self.killed = 0
        self._ended: Ended | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tree: proctree.Tree | None = None
        self._sel = selectors.DefaultSelector()
        self._streams: dict[int, IO[bytes]] = {}
        self._out = -1  # the fd whose bytes are lines
        self._pidfd: int | None = None
        self._lines: list[str] = []
        self._tail = bytearray()
        self._tail_cut = False

    @property
    def ended(self) -> Ended | None:
        return self._ended

    @property
    def shown(self) -> str:
        """The command line as the record shows it (redacted)."""
        return redact_text(shlex.join(self.argv))

    def open(self) -> None:
        token = secrets.token_hex(16)
        env = {**os.environ, proctree.TOKEN_VAR: token}
        try:
            # Its own session, and the token in its environment: how the processes it starts
            # are found when it is killed (proctree), even those that leave the session.
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if self.merge_stderr else subprocess.PIPE,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as err:
            if self.cwd is not None and err.filename == str(self.cwd):
                raise ProbeError(f"cannot run the command in {self.cwd}: no such folder") from None
            raise ProbeError(
                self.not_found
                or f"command not found: {self.argv[0]!r} (neither a path to an executable nor"
                " a program on PATH)"
            ) from None
        except OSError as err:
            raise ProbeError(f"cannot run {self.argv[0]!r}: {err.strerror or err}") from None
        self._proc = proc
        self._tree = proctree.Tree(root=proc.pid, token=token)
        assert proc.stdout is not None
        streams = [proc.stdout] if proc.stderr is None else [proc.stdout, proc.stderr]
        # A process holding the command's end of a pipe is its, even with a cleared env.
        self._tree.pipes = {os.fstat(s.fileno()).st_ino: os.O_WRONLY for s in streams}
        self._out = proc.stdout.fileno()
        for stream in streams:
            os.set_blocking(stream.fileno(), False)
            self._streams[stream.fileno()] = stream
            self._sel.register(stream.fileno(), selectors.EVENT_READ)
        # A pidfd becomes readable when the command exits: no polling for it.
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                self._pidfd = pidfd_open(proc.pid)
                self._sel.register(self._pidfd, selectors.EVENT_READ)

    def lines(self) -> list[str]:
        self._pump(0.0)
        out, self._lines = self._lines, []
        return out

    def wait(self, seconds: float) -> None:
        self._pump(seconds)

    def _pump(self, seconds: float) -> None:
        """Read what the command writes for ``seconds`` (what is ready, for 0), until it exits,
        the byte cap is reached, or ``PUMP_BYTES`` were read: then its lines are classified."""
        until = time.monotonic() + seconds
        pumped = 0
        while self._ended is None and not self.split.capped and pumped < PUMP_BYTES:
            left = max(until - time.monotonic(), 0.0)
            ready = self._sel.select(left if self._pidfd is not None else min(left, _POLL_S))
            for key, _ in ready:
                if key.fd != self._pidfd:
                    pumped += self._read(int(key.fd))
            if self._exited():
                self._finish()
            elif left <= 0 and not ready:
                return

    def _read(self, fd: int) -> int:
        """Read one chunk of ``fd`` (the lines, or stderr); return how many bytes."""
        size = min(_PIPE_READ, self.split.room) if fd == self._out else _PIPE_READ
        if size <= 0:
            self._stop_reading(fd)  # the cap: the command may block writing until killed
            return 0
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            return 0
        except OSError:
            data = b""
        if not data:
            self._stop_reading(fd)
            if fd == self._out:
                self._lines += self.split.flush()
            return 0
        if fd == self._out:
            self._lines += self.split.feed(data)
        if fd != self._out or self.merge_stderr:
            self._keep_tail(data)
        return len(data)

    def _keep_tail(self, data: bytes) -> None:
        self._tail += data
        if len(self._tail) > ERR_TAIL_BYTES:
            del self._tail[: len(self._tail) - ERR_TAIL_BYTES]
            self._tail_cut = True

    def _stop_reading(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(fd)

    def _exited(self) -> bool:
        """Whether the command has exited, without reaping it: its pid (and its group, and
        its session) stay ours until its tree is killed."""
        if self._proc is None or self._ended is not None:
            return False
        try:
            return (
                os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                is not None
            )
        except ChildProcessError:
            return True

    def _finish(self) -> None:
        """The command exited: take what it wrote before, and say how it ended."""
        assert self._proc is not None
        with contextlib.suppress(ChildProcessError):
            done = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if done is not None:
                killed = done.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
                self.exit_status = -done.si_status if killed else done.si_status
        # Its output is in the pipes already (a process it left behind may write on: read
        # what is there now, not what comes later).
        for fd in list(self._streams):
            taken = 0
            while taken < PUMP_BYTES and fd in self._sel.get_map():
                chunk = self._read(fd)
                if not chunk:
                    break
                taken += chunk
        self._lines += self.split.flush()
        program = Path(self.argv[0]).name
        if self.exit_status == 0:
            self._ended = Ended(f"{program} exited with status 0", failed=False)
            return
        if self.exit_status is None:
            how = "exited"
        elif self.exit_status < 0:
            how = f"was killed by signal {-self.exit_status}"
        else:
            how = f"exited with status {self.exit_status}"
        tail = self.tail()
        self._ended = Ended(f"{program} {how}" + (f": {tail}" if tail else ""), failed=True)

    def tail(self) -> str:
        """The last lines of its stderr (of its output, merged), redacted, on one line."""
        text = self._tail.decode("utf-8", errors="replace")
        if self._tail_cut:
            text = text.partition("\n")[2]  # a line cut by the tail could hide a secret
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return redact_text(" | ".join(lines[-5:])[-600:])

    def close(self) -> None:
        if self._tree is not None and self._proc is not None:
            # Killed before it is reaped: until then its pid, group and session cannot be
            # anybody else's.
            self.killed = proctree.kill_tree(self._tree)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._tree.root_owned = False
            self._tree = None
        if self._pidfd is not None:
            self._stop_reading(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        for fd, stream in self._streams.items():
            self._stop_reading(fd)
            stream.close()
        self._streams.clear()
        self._sel.close()

    def details(self) -> dict[str, Any]:
        return {
            "source": {"command": [redact_text(arg) for arg in self.argv]},
            "stderr": "merged" if self.merge_stderr else "kept apart",
            "exit_status": self.exit_status,
            "processes_killed": self.killed,
        }


# ------------------------------------------------------------------------------ the journal


class JournalLines:
    """The ``MESSAGE`` of each entry of a ``journalctl -o json`` stream (one JSON object a
    line). A message is text, or a list of byte values for a binary one (decoded as UTF-8,
    with replacement); an entry without one is skipped, and a line that is not a JSON object
    is counted in ``not_json``."""

    def __init__(self, inner: FileTail | CommandLines, described: dict[str, Any]) -> None:
        self.inner = inner
        self.split = inner.split
        self.described = described
        self.not_json = 0

    @property
    def ended(self) -> Ended | None:
        return self.inner.ended

    def open(self) -> None:
        self.inner.open()

    def lines(self) -> list[str]:
        out = []
        for line in self.inner.lines():
            message = self._message(line)
            if message is not None:
                out.append(message)
        return out

    def _message(self, line: str) -> str | None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            self.not_json += 1
            return None
        message = entry.get("MESSAGE")
        if isinstance(message, str):
            return message
        if isinstance(message, list) and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in message
        ):
            return bytes(message).decode("utf-8", errors="replace")
        return None

    def wait(self, seconds: float) -> None:
        self.inner.wait(seconds)

    def close(self) -> None:
        self.inner.close()

    def details(self) -> dict[str, Any]:
        inner = self.inner.details()
        journald = dict(self.described)
        if isinstance(self.inner, CommandLines):
            journald["command"] = inner.pop("source")["command"]
        else:
            inner.pop("source")
            inner.pop("file")
        return {"source": {"journald": journald}, **inner, "not_json": self.not_json}


# ------------------------------------------------------------------------------- the probe


def _classify(patterns: Any) -> Callable[[str], str | None]:
    compiled = [
        (name, [re.compile(p) for p in getattr(patterns, name)])
        for name in ("bad", "concerning", "good")
    ]

    def classify(line: str) -> str | None:
        for name, regexes in compiled:
            if any(r.search(line) for r in regexes):
                return name
        return None

    return classify


def _resolve(name: str, ctx: ProbeContext) -> Path:
    path = Path(name)
    if not path.is_absolute() and ctx.spec_dir is not None:
        path = ctx.spec_dir / path
    return path


def _source(check: Any, ctx: ProbeContext, split: LineSplitter) -> tuple[LineSource, str]:
    """The check's line source, and what it watches as ``measured`` says it."""
    if check.command is not None:
        command = CommandLines(
            list(check.command), split, merge_stderr=check.stderr, cwd=ctx.spec_dir
        )
        return command, f"output of `{command.shown}`"
    if check.journald is not None:
        journald = check.journald
        if journald.file is not None:
            path = _resolve(journald.file, ctx)
            tail = FileTail(path, split, from_start=check.from_start, sleep=ctx.sleep)
            return JournalLines(tail, {"file": str(path)}), f"journal export {path}"
        command = CommandLines(
            journald.argv(),
            split,
            cwd=ctx.spec_dir,
            not_found="journalctl not found: install systemd's journalctl here, or give"
            " journald: {file: ...} an export written by journalctl -o json",
        )
        wanted = {
            name: getattr(journald, name)
            for name in ("unit", "identifier")
            if getattr(journald, name) is not None
        }
        what = " ".join(f"{name} {value}" for name, value in wanted.items())
        return JournalLines(command, wanted), f"journal of {what}"
    if check.file == "demo://log":
        found = getattr(ctx.cache.get("demo"), "log_file", None)
        if found is None:
            raise ProbeError(
                "file: demo://log is the demo target's log, and this run's target is not the"
                " demo: give the application's log file"
            )
        path = Path(found)
    else:
        path = _resolve(check.file, ctx)
    return FileTail(path, split, from_start=check.from_start, sleep=ctx.sleep), str(path)


def probe_log_pattern(check: Any, ctx: ProbeContext) -> ProbeResult:
    """Watch the source for the window: BAD lines over ``max_bad`` fail, a CONCERNING rate over
    ``concerning_rate`` fails, a window without any new line is NO DATA. A window cut short (a
    command that failed, the byte cap, the check's deadline) cannot pass."""
    duration = check.hold_for / _scale(ctx)
    over = f"over {format_duration(check.hold_for)}"
    split = LineSplitter(check.max_line_bytes, check.max_read_bytes)
    try:
        source, what = _source(check, ctx, split)
    except ProbeError as err:
        return _error(f"log {check.file} {over}", str(err))
    measured = f"log {what} {over}"
    classify = _classify(check.patterns)
    counts = {"bad": 0, "concerning": 0, "good": 0, "other": 0}
    examples: dict[str, list[str]] = {"bad": [], "concerning": []}
    deadline = deadlines.current()
    deadline_cut = False
    try:
        source.open()
        started = ctx.clock()
        margin = 0.0
        if deadline is not None:
            margin = min(DEADLINE_MARGIN_S, max(deadline - time.monotonic(), 0.0) / 10)
        poll = min(max(duration / 20, 0.05), 1.0)
        while True:
            for line in source.lines():
                found = classify(line) or "other"
                counts[found] += 1
                if found in examples and len(examples[found]) < _EXAMPLES:
                    examples[found].append(redact_text(line[:_EXAMPLE_CHARS]))
            if source.ended is not None or split.capped:
                break
            left = started + duration - ctx.clock()
            if left <= 0:
                break
            if deadline is not None:
                room = deadline - margin - time.monotonic()
                if room <= 0:
                    deadline_cut = True
                    break
                left = min(left, room)
            source.wait(min(poll, left))
        elapsed = max(ctx.clock() - started, 1e-9)
    except ProbeError as err:
        return _error(measured, str(err), **source.details())
    finally:
        source.close()
    total = sum(counts.values())
    rate_per_s = counts["concerning"] / elapsed
    value: dict[str, Any] = {**counts, "lines": total, "concerning_per_hour": rate_per_s * 3600}
    details = {
        **source.details(),
        "window": {"duration_s": check.hold_for, "scaled_duration_s": round(elapsed, 3)},
        "examples": examples,
        "overlong_lines": split.overlong,
        "bytes_read": split.bytes_read,
        "max_read_bytes": split.max_bytes,
        "capped": split.capped,
    }
    threshold = f"bad <= {check.max_bad}"
    if check.concerning_rate is not None:
        threshold += f"; concerning rate {check.concerning_rate}"
    problems = []
    if counts["bad"] > check.max_bad:
        problems.append(f"{counts['bad']} BAD line(s), at most {check.max_bad} allowed")
    if check.concerning_rate is not None and not check.concerning_rate.holds(rate_per_s):
        problems.append(
            f"CONCERNING lines at {check.concerning_rate.describe(rate_per_s)},"
            f" held to {check.concerning_rate}"
        )
    # Why the window ended before its end, and whether the check may still pass.
    ended = source.ended
    after = f"after {elapsed:.2f}s of {duration:.2f}s"
    cut = None
    if ended is not None and ended.failed:
        cut = f"{ended.reason} ({after})"
    elif split.capped:
        cut = (
            f"read max_read_bytes ({split.max_bytes} bytes) {after}: the rest of the window"
            " was not read"
        )
    elif deadline_cut:
        cut = f"the check's deadline ended the window {after}: give it a timeout longer than for:"
    note = f"; {ended.reason} {after}" if ended is not None and not ended.failed else ""
    tally = ", ".join(f"{counts[k]} {k}" for k in ("bad", "concerning", "good", "other"))
    if problems:
        status = Status.FAILED
        reason = f"{measured}: " + "; ".join(problems) + f" ({tally})"
        if cut is not None:
            reason += f"; {cut}"
    elif cut is not None:
        status, reason = Status.ERROR, f"{measured}: {cut} ({tally})"
    elif total == 0:
        status = Status.NO_DATA
        reason = f"{measured}: no new line in the window{note}: is the application logging here?"
        not_json = details.get("not_json")
        if not_json:
            reason += f" ({not_json} line(s) were not journal JSON entries)"
    else:
        status, reason = Status.PASSED, f"{measured}: {tally}{note}"
    limits: tuple[Limit, ...] = ()
    if check.concerning_rate is not None:
        limits = (check.concerning_rate.limit("concerning lines", key="concerning_per_hour"),)
    evidence = Evidence(measured, value, threshold, redact_text(reason), details, limits)
    return _result(status, reason, evidence)
