"""The ``load`` probe: run a locustfile against the guarded target, judge its thresholds.

Locust runs as a child process tree (``releasegate.load.runner``), never in this process; its
results come back through our channel as exact HDR histograms. While it runs, thresholds with
``abort_on_fail`` are judged on each new interval (``AbortMonitor``) and a breach held for
its grace stops the run: the check FAILS with the breach in its evidence. After the run every
threshold is judged on the whole run's histograms (``thresholds.evaluate_all``).

Status: every threshold held → PASSED; any breached (live or at the end) → FAILED; otherwise
too few samples for one → NO_DATA; no request measured at all → NO_DATA (ERROR when locust
crashed, i.e. exited non-zero without data); a run that had to be stopped at its deadline, a
locustfile sending traffic outside the allowed hosts, or a worker without our recorder →
ERROR (its numbers would not be the whole truth).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import TargetRefused
from ..load.channel import TOTAL, NameStats
from ..load.runner import LoadResult, LoadRunError, LocustRun
from ..load.thresholds import AbortMonitor, Breach, Threshold, Verdict, evaluate_all, overall
from ..model import Evidence, Status
from ..slo.units import format_duration
from .base import ProbeContext, ProbeResult

#: Request names shown in the evidence table at most (the total is always shown).
MAX_NAMES_SHOWN = 40
#: Percentiles in the evidence table, HDR (ours) beside locust's.
SHOWN_PERCENTILES = (50.0, 95.0, 99.0)


def _locustfile(check: Any, ctx: ProbeContext) -> Path:
    path = Path(check.locustfile)
    if not path.is_absolute():
        path = (ctx.spec_dir or Path.cwd()) / path
    return path


def _guard(host: str, ctx: ProbeContext) -> list[str]:
    """Judge ``host`` by the run's connection policy; the addresses the child may use."""
    policy = ctx.target.policy
    name = policy.check_url(host, "load traffic")
    parts = urlsplit(host)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = policy.resolve(name, port, "load traffic", timeout=5.0)
    return sorted({str(info[4][0]) for info in infos})


def probe_load(check: Any, ctx: ProbeContext) -> ProbeResult:
    """Run the check's locustfile and judge its thresholds (module docstring)."""
    locustfile = _locustfile(check, ctx)
    if not locustfile.is_file():
        return ProbeResult.error(
            f"locustfile {check.locustfile} not found (looked at {locustfile}); paths are"
            " relative to the spec's folder"
        )
    host = check.host or ctx.target.base_url
    try:
        pinned = _guard(host, ctx)
    except TargetRefused as err:
        return ProbeResult.error(str(err))
    except OSError as err:
        return ProbeResult.error(f"cannot resolve the load target {host}: {err}")
    thresholds: list[Threshold] = check.parsed_thresholds()
    monitor = AbortMonitor(thresholds)
    workdir = Path(tempfile.mkdtemp(prefix="rg-load-"))
    breach: Breach | None = None
    remote = check.remote_workers
    try:
        run = LocustRun(
            locustfile=locustfile,
            host=host,
            users=check.users,
            spawn_rate=check.spawn_rate,
            run_time_s=check.duration,
            workers=check.workers,
            interval_s=check.interval,
            workdir=workdir,
            tags=tuple(check.tags),
            allowed_hosts=tuple(ctx.spec.allowed_hosts),
            pinned=pinned,
            expect_remote_workers=remote.expect if remote is not None else 0,
            master_bind_host=remote.bind_host if remote is not None else "127.0.0.1",
            master_port=remote.port if remote is not None else None,
        )
        with run:
            run.start()
            while run.running and time.monotonic() < run.deadline:
                for interval in run.poll():
                    if monitor and breach is None:
                        breach = monitor.observe(interval)
                if breach is not None:
                    run.stop(f"aborted: {breach.threshold.label} breached")
                    break
                time.sleep(min(0.2, check.interval / 4))
            result = run.wait()
    except LoadRunError as err:
        return ProbeResult.error(f"cannot run locust: {err}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return judge(check, thresholds, result, breach, host)


def judge(
    check: Any,
    thresholds: list[Threshold],
    result: LoadResult,
    breach: Breach | None,
    host: str,
) -> ProbeResult:
    """The check's result from a finished run (pure: no I/O)."""
    verdicts = evaluate_all(thresholds, result.by_name, result.totals, result.measured_s)
    run = _run_evidence(check, result, host)
    shown = tuple(_verdict_evidence(v, result) for v in verdicts)
    locust = result.locust or {}
    if locust.get("guard_refused"):
        return ProbeResult.error(
            f"the locustfile sent {locust['guard_refused']} request(s) outside the allowed"
            f" hosts: {locust.get('guard_last_refusal', '')}",
            run,
            *shown,
        )
    if locust.get("foreign_reports"):
        return ProbeResult.error(
            "a worker runs without releasegate's recorder (plain `locust --worker`): its"
            " response times are missing; start remote workers with"
            " `python -m releasegate.load.locust_main --worker ...` (docs/load.md)",
            run,
            *shown,
        )
    if result.totals.requests == 0:
        if not result.final and result.exit_code not in (0, None):
            return ProbeResult.error(
                f"locust exited with status {result.exit_code} before measuring anything:"
                f" {_last_line(result.output_tail)}",
                run,
            )
        why = result.stopped_reason or "the run ended"
        return ProbeResult(
            Status.NO_DATA,
            f"no request measured in {format_duration(result.duration_s)} ({why}): the"
            " locustfile's tasks sent nothing, or the target never answered",
            (run, *shown),
        )
    if breach is not None:
        evidence = Evidence(
            measured=f"{breach.threshold.label}, live over {format_duration(breach.window_s)}",
            value=breach.to_dict(),
            threshold=str(breach.threshold.condition),
            reason=breach.reason,
            limits=(breach.threshold.condition.limit(breach.threshold.subject),),
        )
        return ProbeResult.failed(
            f"aborted after {format_duration(result.duration_s)}: {breach.reason}",
            evidence,
            run,
            *shown,
        )
    if result.stopped_reason is not None:
        return ProbeResult.error(
            f"locust did not end by itself ({result.stopped_reason}): its numbers cover only"
            f" {format_duration(result.measured_s)} of {format_duration(check.duration)}",
            run,
            *shown,
        )
    if result.locust is None:
        # No final line: locust died mid-run (a traceback, the OOM killer). What the intervals
        # hold is a part of the run, and its guard and worker reports are unknown.
        return ProbeResult.error(
            f"locust ended without its final report (exit {result.exit_code}) after"
            f" {format_duration(result.measured_s)} of {format_duration(check.duration)}:"
            f" {_last_line(result.output_tail)}",
            run,
            *shown,
        )
    status = overall(verdicts)
    reason = _reason(status, verdicts, result)
    return ProbeResult(status, reason, (*shown, run))


def _reason(status: Status, verdicts: list[Verdict], result: LoadResult) -> str:
    total = result.totals
    size = f"{total.requests} requests in {format_duration(result.measured_s)}"
    if status is Status.PASSED:
        held = "; ".join(f"{v.threshold.subject} {v.shown}" for v in verdicts)
        return f"all {len(verdicts)} thresholds held over {size} ({held})"
    wanted = Status.FAILED if status is Status.FAILED else Status.NO_DATA
    first = [v for v in verdicts if v.status is wanted]
    more = f" (+{len(first) - 1} more)" if len(first) > 1 else ""
    return f"{first[0].threshold.label}: {first[0].reason}{more}; {size}"


def _verdict_evidence(verdict: Verdict, result: LoadResult) -> Evidence:
    t = verdict.threshold
    details: dict[str, Any] = {
        "status": verdict.status.value,
        "samples": verdict.samples,
        "needed": verdict.needed,
    }
    theirs = _locust_value(t, result)
    if theirs is not None:
        details["locust"] = theirs
    if t.abort_on_fail:
        details["abort_on_fail"] = True
        details["grace_s"] = t.grace_s
    value = None if verdict.value is None else t.condition.display(verdict.value)
    return Evidence(
        measured=f"{t.subject} of {t.target}, whole run",
        value=value,
        threshold=t.label,
        reason=verdict.reason,
        details=details,
        limits=(t.condition.limit(t.subject),),
    )


def _locust_value(t: Threshold, result: LoadResult) -> Any:
    """Locust's own (rounded) figure for a percentile threshold, for comparison."""
    if result.locust is None or t.quantile is None:
        return None
    table = result.locust.get("total") if t.name is None else result.locust.get("by_name", {})
    entry = table if t.name is None else (table or {}).get(t.name)
    if not isinstance(entry, dict):
        return None
    key = f"p{t.quantile:g}_ms"
    return entry.get(key)


def _row(stats: NameStats, seconds: float, locust: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "requests": stats.requests,
        "failures": stats.failures,
        "rps": round(stats.requests / seconds, 3) if seconds > 0 else None,
    }
    for q in SHOWN_PERCENTILES:
        value = stats.percentile_ms(q)
        row[f"p{q:g}_ms"] = None if value is None else round(value, 3)
    if locust:
        row["locust"] = {
            k: locust.get(k) for k in ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms")
        }
    return row


def _run_evidence(check: Any, result: LoadResult, host: str) -> Evidence:
    locust = result.locust or {}
    theirs = locust.get("by_name", {}) if isinstance(locust.get("by_name"), dict) else {}
    names = sorted(result.by_name, key=lambda n: -result.by_name[n].requests)
    table = {TOTAL: _row(result.totals, result.measured_s, locust.get("total"))}
    for name in names[:MAX_NAMES_SHOWN]:
        table[name] = _row(result.by_name[name], result.measured_s, theirs.get(name))
    details: dict[str, Any] = {
        "locustfile": check.locustfile,
        "host": host,
        "users": check.users,
        "spawn_rate": check.spawn_rate,
        "duration_s": check.duration,
        "workers": check.workers,
        "intervals": result.intervals,
        "wall_s": round(result.duration_s, 3),
        "measured_s": round(result.measured_s, 3),
        "exit_code": result.exit_code,
        "percentiles": "HDR histograms, within 0.1%; 'locust' holds locust's rounded figures",
    }
    if len(names) > MAX_NAMES_SHOWN:
        details["names_not_shown"] = len(names) - MAX_NAMES_SHOWN
    if result.stopped_reason:
        details["stopped"] = result.stopped_reason
    if result.channel_problems:
        details["channel_problems"] = list(result.channel_problems)
    if result.exit_code not in (0, None) or result.totals.requests == 0:
        details["output"] = result.output_tail[-4000:]
    return Evidence(
        measured=f"locust: {check.users} users for {format_duration(check.duration)}",
        value=table,
        reason=f"{result.totals.requests} requests, {result.totals.failures} failed",
        details=details,
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
