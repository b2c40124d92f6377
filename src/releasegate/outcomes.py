"""From pytest items and reports to check identities and outcomes.

``attach`` runs where the test ran (an xdist worker or the only process) and puts the check's
identity, status, reason and evidence on the report as one JSON user property, so that the
outcome travels to the controller with the report. ``OutcomeCollector`` merges the reports of
one check (setup, call, teardown) into one ``Outcome`` on the controller.

``under_deadline`` runs a check's call under its deadline (``deadlines.py``); a call that
ends past it is an ERROR that says so, with its run time as evidence.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from . import deadlines
from .deadlines import Alarm, Timeout
from .errors import CheckDeadline, GateFailure, NoData, ProbeError, TargetRefused
from .evidence import EVIDENCE_KEY, MARGINAL_KEY, REASON_KEY
from .model import KINDS, Action, CheckInfo, Evidence, Limit, Outcome, Severity, Status
from .phases import Phase
from .redact import redact_text, redact_value
from .runguard import CheckExited

PROPERTY = "releasegate.outcome"
CHECK_KEY = pytest.StashKey[CheckInfo]()
TIMEOUT_KEY = pytest.StashKey[Timeout]()
#: How long the last call of a check ran when it ended past its deadline (None: in time).
OVERRUN_KEY = pytest.StashKey["float | None"]()
_MARKER_KEYS = ("name", "category", "severity", "weight", "on_fail", "description", "timeout")
_MAX_TIMEOUT_S = 7 * 86400


PHASES_KEY = pytest.StashKey[tuple[Phase, ...]]()


def item_phases(item: pytest.Item) -> tuple[Phase, ...]:
    """The phases an item belongs to, from its ``gate_<phase>`` markers (looked up once)."""
    phases = item.stash.get(PHASES_KEY, None)
    if phases is None:
        names = {mark.name for mark in item.iter_markers()}
        phases = tuple(p for p in Phase if p.marker in names)
        item.stash[PHASES_KEY] = phases
    return phases


def is_gate_item(item: pytest.Item) -> bool:
    return bool(item_phases(item))


def is_spec_check(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "releasegate_check" in callspec.params


def check_info(item: pytest.Item) -> CheckInfo:
    """The identity of a gate check: from its spec entry or from its markers."""
    if CHECK_KEY in item.stash:
        return item.stash[CHECK_KEY]
    callspec = getattr(item, "callspec", None)
    spec_check = callspec.params.get("releasegate_check") if callspec else None
    if spec_check is not None:
        info: CheckInfo = spec_check.info(item.nodeid)
        item.stash[TIMEOUT_KEY] = Timeout.of(getattr(spec_check, "timeout", None), info.kind)
    else:
        info = _info_from_markers(item)
    item.stash[CHECK_KEY] = info
    return info


def check_timeout(item: pytest.Item) -> Timeout:
    """The deadline of a gate check: its spec ``timeout`` or marker ``timeout=``, else the
    default of its kind."""
    if TIMEOUT_KEY not in item.stash:
        check_info(item)
    return item.stash[TIMEOUT_KEY]


@contextmanager
def under_deadline(item: pytest.Item) -> Iterator[None]:
    """Run a gate check's call under its deadline.

    Everything that waits on the check's behalf (HTTP requests, retries, SQL statements) sees
    the deadline (``deadlines.current()``) and stops at it; the ``SIGALRM`` backstop stops the
    call a short grace later if it is still running. A call that ended past the deadline
    leaves its run time in ``OVERRUN_KEY`` for ``map_report``; one that returned past it
    raises ``CheckDeadline`` all the same, so that pytest's own output agrees with the record.
    """
    timeout = check_timeout(item)
    item.stash[OVERRUN_KEY] = None
    with (
        deadlines.within(timeout.seconds) as until,
        Alarm(timeout.seconds + timeout.grace_s, timeout.exceeded),
    ):
        try:
            yield
        finally:
            now = time.monotonic()
            if now >= until:
                item.stash[OVERRUN_KEY] = now - until + timeout.seconds
    ran = item.stash[OVERRUN_KEY]
    if ran is not None:
        raise CheckDeadline(f"{timeout.exceeded}: it returned only after {ran:.2f}s", returned=True)


def _info_from_markers(item: pytest.Item) -> CheckInfo:
    marker = item.get_closest_marker("releasegate")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    unknown = set(kwargs) - set(_MARKER_KEYS)
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.releasegate got unknown argument(s)"
            f" {', '.join(sorted(unknown))}; allowed: {', '.join(_MARKER_KEYS)}"
        )
    # A Python check is a smoke check unless a kind marker (db, slo, ...) says otherwise.
    kind = next((k for k in KINDS if item.get_closest_marker(k) is not None), "smoke")
    try:
        severity = Severity(kwargs.get("severity", "major"))
        on_fail = Action(kwargs["on_fail"]) if kwargs.get("on_fail") else None
        weight = float(kwargs.get("weight", severity.default_weight))
        if not 0 <= weight <= 1000:  # NaN fails this too
            raise ValueError(f"weight {kwargs.get('weight')!r} is not a number from 0 to 1000")
        timeout = _marker_timeout(kwargs.get("timeout"))
    except (TypeError, ValueError) as err:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.releasegate: {err}. Severity is one of"
            f" {[s.value for s in Severity]}, on_fail one of {[a.value for a in Action]},"
            " weight a number >= 0, timeout seconds or a duration such as 90s or 30m"
        ) from None
    item.stash[TIMEOUT_KEY] = Timeout.of(timeout, kind)
    return CheckInfo(
        name=str(kwargs.get("name", item.name)),
        kind=kind,
        category=str(kwargs.get("category", "general")),
        severity=severity,
        weight=weight,
        phases=item_phases(item),
        on_fail=on_fail,
        description=str(kwargs.get("description") or _first_doc_line(item)),
        nodeid=item.nodeid,
        source="python",
    )


def _marker_timeout(value: Any) -> float | None:
    if value is None:
        return None
    from .spec import duration_s

    seconds = duration_s(value)
    if not (0 < seconds <= _MAX_TIMEOUT_S) or not math.isfinite(seconds):
        raise ValueError(f"timeout {value!r} is not a duration from 0 to 7 days")
    return seconds


def _first_doc_line(item: pytest.Item) -> str:
    doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _exception_status(call: pytest.CallInfo[None]) -> tuple[Status, str]:
    excinfo = call.excinfo
    if excinfo is None:
        return Status.ERROR, "the check failed without an exception"
    exc = excinfo.value
    text = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    if isinstance(exc, CheckExited):
        return Status.NOT_RUN, f"not run to the end: {text}"
    if isinstance(exc, CheckDeadline):
        return Status.ERROR, text or "exceeded its deadline"
    if isinstance(exc, NoData):
        return Status.NO_DATA, text or "the check measured nothing"
    if isinstance(exc, (ProbeError, TargetRefused)):
        return Status.ERROR, text or "the probe could not measure"
    if isinstance(exc, (GateFailure, AssertionError, pytest.fail.Exception)):
        return Status.FAILED, text or "assertion failed"
    return Status.ERROR, f"check raised {type(exc).__name__}: {text}"[:500]


def _skipped_by_mark(item: pytest.Item) -> bool:
    """Whether a ``skip``/``skipif`` marker (the author's declared skip) skipped ``item``."""
    try:
        from _pytest.skipping import evaluate_skip_marks
    except ImportError:  # pragma: no cover - pytest moved it: fall back on the markers
        return any(item.iter_markers("skip")) or any(item.iter_markers("skipif"))
    try:
        return evaluate_skip_marks(item) is not None
    except Exception:  # a skipif condition that cannot be evaluated is not a declared skip
        return False


def _declared_xfail_raise(item: pytest.Item, call: pytest.CallInfo[None]) -> bool:
    marker = item.get_closest_marker("xfail")
    raises = marker.kwargs.get("raises") if marker is not None else None
    if raises is None or call.excinfo is None:
        return False
    try:
        return isinstance(call.excinfo.value, raises)
    except TypeError:  # pytest.RaisesExc and the like: pytest already matched it
        return True


def _map_call(
    item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, wasxfail: Any
) -> tuple[Status, str]:
    if report.passed:
        if wasxfail is not None:
            return Status.PASSED, f"passed although marked xfail ({wasxfail})"
        return Status.PASSED, item.stash.get(REASON_KEY, "")
    if report.skipped:
        if wasxfail is not None:
            # xfail forgives a failure, not a check that could not measure, unless the
            # marker names the exception (``raises=``) as the failure it expects.
            status, text = _exception_status(call)
            if status is Status.FAILED or _declared_xfail_raise(item, call):
                return Status.FAILED, f"failed, as its xfail marker expected: {wasxfail}"
            return status, f"{text} (marked xfail: {wasxfail})"
        return (
            Status.NO_DATA,
            f"the check skipped itself, measuring nothing: {_skip_reason(report)}",
        )
    if call.excinfo is None and "XPASS(strict)" in str(report.longrepr or ""):
        return (
            Status.FAILED,
            f"passed although marked xfail(strict=True): {wasxfail or report.longrepr}",
        )
    return _exception_status(call)


def _past_deadline(item: pytest.Item, mapped: tuple[Status, str]) -> tuple[Status, str]:
    """A call that ended past its deadline could not say in time: an ERROR, unless it had
    already measured a failure (that stands)."""
    status, reason = mapped
    if not overran(item) or status not in _OVERRUN_TO_ERROR:
        return mapped
    return Status.ERROR, deadline_reason(item, reason)


_OVERRUN_TO_ERROR = (Status.PASSED, Status.NO_DATA, Status.ERROR)


def overran(item: pytest.Item) -> bool:
    """Whether the check's last call ended past its deadline."""
    return item.stash.get(OVERRUN_KEY, None) is not None


def deadline_reason(item: pytest.Item, reason: str) -> str:
    """``reason`` led by what the check's deadline was (once)."""
    exceeded = check_timeout(item).exceeded
    if reason.startswith(exceeded):
        return reason
    return f"{exceeded}: {reason}" if reason else exceeded


def map_report(
    item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
) -> tuple[Status, str] | None:
    """The status and reason one phase's report means for a gate check (docs/outcomes.md), or
    None when it says nothing new (a passing setup or teardown, a skip in teardown)."""
    wasxfail = getattr(report, "wasxfail", None)
    if report.when == "call":
        return _past_deadline(item, _map_call(item, call, report, wasxfail))
    if report.when == "setup" and not report.passed:
        if report.skipped:
            if wasxfail is not None and str(wasxfail).startswith("[NOTRUN]"):
                return Status.NOT_RUN, f"not run: xfail(run=False): {wasxfail}"
            if wasxfail is not None:
                _, text = _exception_status(call)
                return Status.ERROR, f"setup failed: {text} (marked xfail: {wasxfail})"
            why = _skip_reason(report)
            if why.startswith("got empty parameter set"):
                # pytest's own skip marker for ``parametrize(..., [])``: nothing was declared.
                return Status.NOT_RUN, f"not run: parametrized over nothing ({why})"
            if _skipped_by_mark(item):
                return Status.SKIPPED, f"skipped as declared: {why}"
            return Status.NOT_RUN, f"not run: skipped in setup: {why}"
        status, text = _exception_status(call)
        if status is Status.NOT_RUN:
            return status, text
        return Status.ERROR, f"setup failed: {text}"
    if report.when == "teardown" and report.failed:
        status, text = _exception_status(call)
        if status is Status.NOT_RUN:
            return status, text
        return Status.ERROR, f"teardown failed: {text}"
    return None


def attach(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
    """Put this phase's part of the check outcome on ``report`` (worker side)."""
    mapped = map_report(item, call, report)
    if mapped is None:
        return
    status, reason = mapped
    evidence: list[Evidence] = []
    if report.when == "call":
        evidence = item.stash.get(EVIDENCE_KEY, [])
        overrun = item.stash.get(OVERRUN_KEY, None)
        if overrun is not None:
            evidence = [*evidence, deadline_evidence(check_timeout(item), overrun)]
    payload = {
        "check": check_info(item).to_dict(),
        "status": status.value,
        "reason": reason,
        "evidence": [redact_value(e.to_dict()) for e in evidence],
        "duration_s": report.duration,
    }
    if status is Status.PASSED and report.when == "call" and MARGINAL_KEY in item.stash:
        payload["marginal"] = True
    report.user_properties.append((PROPERTY, json.dumps(payload, default=str)))


def deadline_evidence(timeout: Timeout, ran_s: float) -> Evidence:
    """What a check that ran past its deadline shows: how long it ran, against what."""
    return Evidence(
        measured="the check's run time",
        value=round(ran_s, 3),
        threshold=f"<= {timeout.seconds:g} s ({timeout.source})",
        limits=(Limit("run time", "<=", timeout.seconds, "s"),),
        reason=timeout.exceeded,
        details={"timeout_s": timeout.seconds, "timeout_from": timeout.source},
    )


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def reported_status(report: pytest.TestReport) -> str | None:
    """The status ``attach`` put on ``report`` (``"error"``, ``"failed"``, ...), if any."""
    for key, value in getattr(report, "user_properties", ()):
        if key == PROPERTY and isinstance(value, str):
            status: str = json.loads(value)["status"]
            return status
    return None


class OutcomeCollector:
    """Merges the per-phase parts of each check into one outcome (controller side)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[dict[str, Any]]] = {}
        self.unattributed: dict[str, str] = {}
        self._spec_seen = False

    def has_spec(self) -> bool:
        """Whether any spec check reported (so the spec file was collected)."""
        return self._spec_seen

    def add(self, report: pytest.TestReport) -> None:
        if report.outcome == "rerun":  # type: ignore[comparison-overlap]
            return  # pytest-rerunfailures tries again; the last attempt is the outcome
        found = False
        for key, value in report.user_properties:
            if key == PROPERTY and isinstance(value, str):
                part = json.loads(value)
                self._parts.setdefault(report.nodeid, []).append(part)
                self._spec_seen = self._spec_seen or part["check"].get("source") == "spec"
                found = True
        if found or not report.failed:
            return
        context = getattr(report, "context", None)
        if context is not None and report.nodeid in self._parts:
            # A failed subtest (pytest's ``subtests`` fixture) fails the check it belongs to.
            msg = getattr(context, "msg", None) or getattr(context, "kwargs", "") or ""
            first = self._parts[report.nodeid][0]
            self._parts[report.nodeid].append(
                {
                    **first,
                    "status": Status.FAILED.value,
                    "reason": f"subtest failed: {msg}".strip(),
                    "evidence": [],
                }
            )
        elif report.nodeid not in self._parts:
            # A report built by the controller itself (an xdist worker crashed mid-check)
            # carries no outcome: the check never said.
            self.unattributed[report.nodeid] = _first_line(report.longrepr)

    def outcomes(self) -> list[Outcome]:
        result = merge_parts(
            (nodeid, part) for nodeid, parts in self._parts.items() for part in parts
        )
        for nodeid, text in self.unattributed.items():
            if nodeid in self._parts:
                continue
            name = nodeid.rsplit("::", 1)[-1]
            spec = name.startswith("check[") and name.endswith("]")
            result.append(
                Outcome(
                    check=CheckInfo(
                        name=name[6:-1] if spec else name,
                        kind="smoke",
                        severity=Severity.CRITICAL,
                        weight=Severity.CRITICAL.default_weight,
                        nodeid=nodeid,
                        source="spec" if spec else "python",
                    ),
                    status=Status.NOT_RUN,
                    reason=f"not run to the end: its worker was lost ({text})"[:500],
                )
            )
        return result


def merge_parts(parts: Iterable[tuple[str, dict[str, Any]]]) -> list[Outcome]:
    """One outcome per node id from its parts (setup, call, teardown): the worst status wins,
    evidence and durations add up."""
    by_node: dict[str, list[dict[str, Any]]] = {}
    for nodeid, part in parts:
        by_node.setdefault(nodeid, []).append(part)
    result: list[Outcome] = []
    for group in by_node.values():
        worst = min(group, key=lambda p: Status(p["status"]).rank)
        result.append(
            Outcome(
                check=CheckInfo.from_dict(group[0]["check"]),
                status=Status(worst["status"]),
                reason=worst["reason"],
                evidence=tuple(Evidence.from_dict(e) for p in group for e in p["evidence"]),
                duration_s=sum(float(p.get("duration_s", 0.0)) for p in group),
                marginal=worst["status"] == Status.PASSED.value
                and any(p.get("marginal") is True for p in group),
            )
        )
    return result


def _first_line(longrepr: Any) -> str:
    text = str(longrepr or "").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return redact_text(lines[0][:300]) if lines else "no report"
