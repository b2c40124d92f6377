"""Fault knobs of the demo target: what each one breaks and how its value is read.

Values arrive as strings from the command line (``--fault latency_ms=300``) and as JSON values
from ``POST /_faults``; both go through the same parsers so that they accept the same things.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import UsageError

FaultValue = str | int | float | bool

DEPENDENCIES = ("database", "redis")

FAULTS: dict[str, str] = {
    "error_rate": "float 0..1: that fraction of requests to /healthz, /readyz, /version and"
    " /api/* answer 500, in a fixed pattern (1 = every request, 0.5 = every second one)",
    "latency_ms": "integer >= 0: delay added to every request except /_faults and /metrics",
    "wrong_version": "string: /version reports this version instead of the real one",
    "dependency_down": "'database' or 'redis': /readyz reports that dependency down (503)",
    "bad_input_5xx": "boolean (1/0/true/false): malformed input to POST /api/orders answers"
    " 500 instead of 4xx",
    "orphans": "integer >= 0: the database holds that many risk_log rows pointing at missing"
    " episodes (0 removes them)",
}


def _rate(value: FaultValue) -> float:
    if isinstance(value, bool):
        raise ValueError
    rate = float(value)
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ValueError
    return rate


def _count(value: FaultValue) -> int:
    if isinstance(value, (bool, float)):
        raise ValueError
    count = int(value)
    if count < 0:
        raise ValueError
    return count


def _text(value: FaultValue) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value.strip()


def _dependency(value: FaultValue) -> str:
    if value not in DEPENDENCIES:
        raise ValueError
    return str(value)


def _flag(value: FaultValue) -> bool:
    if isinstance(value, bool):
        return value
    # 1 and 0 arrive as ints from JSON and as strings from the command line.
    text = str(value).strip().lower()
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise ValueError


_PARSERS: dict[str, tuple[Callable[[FaultValue], Any], str]] = {
    "error_rate": (_rate, "a number between 0 and 1, e.g. error_rate=0.5"),
    "latency_ms": (_count, "an integer >= 0 (milliseconds), e.g. latency_ms=300"),
    "wrong_version": (_text, "a non-empty string, e.g. wrong_version=9.9.9"),
    "dependency_down": (_dependency, "one of 'database', 'redis', e.g. dependency_down=redis"),
    "bad_input_5xx": (_flag, "one of 1, 0, true, false, e.g. bad_input_5xx=1"),
    "orphans": (_count, "an integer >= 0, e.g. orphans=5"),
}


def _check_name(name: str) -> None:
    if name in FAULTS:
        return
    close = difflib.get_close_matches(name, FAULTS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"unknown fault {name!r}: {hint}known faults are {', '.join(FAULTS)}")


def parse_value(name: str, value: FaultValue) -> Any:
    """Check that ``name`` is a fault and return ``value`` as that fault's type."""
    _check_name(name)
    parser, expected = _PARSERS[name]
    try:
        return parser(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(
            f"fault {name!r} got {value!r}, expected {expected}"
        ) from None  # the parser's own error says less than this message


def parse_fault(spec: str) -> tuple[str, Any]:
    """Read one ``NAME=VALUE`` command-line fault into its name and typed value."""
    name, sep, value = spec.partition("=")
    if not sep:
        raise UsageError(
            f"fault {spec!r} has no value: write it as NAME=VALUE, e.g. latency_ms=300"
        )
    name = name.strip()
    return name, parse_value(name, value)


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults the demo target currently injects. The defaults inject nothing."""

    error_rate: float = 0.0
    latency_ms: int = 0
    wrong_version: str | None = None
    dependency_down: str | None = None
    bad_input_5xx: bool = False
    orphans: int = 0

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, FaultValue]) -> Faults:
        """Faults from ``{name: value}``; unknown names and bad values raise ``UsageError``."""
        return cls().updated(mapping)

    def updated(self, mapping: Mapping[str, FaultValue]) -> Faults:
        """A copy with the named faults changed and every other fault kept."""
        return replace(self, **{name: parse_value(name, v) for name, v in mapping.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fails(self, request_number: int) -> bool:
        """Whether the ``request_number``-th (1-based) eligible request should answer 500.

        A fixed pattern rather than random draws, so that a test or a demo sees exactly the
        configured fraction: request n fails when ``floor(n * rate)`` steps up at n.
        """
        rate = self.error_rate
        return math.floor(request_number * rate) > math.floor((request_number - 1) * rate)
