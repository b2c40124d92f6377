"""The ``rg_evidence`` fixture: how a Python check records what it measured."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from .errors import GateFailure, NoData, ProbeError
from .model import Evidence, Limit

EVIDENCE_KEY = pytest.StashKey[list[Evidence]]()
REASON_KEY = pytest.StashKey[str]()


class EvidenceRecorder:
    """Collects evidence for the running check; it travels with the test report.

    ``measure`` records a value; ``expect`` records and checks it in one go; ``fail`` and
    ``cannot_measure`` end the check as FAILED or ERROR with a reason.
    """

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        # One recorder per attempt: a rerun (pytest-rerunfailures) starts from nothing.
        item.stash[EVIDENCE_KEY] = []
        if REASON_KEY in item.stash:
            del item.stash[REASON_KEY]

    def add(self, *evidence: Evidence) -> None:
        self._item.stash[EVIDENCE_KEY].extend(evidence)

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

    def fail(self, reason: str) -> NoReturn:
        raise GateFailure(reason)

    def no_data(self, reason: str) -> NoReturn:
        """End the check as NO_DATA: it ran but found nothing to measure (never a pass)."""
        raise NoData(reason)

    def cannot_measure(self, reason: str) -> NoReturn:
        """End the check as ERROR: the probe could not say (the decision fails closed)."""
        raise ProbeError(reason)
