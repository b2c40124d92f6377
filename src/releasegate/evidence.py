"""The ``rg_evidence`` fixture: how a Python check records what it measured."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import pytest

from .errors import GateFailure, NoData, ProbeError
from .model import Evidence, Limit
from .redact import redact_text, redact_value

EVIDENCE_KEY = pytest.StashKey[list[Evidence]]()
REASON_KEY = pytest.StashKey[str]()
MARGINAL_KEY = pytest.StashKey[str]()

# What one outcome may keep: the record stays readable (and bounded) whatever a check adds.
MAX_EVIDENCE_ITEMS = 100
MAX_EVIDENCE_BYTES = 64 * 1024  # one item, as JSON
MAX_OUTCOME_EVIDENCE_BYTES = 512 * 1024  # all of one outcome's items


class EvidenceRecorder:
    """Collects evidence for the running check; it travels with the test report.

    ``measure`` records a value; ``expect`` records and checks it in one go; ``fail`` and
    ``cannot_measure`` end the check as FAILED or ERROR with a reason.
    """

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        # One recorder per attempt: a rerun (pytest-rerunfailures) starts from nothing.
        item.stash[EVIDENCE_KEY] = EvidenceList()
        for key in (REASON_KEY, MARGINAL_KEY):
            if key in item.stash:
                del item.stash[key]

    def add(self, *evidence: Evidence) -> None:
        """Keep ``evidence``, within the bounds: at most ``MAX_EVIDENCE_ITEMS`` items and
        ``MAX_OUTCOME_EVIDENCE_BYTES`` in all; an item over ``MAX_EVIDENCE_BYTES`` keeps its
        start (redacted first, so no secret is cut in two) and says how much was left out."""
        kept = self._item.stash[EVIDENCE_KEY]
        if not isinstance(kept, EvidenceList):  # put there by someone else: bound it now
            kept = self._item.stash[EVIDENCE_KEY] = EvidenceList(kept)
        for item in evidence:
            kept.add(item)

    def measure(
        self,
        measured: str,
        value: Any = None,
        threshold: str | None = None,
        reason: str = "",
        **details: Any,
    ) -> Evidence:
        """Record what was measured (a request, a query, a window) and the raw value.

        Numeric limits in ``threshold`` (``latency <= 300 ms``) are read once, here, into
        structured ``Limit`` values that the reports compare with the value.
        """
        evidence = Evidence(
            measured, value, threshold, reason, details, Limit.parse(threshold or "", value)
        )
        self.add(evidence)
        return evidence

    def expect(self, ok: bool, measured: str, value: Any, threshold: str, reason: str = "") -> None:
        """Record a measurement and fail the check unless ``ok``."""
        why = reason or (
            f"{measured}: {value!r} meets {threshold}"
            if ok
            else f"{measured}: {value!r} breaks {threshold}"
        )
        self.measure(measured, value, threshold, why)
        if not ok:
            raise GateFailure(why)

    def reason(self, text: str) -> None:
        """Set the one-line reason shown for a passing check."""
        self._item.stash[REASON_KEY] = text

    def marginal(self, reason: str) -> None:
        """The check passes with a caveat (``reason``): the decision is at best CONDITIONAL GO.
        For what is worse but not bad enough to fail, e.g. a canary slower within its margin."""
        self._item.stash[MARGINAL_KEY] = reason
        self._item.stash[REASON_KEY] = reason

    def fail(self, reason: str) -> NoReturn:
        raise GateFailure(reason)

    def no_data(self, reason: str) -> NoReturn:
        """End the check as NO_DATA: it ran but found nothing to measure (never a pass)."""
        raise NoData(reason)

    def cannot_measure(self, reason: str) -> NoReturn:
        """End the check as ERROR: the probe could not say (the decision fails closed)."""
        raise ProbeError(reason)


class EvidenceList(list[Evidence]):
    """One outcome's evidence, kept within the bounds (see ``EvidenceRecorder.add``)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        self.used = 0
        for item in items:
            self.add(item)

    def add(self, item: Evidence) -> None:
        if self and self[-1].measured == _DROPPED:
            self[-1] = _dropped_note(int(self[-1].value or 0) + 1)
            return
        size = _size(item)
        if size > MAX_EVIDENCE_BYTES:
            item = _truncated(item, size)
            size = _size(item)
        if len(self) >= MAX_EVIDENCE_ITEMS or self.used + size > MAX_OUTCOME_EVIDENCE_BYTES:
            self.append(_dropped_note(1))
            return
        self.used += size
        self.append(item)


_DROPPED = "evidence left out"


def _dropped_note(count: int) -> Evidence:
    return Evidence(
        _DROPPED,
        count,
        None,
        f"{count} more evidence item(s) left out: an outcome keeps at most"
        f" {MAX_EVIDENCE_ITEMS} items and {MAX_OUTCOME_EVIDENCE_BYTES // 1024} KiB",
    )


def _size(item: Evidence) -> int:
    try:
        return len(json.dumps(item.to_dict(), default=str))
    except (TypeError, ValueError, RecursionError):
        return MAX_EVIDENCE_BYTES + 1  # not JSON as it is: kept as a (bounded) text


def _truncated(item: Evidence, size: int) -> Evidence:
    keep = MAX_EVIDENCE_BYTES // 4

    def cut(value: Any) -> Any:
        if value is None:
            return None
        try:
            text = json.dumps(redact_value(value), default=str)
        except (TypeError, ValueError, RecursionError):
            text = redact_text(repr(value))
        if len(text) <= keep:
            return value
        return {"truncated": text[:keep], "bytes": len(text), "kept_bytes": keep}

    return Evidence(
        redact_text(item.measured)[:1000],
        cut(item.value),
        None if item.threshold is None else redact_text(item.threshold)[:1000],
        redact_text(item.reason)[:2000] + f" (evidence truncated: {size} bytes as JSON)",
        cut(dict(item.details)) if item.details else {},
        item.limits,
    )
