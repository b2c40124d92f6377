"""Bad-input probe: malformed requests must get a 4xx, never a 5xx, a hang or a dropped line.

Hypothesis derives the requests from each endpoint's valid ``example``: a field removed or
given a value of the wrong type, an unknown field added, the body replaced by broken JSON,
random text, an oversized document, a JSON array or nothing, or the valid body sent with the
wrong Content-Type. Generation is derandomized and never shrinks, so a run is reproducible and
costs at most ``max_examples`` requests per endpoint. Findings are recorded inside the test
body instead of raised, so hypothesis never sees a failure to replay.

Only loopback targets are fuzzed unless ``ctx.allow_remote_fuzz`` is True.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import requests
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import Phase as HypothesisPhase
from hypothesis import strategies as st

from .. import deadlines
from ..errors import ProbeError, TargetRefused
from ..model import Evidence
from ..netguard import ensure_loopback
from ..redact import redact_text
from ..spec import BadInputCheck, FuzzEndpoint
from .base import ProbeContext, ProbeResult

BODY_EXCERPT_CHARS = 300
EXAMPLES_SHOWN = 5
OVERSIZED_BYTES = 100 * 1024

_JSON = "application/json"
_INVALID_JSON = [b"{", b'{"a": ', b"{'a': 1}", b'{"a": 1,}', b"[1, 2", b"nul", b'"\\ud800"']
_WRONG_CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
_NAN_ISH = ["NaN", "nan", "Infinity", "-Infinity", "null", "undefined", "None", "1e999", "", " "]

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=40),
    st.sampled_from(_NAN_ISH),
    st.integers(min_value=2**63, max_value=2**200) | st.integers(max_value=-(2**63) - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)
_WRONG_VALUES = _SCALARS | st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@dataclass(frozen=True, slots=True)
class Malformed:
    """One malformed request body and what was done to the example to get it."""

    label: str
    body: bytes
    content_type: str | None = _JSON


def _dump(label: str, document: Any) -> Malformed:
    # NaN and Infinity come out as bare tokens: invalid strict JSON, which is the point.
    return Malformed(label, json.dumps(document, default=str).encode())


def malformed_bodies(example: dict[str, Any]) -> st.SearchStrategy[Malformed]:
    """Requests derived from a valid ``example``; the simplest (a field removed) comes first."""
    keys = sorted(example)
    valid = json.dumps(example).encode()
    options: list[st.SearchStrategy[Malformed]] = []
    if keys:
        options.append(
            st.sets(st.sampled_from(keys), min_size=1).map(
                lambda gone: _dump(
                    f"removed {', '.join(sorted(gone))}",
                    {k: v for k, v in example.items() if k not in gone},
                )
            )
        )
        options.append(
            st.tuples(st.sampled_from(keys), _WRONG_VALUES).map(
                lambda kv: _dump(f"{kv[0]} = {kv[1]!r:.60}", {**example, kv[0]: kv[1]})
            )
        )
    options += [
        st.tuples(st.text(min_size=1, max_size=12), _WRONG_VALUES)
        .filter(lambda kv: kv[0] not in example)
        .map(lambda kv: _dump(f"unknown field {kv[0]!r}", {**example, kv[0]: kv[1]})),
        st.sampled_from(_INVALID_JSON).map(lambda raw: Malformed("invalid JSON", raw)),
        st.binary(min_size=1, max_size=64).map(lambda raw: Malformed("random bytes", raw)),
        st.text(min_size=1, max_size=200).map(lambda t: Malformed("random text", t.encode())),
        st.just(
            _dump("oversized body", {**example, "padding": "A" * OVERSIZED_BYTES}),
        ),
        st.lists(_SCALARS | st.just(example), max_size=4).map(lambda a: _dump("JSON array", a)),
        st.just(Malformed("empty body", b"")),
        st.sampled_from(_WRONG_CONTENT_TYPES).map(
            lambda ct: Malformed(f"Content-Type {ct or '(none)'}", valid, ct)
        ),
    ]
    return st.one_of(options)


@dataclass(slots=True)
class _Tally:
    """What one endpoint answered."""

    endpoint: FuzzEndpoint
    sent: int = 0
    server_errors: int = 0
    timeouts: int = 0
    dropped: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.endpoint.method} {self.endpoint.path}"

    def counts(self) -> dict[str, int]:
        return {
            "requests": self.sent,
            "5xx": self.server_errors,
            "timeouts": self.timeouts,
            "dropped": self.dropped,
        }


class _Stop(BaseException):
    """Ends a hypothesis run early. Not an ``Exception``: hypothesis lets it through as it does
    KeyboardInterrupt, without counting a failure, replaying or shrinking."""


@dataclass(slots=True)
class _Run:
    """State shared by the test bodies of one probe run."""

    check: BadInputCheck
    ctx: ProbeContext
    sent: int = 0
    fatal: str | None = None
    out_of_time: bool = False


def probe_bad_input(check: BadInputCheck, ctx: ProbeContext) -> ProbeResult:
    """Fuzz every endpoint; any 5xx, timeout or dropped connection is a finding (FAILED)."""
    names = ", ".join(f"{e.method} {e.path}" for e in check.endpoints)
    measured = redact_text(f"malformed input to {names}")
    threshold = (
        f"no 5xx, no hang (> {check.request_timeout_s:g}s) and no dropped connection;"
        f" up to {check.max_examples} examples per endpoint within {check.deadline_s:g}s"
    )
    if not ctx.allow_remote_fuzz:
        try:
            ensure_loopback(ctx.target.base_url, "bad-input fuzzing")
        except TargetRefused as err:
            return ProbeResult.error(str(err), Evidence(measured, None, threshold, str(err)))

    run = _Run(check, ctx)
    started = time.monotonic()
    # Fuzzing stops at its own deadline or at the check's, whichever comes first.
    check_deadline = deadlines.current()
    deadline = started + check.deadline_s
    if check_deadline is not None:
        deadline = min(deadline, check_deadline)
    tallies = [_Tally(endpoint) for endpoint in check.endpoints]
    for index, tally in enumerate(tallies):
        # Each endpoint gets an equal share of what is left, so none is starved by another.
        share = (deadline - time.monotonic()) / (len(tallies) - index)
        _fuzz(run, tally, min(deadline, time.monotonic() + share))
        if run.fatal or time.monotonic() >= deadline:
            break
    elapsed = time.monotonic() - started

    value = {
        "endpoints": {t.name: t.counts() for t in tallies},
        "requests": run.sent,
        "5xx": sum(t.server_errors for t in tallies),
        "timeouts": sum(t.timeouts for t in tallies),
        "elapsed_s": round(elapsed, 3),
        "stopped_by_deadline": run.out_of_time,
    }
    findings = [f for t in tallies for f in t.findings]
    evidence = partial(
        Evidence, measured, value, threshold, details={"examples": findings[:EXAMPLES_SHOWN]}
    )
    if run.fatal:
        reason = redact_text(f"cannot fuzz: {run.fatal}")
        return ProbeResult.error(reason, evidence(reason))
    if findings:
        timeout_s = check.request_timeout_s
        reason = "; ".join(_summary(t, timeout_s) for t in tallies if t.findings)
        return ProbeResult.failed(redact_text(reason), evidence(redact_text(reason)))
    if run.sent == 0:
        reason = f"no request could be sent within the {check.deadline_s:g}s deadline"
        return ProbeResult.error(reason, evidence(reason))
    reason = (
        f"no 5xx, hang or dropped connection in {run.sent} malformed requests"
        f" to {len(tallies)} endpoint(s) in {elapsed:.1f}s"
    )
    return ProbeResult.passed(reason, evidence(reason))


def _fuzz(run: _Run, tally: _Tally, deadline: float) -> None:
    endpoint, timeout_s = tally.endpoint, run.check.request_timeout_s

    def send_one(case: Malformed) -> None:
        if run.fatal or time.monotonic() >= deadline:
            run.out_of_time = not run.fatal
            raise _Stop  # drawing the remaining examples alone would overrun the deadline
        first = run.sent == 0
        run.sent += 1
        tally.sent += 1
        outcome = _send(run.ctx, endpoint, case, timeout_s)
        if isinstance(outcome, ProbeError) and not _timed_out(outcome):
            if first:  # refused before anything answered: the target is not there to fuzz
                run.fatal = str(outcome)
                raise _Stop
            outcome = _send(run.ctx, endpoint, case, timeout_s)  # once more: a transient reset?
        if isinstance(outcome, int):
            if outcome < 500:
                return
            tally.server_errors += 1
            answer: str | int = outcome
        elif _timed_out(outcome):
            tally.timeouts += 1
            answer = "timeout"
        else:
            tally.dropped += 1
            answer = "connection dropped"
        if len(tally.findings) < EXAMPLES_SHOWN:
            tally.findings.append(_finding(endpoint, case, answer))

    test = settings(
        max_examples=run.check.max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[HypothesisPhase.explicit, HypothesisPhase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(malformed_bodies(endpoint.example))(send_one))
    with contextlib.suppress(_Stop):
        test()


def _send(
    ctx: ProbeContext, endpoint: FuzzEndpoint, case: Malformed, timeout_s: float
) -> int | ProbeError:
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    try:
        timed = ctx.target.request(
            endpoint.method, endpoint.path, timeout_s=timeout_s, data=case.body, headers=headers
        )
    except ProbeError as err:
        return err
    return timed.response.status_code


def _timed_out(err: ProbeError) -> bool:
    """Whether the target hung rather than refused or reset.

    TargetClient raises ``from None``, which hides the transport error but keeps it as
    ``__context__``. Only the outermost one counts: deeper in the chain urllib3's refusal
    (``NewConnectionError``) subclasses its ``TimeoutError``.
    """
    cause = err.__context__
    if isinstance(cause, requests.Timeout):
        return True
    # A body that stops coming surfaces as a ConnectionError wrapping urllib3's read timeout.
    return isinstance(cause, requests.ConnectionError) and any(
        isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in cause.args
    )


def _finding(endpoint: FuzzEndpoint, case: Malformed, answer: str | int) -> dict[str, Any]:
    body = case.body[: BODY_EXCERPT_CHARS * 2].decode("utf-8", errors="replace")
    body = redact_text(body)
    if len(body) > BODY_EXCERPT_CHARS or len(case.body) > BODY_EXCERPT_CHARS * 2:
        body = body[: BODY_EXCERPT_CHARS - 1] + "…"
    return {
        "method": endpoint.method,
        "path": redact_text(endpoint.path),
        "input": redact_text(case.label),
        "content_type": case.content_type,
        "body": body,
        "bytes": len(case.body),
        "answer": answer,
    }


def _summary(tally: _Tally, timeout_s: float) -> str:
    first = tally.findings[0]
    if first["answer"] == "timeout":
        what = f"gave no answer within {timeout_s:g}s"
    elif first["answer"] == "connection dropped":
        what = "dropped the connection"
    else:
        what = f"answered {first['answer']}"
    bad = tally.server_errors + tally.timeouts + tally.dropped
    return (
        f"{tally.name} {what} to a malformed body ({first['input']}): {first['body'][:120]!r}"
        f" [{bad} of {tally.sent} requests]"
    )
