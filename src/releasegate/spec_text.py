"""Checks on text a spec holds, shared by its models: a regex compiles, a JSONPath parses.

Each raises ``ValueError`` naming the problem, which pydantic reports at the key's line.
"""

from __future__ import annotations

import re


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
