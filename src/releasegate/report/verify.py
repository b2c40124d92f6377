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
_STATUSES = ", ".join(s.value for s in Status)
_VERDICTS = ", ".join(v.value for v in Verdict)
#: How far apart two scores may be and still be the same score (the engine rounds to 0.01).
_SCORE_TOLERANCE = 0.005
#: Problems listed on one line; the rest are counted.
_PROBLEMS_SHOWN = 3
_FIX = "re-run the gate, or restore the record from the archive/ folder beside it"


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
    problems: list[str] = []
    for key, kinds, what in _REQUIRED:
        if key not in data:
            problems.append(f"{key}: missing")
        elif not isinstance(data[key], kinds) or isinstance(data[key], bool):
            problems.append(f"{key}: {_short(data[key])} is not {what}")
    for key, kinds, what in _OPTIONAL:
        value = data.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            problems.append(f"{key}: {_short(value)} is not {what}")
    stored = data.get("decision")
    if isinstance(stored, str) and stored not in _VERDICT_VALUES:
        problems.append(f"decision: {stored!r} is not a verdict ({_VERDICTS})")
    score = data.get("score")
    if _is_number(score) and not math.isfinite(score):
        problems.append(f"score: {score} is not a finite number")
    summary = data.get("summary")
    if isinstance(summary, dict):
        problems.extend(_summary_problems(summary))
    outcomes = _outcomes(data.get("outcomes"), schema, problems)
    policy = _policy(data, schema, problems)
    if problems or policy is None:
        return RecordCheck(problems=tuple(problems), stored=str(stored), schema=schema)

    assert isinstance(stored, str) and isinstance(summary, dict)  # checked above
    interrupted = data.get("interrupted")
    recomputed = decide(outcomes, policy, interrupted=interrupted)
    verdict = recomputed.verdict.value
    disagreements = []
    if stored != verdict:
        disagreements.append(
            f"stored verdict {stored} disagrees with its outcomes, which give {verdict}"
        )
    summary_verdict = summary.get("verdict")
    if summary_verdict is not None and summary_verdict != verdict:
        disagreements.append(
            f"summary.verdict {summary_verdict} disagrees with its outcomes, which give {verdict}"
        )
    if abs(float(score) - recomputed.score) > _SCORE_TOLERANCE:
        disagreements.append(
            f"stored score {score} disagrees with its outcomes, which give {recomputed.score}"
        )
    note = ""
    verdict_differs = stored != verdict or (
        summary_verdict is not None and summary_verdict != verdict
    )
    if schema == 1 and verdict_differs and _v1_rules_differ(outcomes, summary, policy):
        # Schema 1 failed closed only on critical checks and counted missing outcomes; for
        # such records today's rules give another verdict without anyone editing anything.
        note = (
            f"written by an older releasegate (schema 1), whose rules differ from today's for"
            f" these outcomes: its verdict {stored} was not recomputed (today's rules give"
            f" {verdict})"
        )
        disagreements = [d for d in disagreements if d.startswith("stored score")]
    return RecordCheck(
        stored=stored,
        recomputed=recomputed,
        disagreements=tuple(disagreements),
        note=note,
        schema=schema,
    )


_VERDICT_VALUES = frozenset(v.value for v in Verdict)
_NUMBER = (int, float)
#: Keys every record of schema 1 and 2 has, which the reports read.
_REQUIRED: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("deployment", str, "a string"),
    ("phase", str, "a string"),
    ("mode", str, "a string"),
    ("decision", str, "a string"),
    ("score", _NUMBER, "a number"),
    ("summary", dict, "an object"),
    ("outcomes", list, "a list"),
)
#: Keys that may be missing or null, but are of this type when given.
_OPTIONAL: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("policy", dict, "an object"),
    ("scoring", dict, "an object"),
    ("interrupted", str, "a string or null"),
    ("versions", dict, "an object"),
    ("actions", list, "a list"),
    ("would_action", str, "a string or null"),
    ("actual_action", str, "a string or null"),
    ("duration_s", _NUMBER, "a number"),
    ("started_at", str, "a string"),
    ("finished_at", str, "a string"),
)
_SUMMARY: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("verdict", str, "a string"),
    ("score", _NUMBER, "a number"),
    ("criteria_met", int, "a whole number"),
    ("criteria_total", int, "a whole number"),
    ("reasons", list, "a list"),
    ("blockers", list, "a list"),
    ("categories", list, "a list"),
    ("allowed", list, "a list"),
    ("action", str, "a string or null"),
    ("interrupted", str, "a string or null"),
)


def _summary_problems(summary: dict[str, Any]) -> list[str]:
    problems = []
    for key, kinds, what in _SUMMARY:
        value = summary.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            problems.append(f"summary.{key}: {_short(value)} is not {what}")
    for key in ("blockers", "categories"):
        items = summary.get(key)
        if isinstance(items, list):
            problems.extend(
                f"summary.{key}[{i}]: {_short(item)} is not an object"
                for i, item in enumerate(items)
                if not isinstance(item, dict)
            )
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
        if status not in _STATUS_VALUES or Status(status) not in known:
            allowed = ", ".join(s.value for s in Status if s in known)
            problems.append(
                f"{where}.status: {_short(status)} is not a schema {schema} status ({allowed})"
            )
            continue
        check = item.get("check")
        if not isinstance(check, dict):
            problems.append(f"{where}.check: {_short(check)} is not an object")
            continue
        try:
            outcome = Outcome.from_dict(item)
        except KeyError as err:
            problems.append(f"{where}.check.{err.args[0]}: missing")
            continue
        except (TypeError, ValueError, AttributeError) as err:
            problems.append(f"{where}: {err}")
            continue
        if not math.isfinite(outcome.check.weight) or outcome.check.weight < 0:
            problems.append(
                f"{where}.check.weight: {outcome.check.weight} is not a finite number >= 0"
            )
            continue
        outcomes.append(outcome)
    return outcomes


_STATUS_VALUES = frozenset(s.value for s in Status)


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


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
