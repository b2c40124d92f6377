"""The test function behind every spec check (collected from the spec file, see collect.py)."""

from __future__ import annotations

from typing import Any

import pytest

from .errors import GateFailure, NoData, ProbeError
from .evidence import EvidenceRecorder
from .model import Status
from .probes import ProbeContext, run_check


def check(
    releasegate_check: Any, rg_probe_context: ProbeContext, request: pytest.FixtureRequest
) -> None:
    """Run the check's probe and turn its result into a pass, a failure, no data or an error.

    Only PASSED passes: every other status raises, so pytest's own output agrees with the
    record.
    """
    # The recorder without the rg_evidence fixture: one fixture less to set up per check.
    rg_evidence = EvidenceRecorder(request.node)
    result = run_check(releasegate_check, rg_probe_context)
    rg_evidence.add(*result.evidence)
    if result.status is Status.ERROR:
        raise ProbeError(result.reason)
    if result.status is Status.NO_DATA:
        raise NoData(result.reason or "the probe measured nothing: no data is not a pass")
    if result.status is Status.FAILED:
        raise GateFailure(result.reason)
    if result.status is Status.SKIPPED:  # a source the spec made optional is absent
        pytest.skip(result.reason)
    if result.marginal:
        rg_evidence.marginal(result.reason)
    else:
        rg_evidence.reason(result.reason)
