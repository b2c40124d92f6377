"""The command hook: an argv list run with the decision as JSON on stdin and in the environment.

The argv comes from the spec, never from target data, and is never given to a shell.

What a hook can do to the gate is bounded: its output is read as it comes and only the first
and last ``HEAD_BYTES``/``TAIL_BYTES`` of each stream are kept (what is dropped is counted);
stdin is written without blocking, so a hook that never reads it cannot stall the gate; at its
timeout the hook is killed with every process it started, including those that ``setsid`` or
double-fork away (``proctree``); when it exits, whatever it left running is killed too, after
``EXIT_GRACE_S`` for processes still writing to its output pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from .. import proctree
from ..proctree import OutputCapture
from ..spec import CommandHook
from .result import ActionResult

#: Bytes kept of each output stream: its beginning and its end.
HEAD_BYTES = 8 * 1024
TAIL_BYTES = 8 * 1024
#: After the hook exits, how long processes it left behind may keep its output pipes open.
EXIT_GRACE_S = 1.0
#: After killing, how long to wait for the last bytes in the pipes.
_DRAIN_S = 0.5
#: Waking up this often when there is no pidfd to tell that the hook exited.
_POLL_S = 0.05
_CHUNK = 64 * 1024


def run_command(
    hook: CommandHook, payload: dict[str, Any], env: dict[str, str], *, base_dir: Path
) -> ActionResult:
    """Run ``hook.argv`` under its timeout; any way it can go wrong ends up in the result."""
    cwd = base_dir / hook.cwd if hook.cwd else base_dir
    token = secrets.token_hex(16)
    # The token is set last: the hook's own env cannot hide its processes.
    full_env = {**os.environ, **env, **hook.env, proctree.TOKEN_VAR: token}
    started = time.perf_counter()
    try:
        # Its own session and process group, and the token in the environment: how the
        # processes it starts are found when it is killed (proctree).
        proc = subprocess.Popen(
            hook.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
        )
    except OSError as err:
        return ActionResult(
            name=hook.name,
            type=hook.type,
            fired=True,
            ok=False,
            duration_s=time.perf_counter() - started,
            error=f"cannot run {hook.argv[0]!r} (cwd {cwd}): {err.strerror or err}",
        )
    try:
        run = _Run(proc, token, json.dumps(payload, default=str).encode(), hook.timeout_s)
    except BaseException:
        proc.kill()  # not supervised: not left running either
        proc.wait()
        raise
    try:
        run.supervise()
    finally:
        run.close()
    out, out_dropped = run.stdout.render()
    errs, err_dropped = run.stderr.render()
    common: dict[str, Any] = {
        "name": hook.name,
        "type": hook.type,
        "fired": True,
        "returncode": proc.returncode,
        "duration_s": time.perf_counter() - started,
        "stdout": out,
        "stderr": errs,
        "stdout_dropped": out_dropped,
        "stderr_dropped": err_dropped,
        "killed": run.killed,
    }
    if run.timed_out:
        return ActionResult(
            ok=False,
            timed_out=True,
            error=(
                f"no exit within {hook.timeout_s:g}s: killed with its child processes "
                f"({run.killed} process(es) in all)"
            ),
            **common,
        )
    if proc.returncode is None:  # killed, yet not reaped in time (uninterruptible sleep)
        return ActionResult(ok=False, error="did not end after SIGKILL", **common)
    return ActionResult(
        ok=proc.returncode == 0,
        error="" if proc.returncode == 0 else f"exit status {proc.returncode}",
        **common,
    )


class _Run:
    """One hook process: feed its stdin, read its output, watch its exit, kill its tree."""

    def __init__(self, proc: subprocess.Popen[bytes], token: str, stdin: bytes, timeout: float):
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.stdout = OutputCapture(HEAD_BYTES, TAIL_BYTES)
        self.stderr = OutputCapture(HEAD_BYTES, TAIL_BYTES)
        self.timed_out = False
        self.killed = 0
        self.exited_at: float | None = None
        self._pending = memoryview(stdin)
        self._sel = selectors.DefaultSelector()
        self._readers: dict[int, tuple[IO[bytes], OutputCapture]] = {
            proc.stdout.fileno(): (proc.stdout, self.stdout),
            proc.stderr.fileno(): (proc.stderr, self.stderr),
        }
        self.tree = proctree.Tree(
            root=proc.pid,
            token=token,
            pipes={
                os.fstat(proc.stdout.fileno()).st_ino: os.O_WRONLY,
                os.fstat(proc.stderr.fileno()).st_ino: os.O_WRONLY,
                os.fstat(proc.stdin.fileno()).st_ino: os.O_RDONLY,
            },
        )
        for fd in self._readers:
            self._sel.register(fd, selectors.EVENT_READ)
        self._writer: IO[bytes] | None = proc.stdin
        if self._pending:
            os.set_blocking(proc.stdin.fileno(), False)
            self._sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            self._close_stdin()
        # A pidfd becomes readable when the hook exits: no polling for it.
        self._pidfd: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                self._pidfd = pidfd_open(proc.pid)
                self._sel.register(self._pidfd, selectors.EVENT_READ)

    # -- the hook's life --------------------------------------------------------------------

    def supervise(self) -> None:
        while True:
            now = time.monotonic()
            if self.exited_at is None and self._exited():
                self.exited_at = now
                self._close_stdin()
                self._close_pidfd()
            if self.exited_at is not None and not self._readers:
                break  # exited, and nothing holds its output open
            limit = self.deadline
            if self.exited_at is not None:
                limit = min(limit, self.exited_at + EXIT_GRACE_S)
            if now >= limit:
                break
            wait = limit - now if self._pidfd is not None else min(limit - now, _POLL_S)
            for key, _ in self._sel.select(wait):
                self._ready(int(key.fd))
        self.timed_out = self.exited_at is None and not self._exited()
        # Whatever is left of its tree (all of it on a timeout; on an exit, the processes it
        # left behind, holding its pipes or not) is killed before the hook is reaped: until
        # then its pid, group and session cannot be anybody else's.
        self.killed = proctree.kill_tree(self.tree)
        self._reap()
        self._drain()

    def _exited(self) -> bool:
        """Whether the hook has exited, without reaping it (its pid stays ours)."""
        if self.proc.returncode is not None:
            return True
        try:
            return (
                os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            )
        except ChildProcessError:
            return True
        except (AttributeError, OSError):  # no waitid: reap it, and give up its group
            self.tree.root_owned = False
            return self.proc.poll() is not None

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.tree.root_owned = False

    def _drain(self) -> None:
        """Read what the killed processes wrote last, not waiting long for it."""
        self._close_stdin()
        self._close_pidfd()
        limit = time.monotonic() + _DRAIN_S
        while self._readers:
            left = limit - time.monotonic()
            if left <= 0:
                break
            for key, _ in self._sel.select(left):
                self._ready(int(key.fd))

    # -- the pipes --------------------------------------------------------------------------

    def _ready(self, fd: int) -> None:
        if fd in self._readers:
            stream, capture = self._readers[fd]
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                capture.feed(data)
            else:
                self._sel.unregister(fd)
                del self._readers[fd]
                stream.close()
        elif self._writer is not None and fd == self._writer.fileno():
            try:
                written = os.write(fd, self._pending[:_CHUNK])
            except BlockingIOError:
                return
            except OSError:  # BrokenPipeError: the hook closed stdin or exited
                self._close_stdin()
                return
            self._pending = self._pending[written:]
            if not self._pending:
                self._close_stdin()
        # else: the pidfd, readable: the hook exited; the loop sees it.

    def _close_stdin(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(writer.fileno())
        with contextlib.suppress(OSError):
            writer.close()

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(fd)
        os.close(fd)

    def close(self) -> None:
        """Release everything, whatever happened; a hook still running (an exception in the
        gate) is killed with its tree first."""
        if self.proc.returncode is None and self.tree.root_owned:
            with contextlib.suppress(Exception):
                self.killed = max(self.killed, proctree.kill_tree(self.tree))
            self._reap()
        self._close_stdin()
        self._close_pidfd()
        for fd, (stream, _) in list(self._readers.items()):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(fd)
            stream.close()
        self._readers.clear()
        self._sel.close()
