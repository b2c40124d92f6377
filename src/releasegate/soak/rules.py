"""The soak's thresholds and durations as the command line writes them.

A threshold is the load checks' own (``load.thresholds``: k6's ``p(95) < 300ms``,
``error_rate < 0.5%``, ``rps > 200``, the minimum-sample rule, the live window), with two
additions for the command line: a request name before a colon and a grace after ``for``:
``GET /api/products: p(99) < 800ms for 10s``. In a soak every threshold is guarded
(``abort_on_fail``): a soak exists to find the sustained breach.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError
from ..load.thresholds import Threshold, parse_threshold

_NAMED = re.compile(
    r"^\s*(?:(?P<name>[^:]+?)\s*:\s*)?(?P<expr>.+?)"
    r"(?:\s+for\s+(?P<grace>\d+(?:\.\d+)?\s*(?:ms|s|m|h)?))?\s*$"
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_seconds(text: str) -> float:
    """``48h``, ``10m``, ``1s``, ``500ms``, ``2d`` or a bare number of seconds; > 0."""
    found = _DURATION.match(text)
    if found is None:
        raise UsageError(f"{text!r} is not a duration: e.g. 48h, 10m, 30s, 500ms")
    seconds = float(found[1]) * _SECONDS[found[2] or "s"]
    if not 0 < seconds <= 366 * 86400:
        raise UsageError(f"{text!r}: a duration above 0 and at most a year")
    return seconds


def parse_rule(text: str, *, grace_s: float = 3.0, window_s: float | None = None) -> Threshold:
    """``[name:] <threshold> [for <grace>]`` as a guarded threshold; ``UsageError`` if not."""
    found = _NAMED.match(text)
    if found is None:
        raise UsageError(f"threshold {text!r}: e.g. 'p(95) < 300ms' or 'GET /: p(99) < 1s for 10s'")
    grace = parse_seconds(found["grace"]) if found["grace"] else grace_s
    try:
        return parse_threshold(
            found["expr"],
            name=found["name"],
            abort_on_fail=True,
            grace_s=grace,
            window_s=window_s,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def guarded(threshold: Threshold, *, grace_s: float, window_s: float | None) -> Threshold:
    """A load check's threshold as the soak guards it: aborting, with a grace (the check's own,
    else the soak's) and the soak's window unless the check set one."""
    from dataclasses import replace

    changes: dict[str, Any] = {"abort_on_fail": True}
    if threshold.grace_s <= 0:
        changes["grace_s"] = grace_s
    if window_s is not None and threshold.window_s == parse_threshold("rps > 0").window_s:
        changes["window_s"] = window_s
    return replace(threshold, **changes)


def rule_dict(threshold: Threshold) -> dict[str, Any]:
    """What ``state.json`` and the record keep of a threshold (enough to rebuild it)."""
    return {
        "text": threshold.text,
        "label": threshold.label,
        "name": threshold.name,
        "grace_s": threshold.grace_s,
        "window_s": threshold.window_s,
        "min_samples": threshold.min_samples,
    }


def rule_from_dict(data: dict[str, Any]) -> Threshold:
    try:
        return parse_threshold(
            str(data["text"]),
            name=data.get("name"),
            abort_on_fail=True,
            grace_s=float(data["grace_s"]),
            window_s=float(data["window_s"]),
            min_samples=data.get("min_samples"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"soak state: threshold {data!r} cannot be read ({err})") from None
