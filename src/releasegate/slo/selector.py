"""A tiny series selector language: the matcher subset of a PromQL instant-vector selector.

    http_requests_total{code=~"5..", job="api", path!="/health", method!~"OPTIONS|HEAD"}

- a metric name (``[a-zA-Z_:][a-zA-Z0-9_:]*``), optionally followed by ``{...}``; the name may
  be left out when a matcher on ``__name__`` or on another label is given;
- matchers ``label="v"`` (equal), ``label!="v"`` (not equal), ``label=~"re"`` (regex),
  ``label!~"re"`` (not regex), separated by commas (a trailing comma is fine);
- values are double- or single-quoted strings with backslash escapes (``\\"``, ``\\\\``,
  ``\\n``, ``\\t``) or backquoted raw strings; another escape such as ``\\d`` is kept as
  written (PromQL refuses it: write ``\\\\d`` to stay portable);
- as in PromQL, a label the series does not have matches as the empty string (``job=""``
  selects series without ``job``), and regexes are fully anchored (``=~"5.."`` is
  ``^(?:5..)$``) with ``.`` matching newlines. Regexes are Python's ``re``, which reads the
  RE2 syntax PromQL uses for everything but RE2's rarer classes;
- as in PromQL, a selector must have a metric name or at least one matcher that does not
  match the empty string (``{job=~".*"}`` alone would select everything).

Parse errors are ValueError naming the position and the fix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SELECTOR_CHARS = 2000
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OP = re.compile(r"=~|!~|!=|==|=")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
METRIC_NAME_LABEL = "__name__"


@dataclass(frozen=True, slots=True)
class Matcher:
    """``label op value`` with ``op`` one of ``=``, ``!=``, ``=~``, ``!~``."""

    label: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            _compile(self.value)  # fail at parse time, not at the first scrape

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = _compile(self.value).fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.label}{self.op}"{escaped}"'


@dataclass(frozen=True, slots=True)
class Selector:
    """A metric name (may be empty) and label matchers; ``text`` is the selector as written."""

    name: str
    matchers: tuple[Matcher, ...]
    text: str

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether the series ``name{labels}`` is selected."""
        if self.name and name != self.name:
            return False
        for m in self.matchers:
            got = name if m.label == METRIC_NAME_LABEL else labels.get(m.label, "")
            if not m.matches(got):
                return False
        return True

    def with_name(self, name: str) -> Selector:
        """The same matchers on another metric name (``foo`` → ``foo_bucket``)."""
        inner = ", ".join(str(m) for m in self.matchers)
        return Selector(name, self.matchers, f"{name}{{{inner}}}" if inner else name)

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as err:
        raise ValueError(f"regex {pattern!r}: {err}; fix the pattern (RE2 syntax)") from None


def parse_selector(text: str) -> Selector:
    """Read ``name{label="v", label=~"re", label!="v", label!~"re"}``."""
    if not isinstance(text, str):
        raise ValueError("a selector is text such as 'http_requests_total{code=~\"5..\"}'")
    if len(text) > MAX_SELECTOR_CHARS:
        raise ValueError(f"selector of {len(text)} characters: at most {MAX_SELECTOR_CHARS}")
    parser = _Parser(text)
    selector = parser.selector()
    if not selector.name and all(m.matches("") for m in selector.matchers):
        raise ValueError(
            f"selector {text.strip()!r} would select every series: give a metric name or a "
            f'matcher that does not match the empty string (e.g. job="api")'
        )
    return selector


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> ValueError:
        shown = self.text.strip()
        return ValueError(f"selector {shown!r} at character {self.pos + 1}: {problem}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def selector(self) -> Selector:
        self.skip_space()
        if not self.text.strip():
            raise ValueError(
                'empty selector: write a metric name, e.g. http_requests_total{job="api"}'
            )
        name = ""
        match = _NAME.match(self.text, self.pos)
        if match:
            name = match[0]
            self.pos = match.end()
            self.skip_space()
        matchers: tuple[Matcher, ...] = ()
        if self.peek() == "{":
            self.pos += 1
            matchers = self.matchers()
        elif not name:
            raise self.fail('expected a metric name or "{": e.g. http_requests_total{job="api"}')
        self.skip_space()
        if self.pos != len(self.text):
            rest = self.text[self.pos :]
            if rest.startswith("["):
                raise self.fail(
                    "range selectors ([5m]) are not part of a selector here: the "
                    "window comes from the check's own settings"
                )
            raise self.fail(f"unexpected {rest[:20]!r} after the selector")
        return Selector(name, matchers, self.text.strip())

    def matchers(self) -> tuple[Matcher, ...]:
        found: list[Matcher] = []
        while True:
            self.skip_space()
            if self.peek() == "}":
                self.pos += 1
                return tuple(found)
            if not self.peek():
                raise self.fail('missing "}" at the end of the label matchers')
            found.append(self.matcher())
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
            elif not self.peek():
                raise self.fail('missing "}" at the end of the label matchers')
            elif self.peek() != "}":
                raise self.fail('expected "," or "}" after a label matcher')

    def matcher(self) -> Matcher:
        match = _LABEL.match(self.text, self.pos)
        if match is None:
            raise self.fail('expected a label name, e.g. job="api"')
        label = match[0]
        self.pos = match.end()
        self.skip_space()
        op = _OP.match(self.text, self.pos)
        if op is None:
            raise self.fail(f"expected =, !=, =~ or !~ after label {label!r}")
        if op[0] == "==":
            raise self.fail(f"use '=' to match label {label!r} ('==' is a comparison)")
        self.pos = op.end()
        self.skip_space()
        value = self.string(label)
        try:
            return Matcher(label, op[0], value)
        except ValueError as err:
            raise self.fail(str(err)) from None

    def string(self, label: str) -> str:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            raise self.fail(f'the value of {label!r} must be quoted: write {label}="..."')
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail(f"unterminated string in the value of {label!r}: add {quote}")
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch == "\\" and quote != "`":
                nxt = self.peek()
                if nxt not in _ESCAPES:
                    # PromQL keeps regex escapes like \d or \. inside strings as they are
                    out.append("\\")
                    continue
                out.append(_ESCAPES[nxt])
                self.pos += 1
                continue
            out.append(ch)
