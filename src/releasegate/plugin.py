"""The pytest plugin: options, ini keys, markers, fixtures and wiring. Logic lives elsewhere."""

from __future__ import annotations

import atexit
import functools
import gc
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .db.state import DbState
from .errors import CheckDeadline, GateFailure, NoData, ProbeError, ReleasegateError
from .evidence import EvidenceRecorder
from .model import KINDS
from .outcomes import (
    attach,
    check_info,
    deadline_reason,
    is_gate_item,
    is_spec_check,
    item_phases,
    overran,
    reported_status,
    under_deadline,
)
from .phases import PHASE_DESCRIPTIONS, Phase
from .session import DEMO_KEY, PhaseGuard
from .settings import DEFAULT_REPORT_DIR, DEFAULT_SPEC, RunSettings, resolve

if TYPE_CHECKING:
    from .runtime import DemoServices

SETTINGS_KEY = pytest.StashKey[RunSettings]()
PROBE_DB_KEY = pytest.StashKey[DbState]()

_OPTIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "--rg-spec",
        "releasegate_spec",
        f"gate spec file (default: {DEFAULT_SPEC} in the rootdir)",
        {},
    ),
    (
        "--rg-phase",
        "releasegate_phase",
        "phase to decide for (t0h, t8h, t16h, t24h, t48h, t72h); -m gate_<phase> sets it too",
        {},
    ),
    ("--rg-mode", "releasegate_mode", "enforce (act on the decision) or dark (only record)", {}),
    (
        "--rg-report-dir",
        "releasegate_report_dir",
        f"where decision records go (default: {DEFAULT_REPORT_DIR} in the rootdir)",
        {},
    ),
    (
        "--rg-templates",
        "releasegate_templates",
        "folder of Jinja templates that replace or extend the reports' (see docs/reports.md)",
        {"metavar": "DIR"},
    ),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("releasegate", "releasegate deployment gates")
    for flag, ini, help_text, extra in _OPTIONS:
        dest = flag.lstrip("-").replace("-", "_")
        group.addoption(flag, dest=dest, default=None, help=help_text, **extra)
        parser.addini(ini, help=help_text, default=None)
    group.addoption(
        "--rg-partial",
        dest="rg_partial",
        action="store_true",
        default=False,
        help="a partial run (only some of the phase's checks): show the decision it would take,"
        " never write the phase's record, never fire a hook",
    )
    group.addoption(
        "--rg-lock-wait",
        dest="rg_lock_wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for another gate run of the same deployment and phase to finish"
        " (default 0: refuse at once)",
    )
    group.addoption(
        "--rg-time-scale",
        dest="rg_time_scale",
        type=_time_scale,
        default=None,
        metavar="FACTOR",
        help="run every SLO window FACTOR times faster (demos, tests); the record keeps the"
        " nominal and the scaled window (default: RELEASEGATE_TIME_SCALE, else 1)",
    )
    group.addoption(
        "--rg-fault",
        dest="rg_fault",
        action="append",
        metavar="NAME=VALUE",
        help="inject a fault into the embedded demo target (repeatable)",
    )


def _demo_services() -> DemoServices:
    from .runtime import DemoServices

    return DemoServices.from_env(os.environ)


def _time_scale(value: str) -> float:
    import argparse
    import math

    try:
        factor = float(value)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and 0 < factor <= 100_000):
        raise argparse.ArgumentTypeError(f"{value!r} is not a time scale: a number in (0, 100000]")
    return factor


def time_scale(config: pytest.Config) -> float:
    """``--rg-time-scale``, else ``RELEASEGATE_TIME_SCALE``, else 1."""
    given = config.getoption("rg_time_scale", None)
    if given is None:
        env = os.environ.get("RELEASEGATE_TIME_SCALE", "").strip()
        if env:
            try:
                given = _time_scale(env)
            except Exception as err:
                raise pytest.UsageError(f"RELEASEGATE_TIME_SCALE: {err}") from None
    return float(given) if given is not None else 1.0


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_configure(config: pytest.Config) -> None:
    for phase in Phase:
        config.addinivalue_line(
            "markers",
            f"{phase.marker}: gate check of phase {phase.value} ({PHASE_DESCRIPTIONS[phase]})",
        )
    for kind, text in KINDS.items():
        config.addinivalue_line("markers", f"{kind}: {text}")
    config.addinivalue_line(
        "markers",
        "releasegate(name=, category=, severity=, weight=, on_fail=, description=, timeout=):"
        " identity of a Python gate check; timeout= its deadline (seconds or 90s, 30m)",
    )
    settings = resolve(config)
    config.stash[SETTINGS_KEY] = settings
    _freeze_at_exit()
    worker = hasattr(config, "workerinput")
    if settings.phase is None:
        if not worker:
            config.pluginmanager.register(PhaseGuard(), "releasegate-phase-guard")
        return
    if listing_run(config):
        return  # listing checks or fixtures decides nothing: no record, no hook, no report
    if settings.loaded is None:
        raise pytest.UsageError(
            f"a gate run (phase {settings.phase.value}) needs a gate spec: create"
            f" {DEFAULT_SPEC} in {config.rootpath} or pass --rg-spec PATH"
        )
    from .inventory import InventoryTracker
    from .runguard import guard_exit

    _redact_log_records()
    tracker = InventoryTracker(config, settings.phase)
    config.pluginmanager.register(tracker, "releasegate-inventory")
    guard_exit()
    config.add_cleanup(_unguard_exit)
    if worker:
        return
    from .gate import RunKind
    from .session import GateSession

    partial_why = partial_reason(config)
    kind = RunKind.PARTIAL if partial_why else RunKind.GATE
    if kind is RunKind.GATE:
        _take_phase_lock(config, settings)
    config.pluginmanager.register(
        GateSession(config, settings, settings.phase, kind, tracker, partial_why),
        "releasegate-session",
    )


#: Options under which pytest lists or plans instead of running: such a run decides nothing.
_LISTING_OPTIONS = (
    "collectonly",
    "showfixtures",
    "show_fixtures_per_test",
    "setuponly",
    "setupplan",
    "help",
    "version",
    "markers",
)


def listing_run(config: pytest.Config) -> bool:
    return any(config.getoption(name, False) for name in _LISTING_OPTIONS)


def partial_reason(config: pytest.Config) -> str:
    """Why this run covers only part of its phase by request ('' for a whole gate run)."""
    if config.getoption("rg_partial", False):
        return "--rg-partial"
    for name, flag in (("lf", "--lf"), ("failedfirst", "--ff"), ("stepwise", "--sw")):
        if config.getoption(name, False):
            return flag
    return ""


@functools.cache
def _redact_log_records() -> None:
    """Mask secrets in every log record of a gate run (live logs, captured logs, reports).

    A record factory sees each record once, as it is made (and only for enabled levels), so the
    message is formatted and scrubbed there, before any handler (pytest's live log, caplog,
    a user's file handler) can write it.
    """
    import logging

    from .redact import redact_text

    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging to report
            return record
        masked = redact_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)


def _unguard_exit() -> None:
    from .runguard import unguard_exit

    unguard_exit()


def _take_phase_lock(config: pytest.Config, settings: RunSettings) -> None:
    from .errors import UsageError
    from .files import PhaseLock
    from .record import record_path

    spec = settings.require_spec()
    assert settings.phase is not None
    folder = record_path(settings.report_dir, spec.deployment.name, settings.phase).parent
    lock = PhaseLock(folder, f"{spec.deployment.name} phase {settings.phase.value}")
    wait = config.getoption("rg_lock_wait")
    try:
        lock.acquire(float(wait) if wait is not None else 0.0)
    except UsageError as err:
        raise pytest.UsageError(str(err)) from None
    except OSError as err:
        # A report folder that cannot hold a lock cannot hold a record either: the round will
        # say so and act on nothing; do not refuse the run for it.
        import warnings

        warnings.warn(f"releasegate: cannot lock {folder}: {err}", stacklevel=1)
        return
    config.add_cleanup(lock.release)


@functools.cache
def _freeze_at_exit() -> None:
    """Spare the interpreter's shutdown a garbage-collector walk over everything still alive.

    Python collects again and again while it tears modules down; with a spec's models, the
    items and the record alive that was a tenth of a 500-check run. At exit nothing left
    needs collecting, so the objects are moved out of the collector's sight (``gc.freeze``).
    """
    atexit.register(gc.freeze)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or settings.loaded is None:
        return []
    spec = settings.loaded.spec
    if settings.phase is None:
        return [f"releasegate: spec {settings.loaded.path} (no phase selected: not deciding)"]
    return [
        f"releasegate: deciding phase {settings.phase.value} ({PHASE_DESCRIPTIONS[settings.phase]})"
        f" for {spec.deployment.name}, mode {settings.mode().value}, spec {settings.loaded.path}"
    ]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    settings = parent.config.stash.get(SETTINGS_KEY, None)
    if settings is None or settings.loaded is None or file_path != settings.loaded.path:
        return None
    from .collect import SpecFile

    spec_file: SpecFile = SpecFile.from_parent(parent, path=file_path)
    spec_file.spec = settings.loaded.spec
    return spec_file


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "releasegate_check" not in metafunc.fixturenames:
        return
    from .collect import parametrize_spec_checks

    settings = metafunc.config.stash[SETTINGS_KEY]
    parametrize_spec_checks(metafunc, settings.require_spec())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash[SETTINGS_KEY]
    if settings.phase is None:
        if config.option.collectonly:
            return  # listing checks decides nothing
        gate = [item for item in items if is_gate_item(item)]
        if gate:
            phases = sorted({p.value for item in gate for p in item_phases(item)})
            message = (
                f"{len(gate)} gate check(s) of phase(s) {', '.join(phases)} were selected but no"
                " phase to decide for. Run one phase: -m gate_t24h (or --rg-phase t24h)"
            )
            if hasattr(config, "workeroutput"):
                # A UsageError on an xdist worker would be an INTERNALERROR on the controller:
                # run nothing and let the controller's PhaseGuard report it.
                config.workeroutput[PhaseGuard.OUTPUT_KEY] = message
                config.hook.pytest_deselected(items=list(items))
                items[:] = []
                return
            raise pytest.UsageError(message)
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if settings.phase in item_phases(item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    for item in keep:
        check_info(item)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A gate check's call runs under its deadline (``outcomes.under_deadline``).

    ``trylast``: the innermost wrapper, so that the deadline covers the check's body only and
    a ``SIGALRM`` handler installed around it (pytest-timeout's) is seen and left alone.
    """
    settings = item.config.stash.get(SETTINGS_KEY, None)
    if settings is None or settings.phase is None or not is_gate_item(item):
        return (yield)
    with under_deadline(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    settings = item.config.stash.get(SETTINGS_KEY, None)
    if settings is not None and settings.phase is not None and is_gate_item(item):
        attach(item, call, report)
    excinfo = call.excinfo
    if (
        report.failed
        and excinfo is not None
        and excinfo.errisinstance((GateFailure, ProbeError, CheckDeadline))
        and (is_spec_check(item) or getattr(excinfo.value, "returned", False))
    ):
        # A spec check's traceback is releasegate's plumbing, as is that of a check stopped
        # for having returned past its deadline: the reason is what matters.
        text = str(excinfo.value)
        if excinfo.errisinstance(GateFailure):
            kind = "FAILED"
        elif overran(item):
            kind, text = "ERROR (could not measure)", deadline_reason(item, text)
        elif excinfo.errisinstance(NoData):
            kind = "NO DATA (measured nothing)"
        else:
            kind = "ERROR (could not measure)"
        report.longrepr = f"{check_info(item).name}: {kind}: {text}"
    if settings is not None and (report.failed or report.sections):
        # Failed: the traceback and summary line; any report: captured output and logs (what
        # -rA, --junitxml and the live log show).
        redact_report(report)
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    """A check that could not say shows its own status, not FAILED, as its outcome does."""
    if not report.failed:
        return None
    status = reported_status(report)
    if report.when == "call" and status == "error":
        return "error", "E", ("ERROR", {"red": True})
    if status == "no_data":
        return "no data", "N", ("NO DATA", {"yellow": True})
    if status == "not_run":
        return "not run", "-", ("NOT RUN", {"yellow": True})
    return None


def redact_report(report: pytest.TestReport) -> None:
    """Mask secrets in what pytest prints of a report: traceback, message, captured output."""
    from .redact import redact_text

    if report.failed and report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        masked = redact_text(text)
        if masked != text:
            # Plain text loses pytest's colouring and the summary's one-line message; a leaked
            # token in CI logs would be worse.
            report.longrepr = masked
    report.sections = [(title, redact_text(body)) for title, body in report.sections]


@pytest.fixture
def rg_evidence(request: pytest.FixtureRequest) -> EvidenceRecorder:
    """Record what a Python check measured; it lands in the decision record."""
    return EvidenceRecorder(request.node)


@pytest.fixture(scope="session")
def rg_spec(request: pytest.FixtureRequest) -> Any:
    """The validated gate spec of this run."""
    try:
        return request.config.stash[SETTINGS_KEY].require_spec()
    except ReleasegateError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.fixture(scope="session")
def rg_target(request: pytest.FixtureRequest, rg_spec: Any) -> Iterator[Any]:
    """An HTTP client for the deployment under test (starts the demo target for demo://)."""
    from .runtime import open_target

    db = request.config.stash.setdefault(PROBE_DB_KEY, DbState())

    services = request.config.stash.setdefault(DEMO_KEY, _demo_services())
    faults = request.config.stash[SETTINGS_KEY].faults
    with open_target(rg_spec, faults, db, services) as client:
        yield client


@pytest.fixture(scope="session")
def rg_probe_context(request: pytest.FixtureRequest) -> Iterator[Any]:
    """What spec-check probes work with: the spec, the target client, the phase and databases.

    The databases' state is the one ``rg_target`` recorded the demo's file in (a fresh one if
    a suite overrides ``rg_target``); its engines are closed when the run ends. ``rg_spec``
    and ``rg_target`` are asked for here rather than as arguments: every spec check's fixture
    closure is then three names, not five, and pytest looks each up at every check.
    """
    from .netguard import Policy
    from .probes import ProbeContext

    rg_spec = request.getfixturevalue("rg_spec")
    rg_target = request.getfixturevalue("rg_target")

    settings = request.config.stash[SETTINGS_KEY]
    policy = Policy.from_hosts(rg_spec.allowed_hosts)
    context = ProbeContext(
        spec=rg_spec,
        target=rg_target,
        phase=settings.phase,
        spec_dir=settings.loaded.path.parent if settings.loaded else None,
        db=request.config.stash.setdefault(PROBE_DB_KEY, DbState(policy=policy)),
        time_scale=time_scale(request.config),
        cache={"demo": request.config.stash.setdefault(DEMO_KEY, _demo_services())},
    )
    yield context
    if context.db.engines:
        from .db.connect import dispose_engines

        dispose_engines(context.db)
