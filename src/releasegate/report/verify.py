"""Checking a decision record when it is read: its shape, and its verdict against its outcomes.

A record is an audit file, and files change after they are written: edited by hand, truncated
by a full disk, copied through a tool that re-encodes them, or written by a gate whose decision
a ``pytest_releasegate_decision`` hook replaced. The reports trust a record's outcomes and
policy, recompute the verdict from them with the decision engine, and never show a stored
verdict that disagrees.

``load_record`` reads (I/O, every failure reported as a line, never raised); ``verify_record``
is pure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..decision import Decision, Policy, PolicyError, Verdict, decide
from ..model import Outcome, Severity, Status
from ..record import READABLE_SCHEMAS

#: The largest record read. A 10,000-check record with HTTP evidence is about 30 MB; a file
#: many times that is not a record a gate wrote, and reading it would only exhaust memory.
MAX_RECORD_BYTES = 200 * 1024 * 1024

#: What the reports show instead of a verdict they cannot vouch for.
INCONSISTENT = "INCONSISTENT"
UNVERIFIED = "UNVERIFIED"

#: The statuses a schema-1 record could hold: NOT_RUN and SKIPPED came with schema 2.
_V1_STATUSES = frozenset({Status.PASSED, Status.FAILED, Status.ERROR, Status.NO_DATA})
_STATUS_VALUES = frozenset(s.value for s in Status)
_VERDICT_VALUES = frozenset(v.value for v in Verdict)
_VERDICTS = ", ".join(v.value for v in Verdict)
#: How far apart two scores may be and still be the same score (the engine rounds to 0.01).
_SCORE_TOLERANCE = 0.005
#: Problems listed on one line; the rest are counted.
_PROBLEMS_SHOWN = 3
_FIX = "re-run the gate, or restore the record from the archive/ folder beside it"
_NUMBER = (int, float)
_NULL = type(None)
#: (key, the types it may have, how a message names them). Only keys that may be null have
#: NoneType among their types: the reports read the others without a fallback.
_Keys = tuple[tuple[str, type | tuple[type, ...], str], ...]
#: Keys every record of schema 1 and 2 has, which the reports read.
_REQUIRED: _Keys = (
    ("deployment", str, "a string"),
    ("phase", str, "a string"),
    ("mode", str, "a string"),
    ("decision", str, "a string"),
    ("score", _NUMBER, "a number"),
    ("summary", dict, "an object"),
    ("outcomes", list, "a list"),
)
#: Keys that may be missing, but are of this type (or null) when given.
_OPTIONAL: _Keys = (
    ("policy", (dict, _NULL), "an object"),
    ("scoring", (dict, _NULL), "an object"),
    ("interrupted", (str, _NULL), "a string or null"),
    ("versions", (dict, _NULL), "an object"),
    ("actions", (list, _NULL), "a list"),
    ("would_action", (str, _NULL), "a string or null"),
    ("actual_action", (str, _NULL), "a string or null"),
    ("duration_s", (*_NUMBER, _NULL), "a number"),
    ("started_at", (str, _NULL), "a string"),
    ("finished_at", (str, _NULL), "a string"),
)
_SUMMARY: _Keys = (
    ("verdict", (str, _NULL), "a string"),
    ("score", (*_NUMBER, _NULL), "a number"),
    ("criteria_met", int, "a whole number"),
    ("criteria_total", int, "a whole number"),
    ("reasons", list, "a list"),
    ("blockers", list, "a list"),
    ("categories", list, "a list"),
    ("allowed", list, "a list"),
    ("marginal", list, "a list"),
    ("action", (str, _NULL), "a string or null"),
    ("interrupted", (str, _NULL), "a string or null"),
)
_CATEGORY: _Keys = (
    ("score", _NUMBER, "a number"),
    ("met", int, "a whole number"),
    ("total", int, "a whole number"),
)
_BLOCKER: _Keys = (
    ("check", str, "a string"),
    ("severity", str, "a string"),
    ("status", str, "a string"),
    ("reason", str, "a string"),
)
_SCORING: _Keys = (
    ("go", _NUMBER, "a number"),
    ("conditional", _NUMBER, "a number"),
)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A record file read as JSON, or why it could not be."""

    data: Any = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """What reading a record found: whether it is readable, and whether its verdict holds.

    ``problems`` (one line each, naming the key path) make a record unreadable. A readable
    record has ``recomputed``, the decision its outcomes give under its policy;
    ``disagreements`` say where the stored decision differs from it. ``note`` is set instead
    for a schema-1 record whose rules differ from today's for these outcomes: its verdict is
    not recomputed, so it cannot be called edited either.
    """

    problems: tuple[str, ...] = ()
    stored: str = ""
    recomputed: Decision | None = None
    disagreements: tuple[str, ...] = ()
    note: str = ""
    schema: int | None = None

    @property
    def readable(self) -> bool:
        return not self.problems

    @property
    def consistent(self) -> bool:
        return self.readable and not self.disagreements

    @property
    def shown(self) -> str:
        """The verdict a report may show for this record."""
        if not self.readable:
            return UNVERIFIED
        if self.disagreements:
            return INCONSISTENT
        return self.stored

    @property
    def recomputed_verdict(self) -> str:
        return self.recomputed.verdict.value if self.recomputed else ""

    def problem_line(self) -> str:
        """The problems on one line, the first few in full, for the command's stderr."""
        shown = "; ".join(self.problems[:_PROBLEMS_SHOWN])
        more = len(self.problems) - _PROBLEMS_SHOWN
        return shown + (f" (and {more} more problem(s))" if more > 0 else "") + f": {_FIX}"

    def disagreement_line(self) -> str:
        """Why the stored verdict is not shown, on one line."""
        return (
            "; ".join(self.disagreements)
            + ": the record was edited, or written by a decision that a"
            " pytest_releasegate_decision hook replaced"
        )


def load_record(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Loaded:
    """Read ``path`` as strict UTF-8 JSON of at most ``max_bytes``; failures are reported."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Loaded(problem=_too_big(size, max_bytes))
        with path.open("rb") as handle:
            # A file that grew since the stat is still held to the cap.
            raw = handle.read(max_bytes + 1)
    except OSError as err:
        return Loaded(
            problem=f"cannot be read ({err.strerror or err}): check that it exists and that"
            " this user may read it"
        )
    if len(raw) > max_bytes:
        return Loaded(problem=_too_big(len(raw), max_bytes))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Loaded(
            problem=f"is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}):"
            f" releasegate writes records in UTF-8, so it was damaged or re-encoded; {_FIX}"
        )
    try:
        return Loaded(data=json.loads(text))
    except json.JSONDecodeError as err:
        return Loaded(
            problem=f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}):"
            f" truncated or edited; {_FIX}"
        )
    except RecursionError:
        return Loaded(problem=f"nests JSON deeper than any record does: not a record; {_FIX}")
    except ValueError as err:
        # Python's own limits, such as an integer of more than 4,300 digits.
        return Loaded(problem=f"is not JSON releasegate can read ({err}); {_FIX}")


def _too_big(size: int, max_bytes: int) -> str:
    mib = 1024 * 1024
    return (
        f"is {size / mib:.0f} MB, more than the {max_bytes / mib:.0f} MB a record may be:"
        " no gate writes a record that big (10,000 checks with evidence make about 30 MB);"
        " check what wrote it"
    )


def verify_record(data: Any) -> RecordCheck:
    """Check a loaded record's shape and recompute its verdict; see ``RecordCheck``."""
    if not isinstance(data, dict):
        return RecordCheck(
            problems=(f"the file holds a JSON {_json_type(data)}, not an object: not a record",)
        )
    schema = data.get("schema_version")
    if schema is None:
        return RecordCheck(problems=("schema_version: missing: not a decision record",))
    if not _is_int(schema) or schema not in READABLE_SCHEMAS:
        readable = ", ".join(str(s) for s in sorted(READABLE_SCHEMAS))
        return RecordCheck(
            problems=(
                f"schema_version: {schema!r} is not one this releasegate reads ({readable}):"
                " a newer releasegate wrote it (upgrade to read it) or it was edited",
            )
        )
    problems = [f"{key}: missing" for key, _, _ in _REQUIRED if key not in data]
    problems.extend(_typed(data, (*_REQUIRED, *_OPTIONAL)))
    stored = data.get("decision")
    if isinstance(stored, str) and stored not in _VERDICT_VALUES:
        problems.append(f"decision: {stored!r} is not a verdict ({_VERDICTS})")
    score = data.get("score")
    summary = data.get("summary")
    if isinstance(summary, dict):
        problems.extend(_summary_problems(summary))
    scoring = data.get("scoring")
    if isinstance(scoring, dict):
        # The thresholds the reports draw, whether or not the policy came from them.
        problems.extend(_typed(scoring, _SCORING, "scoring."))
    outcomes = _outcomes(data.get("outcomes"), schema, problems)
    policy = _policy(data, schema, problems)
    if (
        problems
        or policy is None
        or not isinstance(stored, str)
        or not isinstance(summary, dict)
        or not isinstance(score, (int, float))
    ):
        return RecordCheck(problems=tuple(problems), stored=str(stored), schema=schema)

    interrupted = data.get("interrupted")
    recomputed = decide(outcomes, policy, interrupted=interrupted)
    verdict = recomputed.verdict.value
    about_verdict: list[str] = []
    if stored != verdict:
        about_verdict.append(
            f"stored verdict {stored} disagrees with its outcomes, which give {verdict}"
        )
    summary_verdict = summary.get("verdict")
    if summary_verdict not in (None, verdict, stored):
        about_verdict.append(
            f"summary.verdict {_short(summary_verdict)} disagrees with its outcomes, which give"
            f" {verdict}"
        )
    disagreements: list[str] = []
    if abs(score - recomputed.score) > _SCORE_TOLERANCE:
        disagreements.append(
            f"stored score {score} disagrees with its outcomes, which give {recomputed.score}"
        )
    summary_policy = summary.get("policy")
    if schema != 1 and isinstance(summary_policy, dict) and _policy_of(summary_policy) != policy:
        # Both are the decision's policy: a difference is an edit (a lowered threshold, say).
        disagreements.append(
            f"policy {policy.to_dict()} disagrees with summary.policy"
            f" {json.dumps(summary_policy, default=str)[:120]}"
        )
    note = ""
    if schema == 1 and about_verdict and _v1_rules_differ(outcomes, summary, policy):
        # Schema 1 failed closed only on critical checks and counted missing outcomes; for
        # such records today's rules give another verdict without anyone editing anything.
        note = (
            f"written by an older releasegate (schema 1), whose rules differ from today's for"
            f" these outcomes: its verdict {stored} was not recomputed (today's rules give"
            f" {verdict})"
        )
    else:
        disagreements = about_verdict + disagreements
    return RecordCheck(
        stored=stored,
        recomputed=recomputed,
        disagreements=tuple(disagreements),
        note=note,
        schema=schema,
    )


def _typed(data: dict[str, Any], keys: _Keys, prefix: str = "") -> list[str]:
    """Problems of the ``keys`` of ``data`` that are given but of another type.

    Numbers must be finite as well: the writer never writes NaN or an infinity where a
    number is read (a non-finite measurement becomes a string), and the reports format them.
    """
    problems = []
    for key, kinds, what in keys:
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            problems.append(f"{prefix}{key}: {_short(value)} is not {what}")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{prefix}{key}: {value} is not a finite number")
    return problems


def _summary_problems(summary: dict[str, Any]) -> list[str]:
    problems = _typed(summary, _SUMMARY, "summary.")
    for key in ("reasons", "allowed", "marginal"):
        items = summary.get(key)
        if isinstance(items, list):
            problems.extend(
                f"summary.{key}[{i}]: {_short(item)} is not a string"
                for i, item in enumerate(items)
                if not isinstance(item, str)
            )
    for key, keys in (("blockers", _BLOCKER), ("categories", _CATEGORY)):
        items = summary.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            where = f"summary.{key}[{i}]"
            if isinstance(item, dict):
                problems.extend(_typed(item, keys, f"{where}."))
            else:
                problems.append(f"{where}: {_short(item)} is not an object")
    return problems


def _outcomes(raw: Any, schema: int, problems: list[str]) -> list[Outcome]:
    if not isinstance(raw, list):
        return []  # reported with the required keys
    known = _V1_STATUSES if schema == 1 else frozenset(Status)
    outcomes: list[Outcome] = []
    for i, item in enumerate(raw):
        where = f"outcomes[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: {_short(item)} is not an object")
            continue
        status = item.get("status")
        if (
            not isinstance(status, str)
            or status not in _STATUS_VALUES
            or Status(status) not in known
        ):
            allowed = ", ".join(s.value for s in Status if s in known)
            problems.append(
                f"{where}.status: {_short(status)} is not a schema {schema} status ({allowed})"
            )
            continue
        check = item.get("check")
        if not isinstance(check, dict):
            problems.append(f"{where}.check: {_short(check)} is not an object")
            continue
        evidence = item.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(e, dict) for e in evidence):
            problems.append(f"{where}.evidence: {_short(evidence)} is not a list of objects")
            continue
        # ``Outcome.from_dict`` reads anything but true as false: a "yes" would quietly lift
        # the CONDITIONAL GO that a marginal pass holds a decision to.
        marginal = item.get("marginal", False)
        if not isinstance(marginal, bool):
            problems.append(f"{where}.marginal: {_short(marginal)} is not true or false")
            continue
        try:
            outcome = Outcome.from_dict(item)
        except KeyError as err:
            problems.append(f"{where}.check.{err.args[0]}: missing")
            continue
        except (TypeError, ValueError, AttributeError) as err:
            problems.append(f"{where}: cannot be read ({err})")
            continue
        if not math.isfinite(outcome.check.weight) or outcome.check.weight < 0:
            problems.append(
                f"{where}.check.weight: {outcome.check.weight} is not a finite number >= 0"
            )
            continue
        if not math.isfinite(outcome.duration_s):
            problems.append(f"{where}.duration_s: {outcome.duration_s} is not a finite number")
            continue
        outcomes.append(outcome)
    return outcomes


def _policy(data: dict[str, Any], schema: int, problems: list[str]) -> Policy | None:
    """The policy the record was decided under: ``policy`` (schema 2), else ``scoring``."""
    given = data.get("policy") if schema != 1 else None
    where = "policy"
    if not isinstance(given, dict):
        scoring = data.get("scoring")
        # Schema 1 had no allowances: every error counted.
        given = {**(scoring if isinstance(scoring, dict) else {}), "max_errors": 0}
        where = "scoring"
    try:
        return Policy.from_dict(given)
    except PolicyError as err:
        problems.append(f"{where}: {err}")
        return None


def _policy_of(data: dict[str, Any]) -> Policy | None:
    try:
        return Policy.from_dict(data)
    except PolicyError:
        return None


def _v1_rules_differ(outcomes: list[Outcome], summary: dict[str, Any], policy: Policy) -> bool:
    """Whether schema 1's engine may have decided otherwise than today's on these outcomes.

    Both give NO-GO on a failed critical check. Otherwise schema 1 differed on a check that
    could not measure (it failed closed only on critical ones), on a count of outcomes short
    of the checks collected (``expected_checks``), and on a conditional threshold of 0.
    """
    if any(o.status is Status.FAILED and o.check.severity is Severity.CRITICAL for o in outcomes):
        return False
    expected = summary.get("expected_checks")
    return (
        any(o.status.unknown for o in outcomes)
        or (_is_int(expected) and expected != len(outcomes))
        or policy.conditional == 0
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: short, and without walking a large object or list."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value) if isinstance(value, float) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_record(record: dict[str, Any], check: RecordCheck) -> dict[str, Any]:
    """A shallow copy of ``record`` as the reports may show it.

    An inconsistent record shows INCONSISTENT in place of its verdict, and the score, reasons
    and blockers its outcomes give in place of the stored ones (which the same edit may have
    changed); an unverified one shows UNVERIFIED. A consistent record is shown as stored.
    """
    data = dict(record)
    if check.consistent:
        return data
    data["decision"] = check.shown
    if check.recomputed is not None:
        data["score"] = check.recomputed.score
        data["summary"] = {**check.recomputed.to_dict(), "verdict": check.shown}
    else:
        # Nothing in an unverified record is known to be what a gate wrote: the reports show
        # where it came from (the keys of the right type) and why it cannot be verified.
        for key, kinds, what in (*_REQUIRED, *_OPTIONAL):
            if _typed(data, ((key, kinds, what),)):
                del data[key]
        data["score"] = 0.0
        data["summary"] = {"verdict": check.shown}
        data["outcomes"] = []
    return data
