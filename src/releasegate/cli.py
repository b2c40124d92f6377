"""The ``releasegate`` command: run the demo gate, validate a spec, print the spec's schema,
render reports from decision records, run a soak (``soak/command.py``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ReleasegateError, UsageError
from .loader import json_schema, load_spec
from .phases import PHASE_DESCRIPTIONS, Phase, parse_phase
from .record import read_record, record_path
from .settings import DEFAULT_REPORT_DIR, DEFAULT_SPEC


def _phase(value: str) -> Phase:
    try:
        return parse_phase(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _demo_seed(value: str) -> int:
    from .demo.faults import parse_seed

    try:
        return parse_seed(value)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _demo_rps(value: str) -> float:
    from .demo.traffic import MAX_RPS

    try:
        rps = float(value)
    except ValueError:
        rps = -1.0
    if not 0 <= rps <= MAX_RPS:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{value!r} is not a rate: use 0..{MAX_RPS:.0f}")
    return rps


def _demo_size(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a size in bytes (0 = never rotate)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="releasegate", description="Phased go/no-go gates for deployments, on pytest."
    )
    parser.add_argument("--version", action="version", version=f"releasegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="start the demo target, run one phase's gate against it, stop it",
        description="Start the embedded demo target on a free loopback port, run the gate of"
        " one phase of the suite in the current folder against it, print the decision and the"
        " paths of the records written, and stop the target. Exit code: the gate's.",
    )
    demo.add_argument("--phase", type=_phase, default=Phase.T24H, help="phase (default t24h)")
    demo.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject a fault into the demo target, e.g. wrong_version=9.9.9 (repeatable);"
        " `releasegate demo --list-faults` lists them. With a canary check (the spec's"
        " baseline_url is demo://) the fault is on both the canary and its baseline",
    )
    demo.add_argument(
        "--canary-fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fault on the canary only (the demo target, serving the new version), e.g."
        " latency_ms=150: what a canary check exists to catch",
    )
    demo.add_argument(
        "--baseline-fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fault on the baseline only (the previous version the canary is compared with)",
    )
    demo.add_argument("--list-faults", action="store_true", help="list the demo's faults")
    demo.add_argument(
        "--fault-seed",
        type=_demo_seed,
        metavar="N",
        help="seed of the demo's random faults (default: a fresh one per run, printed and"
        " passed to the gate as RELEASEGATE_DEMO_FAULT_SEED)",
    )
    demo.add_argument(
        "--traffic-rps",
        type=_demo_rps,
        metavar="RATE",
        help="background requests a second the demo sends itself, over loopback (default 20;"
        " 0 = none)",
    )
    demo.add_argument(
        "--log-file",
        metavar="PATH",
        help="where the demo writes its application log (default: in its temporary folder,"
        " removed at the end); passed to the gate as RELEASEGATE_DEMO_LOG_FILE",
    )
    demo.add_argument(
        "--log-max-bytes",
        type=_demo_size,
        metavar="N",
        help="rotate the demo's log by rename past N bytes (default 10 MiB; 0 = never)",
    )
    demo.add_argument("--mode", choices=["enforce", "dark"], help="override the phase's mode")
    demo.add_argument("--spec", default=DEFAULT_SPEC, help=f"gate spec (default {DEFAULT_SPEC})")
    demo.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    validate = sub.add_parser("validate", help="check a spec and print what each phase runs")
    validate.add_argument("spec", nargs="?", default=DEFAULT_SPEC)

    schema = sub.add_parser("schema", help="print the spec's JSON Schema")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")

    report = sub.add_parser(
        "report",
        help="render the scorecard, executive report and Markdown summary from records",
        description="Render scorecard.html, executive.html and summary.md from a decision.json,"
        " or from every decision.json below a folder (such as reports/out). Reports go next"
        " to each record unless -o is given.",
    )
    report.add_argument("path", help="a decision.json or a folder of them")
    report.add_argument(
        "-o", "--output", metavar="DIR", help="write the reports here instead (folders mirrored)"
    )
    report.add_argument(
        "--templates",
        action="append",
        default=[],
        metavar="DIR",
        help="folder of Jinja templates that replace or extend ours (repeatable)",
    )

    from .soak.command import add_parser as add_soak_parser

    add_soak_parser(sub, _phase, DEFAULT_SPEC)

    db = sub.add_parser("db", help="database commands (schema baseline)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    snapshot = db_sub.add_parser(
        "snapshot",
        help="write the schema and row counts of a spec database as a baseline",
        description="Reflect the tables, columns, indexes and foreign keys of a database of the"
        " spec and count each table's rows (read-only), and write them as JSON: the baseline"
        " of schema_drift and of row_count growth checks.",
    )
    snapshot.add_argument(
        "--spec", default=DEFAULT_SPEC, help=f"gate spec (default {DEFAULT_SPEC})"
    )
    snapshot.add_argument("--database", default="main", help="database name (default main)")
    snapshot.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="default: reports/baselines/<deployment>/<database>.schema.json by the spec",
    )

    baseline = sub.add_parser("baseline", help="golden baselines for canary checks")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True)
    capture = baseline_sub.add_parser(
        "capture",
        help="measure a healthy version with a canary check's source and keep it as its golden"
        " baseline",
        description="Measure one side with the named canary check's own source (its requests,"
        " /metrics scrapes, Prometheus queries, SQL queries or log lines) and write what it"
        " measured, with the version and the time, as a golden baseline: a canary check with"
        " baseline: {golden: PATH} compares against it when no live baseline runs. By default"
        " the measured side is the spec's target (demo:// starts the demo).",
    )
    capture.add_argument("check", help="the canary check whose source measures")
    capture.add_argument("--spec", default=DEFAULT_SPEC, help=f"gate spec (default {DEFAULT_SPEC})")
    capture.add_argument("--url", help="measure this base URL instead of the spec's target")
    capture.add_argument(
        "--version",
        dest="captured_version",
        help="the version measured (default: the spec's deployment.version)",
    )
    capture.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="default: reports/baselines/<deployment>/<check>.canary.json beside the spec",
    )
    return parser


def cmd_baseline_capture(args: argparse.Namespace) -> int:
    from .canary import capture_baseline
    from .probes.base import ProbeContext
    from .probes.canary import measure
    from .runtime import open_target

    loaded = load_spec(args.spec)
    spec = loaded.spec
    check: Any = next((c for c in spec.checks if c.name == args.check), None)
    if check is None or check.kind != "canary":
        names = ", ".join(c.name for c in spec.checks if c.kind == "canary") or "none"
        raise UsageError(f"{args.check!r} is not a canary check of {loaded.path} (its: {names})")
    if check.source == "prometheus":
        raise UsageError(
            f"{args.check!r} reads Prometheus: a golden baseline is measured by an http or"
            " metrics source (a Prometheus baseline is its history: compare selectors instead)"
        )
    target = {"baseline_url": None}  # one side is measured: no demo baseline to start
    if args.url:
        target["base_url"] = args.url.rstrip("/")
    spec = spec.model_copy(update={"target": spec.target.model_copy(update=target)})
    with open_target(spec) as client:
        ctx = ProbeContext(spec=spec, target=client, spec_dir=loaded.path.parent)
        measured = measure(check, ctx, ("canary",))["canary"]
    path = (
        Path(args.output)
        if args.output
        else loaded.path.parent
        / "reports"
        / "baselines"
        / spec.deployment.name
        / f"{check.name}.canary.json"
    )
    version = args.captured_version or spec.deployment.version or "unknown"
    capture_baseline(path, measured, deployment=spec.deployment.name, version=version)
    sizes = ", ".join(f"{name}: {_size(data)}" for name, data in measured.items())
    source = {"sql": "its SQL queries", "logs": "its log lines"}.get(check.source, client.base_url)
    print(f"releasegate baseline capture: {version} of {source} ({sizes}) -> {path}")
    return 0


def _size(data: Any) -> str:
    if hasattr(data, "total"):
        return f"{data.events}/{data.total} events"
    if hasattr(data, "values"):
        return f"{len(data.values)} samples"
    return "a histogram"


def cmd_db_snapshot(args: argparse.Namespace) -> int:
    from .db.connect import database, dispose_engines, read_only
    from .db.schema import default_baseline_path, take_snapshot, write_snapshot
    from .db.state import DbState
    from .netguard import Policy

    loaded = load_spec(args.spec)
    spec = loaded.spec
    state = DbState(policy=Policy.from_hosts(spec.allowed_hosts))
    try:
        with read_only(args.database, database(spec.databases, args.database), state) as session:
            snapshot = take_snapshot(session)
            label = session.label
    finally:
        dispose_engines(state)
    path = (
        Path(args.output)
        if args.output
        else default_baseline_path(loaded.path.parent, spec.deployment.name, args.database)
    )
    write_snapshot(path, snapshot)
    print(f"releasegate db snapshot: {len(snapshot['tables'])} table(s) of {label} -> {path}")
    return 0


def cmd_validate(spec_path: str) -> int:
    from .redact import redact_text

    def say(text: str) -> None:  # a URL's password or a token never reaches the terminal
        print(redact_text(text))

    loaded = load_spec(spec_path)
    spec = loaded.spec
    say(
        f"{loaded.path}: valid. deployment {spec.deployment.name}"
        f" (version {spec.deployment.version or '-'}, commit {spec.deployment.commit or '-'})"
    )
    say(
        f"target {spec.target.base_url}; GO at >= {spec.scoring.go},"
        f" CONDITIONAL GO at >= {spec.scoring.conditional}"
    )
    from .inventory import python_checks

    found, problem = python_checks(loaded.path)
    for phase in Phase:
        checks = spec.checks_for(phase)
        in_python = [c for c in found if phase in c.phases]
        say(
            f"\n{phase.value} ({PHASE_DESCRIPTIONS[phase]}) - mode {spec.mode_for(phase).value},"
            f" {len(checks)} spec check(s), {len(in_python)} Python check(s)"
        )
        for check in checks:
            say(f"  - {check.name}: {check.type}, {check.severity.value}, {check.category}")
        for py in in_python:
            say(f"  - {py.name}: python ({py.nodeid}), {py.severity}, {py.category}")
    if problem:
        say(f"\nthe Python checks could not all be collected:\n{problem}")
    if spec.hooks:
        say("\nhooks:")
        for hook in spec.hooks:
            say(f"  - {hook.name}: {hook.type} on {', '.join(hook.on)}")
    return 1 if problem else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoTarget
    from .demo.faults import FAULTS, parse_fault
    from .demo.traffic import DEFAULT_RPS
    from .runtime import demo_prometheus_env

    if args.list_faults:
        for name, text in FAULTS.items():
            print(f"{name}: {text}")
        return 0
    spec_file = Path(args.spec)
    if not spec_file.exists():
        print(
            f"releasegate demo: {spec_file} not found. Run it from a releasegate suite (a folder"
            " with releasegate.yaml, such as the repository's root) or pass --spec PATH.",
            file=sys.stderr,
        )
        return 4
    spec = load_spec(spec_file).spec
    shared = dict(parse_fault(f) for f in args.fault)
    faults = {**shared, **dict(parse_fault(f) for f in args.canary_fault)}
    baseline_faults = {**shared, **dict(parse_fault(f) for f in args.baseline_fault)}
    with_baseline = spec.target.baseline_url == "demo://"
    if args.baseline_fault and not with_baseline:
        print(
            "releasegate demo: --baseline-fault needs a baseline: the spec's target.baseline_url"
            " is not demo://",
            file=sys.stderr,
        )
        return 4
    rps = DEFAULT_RPS if args.traffic_rps is None else args.traffic_rps
    target = DemoTarget(
        faults=faults,
        fault_seed=args.fault_seed,
        log_file=Path(args.log_file) if args.log_file else None,
        log_max_bytes=args.log_max_bytes,
        traffic_rps=rps,
    )
    with contextlib.ExitStack() as stack:
        demo = stack.enter_context(target)
        shown = ", ".join(f"{k}={v}" for k, v in faults.items()) or "none"
        print(f"releasegate demo: target {demo.url} (faults: {shown})", flush=True)
        kept = "" if args.log_file else " (removed at the end; --log-file PATH keeps it)"
        print(
            f"releasegate demo: fault seed {demo.fault_seed}; background traffic"
            f" {demo.traffic_rps:g} req/s; log {demo.log_path}{kept}",
            flush=True,
        )
        scraped = [demo.url]  # the suite's SLO queries are the deployment's: not the baseline
        baseline_env: dict[str, str] = {}
        if with_baseline:
            from .demo import BASELINE_VERSION

            baseline = stack.enter_context(
                DemoTarget(
                    faults=baseline_faults,
                    fault_seed=None if args.fault_seed is None else args.fault_seed + 1,
                    traffic_rps=rps,
                    version=BASELINE_VERSION,
                )
            )
            shown = ", ".join(f"{k}={v}" for k, v in baseline_faults.items()) or "none"
            print(
                f"releasegate demo: baseline {baseline.url} serving {BASELINE_VERSION}, the"
                f" canary's previous version (faults: {shown}; fault seed"
                f" {baseline.fault_seed})",
                flush=True,
            )
            baseline_env = {
                "RELEASEGATE_BASELINE_URL": baseline.url,
                "RELEASEGATE_DEMO_BASELINE_FAULT_SEED": str(baseline.fault_seed),
                "RELEASEGATE_DEMO_BASELINE_FAULTS": ",".join(
                    f"{k}={v}" for k, v in baseline_faults.items()
                ),
            }
        prometheus = demo_prometheus_env(spec, scraped, stack)
        env = {
            **os.environ,
            **prometheus,
            **baseline_env,
            "RELEASEGATE_DEMO_FAULTS": ",".join(f"{k}={v}" for k, v in faults.items()),
            "RELEASEGATE_TARGET_URL": demo.url,
            "RELEASEGATE_LOOPBACK_ONLY": "1",
            "RELEASEGATE_DB_URL": f"sqlite:///{demo.db_path}",
            "RELEASEGATE_DEMO_FAULT_SEED": str(demo.fault_seed),
            "RELEASEGATE_DEMO_LOG_FILE": str(demo.log_path),
        }
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            args.phase.marker,
            "--rg-spec",
            str(spec_file),
        ]
        if args.mode:
            argv += ["--rg-mode", args.mode]
        argv += list(args.pytest_args)
        code = subprocess.run(argv, env=env, check=False).returncode
    path = record_path(Path(DEFAULT_REPORT_DIR), spec.deployment.name, args.phase)
    if path.exists():
        record = read_record(path)
        print(
            f"releasegate demo: {record['decision']} (score {record['score']:.2f}/10) for"
            f" {record['deployment']} phase {record['phase']}; record {path}"
        )
        for name in ("scorecard.html", "executive.html", "summary.md"):
            if (path.parent / name).exists():
                print(f"releasegate demo: {name.split('.')[0]} {path.parent / name}")
    print(f"releasegate demo: demo target stopped; exit code {code}")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    """Render every record; a record that cannot be read, or whose stored verdict disagrees
    with its outcomes, costs one line on stderr and exit code 1 (2 when none could be read),
    never the others' reports."""
    from .report import write_reports
    from .report.verify import load_record, verify_record

    source = Path(args.path)
    if source.is_dir():
        records = sorted(source.rglob("decision.json"))
        if not records:
            raise UsageError(
                f"no decision.json below {source}: pass a record or a report folder"
                f" such as {DEFAULT_REPORT_DIR}"
            )
    elif source.is_file():
        records = [source]
    else:
        raise UsageError(f"{source} does not exist: pass a decision.json or a folder of them")
    templates = tuple(Path(t) for t in args.templates)
    unreadable = failed = 0
    for path in records:
        if args.output is None:
            out_dir = path.parent
        elif source.is_dir():
            out_dir = Path(args.output) / path.parent.relative_to(source)
        else:
            out_dir = Path(args.output)
        loaded = load_record(path)
        check = verify_record(loaded.data) if loaded.problem is None else None
        if check is None or not check.readable:
            problem = loaded.problem if check is None else check.problem_line()
            print(f"releasegate report: {path}: {problem}", file=sys.stderr)
            unreadable += 1
            continue
        try:
            written = write_reports(
                loaded.data, out_dir, templates, history_dir=path.parent, check=check
            )
            if loaded.data.get("kind") == "soak":  # and its timeline page, from timeline.jsonl
                from .soak.report import write_soak_reports
                from .soak.state import SoakFiles

                rows = SoakFiles(path.parent).read_rows()
                written += write_soak_reports(loaded.data, rows, out_dir, templates)
        except (OSError, ValueError, ReleasegateError) as err:
            # One bad record in a folder of them should not stop the others from rendering.
            print(f"releasegate report: {path}: {err}", file=sys.stderr)
            failed += 1
            continue
        if check.disagreements:
            # Rendered, but not as the record states it: the reports say INCONSISTENT.
            print(
                f"releasegate report: {path}: {check.disagreement_line()}; its reports show"
                " INCONSISTENT",
                file=sys.stderr,
            )
            failed += 1
            what = f"stored {check.stored}, its outcomes give {check.recomputed_verdict}"
        else:
            what = f"score {loaded.data.get('score')}/10" + (
                f"; {check.note}" if check.note else ""
            )
        print(f"{path}: {check.shown} ({what})")
        for report in written:
            print(f"  {report}")
    if unreadable == len(records):
        return 2
    return 1 if unreadable or failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    from .redact import redact_text

    args = build_parser().parse_args(argv)
    code = 2
    try:
        try:
            if args.command == "validate":
                code = cmd_validate(args.spec)
            elif args.command == "schema":
                text = json.dumps(json_schema(), indent=2) + "\n"
                if args.output:
                    Path(args.output).write_text(text, encoding="utf-8")
                else:
                    sys.stdout.write(text)
                code = 0
            elif args.command == "demo":
                code = cmd_demo(args)
            elif args.command == "report":
                code = cmd_report(args)
            elif args.command == "db":
                code = cmd_db_snapshot(args)
            elif args.command == "baseline":
                code = cmd_baseline_capture(args)
            elif args.command == "soak":
                from .soak.command import cmd_soak

                code = cmd_soak(args)
        except ReleasegateError as err:
            print(redact_text(f"releasegate {args.command}: {err}"), file=sys.stderr)
            code = 4 if args.command == "demo" else 2
        sys.stdout.flush()  # here, so that a closed pipe is noticed here
    except BrokenPipeError:
        # The reader went away (`releasegate validate | head -1`): no traceback, and no second
        # error when Python flushes stdout at exit (docs.python.org, signal: "Note on SIGPIPE").
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe
    return code


if __name__ == "__main__":
    sys.exit(main())
