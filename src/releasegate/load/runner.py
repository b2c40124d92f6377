"""One locust run as a supervised child process tree, read live through our channel.

``LocustRun`` starts ``python -m releasegate.load.locust_main`` (locust plus our recorder,
never imported here: locust monkey-patches its process with gevent) headless, in its own
session and process group with ``proctree``'s run token in its environment, so that it and
every process it starts (the master's local workers) are found and killed however they end.
Its output (stdout and stderr together) is drained by a thread into a head-and-tail capture,
so a chatty locust can neither block on a full pipe nor fill our memory.

Time is bounded three ways: locust's own ``--run-time``; the run's budget (``deadline_s``,
by default the run time plus start and stop graces), past which ``wait`` stops it; and the
running check's deadline (``deadlines.current()``), never outlived. Stopping asks first
(SIGTERM: locust quits cleanly and writes its final line), then kills the whole tree within
``STOP_BUDGET_S``. Leaving the ``with`` block always leaves no process behind.

With ``workers > 0`` locust's own engine runs a master and N local worker processes
(``--processes N``) talking over a free loopback port, so xdist workers never clash.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .. import deadlines, proctree
from ..errors import ReleasegateError
from ..proctree import OutputCapture
from .channel import ChannelReader, FinalStats, Interval, NameStats, empty, merge
from .locust_main import ENV_CHANNEL, ENV_GUARD, ENV_INTERVAL

#: Seconds locust may take to start (import, load the locustfile, workers to connect) beyond
#: its run time, by default.
STARTUP_GRACE_S = 20.0
#: Seconds locust may take to stop after its run time (quit workers, write the final line).
SHUTDOWN_GRACE_S = 10.0
#: After asking locust to stop, how long before its tree is killed outright.
STOP_BUDGET_S = 5.0
#: How long before the running check's deadline the run is stopped (for the stop to finish).
CHECK_DEADLINE_MARGIN_S = 2.0
#: How long local workers may take to connect to their master before locust gives up.
EXPECT_WORKERS_MAX_WAIT_S = 30
#: Output kept: the first and the last bytes of locust's stdout and stderr together.
OUTPUT_HEAD_BYTES = 4 * 1024
OUTPUT_TAIL_BYTES = 12 * 1024
_POLL_S = 0.05
#: Environment variables of a pytest process that must not reach locust (it has a pytest
#: plugin of its own and nothing pytest-ish belongs in its process).
_DROPPED_ENV_PREFIXES = ("PYTEST_", "_PYTEST")


class LoadRunError(ReleasegateError):
    """A locust run that cannot be started as asked (no locustfile, a bad parameter)."""


@dataclass(frozen=True)
class LoadResult:
    """What one locust run measured, and how it ended.

    ``totals`` and ``by_name`` are the whole run's exact histograms: from the final line when
    locust wrote it, else merged from the intervals read (a run killed before its end).
    ``locust`` holds locust's own numbers (rounded percentiles, rps) when the final line was
    written. ``stopped_reason`` is None for a run that ended by itself.
    """

    intervals: int
    totals: NameStats
    by_name: dict[str, NameStats]
    duration_s: float
    locust: dict[str, Any] | None
    exit_code: int | None
    output_tail: str
    stopped_reason: str | None
    #: the seconds the intervals read cover (from the first interval's start to the last's end)
    measured_s: float = 0.0
    killed: int = 0
    channel_problems: tuple[str, ...] = field(default=())

    @property
    def final(self) -> bool:
        """Whether locust wrote its final line (it quit cleanly)."""
        return self.locust is not None

    @property
    def rps(self) -> float | None:
        """Requests per second over the measured intervals; None without any."""
        if self.measured_s <= 0:
            return None
        return self.totals.requests / self.measured_s

    def rps_of(self, name: str) -> float | None:
        stats = self.by_name.get(name)
        if stats is None or self.measured_s <= 0:
            return None
        return stats.requests / self.measured_s


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the kernel's pick: no clash between xdist workers)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without pytest's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class _Totals:
    """Per name: counts and one histogram each, merged interval by interval (bounded)."""

    def __init__(self) -> None:
        self.by_name: dict[str, NameStats] = {}
        self.first_start: float | None = None
        self.last_end: float | None = None

    def add(self, interval: Interval) -> None:
        if self.first_start is None:
            self.first_start = interval.start
        self.last_end = interval.end
        for name, stats in interval.by_name.items():
            have = self.by_name.get(name)
            if have is None:
                have = self.by_name[name] = empty()
            have.histogram.add(stats.histogram)
            self.by_name[name] = NameStats(
                have.requests + stats.requests, have.failures + stats.failures, have.histogram
            )

    @property
    def seconds(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return max(self.last_end - self.first_start, 0.0)


class LocustRun:
    """One locust child process tree (a master and N local workers when ``workers > 0``).

    ``deadline_s`` is the most the whole run may take from ``start()`` (start-up, the run,
    shutting down); by default ``run_time_s`` plus ``STARTUP_GRACE_S`` and
    ``SHUTDOWN_GRACE_S``. The running check's deadline, if earlier, wins.
    """

    def __init__(
        self,
        *,
        locustfile: Path,
        host: str,
        users: int,
        spawn_rate: float,
        run_time_s: float,
        workers: int = 0,
        interval_s: float = 1.0,
        workdir: Path,
        deadline_s: float | None = None,
        extra_env: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        master_bind_host: str = "127.0.0.1",
        master_port: int | None = None,
        expect_remote_workers: int = 0,
        allowed_hosts: Sequence[str] = (),
        pinned: Sequence[str] = (),
    ) -> None:
        if users < 1:
            raise LoadRunError(f"users must be at least 1, not {users}")
        if not spawn_rate > 0:
            raise LoadRunError(f"spawn_rate must be positive, not {spawn_rate}")
        if not (math.isfinite(run_time_s) and run_time_s > 0):
            raise LoadRunError(f"run_time_s must be a positive number, not {run_time_s}")
        if workers < 0 or expect_remote_workers < 0:
            raise LoadRunError("workers and expect_remote_workers are counts (0 or more)")
        if workers and expect_remote_workers:
            raise LoadRunError("give local workers or remote workers, not both")
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise LoadRunError(f"interval_s must be a positive number, not {interval_s}")
        self.locustfile = Path(locustfile).resolve()
        self.host = host
        self.users = users
        self.spawn_rate = spawn_rate
        self.run_time_s = run_time_s
        self.workers = workers
        self.interval_s = interval_s
        self.workdir = Path(workdir)
        self.extra_env = dict(extra_env or {})
        self.tags = tuple(tags)
        self.extra_args = tuple(extra_args)
        self.master_bind_host = master_bind_host
        self.master_port = master_port
        self.expect_remote_workers = expect_remote_workers
        self.allowed_hosts = tuple(allowed_hosts)
        self.pinned = tuple(pinned)
        distributed = workers > 0 or expect_remote_workers > 0
        grace = STARTUP_GRACE_S + (EXPECT_WORKERS_MAX_WAIT_S if distributed else 0.0)
        self.budget_s = (
            deadline_s if deadline_s is not None else run_time_s + grace + SHUTDOWN_GRACE_S
        )
        self.channel_path = self.workdir / "channel.jsonl"
        self.reader = ChannelReader(self.channel_path)
        self.stopped_reason: str | None = None
        self.killed = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tree: proctree.Tree | None = None
        self._capture = OutputCapture(OUTPUT_HEAD_BYTES, OUTPUT_TAIL_BYTES)
        self._capture_lock = threading.Lock()
        self._drainer: threading.Thread | None = None
        self._started_at = 0.0
        self._ended_at: float | None = None
        self._deadline = math.inf
        self._totals = _Totals()
        self._intervals = 0
        self._result: LoadResult | None = None

    # -- starting --------------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The child's command line (``master_port`` is chosen by ``start`` when needed)."""
        run_time = max(1, math.ceil(self.run_time_s))
        argv = [
            sys.executable,
            "-m",
            "releasegate.load.locust_main",
            "-f",
            str(self.locustfile),
            "--headless",
            "--host",
            self.host,
            "--users",
            str(self.users),
            "--spawn-rate",
            f"{self.spawn_rate:g}",
            "--run-time",
            f"{run_time}s",
            "--only-summary",
            # Failed requests are measurements (the thresholds judge them), not a crash.
            "--exit-code-on-error",
            "0",
        ]
        if self.tags:
            argv += ["--tags", *self.tags]
        if self.workers or self.expect_remote_workers:
            port = str(self.master_port or 0)
            argv += ["--master-bind-host", self.master_bind_host, "--master-bind-port", port]
            argv += ["--expect-workers-max-wait", str(EXPECT_WORKERS_MAX_WAIT_S)]
        if self.workers:
            argv += ["--processes", str(self.workers)]
            argv += ["--master-host", "127.0.0.1", "--master-port", port]
        elif self.expect_remote_workers:
            argv += ["--master", "--expect-workers", str(self.expect_remote_workers)]
        return argv + list(self.extra_args)

    def start(self) -> None:
        """Start locust; raises ``LoadRunError`` when it cannot be started at all."""
        if self._proc is not None:
            raise LoadRunError("this run was started already")
        if not self.locustfile.is_file():
            raise LoadRunError(f"locustfile {self.locustfile} does not exist")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.channel_path.unlink()
        if (self.workers or self.expect_remote_workers) and self.master_port is None:
            self.master_port = free_port(
                "127.0.0.1"
                if self.master_bind_host in ("", "*", "0.0.0.0")
                else self.master_bind_host
            )
        token = secrets.token_hex(16)
        env = child_env(
            {
                **self.extra_env,
                ENV_CHANNEL: str(self.channel_path),
                ENV_INTERVAL: repr(self.interval_s),
                ENV_GUARD: json.dumps(
                    {"allowed_hosts": list(self.allowed_hosts), "pinned": list(self.pinned)}
                ),
                proctree.TOKEN_VAR: token,
            }
        )
        now = time.monotonic()
        self._started_at = now
        self._deadline = now + self.budget_s
        check_deadline = deadlines.current()
        if check_deadline is not None:
            # Stopped early enough to be stopped politely before the check's own deadline.
            self._deadline = min(self._deadline, check_deadline - CHECK_DEADLINE_MARGIN_S)
        try:
            proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.locustfile.parent,
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            raise LoadRunError(f"cannot start locust: {err.strerror or err}") from err
        assert proc.stdout is not None
        self._proc = proc
        self._tree = proctree.Tree(
            root=proc.pid,
            token=token,
            pipes={os.fstat(proc.stdout.fileno()).st_ino: os.O_WRONLY},
        )
        self._drainer = threading.Thread(
            target=self._drain, args=(proc.stdout,), name="locust-output", daemon=True
        )
        self._drainer.start()

    def _drain(self, stream: IO[bytes]) -> None:
        while True:
            try:
                chunk = os.read(stream.fileno(), 64 * 1024)
            except OSError:
                break
            if not chunk:
                break
            with self._capture_lock:
                self._capture.feed(chunk)
        with contextlib.suppress(OSError):
            stream.close()

    # -- while it runs ---------------------------------------------------------------------

    def poll(self) -> list[Interval]:
        """New intervals since the last poll (non-blocking)."""
        found = self.reader.read_new()
        for interval in found:
            self._totals.add(interval)
        self._intervals += len(found)
        return found

    @property
    def running(self) -> bool:
        return self._proc is not None and self._ended_at is None and not self._exited()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def deadline(self) -> float:
        """When (``time.monotonic()``) this run is stopped at the latest."""
        return self._deadline

    def output(self) -> str:
        """The captured output so far (head and tail, redacted)."""
        with self._capture_lock:
            text, _ = self._capture.render()
        return text

    def _exited(self) -> bool:
        """Whether the root has exited, without reaping it (its pid and group stay ours)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _wait_exit(self, until: float) -> bool:
        while time.monotonic() < until:
            if self._exited():
                return True
            self.poll()
            time.sleep(_POLL_S)
        return self._exited()

    # -- ending ----------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Ask locust to stop (SIGTERM: it quits its workers and writes its final line), then
        kill the whole tree if it has not exited within ``STOP_BUDGET_S``."""
        if self._proc is None or self._ended_at is not None:
            return
        if self.stopped_reason is None:
            self.stopped_reason = reason
        if not self._exited():
            with contextlib.suppress(OSError):
                os.kill(self._proc.pid, signal.SIGTERM)
            self._wait_exit(time.monotonic() + STOP_BUDGET_S)
        self._end()

    def wait(self, timeout_s: float | None = None) -> LoadResult:
        """Wait for locust to end (at most ``timeout_s``, never past the run's deadline); past
        that it is stopped, then killed with its tree. Returns what it measured."""
        if self._proc is None:
            raise LoadRunError("wait() before start()")
        if self._result is not None:
            return self._result
        until = self._deadline
        if timeout_s is not None:
            until = min(until, time.monotonic() + timeout_s)
        if not self._wait_exit(until):
            left = self._deadline - time.monotonic()
            self.stop(
                "the run's deadline was reached"
                if left <= 0.05
                else f"no end within the wait of {timeout_s:g}s"
            )
        self._end()
        return self.result()

    def _end(self) -> None:
        """Kill what is left of the tree (everything on a timeout; on an exit, the processes
        it left behind), reap the root, read the last output and channel lines."""
        if self._proc is None or self._ended_at is not None:
            return
        assert self._tree is not None
        self.killed += proctree.kill_tree(self._tree)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        self._tree.root_owned = False
        self._ended_at = time.monotonic()
        if self._drainer is not None:
            self._drainer.join(timeout=1.0)
        while self.poll():
            pass

    def result(self) -> LoadResult:
        """The result of an ended run."""
        if self._result is not None:
            return self._result
        if self._proc is None or self._ended_at is None:
            raise LoadRunError("result() before the run ended: call wait()")
        final: FinalStats | None = self.reader.final
        if final is not None:
            by_name = dict(final.by_name)
            locust: dict[str, Any] | None = dict(final.locust)
        else:
            by_name = dict(self._totals.by_name)
            locust = None
        problems = (self.reader.last_problem,) if self.reader.last_problem else ()
        self._result = LoadResult(
            intervals=self._intervals,
            totals=merge(by_name.values()),
            by_name=by_name,
            duration_s=self._ended_at - self._started_at,
            locust=locust,
            exit_code=self._proc.returncode,
            output_tail=self.output(),
            stopped_reason=self.stopped_reason,
            measured_s=self._totals.seconds,
            killed=self.killed,
            channel_problems=problems,
        )
        return self._result

    def close(self) -> None:
        """Stop and kill whatever still runs; idempotent."""
        if self._proc is None:
            return
        if self._ended_at is None:
            if self._exited():
                self._end()
            else:
                self.stop("closed while running")

    def __enter__(self) -> LocustRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._ended_at is None and exc is not None:
            # An exception (a deadline, an interrupt): no polite wait, kill the tree now.
            if self.stopped_reason is None:
                self.stopped_reason = f"aborted: {type(exc).__name__}"
            self._end()
            return
        self.close()
