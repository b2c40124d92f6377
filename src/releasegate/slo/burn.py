"""Burn-rate gates: multiwindow, multi-burn-rate rules from the Google SRE workbook.

The burn rate of a window is how fast the error budget is spent there:
``burn = (bad / total) / (1 - objective)``; a burn of 1 spends exactly the budget over the SLO
period. A rule ``BurnRule(long, short, factor)`` fires when *both* its long and its short
window burn faster than ``factor``: the long window says the spend is significant, the short
one that it is still going on.

For a 30-day period the defaults are the workbook's:

| long | short | factor | budget spent in the long window |
|---|---|---|---|
| 1h | 5m | 14.4 | 2% |
| 6h | 30m | 6 | 5% |
| 1d | 2h | 3 | 10% |
| 3d | 6h | 1 | 10% |

For another period the windows scale with it (``rules_for``: a 7-day SLO looks at 14m/70s,
84m/7m, 5.6h/28m and 16.8h/84m) so the factors stay tied to the same fractions of the budget:
``factor = fraction * period / long``. (Sloth keeps the windows and recomputes the factors
instead; for 30 days both agree.)

Minimum traffic: a window with fewer than ``min_events`` events says nothing. A rule fires only
when both windows have enough events and burn above the factor; it is quiet when a window with
enough events burns at or below the factor (both must burn for it to fire); otherwise it is
undecided. The gate is FAILED when any rule fires, else NO_DATA when any rule is undecided,
else PASSED. Counts that cannot be (negative, NaN, good above total) are an ERROR.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ..model import Evidence, Limit, Status
from .units import format_duration, format_number

DAY = 86400.0
#: The period the default rules are written for.
DEFAULT_PERIOD_S = 30 * DAY


@dataclass(frozen=True, slots=True)
class BurnRule:
    """Fire when the burn rate over ``long_s`` and over ``short_s`` both exceed ``factor``."""

    long_s: float
    short_s: float
    factor: float
    period_s: float = DEFAULT_PERIOD_S

    def __post_init__(self) -> None:
        if not 0 < self.short_s <= self.long_s:
            raise ValueError(
                f"burn rule windows: 0 < short ({self.short_s}) <= long ({self.long_s})"
            )
        if not self.factor > 0:
            raise ValueError(f"burn rule factor {self.factor!r} must be positive")

    @property
    def budget_fraction(self) -> float:
        """The share of the period's error budget spent in ``long_s`` at exactly ``factor``."""
        return self.factor * self.long_s / self.period_s

    def describe(self) -> str:
        """``14.4x over 1h and 5m (2% of a 30d budget in 1h)``."""
        share = format_number(round(self.budget_fraction * 100, 2))
        long_, short = format_duration(self.long_s), format_duration(self.short_s)
        return (
            f"{format_number(self.factor)}x over {long_} and {short} "
            f"({share}% of a {format_duration(self.period_s)} budget in {long_})"
        )


DEFAULT_RULES: tuple[BurnRule, ...] = (
    BurnRule(3600, 300, 14.4),
    BurnRule(6 * 3600, 1800, 6),
    BurnRule(DAY, 2 * 3600, 3),
    BurnRule(3 * DAY, 6 * 3600, 1),
)


def rules_for(
    period_s: float, phase_length_s: float, rules: Sequence[BurnRule] = DEFAULT_RULES
) -> tuple[BurnRule, ...]:
    """``rules`` for an SLO period of ``period_s``: windows scaled by ``period_s / 30d``, factors
    kept, then only the rules whose long window fits in ``phase_length_s`` (what the phase can
    observe). The first (fastest) rule is always kept: when the phase is shorter than its long
    window, the source counts what the phase saw (``evaluate_burn``'s ``observed_s`` says so)."""
    if not (math.isfinite(period_s) and period_s > 0):
        raise ValueError(f"SLO period {period_s!r} must be a positive number of seconds")
    scaled = [
        BurnRule(
            r.long_s * period_s / r.period_s, r.short_s * period_s / r.period_s, r.factor, period_s
        )
        for r in rules
    ]
    return tuple(r for i, r in enumerate(scaled) if i == 0 or r.long_s <= phase_length_s)


def burn_rate(bad: float, total: float, objective: float) -> float:
    """``(bad / total) / (1 - objective)``; ValueError for no events or an objective outside
    (0, 1). The budget ``1 - objective`` is taken in decimal (``1 - 0.999`` is 0.001, not the
    float 0.0010000000000000009) so that a burn exactly at a factor is not pushed across it."""
    _check_objective(objective)
    if not total > 0:
        raise ValueError(f"burn rate of {total!r} events: there must be at least one")
    return (bad / total) / error_budget(objective)


def error_budget(objective: float) -> float:
    """The share of events allowed to be bad: ``1 - objective``, exact in decimal."""
    return float(Decimal(1) - Decimal(repr(float(objective))))


@dataclass(frozen=True, slots=True)
class WindowBurn:
    """The counts of one window and its burn rate (None below the traffic floor)."""

    window_s: float
    good: float | None
    total: float | None
    burn: float | None
    problem: str = ""

    @property
    def bad(self) -> float | None:
        return None if self.good is None or self.total is None else self.total - self.good

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "window": format_duration(self.window_s),
            "good": self.good,
            "total": self.total,
            "bad": self.bad,
            "burn_rate": None if self.burn is None else round(self.burn, 6),
            "problem": self.problem,
        }


class RuleState(str, enum.Enum):
    """``fired``: both windows burn above the factor; ``quiet``: a window with enough events
    burns at or below it; ``undecided``: neither (too few events)."""

    FIRED = "fired"
    QUIET = "quiet"
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome and the two windows it looked at."""

    rule: BurnRule
    state: RuleState
    long: WindowBurn
    short: WindowBurn

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.describe(),
            "factor": self.rule.factor,
            "long_s": self.rule.long_s,
            "short_s": self.rule.short_s,
            "budget_fraction": round(self.rule.budget_fraction, 6),
            "state": self.state.value,
        }


@dataclass(frozen=True, slots=True)
class BurnVerdict:
    """The burn-rate gate's verdict with its evidence.

    ``budget_remaining`` is ``1 - spent`` over the observed window: the share of the error
    budget its events allowed (``(1 - objective) * total``) that is still unspent; negative
    when overspent, None without enough events.
    """

    status: Status
    reason: str
    objective: float
    min_events: float
    rules: tuple[RuleResult, ...]
    windows: tuple[WindowBurn, ...]
    observed: WindowBurn | None = None
    budget_remaining: float | None = None
    fired: tuple[BurnRule, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "objective": self.objective,
            "min_events": self.min_events,
            "rules": [r.to_dict() for r in self.rules],
            "windows": [w.to_dict() for w in self.windows],
            "fired": [r.describe() for r in self.fired],
            "observed": self.observed.to_dict() if self.observed else None,
            "budget_remaining": None
            if self.budget_remaining is None
            else round(self.budget_remaining, 6),
        }

    def evidence(self, measured: str) -> Evidence:
        """The highest burn rate against the factor of its rule as the record's ``Limit``."""
        worst = max(self.rules, key=_pressure, default=None)
        value: dict[str, Any] = {"budget_remaining": self.budget_remaining}
        limits: tuple[Limit, ...] = ()
        if worst is not None:
            value["burn_rate"] = min(_burn_or_0(worst.long), _burn_or_0(worst.short))
            limits = (Limit("burn rate", "<=", worst.rule.factor, "x", key="burn_rate"),)
        objective = format_number(self.objective * 100)
        threshold = f"objective {objective}%; no rule with both windows above its factor"
        return Evidence(measured, value, threshold, self.reason, self.to_dict(), limits)


def _pressure(r: RuleResult) -> tuple[bool, float]:
    return (
        r.state is RuleState.FIRED,
        min(_burn_or_0(r.long), _burn_or_0(r.short)) / r.rule.factor,
    )


def _burn_or_0(w: WindowBurn) -> float:
    return w.burn if w.burn is not None else 0.0


#: Event counts per window length: a mapping of seconds to ``(good, total)`` or a function.
_Count = tuple[float, float] | None
Counts = Mapping[float, _Count] | Mapping[int, _Count] | Callable[[float], _Count]


def evaluate_burn(
    good_total_by_window: Counts,
    objective: float,
    rules: Sequence[BurnRule],
    min_events: float,
    observed_s: float | None = None,
) -> BurnVerdict:
    """Hold ``rules`` to the ``(good, total)`` event counts of each window.

    ``good_total_by_window`` maps a window length in seconds to its counts (or None: no data),
    or is a function of the window length. ``observed_s`` is how long the phase observed (the
    window the remaining budget is computed over); by default the longest long window.
    """
    _check_objective(objective)
    if not rules:
        raise ValueError("no burn-rate rules to evaluate")
    if not min_events >= 0:
        raise ValueError(f"min_events {min_events!r} must be zero or more")
    lookup = _lookup(good_total_by_window)
    cache: dict[float, WindowBurn] = {}

    def window(seconds: float) -> WindowBurn:
        if seconds not in cache:
            cache[seconds] = _window(seconds, lookup, objective, min_events)
        return cache[seconds]

    results = tuple(_rule(rule, window(rule.long_s), window(rule.short_s)) for rule in rules)
    span = observed_s if observed_s is not None else max(r.long_s for r in rules)
    observed = window(span)
    remaining = None if observed.burn is None else 1 - observed.burn
    windows = tuple(sorted(cache.values(), key=lambda w: w.window_s))
    fired = tuple(r.rule for r in results if r.state is RuleState.FIRED)
    broken = [w for w in windows if w.problem.startswith("inconsistent")]
    if fired:  # a rule that fired on sound counts is a measurement, whatever else is broken
        status = Status.FAILED
    elif broken:
        status = Status.ERROR
    elif any(r.state is RuleState.UNDECIDED for r in results):
        status = Status.NO_DATA
    else:
        status = Status.PASSED
    verdict = BurnVerdict(
        status, "", objective, min_events, results, windows, observed, remaining, fired
    )
    return replace(verdict, reason=_reason(verdict, broken))


def _lookup(counts: Counts) -> Callable[[float], tuple[float, float] | None]:
    if callable(counts):
        return counts
    table: Mapping[Any, _Count] = counts  # int and float keys: 3600 == 3600.0
    return table.get


def _window(
    seconds: float,
    lookup: Callable[[float], tuple[float, float] | None],
    objective: float,
    min_events: float,
) -> WindowBurn:
    found = lookup(seconds)
    if found is None:
        return WindowBurn(seconds, None, None, None, "no count")
    good, total = (float(x) for x in found)
    if not (math.isfinite(good) and math.isfinite(total)) or good < 0 or total < 0 or good > total:
        return WindowBurn(
            seconds,
            good,
            total,
            None,
            f"inconsistent counts: good {format_number(good)}, total {format_number(total)}",
        )
    if total == 0 or total < min_events:
        floor = format_number(max(min_events, 1))
        return WindowBurn(
            seconds, good, total, None, f"{format_number(total)} events, below {floor}"
        )
    return WindowBurn(seconds, good, total, burn_rate(total - good, total, objective))


def _rule(rule: BurnRule, long: WindowBurn, short: WindowBurn) -> RuleResult:
    measured = [w for w in (long, short) if w.burn is not None]
    if len(measured) == 2 and all(w.burn is not None and w.burn > rule.factor for w in measured):
        return RuleResult(rule, RuleState.FIRED, long, short)
    if any(w.burn is not None and w.burn <= rule.factor for w in measured):
        return RuleResult(rule, RuleState.QUIET, long, short)
    return RuleResult(rule, RuleState.UNDECIDED, long, short)


def _check_objective(objective: float) -> None:
    if not (isinstance(objective, (int, float)) and 0 < objective < 1):
        raise ValueError(f"objective {objective!r}: a fraction between 0 and 1 (0.999 for 99.9%)")


def _show_burn(w: WindowBurn) -> str:
    if w.burn is None:
        return f"{format_duration(w.window_s)}: {w.problem}"
    return f"{format_duration(w.window_s)}: {format_number(w.burn)}x"


def _reason(v: BurnVerdict, broken: Sequence[WindowBurn]) -> str:
    context = f"objective {format_number(v.objective * 100)}%"
    if v.budget_remaining is not None and v.observed is not None:
        spent = format_number(round((1 - v.budget_remaining) * 100, 1))
        last = format_duration(v.observed.window_s)
        context += f"; {spent}% of the error budget of the last {last} spent"
    if v.status is Status.FAILED:
        fired = [r for r in v.rules if r.state is RuleState.FIRED]
        parts = [
            f"burn {format_number(r.long.burn or 0)}x over {format_duration(r.rule.long_s)} and "
            f"{format_number(r.short.burn or 0)}x over {format_duration(r.rule.short_s)}, above "
            f"{r.rule.describe()}"
            for r in fired
        ]
        return "; ".join(parts) + f" ({context})"
    if v.status is Status.ERROR:
        listed = "; ".join(_show_burn(w) for w in broken)
        return f"cannot compute burn rates ({listed})"
    if v.status is Status.NO_DATA:
        undecided = [r for r in v.rules if r.state is RuleState.UNDECIDED]
        parts = [f"({_show_burn(r.long)}; {_show_burn(r.short)})" for r in undecided]
        return (
            f"not enough traffic to decide {len(undecided)} of {len(v.rules)} burn-rate rules "
            f"(at least {format_number(max(v.min_events, 1))} events per window): "
            f"{', '.join(parts)} ({context})"
        )
    shown = ", ".join(_show_burn(w) for w in v.windows if w.burn is not None)
    return f"no burn-rate rule fired ({shown}; {context})"
