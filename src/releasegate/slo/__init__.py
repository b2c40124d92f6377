"""The SLO evaluation core: pure functions from samples to verdicts (no I/O, no clock).

Check types (``prometheus``, ``metrics``, ``json_metric``, ``sql`` over a window,
``log_pattern``, burn-rate gates) gather samples and feed them here; each verdict carries a
``releasegate.model.Status``, a one-line reason and ``evidence(measured)`` for the record.
Time is always a parameter (``now``, snapshot times); nothing here reads a clock or sleeps.

Conditions and units (``condition``, ``units``)
    ``parse_condition("< 300ms") -> Condition``: ``holds(value)``, ``describe(value)``,
    ``limit(subject)``, ``check_source(kind)``, ``negated()``; ``ConditionField`` for pydantic
    spec models; ``UnitKind`` (duration, ratio, rate, number); ``parse_duration("10m")``,
    ``format_duration(600)``.

Windows (``window``)
    ``Window(duration_s, step_s, min_coverage=0.9)`` and ``Window.scaled(time_scale)``;
    ``Point(t, value)``; ``evaluate_window(points, condition, window, now, subject)`` and
    ``evaluate_instant(value, condition, subject)`` -> ``WindowVerdict``.

Several series (``series``)
    ``evaluate_series(series, condition, window, now, aggregate, subject)`` ->
    ``SeriesVerdict``; ``Aggregate`` (max, min, sum, avg, each); ``as_labels``.

Scraped /metrics (``promtext``, ``selector``)
    ``parse_exposition(text, t) -> Snapshot``; ``parse_selector('x{code=~"5.."}')``;
    ``increase``, ``rate``, ``total_increase``, ``ratio`` over snapshots; ``gauge`` on one;
    ``histogram_quantile(q, snapshots, selector, by)``; ``bucket_quantile``.

Burn rates (``burn``)
    ``BurnRule(long_s, short_s, factor)``, ``DEFAULT_RULES``, ``rules_for(period_s,
    phase_length_s)``, ``burn_rate(bad, total, objective)``,
    ``evaluate_burn(counts, objective, rules, min_events) -> BurnVerdict`` (``RuleState`` per
    rule: fired, quiet, undecided).

SLO documents (``openslo``)
    ``load_slo_definitions(yaml_text) -> tuple[SloDefinition, ...]`` from OpenSLO v1 and
    Sloth; ``SloDefinition.query("bad", window_s)`` renders ``{{.window}}``.

docs/slo.md states the semantics in full.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names below load their module on first use: a spec without SLO checks does not pay for
# the exposition parser (prometheus_client) or the SLO document reader (yaml) at import.
_WHERE = {
    "Aggregate": "series",
    "BurnRule": "burn",
    "BurnVerdict": "burn",
    "Condition": "condition",
    "ConditionField": "condition",
    "DEFAULT_RULES": "burn",
    "Labels": "series",
    "Point": "window",
    "Quantile": "promtext",
    "Ratio": "promtext",
    "RuleState": "burn",
    "Selector": "selector",
    "SeriesVerdict": "series",
    "SloDefinition": "openslo",
    "Snapshot": "promtext",
    "UnitKind": "units",
    "Window": "window",
    "WindowVerdict": "window",
    "as_labels": "series",
    "bucket_quantile": "promtext",
    "burn_rate": "burn",
    "evaluate_burn": "burn",
    "evaluate_instant": "window",
    "evaluate_series": "series",
    "evaluate_window": "window",
    "format_duration": "units",
    "gauge": "promtext",
    "histogram_quantile": "promtext",
    "increase": "promtext",
    "load_slo_definitions": "openslo",
    "parse_condition": "condition",
    "parse_duration": "units",
    "parse_exposition": "promtext",
    "parse_selector": "selector",
    "rate": "promtext",
    "ratio": "promtext",
    "rules_for": "burn",
    "slo_definitions_from": "openslo",
    "total_increase": "promtext",
}

if TYPE_CHECKING:
    from .burn import (
        DEFAULT_RULES,
        BurnRule,
        BurnVerdict,
        RuleState,
        burn_rate,
        evaluate_burn,
        rules_for,
    )
    from .condition import Condition, ConditionField, parse_condition
    from .openslo import SloDefinition, load_slo_definitions, slo_definitions_from
    from .promtext import (
        Quantile,
        Ratio,
        Snapshot,
        bucket_quantile,
        gauge,
        histogram_quantile,
        increase,
        parse_exposition,
        rate,
        ratio,
        total_increase,
    )
    from .selector import Selector, parse_selector
    from .series import Aggregate, Labels, SeriesVerdict, as_labels, evaluate_series
    from .units import UnitKind, format_duration, parse_duration
    from .window import Point, Window, WindowVerdict, evaluate_instant, evaluate_window


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_RULES",
    "Aggregate",
    "BurnRule",
    "BurnVerdict",
    "Condition",
    "ConditionField",
    "Labels",
    "Point",
    "Quantile",
    "Ratio",
    "RuleState",
    "Selector",
    "SeriesVerdict",
    "SloDefinition",
    "Snapshot",
    "UnitKind",
    "Window",
    "WindowVerdict",
    "as_labels",
    "bucket_quantile",
    "burn_rate",
    "evaluate_burn",
    "evaluate_instant",
    "evaluate_series",
    "evaluate_window",
    "format_duration",
    "gauge",
    "histogram_quantile",
    "increase",
    "load_slo_definitions",
    "parse_condition",
    "parse_duration",
    "parse_exposition",
    "parse_selector",
    "rate",
    "ratio",
    "rules_for",
    "slo_definitions_from",
    "total_increase",
]
