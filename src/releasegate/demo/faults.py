"""Fault knobs of the demo target: what each one breaks and how its value is read.

Values arrive as strings from the command line (``--fault latency_ms=300``) and as JSON values
from ``POST /_faults``; both go through the same parsers so that they accept the same things.

Random faults draw from one seed per run (``FaultDraws``): a detection rate counts only over
random faults, so each run is a new trial, and the seed, kept in the record, replays the draws.
"""

from __future__ import annotations

import difflib
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import UsageError

FaultValue = str | int | float | bool

DEPENDENCIES = ("database", "redis")
MAX_LOG_SPIKE = 6000  # exception lines a minute: 100 a second is a spike, more is a disk filler

FAULTS: dict[str, str] = {
    "error_rate": "float 0..1: each request to /healthz, /readyz, /version and /api/* answers"
    " 500 with this probability (independent draws from the run's fault seed; 1 = every one)",
    "latency_ms": "integer >= 0: delay added to every request except the controls (/_faults,"
    " /_demo, /metrics, /metrics.json)",
    "latency_jitter_ms": "integer >= 0: a further random delay of 0..N ms on those requests,"
    " drawn from the run's fault seed",
    "wrong_version": "string: /version reports this version instead of the real one",
    "dependency_down": "'database' or 'redis': /readyz reports that dependency down (503)",
    "bad_input_5xx": "boolean (1/0/true/false): malformed input to POST /api/orders answers"
    " 500 instead of 4xx",
    "orphans": "integer >= 0: the database holds that many risk_log rows pointing at missing"
    " episodes (0 removes them)",
    "log_spike": f"integer 0..{MAX_LOG_SPIKE}: a background worker writes that many CRITICAL"
    " exception lines a minute to the application log",
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


def _spike(value: FaultValue) -> int:
    count = _count(value)
    if count > MAX_LOG_SPIKE:
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
    "latency_jitter_ms": (_count, "an integer >= 0 (milliseconds), e.g. latency_jitter_ms=100"),
    "wrong_version": (_text, "a non-empty string, e.g. wrong_version=9.9.9"),
    "dependency_down": (_dependency, "one of 'database', 'redis', e.g. dependency_down=redis"),
    "bad_input_5xx": (_flag, "one of 1, 0, true, false, e.g. bad_input_5xx=1"),
    "orphans": (_count, "an integer >= 0, e.g. orphans=5"),
    "log_spike": (_spike, f"an integer 0..{MAX_LOG_SPIKE} (lines a minute), e.g. log_spike=60"),
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
    latency_jitter_ms: int = 0
    wrong_version: str | None = None
    dependency_down: str | None = None
    bad_input_5xx: bool = False
    orphans: int = 0
    log_spike: int = 0

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, FaultValue]) -> Faults:
        """Faults from ``{name: value}``; unknown names and bad values raise ``UsageError``."""
        return cls().updated(mapping)

    def updated(self, mapping: Mapping[str, FaultValue]) -> Faults:
        """A copy with the named faults changed and every other fault kept."""
        return replace(self, **{name: parse_value(name, v) for name, v in mapping.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fresh_seed() -> int:
    """A new fault seed for a run that was given none (from the OS, not from ``random``)."""
    return random.SystemRandom().randrange(2**32)


class FaultDraws:
    """The random draws of one run's faults, all from one seed: the same seed, the same draws.

    Each fault draws from its own stream, so that turning jitter on does not change which
    requests fail. Draws are numbered by the order in which requests ask for them; concurrent
    requests may take them in any order, but the n-th draw is always the same. Thread-safe.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        # A string seed is hashed with SHA-512: stable across processes and Python versions.
        self._errors = random.Random(f"{seed}:error_rate")
        self._jitter = random.Random(f"{seed}:latency_jitter_ms")
        self._lock = threading.Lock()

    def fails(self, rate: float) -> bool:
        """One Bernoulli draw: True with probability ``rate``."""
        with self._lock:
            return self._errors.random() < rate

    def jitter_ms(self, high: int) -> float:
        """A delay drawn uniformly from ``0..high`` milliseconds."""
        with self._lock:
            return self._jitter.uniform(0, high)


def parse_seed(text: str) -> int:
    """A fault seed from the command line: an integer 0 <= seed < 2**63."""
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or int(value) >= 2**63:
        raise UsageError(f"fault seed {text!r} is not an integer between 0 and 2**63 - 1")
    return int(value)
