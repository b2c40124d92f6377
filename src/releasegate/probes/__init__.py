"""Probes measure one check against the target. One module per family, one interface.

A probe is a function ``(check, context) -> ProbeResult``. It never raises for a measurement
that breaks a threshold (that is a FAILED result) nor for a target that cannot be reached
(an ERROR result): both come back as values with their evidence.
"""

from __future__ import annotations

from .base import ProbeContext, ProbeResult, run_check

__all__ = ["ProbeContext", "ProbeResult", "run_check"]
