"""Units of SLO values: what kind of number a value is, its canonical unit, and how to show it.

Every value is held in a canonical unit and shown back in the unit the spec used:

| kind | canonical | spec units |
|---|---|---|
| ``duration`` | seconds | ``ms``, ``s``, ``m`` (minutes), ``h`` |
| ``ratio`` | a fraction (0.3% is 0.003) | ``%`` |
| ``rate`` | events per second | ``/s``, ``/min``, ``/hr``, ``/h``, ``/d`` |
| ``number`` | the number itself | none |

Thresholds are converted with exact decimal arithmetic, so ``<= 0.7%`` holds for a measured
``7 / 1000`` (``0.7 / 100`` in floats is ``0.006999…``).

Durations of windows and periods are written ``10m``, ``1h30m``, ``500ms``, ``3d``, ``2w``
(``parse_duration``) and shown back compactly (``format_duration``).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


class UnitKind(str, enum.Enum):
    """What a value measures. A source declares the kind of what it returns; a condition's unit
    has a kind too, and the two must agree (see ``Condition.check_source``)."""

    DURATION = "duration"
    RATIO = "ratio"
    RATE = "rate"
    NUMBER = "number"


@dataclass(frozen=True, slots=True)
class Unit:
    """A spec unit: its spelling, its kind, how many canonical units one of it is, and whether
    a space separates it from the number when shown (``412 ms`` but ``0.42%``, ``24/hr``)."""

    symbol: str
    kind: UnitKind
    factor: Decimal
    spaced: bool

    def to_canonical(self, value: float) -> float:
        return value * float(self.factor)

    def from_canonical(self, value: float) -> float:
        return value / float(self.factor)

    def show(self, value: float) -> str:
        """``value`` (canonical) in this unit, e.g. ``412 ms``."""
        number = format_number(self.from_canonical(value))
        if not self.symbol:
            return number
        return f"{number} {self.symbol}" if self.spaced else f"{number}{self.symbol}"


NUMBER = Unit("", UnitKind.NUMBER, Decimal(1), False)

#: The units a threshold may carry, by spelling.
UNITS: dict[str, Unit] = {
    u.symbol: u
    for u in (
        Unit("ms", UnitKind.DURATION, Decimal("0.001"), True),
        Unit("s", UnitKind.DURATION, Decimal(1), True),
        Unit("m", UnitKind.DURATION, Decimal(60), True),
        Unit("h", UnitKind.DURATION, Decimal(3600), True),
        Unit("%", UnitKind.RATIO, Decimal("0.01"), False),
        Unit("/s", UnitKind.RATE, Decimal(1), False),
        Unit("/min", UnitKind.RATE, Decimal(1) / Decimal(60), False),
        Unit("/hr", UnitKind.RATE, Decimal(1) / Decimal(3600), False),
        Unit("/h", UnitKind.RATE, Decimal(1) / Decimal(3600), False),
        Unit("/d", UnitKind.RATE, Decimal(1) / Decimal(86400), False),
    )
}

#: The canonical unit of each kind, used to show a value that has no spec unit.
CANONICAL: dict[UnitKind, Unit] = {
    UnitKind.DURATION: UNITS["s"],
    UnitKind.RATIO: UNITS["%"],
    UnitKind.RATE: UNITS["/s"],
    UnitKind.NUMBER: NUMBER,
}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>\S*)\s*$")


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number with its unit, as written: ``300ms`` is ``Quantity(0.3, UNITS["ms"], "300")``."""

    value: float
    unit: Unit
    number_text: str

    @property
    def kind(self) -> UnitKind:
        return self.unit.kind


def parse_quantity(text: str) -> Quantity:
    """``300ms`` → 0.3 s, ``0.3%`` → 0.003, ``20/hr`` → 0.00556/s, ``0.003`` → 0.003.

    Raises ValueError naming the accepted units when the text is not a number with a unit.
    """
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a number with an optional unit (e.g. 300ms)")
    symbol = match["unit"].lower()
    unit = NUMBER if symbol == "" else UNITS.get(symbol)
    if unit is None:
        known = ", ".join(UNITS)
        raise ValueError(
            f"unknown unit {match['unit']!r} in {text.strip()!r}: use one of {known}, or none"
        )
    try:
        exact = Decimal(match["number"]) * unit.factor
    except InvalidOperation as err:  # the regex admits only decimal numbers: defensive
        raise ValueError(f"{match['number']!r} is not a number") from err
    value = float(exact)
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is too large")
    return Quantity(value, unit, match["number"])


def format_number(value: float) -> str:
    """A number for people: 4 significant digits, no exponent below a million."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    if abs(value) >= 1e4:
        return f"{value:.0f}" if abs(value) < 1e6 else f"{value:.4g}"
    return f"{value:.4g}"


_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in ``10m``, ``1h30m``, ``500ms``, ``1.5s``, ``3d``, ``2w`` (Prometheus' units plus
    decimals); a bare number is seconds. Raises ValueError naming the format."""
    raw = text.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"duration {text!r}: a non-negative number of seconds or e.g. 10m")
        return seconds
    position, seconds = 0, 0.0
    for part in _DURATION_PART.finditer(raw):
        if part.start() != position:
            break
        seconds += float(part[1]) * _DURATION_UNITS[part[2]]
        position = part.end()
    if position != len(raw) or not raw:
        raise ValueError(
            f"duration {text!r}: write a number and a unit (ms, s, m, h, d, w), e.g. 10m or 1h30m"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``600`` → ``10m``, ``5400`` → ``1h30m``, ``0.06`` → ``60ms``, ``259200`` → ``3d``.

    Whole seconds are written in d/h/m/s parts; anything with a fraction of a second as
    seconds (``1.5s``) or milliseconds below one second.
    """
    if not math.isfinite(seconds):
        return format_number(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{format_number(seconds * 1000)}ms"
    if abs(seconds - round(seconds)) > 1e-9:
        return f"{format_number(seconds)}s"
    rest = round(seconds)
    parts = []
    for symbol, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{symbol}")
    return "".join(parts)


def prometheus_duration(seconds: float) -> str:
    """A duration PromQL accepts in a range selector: ``1h30m``, ``90s``, ``500ms``.

    PromQL durations are whole milliseconds; anything finer is rounded up so that a window is
    never shorter than asked.
    """
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a PromQL window must be a positive duration, not {seconds!r}")
    millis = math.ceil(round(seconds * 1000, 6))
    if millis % 1000:
        return f"{millis}ms"
    return format_duration(millis // 1000)
