"""``releasegate soak``: its arguments and what it wires together (the spec, the demo target,
the load check, the SLO checks, signals), for the ``Soak`` runner.

Where the load comes from, first found: ``--check NAME`` (a ``type: load`` check of the spec),
else the phase's first ``type: load`` check, else ``--locustfile`` and ``--threshold`` (with
``--demo``: ``loadtests/shop.py`` held to ``p(95) < 300ms`` and ``error_rate < 1%``, the demo
spec's latency target and the seeds' rollback rule). ``--resume`` takes every setting from the
soak's ``state.json``, so a resumed soak is the same soak.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError
from ..phases import Phase
from .rules import guarded, parse_rule, parse_seconds, rule_from_dict

DEMO_LOCUSTFILE = "loadtests/shop.py"
DEMO_THRESHOLDS = ("p(95) < 300ms", "error_rate < 1%")


def _seconds(value: str) -> float:
    try:
        return parse_seconds(value)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_parser(sub: Any, phase_type: Any, default_spec: str) -> None:
    """The ``soak`` subcommand's arguments (cli.py calls this)."""
    soak = sub.add_parser(
        "soak",
        help="run load for hours with a fast guard, the full gate every N minutes, and roll"
        " back on a sustained breach",
        description="Run a locustfile against the target for --duration while a guard checks"
        " the live stats every --guard-interval (thresholds held for their grace) and the"
        " phase's SLO checks, and the full phase gate runs every --gate-every. A sustained"
        " breach ends the load, records NO-GO and fires the phase's hooks (after the record is"
        " written). SIGINT/SIGTERM records INCONCLUSIVE (exit 12) and fires nothing; --resume"
        " goes on from the last interval. Exit code: the soak's decision, as a gate's.",
    )
    soak.add_argument("--spec", default=default_spec, help=f"gate spec (default {default_spec})")
    soak.add_argument("--phase", type=phase_type, default=Phase.T48H, help="phase (default t48h)")
    soak.add_argument("--check", help="a type: load check of the spec to soak with")
    soak.add_argument("--locustfile", help="locustfile, when no load check is used")
    soak.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="RULE",
        help="k6-style threshold, e.g. 'p(95) < 300ms', 'error_rate < 0.5%%', 'rps > 200',"
        " 'GET /api/products: p(99) < 800ms for 10s' (repeatable)",
    )
    soak.add_argument("--users", type=int, default=10, help="locust users (default 10)")
    soak.add_argument("--spawn-rate", type=float, default=10.0, help="users a second (10)")
    soak.add_argument("--workers", type=int, default=0, help="local locust workers (0)")
    soak.add_argument("--host", help="target URL (default: the spec's target)")
    soak.add_argument("--duration", type=_seconds, default=48 * 3600.0, help="e.g. 48h (48h)")
    soak.add_argument("--guard-interval", type=_seconds, default=1.0, help="(default 1s)")
    soak.add_argument(
        "--guard-window",
        type=_seconds,
        default=5.0,
        help="the guard measures the last this much of live stats (default 5s)",
    )
    soak.add_argument(
        "--grace",
        type=_seconds,
        default=3.0,
        help="how long a threshold must be breached to end the soak, unless the threshold says"
        " 'for N', and how long a critical SLO check must keep failing (consecutive results)"
        " (default 3s; the seeds roll back on 5m in production)",
    )
    soak.add_argument(
        "--gate-every",
        default="10m",
        help="run the full phase gate this often (default 10m; 'off' for never)",
    )
    soak.add_argument(
        "--slo-every", type=_seconds, default=10.0, help="SLO check rounds at most this often"
    )
    soak.add_argument("--resume", action="store_true", help="go on with the interrupted soak")
    soak.add_argument("--demo", action="store_true", help="soak the embedded demo target")
    soak.add_argument(
        "--fault-at",
        nargs="+",
        metavar="WHEN NAME=VALUE",
        help="demo only: switch faults on at that soak time, e.g. --fault-at 20s latency_ms=400",
    )
    soak.add_argument("--report-dir", default=None, help="default: reports/out")
    soak.add_argument("--templates", action="append", default=[], metavar="DIR")
    soak.add_argument("--plain", action="store_true", help="plain lines, not a live panel")


@contextlib.contextmanager
def _signals(on_signal: Any) -> Iterator[None]:
    """SIGINT/SIGTERM end the soak as interrupted (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _load_check(spec: Any, phase: Phase, name: str | None) -> Any:
    checks = [c for c in spec.checks if getattr(c, "type", None) == "load"]
    if name is not None:
        found = next((c for c in spec.checks if c.name == name), None)
        if found is None or getattr(found, "type", None) != "load":
            names = ", ".join(c.name for c in checks) or "none"
            raise UsageError(f"{name!r} is not a load check of the spec (its load checks: {names})")
        return found
    return next((c for c in checks if phase in c.phases), None)


def _rules_of_check(check: Any, grace_s: float, window_s: float) -> list[Any]:
    """The thresholds of a ``type: load`` check, as the soak guards them (all of them abort)."""
    return [guarded(t, grace_s=grace_s, window_s=window_s) for t in check.parsed_thresholds()]


def cmd_soak(args: argparse.Namespace) -> int:
    from ..decision import Policy
    from ..loader import load_spec
    from ..netguard import Policy as NetPolicy
    from ..settings import DEFAULT_REPORT_DIR
    from .config import SoakConfig, with_credentials
    from .progress import make_progress
    from .runner import Soak
    from .state import SoakFiles, soak_dir

    spec_file = Path(args.spec)
    if not spec_file.exists():
        raise UsageError(f"{spec_file} not found: run from a releasegate suite or pass --spec")
    report_dir = Path(args.report_dir or DEFAULT_REPORT_DIR)
    if not report_dir.is_absolute():
        report_dir = spec_file.resolve().parent / report_dir
    phase: Phase = args.phase
    gate_every: float | None = None
    if str(args.gate_every).lower() not in ("off", "never", "0"):
        gate_every = parse_seconds(str(args.gate_every))
    fault_at_s: float | None = None
    fault: dict[str, str] = {}
    if args.fault_at:
        if not args.demo:
            raise UsageError("--fault-at switches a fault of the demo target: add --demo")
        if args.resume:
            raise UsageError("--resume takes the fault from the soak's state: drop --fault-at")
        from ..demo.faults import parse_fault

        fault_at_s = parse_seconds(args.fault_at[0])
        if len(args.fault_at) < 2:
            raise UsageError("--fault-at WHEN NAME=VALUE ..., e.g. --fault-at 20s latency_ms=400")
        fault = {k: str(v) for k, v in (parse_fault(f) for f in args.fault_at[1:])}

    saved: dict[str, Any] = {}
    base_spec = load_spec(spec_file).spec
    if args.resume:
        state = SoakFiles(soak_dir(report_dir, base_spec.deployment.name, phase)).read_state()
        saved = dict(state.options)
        fault_at_s = saved.get("fault_at_s")
        fault = dict(saved.get("fault") or {})

    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        demo: Any = None
        services: Any = None
        if args.demo or saved.get("demo") or base_spec.target.is_demo:
            from ..demo import DemoTarget
            from ..runtime import DemoServices, demo_prometheus_env

            demo = stack.enter_context(DemoTarget())
            env = {
                "RELEASEGATE_TARGET_URL": demo.url,
                "RELEASEGATE_LOOPBACK_ONLY": "1",
                "RELEASEGATE_DB_URL": f"sqlite:///{demo.db_path}",
                "RELEASEGATE_DEMO_FAULT_SEED": str(demo.fault_seed),
                "RELEASEGATE_DEMO_LOG_FILE": str(demo.log_path),
            }
            print(f"releasegate soak: demo target {demo.url}", flush=True)
            env.update(demo_prometheus_env(base_spec, [demo.url], stack, "releasegate soak"))
            services = DemoServices.from_env(env)
            services.log_file = demo.log_path
        loaded = load_spec(spec_file, env={**os.environ, **env})
        spec = loaded.spec
        if saved:
            name = saved.get("load_check")
            check = _load_check(spec, phase, name) if name and name != "soak-load" else None
        else:
            check = _load_check(spec, phase, args.check)
        if saved:
            rules = [rule_from_dict(r) for r in saved["rules"]]
            locustfile = Path(saved["locustfile"])
            users, spawn_rate = int(saved["users"]), float(saved["spawn_rate"])
            workers = int(saved.get("workers", 0))
            window_s, slo_every = float(saved["window_s"]), float(saved["slo_every_s"])
            slo_grace = float(saved.get("slo_grace_s", args.grace))
            host = (
                demo.url
                if demo is not None
                else with_credentials(str(saved["host"]), args.host, spec.target.base_url)
            )
        else:
            window_s, slo_every = args.guard_window, args.slo_every
            slo_grace = args.grace
            users, spawn_rate, workers = args.users, args.spawn_rate, args.workers
            if check is not None and not args.locustfile:
                locustfile = Path(str(check.locustfile))
                rules = _rules_of_check(check, args.grace, window_s)
                users = int(getattr(check, "users", users))
                spawn_rate = float(getattr(check, "spawn_rate", spawn_rate))
                workers = int(getattr(check, "workers", workers) or 0)
            elif args.locustfile or args.demo:
                locustfile = Path(args.locustfile or DEMO_LOCUSTFILE)
                rules = []
            else:
                raise UsageError(
                    f"phase {phase.value} has no type: load check: pass --check NAME, or"
                    " --locustfile PATH with --threshold RULE"
                )
            texts = args.threshold or ([] if rules else list(DEMO_THRESHOLDS if args.demo else []))
            rules += [parse_rule(t, grace_s=args.grace, window_s=window_s) for t in texts]
            if not rules:
                raise UsageError(
                    "a soak needs at least one threshold: --threshold 'p(95) < 300ms' (or a load"
                    " check with thresholds)"
                )
            host = args.host or (demo.url if demo is not None else spec.target.base_url)
        if not locustfile.is_absolute():
            locustfile = loaded.path.resolve().parent / locustfile
        net = NetPolicy.from_hosts(spec.allowed_hosts)
        name = net.check_url(host, "soak load")
        parts = urlsplit(host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        pinned = tuple(
            sorted({str(info[4][0]) for info in net.resolve(name, port, "soak load", timeout=5.0)})
        )
        config = SoakConfig(
            spec_path=loaded.path,
            phase=phase,
            duration_s=args.duration,
            locustfile=locustfile,
            host=host,
            users=users,
            spawn_rate=spawn_rate,
            rules=tuple(rules),
            report_dir=report_dir,
            guard_interval_s=args.guard_interval,
            window_s=window_s,
            gate_every_s=gate_every,
            slo_every_s=slo_every,
            slo_grace_s=slo_grace,
            workers=workers,
            load_check=check.name if check is not None else "soak-load",
            load_info=check.info() if check is not None else None,
            fault_at_s=fault_at_s,
            fault=fault,
            templates=tuple(Path(t) for t in args.templates),
            demo=demo is not None,
            env=env,
            allowed_hosts=tuple(spec.allowed_hosts),
            pinned=pinned,
        )
        if args.resume:
            state = SoakFiles(soak_dir(report_dir, spec.deployment.name, phase)).read_state()
            config = _with_saved(
                config, state.duration_s, state.guard_interval_s, state.gate_every_s
            )
        slo_checks = [c for c in spec.checks_for(phase) if c.kind == "slo"]
        context = _probe_context(spec, loaded.path, phase, services, stack) if slo_checks else None
        progress = make_progress(plain=True if args.plain else None)
        extra: dict[str, Any] = {
            "scoring": {"go": spec.scoring.go, "conditional": spec.scoring.conditional}
        }
        if services is not None:
            extra.update(services.record())

        def set_faults(faults: Mapping[str, str]) -> None:
            demo.set_faults(faults)
            if services is not None:
                services.faults = dict(faults)

        soak = Soak(
            config,
            spec=spec,
            deployment=spec.deployment.name,
            mode=spec.mode_for(phase),
            policy=Policy(
                go=spec.scoring.go,
                conditional=spec.scoring.conditional,
                max_errors=spec.policy.max_errors,
            ),
            hooks=spec.hooks,
            slo_checks=slo_checks,
            slo_context=context,
            resume=args.resume,
            progress=progress,
            set_faults=set_faults if demo is not None else None,
            extra=extra,
        )
        with _signals(soak.interrupt):
            result = soak.run()
    print(
        f"releasegate soak: {result.verdict} ({result.ended}) after {result.elapsed_s:.1f}s;"
        f" record {result.record}",
        flush=True,
    )
    for path in result.reports:
        print(f"releasegate soak: {path.name} {path}")
    sys.stdout.flush()
    return result.exit_code


def _with_saved(config: Any, duration: float, interval: float, every: float | None) -> Any:
    from dataclasses import replace

    return replace(config, duration_s=duration, guard_interval_s=interval, gate_every_s=every)


def _probe_context(
    spec: Any, spec_path: Path, phase: Phase, services: Any, stack: contextlib.ExitStack
) -> Any:
    """The SLO checks' context, as the plugin builds it (target client, demo services)."""
    from ..db.state import DbState
    from ..netguard import Policy as NetPolicy
    from ..probes.base import ProbeContext
    from ..runtime import DemoServices, open_target

    services = services or DemoServices.from_env(os.environ)
    client = stack.enter_context(open_target(spec, services=services))
    scale = float(os.environ.get("RELEASEGATE_TIME_SCALE", "1") or 1)
    return ProbeContext(
        spec=spec,
        target=client,
        phase=phase,
        spec_dir=spec_path.resolve().parent,
        db=DbState(policy=NetPolicy.from_hosts(spec.allowed_hosts)),
        time_scale=scale,
        cache={"demo": services},
    )
