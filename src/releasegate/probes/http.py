"""Smoke probes over HTTP: a declarative request, liveness, readiness and the deployed version.

Each probe sends one request through ``ctx.target`` (again and again with ``retry``, until the
answer is right or the deadline passes) and judges the last answer. A wrong answer is FAILED;
no answer, or an answer that cannot be read for what the probe measures, is ERROR.

``expect.json`` is a recursive subset: an object must have every expected key (extra keys are
fine) and an array must contain, for every expected element, some element that matches it in
any order. ``expect.jsonpath`` compares with ``==`` the single value a path selects, or the list
of values when it selects several; a path that selects nothing fails.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from .. import deadlines
from ..errors import ProbeError, TargetRefused
from ..model import Evidence, Limit, Status
from ..redact import MASK, is_secret_key, redact_text, redact_value
from ..spec import (
    Expect,
    HttpCheck,
    LivenessCheck,
    ReadFrom,
    ReadinessCheck,
    Retry,
    VersionCheck,
)
from ..target import Timed
from .base import ProbeContext, ProbeResult

if TYPE_CHECKING:
    from jsonpath_ng.jsonpath import JSONPath

BODY_EXCERPT_CHARS = 2000
MIN_COMMIT_PREFIX = 7
_NOT_JSON: Any = object()
_UNSET: Any = object()


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.lru_cache(maxsize=512)
def _jsonpath(expression: str) -> JSONPath:
    from jsonpath_ng.ext.parser import parse  # 20 ms of imports, for checks that use jsonpath

    return parse(expression)


class _Answer:
    """One response; its text and JSON are decoded at most once, and only when asked for."""

    __slots__ = ("_json", "_text", "latency_ms", "response")

    def __init__(self, timed: Timed) -> None:
        self.response = timed.response
        self.latency_ms = timed.elapsed_ms
        self._text: str | None = None
        self._json: Any = _UNSET

    @property
    def status(self) -> int:
        return self.response.status_code

    def text(self) -> str:
        if self._text is None:
            self._text = _decode(self.response.content, self.response.encoding)
        return self._text

    def json(self) -> Any:
        """The parsed body, or ``_NOT_JSON``."""
        if self._json is _UNSET:
            try:
                self._json = json.loads(self.response.content)
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                self._json = _NOT_JSON
        return self._json

    def excerpt(self, limit: int = BODY_EXCERPT_CHARS) -> str:
        """The body's start, redacted, at most ``limit`` characters."""
        content = self.response.content
        # Redact a little more than is kept so that a secret cut by the limit is still masked.
        head = redact_text(_decode(content[: limit * 2 + 400], self.response.encoding))
        if len(head) <= limit and len(content) <= limit * 2 + 400:
            return head
        return head[: limit - 1] + "…"


def _decode(content: bytes, encoding: str | None) -> str:
    try:
        return content.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Verdict:
    status: Status
    problems: list[str] = field(default_factory=list)
    value: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    timeout_s: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_body_bytes: int | None = None
    follow_redirects: bool = False


Judge = Callable[[_Answer], _Verdict]


def probe_http(check: HttpCheck, ctx: ProbeContext) -> ProbeResult:
    """Send ``check.request`` and hold the answer to every expectation of ``check.expect``."""
    req, expect = check.request, check.expect
    kwargs: dict[str, Any] = {}
    if req.headers:
        kwargs["headers"] = req.headers
    if req.params:
        kwargs["params"] = req.params
    if req.json_body is not None:
        kwargs["json"] = req.json_body
    elif req.body is not None:
        kwargs["data"] = req.body.encode()
    call = _Call(
        req.method, req.path, req.timeout_s, kwargs, req.max_body_bytes, req.follow_redirects
    )
    threshold = _http_threshold(expect)
    try:  # a bad pattern is the spec's fault: say so once instead of retrying it
        if expect.body_regex is not None:
            _regex(expect.body_regex)
        for expression in expect.jsonpath:
            _jsonpath(expression)
    except Exception as err:  # re.error, jsonpath's lexer and parser errors
        reason = f"the check's expectation cannot be used: {err}"
        return ProbeResult.error(reason, Evidence(_measured(call), None, threshold, reason))
    judge = functools.partial(_judge_expect, expect)
    return _run(ctx, call, judge, check.retry, threshold, expect.max_latency_ms)


def probe_liveness(check: LivenessCheck, ctx: ProbeContext) -> ProbeResult:
    """GET the liveness path; any 2xx within ``max_latency_ms`` passes."""
    threshold = "status 2xx" + _latency_threshold(check.max_latency_ms)

    def judge(answer: _Answer) -> _Verdict:
        problems = [] if _ok(answer.status) else [f"status {answer.status} is not 2xx"]
        problems += _latency_problems(answer, check.max_latency_ms)
        return _verdict(problems)

    return _run(ctx, _Call("GET", check.path), judge, check.retry, threshold, check.max_latency_ms)


def probe_readiness(check: ReadinessCheck, ctx: ProbeContext) -> ProbeResult:
    """GET the readiness path; 2xx, and every dependency (and each required one) healthy."""
    healthy = {v.lower() for v in check.healthy_values}
    key = check.dependencies_key
    if check.mode == "status":
        threshold = "status 2xx"
    elif check.mode == "text":
        threshold = f"status 2xx; body is {check.expect_body!r}"
    else:
        threshold = f"status 2xx; every {key!r} entry in {sorted(healthy)}"
        if check.required:
            threshold += f"; required: {', '.join(check.required)}"

    def judge(answer: _Answer) -> _Verdict:
        problems = [] if _ok(answer.status) else [f"status {answer.status} is not 2xx"]
        if check.mode == "status":
            return _verdict(problems)
        if check.mode == "text":
            body = answer.text().strip()
            if body.lower() != check.expect_body.strip().lower():
                problems.append(f"body is {answer.excerpt(100)!r}, expected {check.expect_body!r}")
            return _verdict(problems, {"body": body[:100]})
        doc = answer.json()
        try:
            deps = _dependencies(_lookup(doc, key)) if isinstance(doc, dict) else None
        except ValueError as err:  # a malformed component entry: say which, never drop it
            return _Verdict(Status.ERROR, [f"{key!r}: {err}: {answer.excerpt(200)}"])
        if deps is None:
            if problems:  # a failing status says enough, whatever the body is
                return _verdict(problems)
            what = "body is not JSON" if doc is _NOT_JSON else f"answer has no {key!r} map"
            return _Verdict(Status.ERROR, [f"{what}: {answer.excerpt(200)}"])
        bad = {n: s for n, s in deps.items() if not (isinstance(s, str) and s.lower() in healthy)}
        missing = [name for name in check.required if name not in deps]
        if bad:
            listed = ", ".join(f"{n}={s}" for n, s in bad.items())
            problems.append(f"unhealthy dependencies: {listed}")
        if missing:
            problems.append(f"required dependencies missing: {', '.join(missing)}")
        value = {"dependencies": deps, "unhealthy": sorted(bad), "missing": missing}
        return _verdict(problems, value)

    return _run(ctx, _Call("GET", check.path), judge, check.retry, threshold)


def probe_version(check: VersionCheck, ctx: ProbeContext) -> ProbeResult:
    """GET the version path; the version and commit must be the ones the spec declares.

    Each is read where the check says (``version_from``/``commit_from``: a JSON key, a
    JSONPath, a header or a regex over a text body), and whatever the source, the record
    keeps the deployed value under ``version``/``commit``.
    """
    deployment = ctx.spec.deployment
    want: dict[str, tuple[str, ReadFrom]] = {}
    if deployment.version is not None:
        want["version"] = (deployment.version, check.source("version"))
    if deployment.commit is not None:
        want["commit"] = (deployment.commit, check.source("commit"))
    call = _Call("GET", check.path)
    if not want:
        reason = "the spec declares no deployment.version or deployment.commit to compare with"
        return ProbeResult.error(reason, Evidence(_measured(call), None, None, reason))
    threshold = "; ".join(f"{src.describe()} == {v!r}" for v, src in want.values())
    if "commit" in want:
        threshold += f" (or a common prefix of at least {MIN_COMMIT_PREFIX} characters)"

    def judge(answer: _Answer) -> _Verdict:
        if not _ok(answer.status):
            return _Verdict(Status.ERROR, [f"status {answer.status}, no version to read"])
        problems: list[str] = []
        value: dict[str, Any] = {}
        notes: list[str] = []
        for label, (expected, source) in want.items():
            actual, missing = _read(answer, source)
            if actual is None:
                return _Verdict(Status.ERROR, [missing])
            where = source.describe()
            # Stored under "version"/"commit" whatever the source: the record's
            # versions.deployed reads them there.
            value[label] = {"expected": expected, "actual": actual, "field": where}
            if label == "commit":
                matched = _commit_match(expected, actual)
                if matched == "prefix":
                    notes.append(f"commit {actual} matches {expected} by prefix")
                value[label]["match"] = matched
                ok = matched is not None
            else:
                ok = actual == expected
            if not ok:
                problems.append(f"{where} is {actual!r}, expected {expected!r}")
        verdict = _verdict(problems, value)
        verdict.note = "; ".join(notes)
        return verdict

    return _run(ctx, call, judge, check.retry, threshold)


def _read(answer: _Answer, source: ReadFrom) -> tuple[str | None, str]:
    """The value ``source`` names in ``answer`` (stripped), or None and why it is missing."""
    if source.header is not None:
        found = answer.response.headers.get(source.header)
        if found is None or not found.strip():
            return None, f"answer has no {source.header} header"
        return found.strip(), ""
    if source.regex is not None:
        match = _regex(source.regex).search(answer.text())
        if match is None:
            return None, f"regex {source.regex!r} matches nothing in {answer.excerpt(200)!r}"
        found = match.group(1) if match.re.groups else match.group(0)
        if found is None or not found.strip():
            return None, f"regex {source.regex!r} matched, but its group is empty"
        return found.strip(), ""
    doc = answer.json()
    if doc is _NOT_JSON or not isinstance(doc, (dict, list)):
        return None, f"body is not a JSON object: {answer.excerpt(200)}"
    if source.jsonpath is not None:
        matches = [m.value for m in _jsonpath(source.jsonpath).find(doc)]
        if len(matches) != 1 or isinstance(matches[0], (dict, list)) or matches[0] is None:
            what = (
                "nothing"
                if not matches
                else f"{len(matches)} values"
                if len(matches) > 1
                else "no scalar"
            )
            return None, f"{source.jsonpath} selects {what} in {answer.excerpt(200)}"
        return str(matches[0]).strip(), ""
    assert source.key is not None
    found = _lookup(doc, source.key)
    if found is None or isinstance(found, (dict, list)):
        return None, f"answer has no {source.key!r}: {answer.excerpt(200)}"
    return str(found).strip(), ""


def _commit_match(expected: str, actual: str) -> str | None:
    a, b = expected.strip().lower(), actual.lower()
    if a == b:
        return "exact"
    short, long = sorted((a, b), key=len)
    if len(short) >= MIN_COMMIT_PREFIX and long.startswith(short):
        return "prefix"
    return None


def _run(
    ctx: ProbeContext,
    call: _Call,
    judge: Judge,
    retry: Retry | None,
    threshold: str,
    max_latency_ms: float | None = None,
) -> ProbeResult:
    answer, verdict, attempts = _attempt(ctx, call, judge, retry)
    value: dict[str, Any] = {"attempts": attempts}
    if answer is not None:
        value["status"] = answer.status
        value["latency_ms"] = round(answer.latency_ms, 1)
    value.update(redact_value(verdict.value))
    measured = _measured(call)
    if verdict.status is Status.PASSED:
        reason = f"{measured} answered {value['status']} in {value['latency_ms']:g} ms"
        if verdict.note:
            reason += f" ({verdict.note})"
    elif answer is None:
        reason = verdict.problems[0]  # the ProbeError's own message names the request
    else:
        reason = f"{measured}: " + "; ".join(verdict.problems)
    if attempts > 1:
        reason += f" (after {attempts} attempts)"
    reason = redact_text(reason)
    limits: tuple[Limit, ...] = ()
    if max_latency_ms is not None:
        limits = (Limit("latency", "<=", float(max_latency_ms), "ms", key="latency_ms"),)
    evidence = Evidence(
        measured, value, redact_text(threshold), reason, _details(ctx, call, answer), limits
    )
    return ProbeResult(verdict.status, reason, (evidence,))


def _attempt(
    ctx: ProbeContext, call: _Call, judge: Judge, retry: Retry | None
) -> tuple[_Answer | None, _Verdict, int]:
    """Send (and with ``retry`` resend, backing off) until the verdict is PASSED or time is up.

    Every attempt shares the retry deadline: none starts after it, and each one's own total
    deadline (``timeout_s``) is cut short so that it cannot run past it either.
    """
    # No attempt, and no wait between attempts, outlasts the check's own deadline either.
    deadline = deadlines.earliest(time.monotonic() + retry.deadline_s if retry else None)
    delay = retry.backoff_s if retry else 0.0
    max_body_bytes = call.max_body_bytes or ctx.spec.target.max_body_bytes
    attempts = 0
    while True:
        attempts += 1
        answer: _Answer | None = None
        try:
            timed = ctx.target.request(
                call.method,
                call.path,
                timeout_s=call.timeout_s,
                deadline=deadline,
                max_body_bytes=max_body_bytes,
                follow_redirects=call.follow_redirects,
                **call.kwargs,
            )
        except ProbeError as err:
            verdict = _Verdict(Status.ERROR, [str(err)])
        except TargetRefused as err:  # a path or a redirect off the target: never retried
            return None, _Verdict(Status.ERROR, [str(err)]), attempts
        else:
            answer = _Answer(timed)
            verdict = judge(answer)
        if retry is None or deadline is None or verdict.status is Status.PASSED:
            return answer, verdict, attempts
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return answer, verdict, attempts
        time.sleep(min(delay, remaining))
        if time.monotonic() >= deadline:
            return answer, verdict, attempts
        delay = min(delay * retry.factor, retry.max_backoff_s)


def _judge_expect(expect: Expect, answer: _Answer) -> _Verdict:
    problems: list[str] = []
    value: dict[str, Any] = {}
    allowed = _allowed(expect.status)
    if allowed is not None and answer.status not in allowed:
        problems.append(f"status {answer.status} not in {list(allowed)}")
    for name, wanted in expect.headers.items():
        got = answer.response.headers.get(name)
        value.setdefault("headers", {})[name] = got
        if got is None:
            problems.append(f"header {name} is missing")
        elif got != wanted:
            problems.append(f"header {name} is {_show(got, name)}, expected {_show(wanted, name)}")
    if expect.body_regex is not None and not _regex(expect.body_regex).search(answer.text()):
        problems.append(f"body does not match /{expect.body_regex}/")
    if expect.json_subset is not None or expect.jsonpath:
        doc = answer.json()
        if doc is _NOT_JSON:
            problems.append(f"body is not JSON: {answer.excerpt(200)}")
        else:
            if expect.json_subset is not None:
                _subset_problems(expect.json_subset, doc, "$", problems)
            for expression, wanted in expect.jsonpath.items():
                problems += _jsonpath_problems(expression, wanted, doc, value)
    problems += _latency_problems(answer, expect.max_latency_ms)
    return _verdict(problems, value)


def _jsonpath_problems(expression: str, wanted: Any, doc: Any, value: dict[str, Any]) -> list[str]:
    try:
        found = [match.value for match in _jsonpath(expression).find(doc)]
    except Exception as err:  # a filter comparing values of types that do not compare
        return [f"jsonpath {expression} cannot be evaluated: {err}"]
    if not found:
        value.setdefault("jsonpath", {})[expression] = None
        return [f"jsonpath {expression} matched nothing"]
    got = found[0] if len(found) == 1 else found
    value.setdefault("jsonpath", {})[expression] = got
    if _equal(wanted, got):
        return []
    shown = _show(got, expression), _show(wanted, expression)
    return [f"jsonpath {expression} is {shown[0]}, expected {shown[1]}"]


def _subset_problems(wanted: Any, got: Any, where: str, out: list[str]) -> None:
    """Append one line per place where ``got`` does not contain ``wanted`` (module docstring)."""
    if isinstance(wanted, dict):
        if not isinstance(got, dict):
            out.append(f"json {where} is {_show(got, where)}, expected an object")
            return
        for key, sub in wanted.items():
            if key in got:
                _subset_problems(sub, got[key], f"{where}.{key}", out)
            else:
                out.append(f"json {where} has no key {key!r}")
    elif isinstance(wanted, list):
        if not isinstance(got, list):
            out.append(f"json {where} is {_show(got, where)}, expected an array")
            return
        for item in wanted:
            if not any(_contains(item, element) for element in got):
                out.append(f"json {where} has no element matching {_show(item, where)}")
    elif not _equal(wanted, got):
        out.append(f"json {where} is {_show(got, where)}, expected {_show(wanted, where)}")


def _contains(wanted: Any, got: Any) -> bool:
    problems: list[str] = []
    _subset_problems(wanted, got, "", problems)
    return not problems


def _equal(wanted: Any, got: Any) -> bool:
    # JSON true is not 1: Python's True == 1 must not make a boolean expectation pass.
    if isinstance(wanted, bool) or isinstance(got, bool):
        return type(wanted) is type(got) and wanted == got
    return bool(wanted == got)


def _show(value: Any, key: str) -> str:
    """A short repr for a reason; masked when the key it sits under names a secret."""
    if is_secret_key(key.rsplit(".", 1)[-1]):
        return MASK
    text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"


def _allowed(status: int | list[int] | None) -> tuple[int, ...] | None:
    if status is None:
        return None
    return (status,) if isinstance(status, int) else tuple(status)


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _latency_problems(answer: _Answer, max_ms: float | None) -> list[str]:
    if max_ms is not None and answer.latency_ms > max_ms:
        return [f"latency {answer.latency_ms:.0f} ms > {max_ms:g} ms"]
    return []


def _latency_threshold(max_ms: float | None) -> str:
    return f"; latency <= {max_ms:g} ms" if max_ms is not None else ""


def _verdict(problems: list[str], value: dict[str, Any] | None = None) -> _Verdict:
    return _Verdict(Status.FAILED if problems else Status.PASSED, problems, value or {})


def _lookup(doc: Any, key: str) -> Any:
    """``doc[key]``, or a dotted path (``status.checks``) into nested objects."""
    if not isinstance(doc, dict):
        return None
    if key in doc or "." not in key:
        return doc.get(key)
    for part in key.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _dependencies(raw: Any) -> dict[str, Any] | None:
    """Name -> status from ``{"db": "ok"}``, ``{"db": {"status": "ok"}}`` or a list of those."""
    if isinstance(raw, list):
        named = {}
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict) or not entry.get("name"):
                raise ValueError(f"entry {index} has no name ({str(entry)[:80]})")
            named[str(entry["name"])] = entry
        raw = named
    if not isinstance(raw, dict):
        return None
    return {str(n): s.get("status") if isinstance(s, dict) else s for n, s in raw.items()}


def _http_threshold(expect: Expect) -> str:
    parts: list[str] = []
    allowed = _allowed(expect.status)
    if allowed is not None:
        parts.append(f"status in {list(allowed)}")
    if expect.json_subset is not None:
        parts.append(f"json contains {_show(expect.json_subset, '')}")
    parts += [f"jsonpath {e} is {_show(v, e)}" for e, v in expect.jsonpath.items()]
    if expect.body_regex is not None:
        parts.append(f"body matches /{expect.body_regex}/")
    parts += [f"header {n} is {_show(v, n)}" for n, v in expect.headers.items()]
    return "; ".join(parts) + _latency_threshold(expect.max_latency_ms)


def _measured(call: _Call) -> str:
    return redact_text(f"{call.method} {call.path}")


def _details(ctx: ProbeContext, call: _Call, answer: _Answer | None) -> dict[str, Any]:
    # Only the headers the spec sets (target and check), not requests' own defaults: they say
    # nothing about the check and each one costs a redaction.
    headers = {**ctx.target.headers, **call.kwargs.get("headers", {})}
    if answer is not None:
        url = str(answer.response.request.url)
    else:
        try:
            url = ctx.target.url(call.path)
        except TargetRefused:
            url = call.path
        if "params" in call.kwargs:
            url = str(requests.Request("GET", url, params=call.kwargs["params"]).prepare().url)
    details: dict[str, Any] = {
        "request": {
            "method": call.method,
            "url": redact_text(url),
            "headers": redact_value(headers),
        }
    }
    if answer is not None:
        details["response"] = {
            "status": answer.status,
            "headers": redact_value(dict(answer.response.headers)),
            "body": answer.excerpt(),
            "bytes": len(answer.response.content),
        }
    return details
