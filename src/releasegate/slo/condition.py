"""A comparison read from spec text: ``< 300ms``, ``<= 0.3%``, ``> 20/hr``, ``>= 99.9%``, ``== 0``.

A condition says what a *good* value is: it holds when the deployment is fine. The threshold
is kept in the canonical unit of its kind (seconds, a fraction, per second, see ``units``),
and values are compared in that unit; ``describe`` shows a value back in the spec's unit.

A source declares the kind of value it returns; ``check_source`` refuses a condition whose
unit is of another kind (a latency query held to ``<= 0.3%``). A unitless threshold is read in
the canonical unit: it is accepted for ``number`` and ``ratio`` sources (``<= 0.003`` is a
fraction) and refused for durations and rates, where ``< 300`` would silently mean 300 s.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from ..model import Limit
from .units import CANONICAL, Unit, UnitKind, parse_quantity

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_NEGATION = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_CONDITION = re.compile(r"^\s*(?P<op><=|>=|==|<|>)\s*(?P<rest>.*?)\s*$")
_WRONG_OP = re.compile(r"^\s*(?P<op>=<|=>|!=|=(?!=)|≤|≥)")
_OP_FIX = {"=<": "<=", "=>": ">=", "=": "==", "≤": "<=", "≥": ">="}
EXAMPLES = "'< 300ms', '<= 0.3%', '> 20/hr', '>= 99.9%', '== 0'"


@dataclass(frozen=True, slots=True)
class Condition:
    """``value <op> threshold``; ``threshold`` in the canonical unit of ``unit_kind``.

    ``text`` is the spec text as written; ``unit`` the spec's unit, used to show values back
    (by default the canonical unit of ``unit_kind``: seconds, %, per second, none).
    """

    op: str
    threshold: float
    unit_kind: UnitKind
    text: str
    unit: Unit | None = None

    def __post_init__(self) -> None:
        if self.unit is None:
            object.__setattr__(self, "unit", CANONICAL[self.unit_kind])
        if self.op not in _OPS:
            raise ValueError(f"operator {self.op!r}: one of {', '.join(_OPS)}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold of {self.text!r} must be a finite number")
        if self.display_unit.kind is not self.unit_kind:
            raise ValueError(f"unit {self.display_unit.symbol!r} is not a {self.unit_kind.value}")

    def holds(self, value: float) -> bool:
        """Whether ``value`` (canonical unit) is good. NaN never holds."""
        return bool(_OPS[self.op](value, self.threshold))

    def describe(self, value: float) -> str:
        """``value`` (canonical unit) in the spec's unit: ``412 ms``, ``0.42%``, ``24/hr``."""
        return self.display_unit.show(value)

    def display(self, value: float) -> float:
        """``value`` (canonical unit) as a number in the spec's unit (0.412 s → 412 for ms),
        to 12 significant digits: the record shows 412, not 412.00000000000006."""
        return float(f"{self.display_unit.from_canonical(value):.12g}")

    @property
    def display_unit(self) -> Unit:
        """The unit values are shown in: the spec's, or the canonical unit of its kind."""
        return self.unit or CANONICAL[self.unit_kind]

    def __str__(self) -> str:
        """Normalised: ``< 300 ms``, ``<= 0.3%``, ``> 20/hr``, ``== 0``."""
        return f"{self.op} {self.describe(self.threshold)}"

    def margin(self, value: float) -> float:
        """How far ``value`` is on the good side of the threshold (negative: a breach), in the
        canonical unit. The worst of several values is the one with the smallest margin."""
        if math.isnan(value):
            return -math.inf
        if self.op in ("<", "<="):
            return self.threshold - value
        if self.op in (">", ">="):
            return value - self.threshold
        return -abs(value - self.threshold)

    def worst(self, values: Iterable[float]) -> float | None:
        """The value with the smallest margin (the highest for ``<``), or None if there is none."""
        return min(values, key=self.margin, default=None)

    def negated(self) -> Condition:
        """The opposite comparison (``< 300 ms`` → ``>= 300 ms``), e.g. to turn an alerting rule
        ("P95 > 2s for 10m") into the condition a gate holds. ``==`` has none a Limit can hold."""
        if self.op not in _NEGATION:
            raise ValueError(f"{self.text!r} has no negation: '!=' is not a comparison we hold")
        op = _NEGATION[self.op]
        return Condition(op, self.threshold, self.unit_kind, f"{op} {self.text_value}", self.unit)

    @property
    def text_value(self) -> str:
        """The threshold as written, with its unit (``300ms`` for ``< 300ms``)."""
        match = _CONDITION.match(self.text)
        return match["rest"] if match else self.describe(self.threshold)

    def limit(self, subject: str, key: str | None = None) -> Limit:
        """This condition as the record's structured ``Limit``, in the spec's unit
        (``p95 latency < 300 ms``); ``key`` names where the evidence's value holds the number."""
        return Limit(subject, self.op, self.display(self.threshold), self.display_unit.symbol, key)

    def check_source(self, kind: UnitKind | str, source: str = "the source") -> None:
        """Refuse a source whose values are of another kind than this condition's unit.

        Raises ValueError naming both kinds and a threshold that would fit.
        """
        try:
            kind = UnitKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in UnitKind)
            raise ValueError(f"{source} declares unit kind {kind!r}: one of {kinds}") from None
        if kind is self.unit_kind:
            return
        if self.unit_kind is UnitKind.NUMBER:
            if kind in (UnitKind.NUMBER, UnitKind.RATIO):
                return
            raise ValueError(
                f"{source} returns a {kind.value} but {self.text.strip()!r} has no unit: "
                f"write it with one, e.g. {_EXAMPLE_OF[kind]}"
            )
        raise ValueError(
            f"{source} returns a {kind.value} but {self.text.strip()!r} is a "
            f"{self.unit_kind.value}: hold it to a {kind.value}, e.g. {_EXAMPLE_OF[kind]}"
        )


_EXAMPLE_OF = {
    UnitKind.DURATION: "'< 300ms' or '< 2s'",
    UnitKind.RATIO: "'<= 0.3%' or '<= 0.003'",
    UnitKind.RATE: "'< 20/hr' or '< 5/s'",
    UnitKind.NUMBER: "'< 100' or '== 0'",
}


def parse_condition(text: str) -> Condition:
    """Read ``< 300ms``-style text. Raises ValueError that says what to write instead."""
    if not isinstance(text, str):
        raise ValueError(f"a condition is text such as {EXAMPLES}, not {type(text).__name__}")
    shown = text.strip()
    match = _CONDITION.match(text)
    if match is None:
        wrong = _WRONG_OP.match(text)
        if wrong is not None and wrong["op"] in _OP_FIX:
            fix = _OP_FIX[wrong["op"]]
            raise ValueError(f"condition {shown!r}: write {fix!r} instead of {wrong['op']!r}")
        if wrong is not None:
            raise ValueError(f"condition {shown!r}: '!=' is not supported; use <, <=, >, >= or ==")
        raise ValueError(
            f"condition {shown!r} does not start with a comparison: write one of {EXAMPLES}"
        )
    if not match["rest"]:
        raise ValueError(f"condition {shown!r} has no threshold: write e.g. {EXAMPLES}")
    try:
        quantity = parse_quantity(match["rest"])
    except ValueError as err:
        raise ValueError(f"condition {shown!r}: {err}") from None
    return Condition(match["op"], quantity.value, quantity.kind, shown, quantity.unit)


def _validate(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    return parse_condition(value)


#: A pydantic field type for spec models: text in, ``Condition`` out, text in JSON and schema.
ConditionField = Annotated[
    Condition,
    PlainValidator(_validate),
    PlainSerializer(lambda c: c.text, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*(<=|>=|==|<|>)\s*\S",
            "description": "a comparison and a threshold with an optional unit: " + EXAMPLES,
            "examples": ["< 300ms", "<= 0.3%", "> 20/hr"],
        }
    ),
]
