"""The rollout cadence: phases and their pytest markers."""

from __future__ import annotations

import enum
import re


class Phase(str, enum.Enum):
    """A point in the rollout cadence at which a gate decides."""

    T0H = "t0h"
    T8H = "t8h"
    T16H = "t16h"
    T24H = "t24h"
    T48H = "t48h"
    T72H = "t72h"

    @property
    def marker(self) -> str:
        return f"gate_{self.value}"

    @property
    def hours(self) -> int:
        return int(self.value[1:-1])


PHASE_DESCRIPTIONS: dict[Phase, str] = {
    Phase.T0H: "dark merge: baseline, decisions recorded but not enforced by default",
    Phase.T8H: "first game-day drill under real traffic",
    Phase.T16H: "confidence building: extended monitoring, edge cases",
    Phase.T24H: "feature flag activation: canary enforcement",
    Phase.T48H: "full production validation",
    Phase.T72H: "executive sign-off",
}

_GATE_MARKER = re.compile(r"\bgate_(t\d+h)\b")


def parse_phase(value: str) -> Phase:
    """Return the phase named ``value`` (``t24h``, ``T24H`` or ``gate_t24h``)."""
    name = value.strip().lower().removeprefix("gate_")
    try:
        return Phase(name)
    except ValueError:
        known = ", ".join(p.value for p in Phase)
        raise ValueError(f"unknown phase {value!r}: expected one of {known}") from None


_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
_NAME = re.compile(r"^[A-Za-z_][\w.+-]*$")


def selects_only(expr: str, marker: str) -> bool | None:
    """Whether ``-m expr`` selects only items marked ``marker`` (and some of them).

    ``not gate_t24h`` or ``gate_t24h or smoke`` would run checks of other phases in a run
    that decides for t24h. Answers by trying every truth value of the expression's names;
    None when the expression is beyond that (keyword matching, too many names).
    """
    tokens = _TOKEN.findall(expr)
    words = {"and", "or", "not", "(", ")"}
    if not tokens or any(t not in words and not _NAME.match(t) for t in tokens):
        return None
    names = sorted({t for t in tokens if t not in words} - {marker})
    if len(names) > 12:
        return None

    def value(truth: dict[str, bool]) -> bool:
        text = " ".join(t if t in words else str(truth.get(t, t == marker)) for t in tokens)
        try:
            # Only and/or/not, parentheses, True and False reach eval (see the check above).
            return bool(eval(text, {"__builtins__": {}}))
        except SyntaxError:
            return False

    some = False
    for bits in range(2 ** len(names)):
        truth = {name: bool(bits >> i & 1) for i, name in enumerate(names)}
        if value({**truth, marker: False}):
            return False
        some = some or value({**truth, marker: True})
    return some


def phases_in_markexpr(expr: str) -> list[str]:
    """The phase names that a ``-m`` expression mentions, in order, without duplicates."""
    seen: list[str] = []
    for name in _GATE_MARKER.findall(expr or ""):
        if name not in seen:
            seen.append(name)
    return seen
