"""``python -m releasegate.load.locust_main <locust arguments>``: locust, plus our recorder.

This is the entry point of the locust child process (never imported by the pytest process:
importing locust monkey-patches the whole process with gevent). It attaches listeners to
locust's events, then runs locust's own ``main`` with the arguments given, so the user's
locustfile stays a plain locustfile and every locust option works as usual:

* every process (local, master's workers, remote workers) records each request's response
  time in an HDR histogram per request name per interval (``collector.Recorder``);
* a worker sends its histograms, encoded, with each of locust's own reports to the master
  (``report_to_master``), and the master merges them as they come (``worker_report``);
* the master (or the single local process) writes one JSON line per interval to the channel
  file once every worker has had time to report it (``collector.Collector``), and a final line
  with the whole run's histograms and locust's own numbers when locust quits;
* every TCP connection the users open is judged by the connection guard (``guard``).

Environment: ``RELEASEGATE_LOAD_CHANNEL`` (the channel file; without it nothing is written, as
on a remote worker), ``RELEASEGATE_LOAD_INTERVAL`` (seconds, default 1),
``RELEASEGATE_LOAD_TIMES`` (a file prefix: every response time in microseconds is appended to
``<prefix>.<pid>``, one per line, for the accuracy benchmark only).

A remote worker joins a releasegate master with the same entry point::

    python -m releasegate.load.locust_main -f loadtests/shop.py --worker --master-host 10.0.0.5
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import Any

from .channel import to_us
from .collector import (
    LOCAL_LATENESS_S,
    MASTER_SLACK_S,
    REPORT_KEY,
    TICK_S,
    Collector,
    Recorder,
    locust_numbers,
)
from .guard import ConnectGuard

ENV_CHANNEL = "RELEASEGATE_LOAD_CHANNEL"
ENV_INTERVAL = "RELEASEGATE_LOAD_INTERVAL"
ENV_TIMES = "RELEASEGATE_LOAD_TIMES"
#: JSON ``{"allowed_hosts": [...], "pinned": [addresses]}``: where the child may connect.
ENV_GUARD = "RELEASEGATE_LOAD_GUARD"
#: The key of a worker's guard refusals in its report to the master.
GUARD_KEY = "releasegate_refused"


class _TimesFile:
    """Every response time, one per line, to ``<prefix>.<pid>``: each process (a forked worker
    too) its own file, so buffered writes of two processes never interleave."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pid = -1
        self.handle: Any = None

    def write(self, micros: int) -> None:
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.handle = open(f"{self.prefix}.{self.pid}", "a", buffering=1024 * 1024)  # noqa: SIM115
        self.handle.write(f"{micros}\n")

    def flush(self) -> None:
        if self.handle is not None and self.pid == os.getpid():
            self.handle.flush()


def _install(interval_s: float, channel: str | None, times_prefix: str | None) -> None:
    """Attach our listeners to locust's events (before locust's main creates its runner)."""
    import gevent
    import locust.runners
    from locust import events

    # Workers report to the master every interval, not every 3 s: an interval is written once
    # every worker has reported it.
    locust.runners.WORKER_REPORT_INTERVAL = min(max(interval_s, 0.25), 3.0)
    recorder = Recorder(interval_s)
    state: dict[str, Any] = {"collector": None, "runner": None, "refused_by": {}}
    guard: ConnectGuard | None = None
    guard_spec = os.environ.get(ENV_GUARD)
    if guard_spec:
        import json

        spec = json.loads(guard_spec)
        guard = ConnectGuard(list(spec.get("allowed_hosts", [])), list(spec.get("pinned", [])))
        guard.install()
    times = _TimesFile(times_prefix) if times_prefix else None

    def on_request(
        request_type: str,
        name: str,
        response_time: float | None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if recording:
            recorder.record(f"{request_type} {name}", response_time, exception is not None)
        if times is not None and response_time is not None:
            times.write(to_us(response_time))

    recording = True

    def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
        nonlocal recording
        runner = runner or environment.runner
        state["runner"] = runner
        if isinstance(runner, locust.runners.WorkerRunner):
            return  # its reports to the master drain the recorder
        if not channel:
            recording = False  # nobody would drain it: record nothing rather than hoard
            return
        master = isinstance(runner, locust.runners.MasterRunner)
        lateness = (
            locust.runners.WORKER_REPORT_INTERVAL + MASTER_SLACK_S if master else LOCAL_LATENESS_S
        )
        collector = Collector(channel, interval_s, lateness)
        state["collector"] = collector

        def tick() -> None:
            while not collector.finished:
                gevent.sleep(min(TICK_S, interval_s / 4))
                if not master:
                    collector.take_local(recorder)
                collector.emit_due(int(getattr(runner, "user_count", 0)))

        gevent.spawn(tick)

    def on_test_start(environment: Any, **_: Any) -> None:
        if state["collector"] is not None:
            state["collector"].start()

    def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[REPORT_KEY] = recorder.encoded()
        if guard is not None:
            data[GUARD_KEY] = [guard.refused, guard.last_refusal]

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        if state["collector"] is not None:
            state["collector"].take_report(data)
        refused = data.get(GUARD_KEY)
        if isinstance(refused, list) and len(refused) == 2:
            state["refused_by"][client_id] = refused

    def on_quit(exit_code: int = 0, **_: Any) -> None:
        if times is not None:
            times.flush()
        collector: Collector | None = state["collector"]
        runner = state["runner"]
        if collector is None or runner is None:
            return
        if not isinstance(runner, locust.runners.MasterRunner):
            collector.take_local(recorder)
        numbers = locust_numbers(runner.stats)
        numbers["exit_code"] = exit_code
        if guard is not None:
            reports = [[guard.refused, guard.last_refusal], *state["refused_by"].values()]
            numbers["guard_refused"] = sum(int(r[0]) for r in reports)
            numbers["guard_last_refusal"] = next((str(r[1]) for r in reports if r[1]), "")
        collector.finish(int(getattr(runner, "user_count", 0)), numbers)

    listeners: list[tuple[Any, Callable[..., None]]] = [
        (events.request, on_request),
        (events.init, on_init),
        (events.test_start, on_test_start),
        (events.report_to_master, on_report_to_master),
        (events.worker_report, on_worker_report),
        (events.quit, on_quit),
    ]
    for hook, listener in listeners:
        hook.add_listener(listener)


def main(argv: list[str] | None = None) -> None:
    """Install the recorder, then hand over to locust's own command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    interval_s = float(os.environ.get(ENV_INTERVAL) or 1.0)
    if not math.isfinite(interval_s) or interval_s <= 0:
        sys.stderr.write(f"{ENV_INTERVAL}={interval_s!r}: a positive number of seconds\n")
        sys.exit(2)
    import locust  # noqa: F401  (gevent's monkey-patching happens here, first)

    _install(interval_s, os.environ.get(ENV_CHANNEL) or None, os.environ.get(ENV_TIMES) or None)
    from locust import main as locust_cli

    sys.argv = ["locust", *args]
    run: Callable[[], None] = locust_cli.main
    run()


if __name__ == "__main__":
    main()
