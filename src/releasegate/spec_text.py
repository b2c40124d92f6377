"""What the spec's models share: their strict base, durations, and checks on text they hold
(a regex compiles, a JSONPath parses).

Each check raises ``ValueError`` naming the problem, which pydantic reports at the key's line.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from .slo.units import parse_duration


class StrictModel(BaseModel):
    """A spec model: unknown keys are errors, values are frozen, schemas built on first use."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)


def duration_or_none(value: Any) -> float | None:
    """A duration field's value: seconds as given, text such as ``10m``, ``1h30m`` or ``500ms``
    (``parse_duration``), or None; a bool is refused (YAML's ``yes`` is not a duration)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10m or 30s, not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    return parse_duration(str(value))


def http_url_or_none(value: str | None) -> str | None:
    """A URL field's value: http(s), without a trailing slash, or None."""
    return _http_url(value)


def http_or_demo_url(value: str | None) -> str | None:
    """A URL field that may also name the embedded demo (``demo://``)."""
    return value if value == "demo://" else _http_url(value, " (or be demo://)")


def _http_url(value: str | None, also: str = "") -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://{also}")
    return value.rstrip("/")


def check_regex(pattern: str) -> None:
    """Raise ``ValueError`` naming the problem if ``pattern`` is not a Python regex."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as err:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {err}") from None


def check_jsonpath(expression: str) -> None:
    """Raise ``ValueError`` if the probe's JSONPath parser (``jsonpath_ng.ext``) refuses it."""
    from jsonpath_ng.ext.parser import parse  # the probe's parser; imported only when used

    try:
        parse(expression)
    except Exception as err:  # jsonpath_ng's lexer and parser errors have no common base
        raise ValueError(f"{expression!r} is not a valid JSONPath: {err}") from None
