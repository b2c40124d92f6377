"""The SLO part of the gate spec: ``slo:`` settings and the fields of the SLO check types.

Like ``spec_db``, this module holds field sets only; the check classes are declared in
``spec.py`` on top of ``CheckBase``. Every SLO check has the kind ``slo`` and, besides its
source, the same time fields:

* ``threshold``: what a good value is (``< 300ms``, ``<= 0.3%``, ``> 20/hr``);
* ``for``: the condition must hold at every step of a window that long (``10m``); without it
  the check judges one value, now;
* ``step``: how often within the window (default: the window / 20, at least 1 s nominal);
* ``min_coverage``: the fraction of steps that must have data (default 0.9), else NO DATA;
* ``aggregate``: how several series combine (``max``, ``min``, ``sum``, ``avg``, ``each``);
  without it, a source answering several series is an ERROR.

docs/slo.md states the semantics; ``releasegate.slo`` implements them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .slo.condition import ConditionField
from .slo.selector import parse_selector
from .slo.series import Aggregate
from .slo.units import UnitKind
from .slo.window import Window
from .spec_text import StrictModel as _Strict
from .spec_text import check_jsonpath, check_regex, http_or_demo_url
from .spec_text import duration_or_none as _duration

MAX_QUERY_CHARS = 20_000
DEFAULT_STEPS = 20
MIN_NOMINAL_STEP_S = 1.0


class PrometheusSource(_Strict):
    """Where the ``prometheus`` checks send their PromQL (the HTTP API, ``/api/v1/query``)."""

    url: str = Field(
        description="Base URL of Prometheus, e.g. http://127.0.0.1:9090; demo:// for the demo"
        " target's own (started when Prometheus is installed, else its checks are skipped)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every query (e.g. Authorization: Bearer ${PROM_TOKEN}); redacted.",
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="Per-query total deadline.")
    verify_tls: bool = True
    concurrency: int = Field(
        8, ge=1, le=64, description="Queries of one phase sent at once (Prometheus serves them)."
    )

    _url = field_validator("url")(http_or_demo_url)


class SloSettings(_Strict):
    """``slo:`` at the top of the spec: shared sources and the time scale."""

    prometheus: PrometheusSource | None = None
    time_scale: float = Field(
        1.0,
        gt=0,
        le=100_000,
        allow_inf_nan=False,
        description="Run every SLO window this many times faster (demos, tests): a 'for: 10m'"
        " check at time_scale 100 observes 6 s, and the record says both.",
    )


class WindowFields(_Strict):
    """The time fields every SLO check has (see the module's docstring)."""

    threshold: ConditionField = Field(description="What a good value is: '< 300ms', '<= 0.3%'.")
    hold_for: float | None = Field(
        None,
        alias="for",
        description="The condition holds at every step of a window this long (10m); omitted:"
        " one value, now.",
    )
    step: float | None = Field(None, description="Evaluation step within the window (30s).")
    min_coverage: float = Field(
        0.9, gt=0, le=1, description="Fraction of steps that must have data, else NO DATA."
    )
    aggregate: Aggregate | None = Field(
        None, description="How several series combine: max, min, sum, avg or each."
    )
    kind: str = "slo"
    category: str = "performance"

    _durations = field_validator("hold_for", "step", mode="before")(_duration)

    @model_validator(mode="after")
    def _window_fits(self) -> Any:
        if self.hold_for is not None and self.hold_for <= 0:
            raise ValueError("for: must be a positive duration such as 10m")
        if self.step is not None and self.hold_for is None:
            raise ValueError("step: only applies with for: (a window); add for: e.g. 10m")
        self.window()  # a window that cannot be (step longer than it, too many steps)
        return self

    def window(self) -> Window | None:
        """The nominal window (None for an instant check)."""
        if self.hold_for is None:
            return None
        # A window's default step: a 20th of it, but no finer than 1 s unless it is short.
        step = self.step or max(
            self.hold_for / DEFAULT_STEPS, min(MIN_NOMINAL_STEP_S, self.hold_for / DEFAULT_STEPS)
        )
        return Window(self.hold_for, min(step, self.hold_for), self.min_coverage)

    def source_unit(self) -> UnitKind:
        """What the source returns: the kind of the threshold's unit (a latency held to
        '< 300ms' is a duration in seconds), or a number."""
        return self.threshold.unit_kind


class PrometheusFields(WindowFields):
    """A PromQL expression over the HTTP API: an instant query, or with ``for:`` a range query
    whose every step must hold."""

    type: Literal["prometheus"]
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="PromQL.")


class RatioSelectors(_Strict):
    numerator: str = Field(description='Counter selector, e.g. http_requests_total{status=~"5.."}')
    denominator: str = Field(description="Counter selector, e.g. http_requests_total")

    @field_validator("numerator", "denominator")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value


class QuantileOf(_Strict):
    q: float = Field(gt=0, lt=1, description="The quantile, e.g. 0.95.")
    buckets: str = Field(description="The histogram's _bucket series selector.")
    by: list[str] = Field(default_factory=list, description="Labels kept (one series each).")

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: str) -> str:
        selector = parse_selector(value)
        if not selector.name.endswith("_bucket"):
            raise ValueError(
                f"{value!r}: a histogram quantile reads the _bucket series, e.g."
                " http_request_duration_seconds_bucket"
            )
        return value


class MetricsFields(WindowFields):
    """A Prometheus-format ``/metrics`` endpoint scraped over the window: exactly one of
    ``rate``, ``ratio``, ``gauge`` or ``quantile``."""

    type: Literal["metrics"]
    path: str = Field("/metrics", pattern=r"^/", description="The endpoint, on the target.")
    rate: str | None = Field(None, description="Per-second rate of a counter selector.")
    ratio: RatioSelectors | None = Field(None, description="increase(num) / increase(den).")
    gauge: str | None = Field(None, description="A gauge selector's current value.")
    quantile: QuantileOf | None = Field(None, description="A histogram quantile (bucket deltas).")
    range: float | None = Field(
        None,
        description="Counters and histograms: each value covers the scrapes of this long"
        " before it (default: the step, or 10s for a check without for:).",
    )

    _range = field_validator("range", mode="before")(_duration)

    @model_validator(mode="after")
    def _one_expression(self) -> MetricsFields:
        given = [n for n in ("rate", "ratio", "gauge", "quantile") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of rate, ratio, gauge or quantile"
                + (f" (got {', '.join(given)})" if given else "")
            )
        for name in ("rate", "gauge"):
            value = getattr(self, name)
            if value is not None:
                parse_selector(value)
        if self.rate is not None:
            self.threshold.check_source(UnitKind.RATE, "a rate (per second)")
        elif self.ratio is not None:
            self.threshold.check_source(UnitKind.RATIO, "a ratio of counters")
        elif self.quantile is not None and self.threshold.unit_kind is not UnitKind.NUMBER:
            # Histograms of durations are in seconds (Prometheus' convention): '< 300ms'.
            self.threshold.check_source(UnitKind.DURATION, "a histogram quantile")
        return self

    def expression(self) -> str:
        """The scrape expression as the evidence shows it."""
        if self.rate is not None:
            return f"rate({self.rate})"
        if self.gauge is not None:
            return self.gauge
        if self.ratio is not None:
            return f"increase({self.ratio.numerator}) / increase({self.ratio.denominator})"
        assert self.quantile is not None
        by = f" by ({', '.join(self.quantile.by)})" if self.quantile.by else ""
        return f"histogram_quantile({self.quantile.q:g}, {self.quantile.buckets}){by}"


class JsonMetricFields(WindowFields):
    """A JSON endpoint (a metrics JSON such as ``/metrics.json``): the value a JSONPath
    selects, sampled at each step of the window."""

    type: Literal["json_metric"]
    path: str = Field(pattern=r"^/", description="The endpoint, on the target.")
    jsonpath: str = Field(description="Selects the number(s), e.g. $.variants.canary.p95_ms.")
    scale: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        description="Multiplies the value into the threshold's unit's base: 0.001 for a"
        " field in ms held to '< 300ms', 0.01 for a percentage held to '<= 0.3%'.",
    )

    @field_validator("jsonpath")
    @classmethod
    def _jsonpath(cls, value: str) -> str:
        check_jsonpath(value)
        return value


class LogClasses(_Strict):
    good: list[str] = Field(default_factory=list, description="Regexes of healthy lines.")
    concerning: list[str] = Field(default_factory=list, description="Regexes of warning lines.")
    bad: list[str] = Field(default_factory=list, description="Regexes of failure lines.")

    @model_validator(mode="after")
    def _compiles(self) -> LogClasses:
        for pattern in (*self.good, *self.concerning, *self.bad):
            check_regex(pattern)
        if not (self.concerning or self.bad):
            raise ValueError("give at least one concerning or bad pattern")
        return self


#: Bytes a log_pattern check reads in one window by default (then it stops reading and says so).
DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024


class JournaldSource(_Strict):
    """A systemd journal: followed live through ``journalctl`` (``unit`` and/or ``identifier``),
    or a file written by ``journalctl -o json`` followed like a log file (``file``)."""

    unit: str | None = Field(
        None, min_length=1, max_length=256, description="journalctl --unit, e.g. shop.service."
    )
    identifier: str | None = Field(
        None, min_length=1, max_length=256, description="journalctl --identifier (syslog tag)."
    )
    file: str | None = Field(
        None, min_length=1, description="A `journalctl -o json` export (JSON lines), followed."
    )

    @field_validator("unit", "identifier")
    @classmethod
    def _one_token(cls, value: str | None) -> str | None:
        # Each is one --unit=/--identifier= argument of journalctl: a newline could only be a
        # mistake, and exec refuses a NUL.
        if value is not None and ("\0" in value or "\n" in value):
            raise ValueError("must be one line, without NUL characters")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> JournaldSource:
        live = self.unit is not None or self.identifier is not None
        if live == (self.file is not None):
            raise ValueError(
                "give unit and/or identifier (followed through journalctl), or file (a"
                " `journalctl -o json` export), not both"
                if live
                else "give unit: (e.g. shop.service) and/or identifier:, or file: a"
                " `journalctl -o json` export"
            )
        return self

    def argv(self) -> list[str]:
        """The journalctl command that follows the journal from now on, one JSON entry a line
        (``--quiet``: no informational messages on stderr)."""
        argv = ["journalctl", "--follow", "--lines=0", "--output=json", "--quiet"]
        if self.unit is not None:
            argv.append(f"--unit={self.unit}")
        if self.identifier is not None:
            argv.append(f"--identifier={self.identifier}")
        return argv


_SOURCES = ("file", "command", "journald")


class LogPatternFields(_Strict):
    """Log lines watched for the window, from a file, a command's output or the systemd
    journal: each new line classed GOOD, CONCERNING or BAD by the first class whose pattern
    matches (bad, then concerning, then good)."""

    type: Literal["log_pattern"]
    file: str | None = Field(
        None, description="A log file (its rotations are followed); demo://log for the demo's."
    )
    command: list[str] | None = Field(
        None,
        min_length=1,
        description="An argv list (never a shell string) run for the window, its stdout read as"
        " lines: e.g. [kubectl, logs, -f, deploy/shop, --since=1s]. Killed with everything it"
        " started when the window ends.",
    )
    stderr: bool = Field(
        False, description="With command: read its stderr as lines too (merged with stdout)."
    )
    journald: JournaldSource | None = Field(
        None,
        description="The systemd journal: {unit: shop.service} and/or {identifier: shop}"
        " followed through journalctl, or {file: export.json} written by journalctl -o json;"
        " each entry's MESSAGE is a line.",
    )
    patterns: LogClasses
    max_bad: int = Field(0, ge=0, description="BAD lines allowed in the window.")
    concerning_rate: ConditionField | None = Field(
        None, description="Rate of CONCERNING lines that is fine, e.g. '<= 20/hr'."
    )
    hold_for: float = Field(
        alias="for", description="How long to watch the source (scaled by slo.time_scale)."
    )
    from_start: bool = Field(
        False,
        description="A file (or journald file): also read what it holds already (default: new"
        " lines only).",
    )
    max_line_bytes: int = Field(64 * 1024, gt=0, le=16 * 1024 * 1024)
    max_read_bytes: int = Field(
        DEFAULT_MAX_READ_BYTES,
        gt=0,
        le=1024**3,
        description="Bytes read in one window at most; past it the check stops reading and"
        " cannot pass (an ERROR, or FAILED by what it read).",
    )
    kind: str = "slo"
    category: str = "reliability"

    _durations = field_validator("hold_for", mode="before")(_duration)

    @field_validator("hold_for")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("for: must be a positive duration such as 10m")
        return value

    @field_validator("concerning_rate")
    @classmethod
    def _a_rate(cls, value: Any) -> Any:
        if value is not None:
            value.check_source(UnitKind.RATE, "a rate of log lines")
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "give the command as an argv list, e.g. [kubectl, logs, -f, deploy/shop]: it is"
                " never given to a shell, so a string cannot be split safely"
            )
        return value

    @field_validator("command")
    @classmethod
    def _argv_items(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value[0]:
                raise ValueError("the program (the first item) is empty")
            if any("\0" in item for item in value):
                raise ValueError("an argument holds a NUL character")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> LogPatternFields:
        given = [name for name in _SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one source: file, command or journald"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.stderr and self.command is None:
            raise ValueError("stderr: applies to a command source only")
        reads_a_file = self.file is not None or (
            self.journald is not None and self.journald.file is not None
        )
        if self.from_start and not reads_a_file:
            raise ValueError(
                "from_start: applies to a file (file:, journald: {file:}); a command's"
                " output is read from when it starts"
            )
        return self


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class BurnRateFields(_Strict):
    """Multiwindow, multi-burn-rate gate over Prometheus: an objective over a period and a
    good/total (or bad/total) pair of PromQL queries with a ``{{.window}}`` placeholder, or an
    OpenSLO / Sloth file that defines them."""

    type: Literal["burn_rate"]
    objective: float | None = Field(
        None, description="The SLO target: 99.9% (or 0.999). From slo_file when omitted."
    )
    period: float | None = Field(None, description="The SLO period (30d by default).")
    good_query: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    bad_query: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    total_query: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    slo_file: str | None = Field(None, description="An OpenSLO v1 or Sloth file, beside the spec.")
    slo_name: str | None = Field(None, description="Which SLO of slo_file (when it has several).")
    min_events: int = Field(
        100, ge=0, description="Fewer events than this in a deciding window is NO DATA."
    )
    phase_length: float | None = Field(
        None,
        description="How long the phase has observed the deployment (decides which rule pairs"
        " apply); default: the fast pair only (1h/5m).",
    )
    kind: str = "slo"
    category: str = "reliability"

    _durations = field_validator("period", "phase_length", mode="before")(_duration)

    @field_validator("objective", mode="before")
    @classmethod
    def _objective(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _PERCENT.match(value)
            if match is None:
                raise ValueError(f"objective {value!r}: write a percentage such as 99.9%")
            return float(Decimal(match[1]) / 100)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1:
            return float(Decimal(str(value)) / 100)  # 99.9 written without the %
        return value

    @model_validator(mode="after")
    def _source(self) -> BurnRateFields:
        if self.objective is not None and not 0 < self.objective < 1:
            raise ValueError(f"objective {self.objective!r}: between 0% and 100%, e.g. 99.9%")
        inline = self.good_query is not None or self.bad_query is not None
        if self.slo_file is not None:
            if inline or self.total_query is not None:
                raise ValueError("give slo_file or the queries, not both")
            return self
        if (self.good_query is None) == (self.bad_query is None) or self.total_query is None:
            raise ValueError(
                "give total_query and one of good_query or bad_query (with {{.window}} where"
                " the window goes), or slo_file: an OpenSLO/Sloth file"
            )
        if self.objective is None:
            raise ValueError("give objective: e.g. 99.9%")
        return self
