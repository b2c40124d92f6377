"""The gate spec: what ``releasegate.yaml`` may contain, as pydantic models.

Loading (YAML, ``${VAR}`` interpolation, error messages) lives in ``loader.py``; this module only
says what is valid. Every model forbids unknown keys so that a typo is an error, not a silently
ignored setting.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import checktypes, spec_canary, spec_db, spec_load, spec_slo
from .model import KINDS, Action, CheckInfo, Mode, Severity
from .phases import Phase
from .spec_db import DB_BACKENDS, Database
from .spec_text import check_jsonpath, check_regex, http_or_demo_url

Verdicts = Literal["GO", "CONDITIONAL GO", "NO-GO", "INCONCLUSIVE"]
_ROLLBACK_ON: tuple[Verdicts, ...] = ("NO-GO", "INCONCLUSIVE")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Deployment(Strict):
    """The deployment under test."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Deployment id; also the folder its records are written to.",
    )
    version: str | None = Field(None, description="Expected deployed version.")
    commit: str | None = Field(None, description="Expected deployed commit.")
    description: str = ""


class Target(Strict):
    """Where the deployment answers. ``demo://`` starts the embedded demo target."""

    base_url: str = Field(description="Base URL of the deployment, or demo:// for the demo.")
    baseline_url: str | None = Field(None, description="Base URL of the previous version.")
    timeout_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Default per-request total deadline: connect, headers and the whole body.",
    )
    verify_tls: bool = True
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request to the target's origin (never to another).",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        le=1024**3,
        description="Largest answer body read (after decompression); a larger one is an error.",
    )

    _url = field_validator("base_url", "baseline_url")(http_or_demo_url)

    @property
    def is_demo(self) -> bool:
        return self.base_url == "demo://"


class Scoring(Strict):
    """Readiness score thresholds (0-10)."""

    go: float = Field(9.0, gt=0, le=10, allow_inf_nan=False)
    conditional: float = Field(7.5, ge=0, le=10, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Scoring:
        if self.conditional > self.go:
            raise ValueError(f"conditional ({self.conditional}) must not be above go ({self.go})")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def duration_s(value: Any) -> float:
    """Seconds from a number or a string such as ``90s``, ``30m``, ``2h``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration (seconds, or e.g. 30m), not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"expected a duration such as 90s, 30m or 2h, not {value!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class RunPolicy(Strict):
    """How the gate fails closed: allowances, the whole-run deadline, interrupted runs."""

    max_errors: int = Field(
        0,
        ge=0,
        le=10_000,
        description="ERROR or NO_DATA outcomes of non-critical checks that still allow GO"
        " (default 0: any blocks GO). Critical checks and checks that did not run never count.",
    )
    deadline: float = Field(
        1800.0,
        gt=0,
        le=7 * 86400,
        allow_inf_nan=False,
        description="Whole-run deadline (seconds, or 90s / 30m / 2h): a run still going then"
        " is ended and recorded INCONCLUSIVE.",
    )
    on_interrupt: Literal["none", "hooks"] = Field(
        "none",
        description="An interrupted run (SIGTERM, Ctrl-C, deadline) records INCONCLUSIVE; `hooks`"
        " also fires the hooks for INCONCLUSIVE, `none` (default) fires nothing.",
    )

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> float:
        return duration_s(value)


class SkipIf(Strict):
    """Skip a check on purpose, shown as SKIPPED: ``{condition: "${NO_DB:-false}", reason: x}``."""

    condition: bool = Field(description="true/false, usually from ${VAR:-false}.")
    reason: str = Field(min_length=1, description="Why the check does not apply here.")


class PhaseSettings(Strict):
    mode: Mode = Mode.ENFORCE
    description: str = ""


class Retry(Strict):
    """Retry a request until its expectations hold (eventual consistency)."""

    deadline_s: float = Field(10.0, gt=0, le=3600)
    backoff_s: float = Field(0.2, gt=0, le=60)
    factor: float = Field(2.0, ge=1, le=10)
    max_backoff_s: float = Field(5.0, gt=0, le=600)


class Expect(Strict):
    """What an HTTP answer must look like."""

    status: int | list[int] | None = Field(200, description="Allowed status code(s).")
    json_subset: Any = Field(
        None, alias="json", description="The JSON body must contain this (recursive subset)."
    )
    jsonpath: dict[str, Any] = Field(
        default_factory=dict, description="JSONPath expression -> expected value."
    )
    body_regex: str | None = Field(None, description="A regular expression the body must match.")
    headers: dict[str, str] = Field(default_factory=dict, description="Expected header values.")
    max_latency_ms: float | None = Field(None, gt=0)

    model_config = ConfigDict(populate_by_name=True)  # merged with Strict's

    @field_validator("status")
    @classmethod
    def _status_codes(cls, value: int | list[int] | None) -> int | list[int] | None:
        for code in [value] if isinstance(value, int) else value or []:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code: use 100-599")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            check_regex(value)
        return value

    @field_validator("jsonpath")
    @classmethod
    def _jsonpaths_parse(cls, value: dict[str, Any]) -> dict[str, Any]:
        for expression in value:
            check_jsonpath(expression)
        return value


class HttpRequest(Strict):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: str = Field(pattern=r"^/", description="Path below the target's base URL.")
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    timeout_s: float | None = Field(
        None, gt=0, le=600, description="Total deadline of the request (default: the target's)."
    )
    max_body_bytes: int | None = Field(
        None, gt=0, le=1024**3, description="Largest answer body (default: the target's)."
    )
    follow_redirects: bool = Field(
        False,
        description="Follow up to 5 redirects (each checked; no credentials or body to another"
        " origin). Off: a 3xx is the answer, judged by expect.status.",
    )

    model_config = ConfigDict(populate_by_name=True)  # merged with Strict's

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        if self.json_body is not None and self.body is not None:
            raise ValueError("json and body are both given: a request has one body, keep one")
        return self


class CheckBase(Strict):
    """Fields every check has."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    phases: list[Phase] = Field(min_length=1, description="Phases this check belongs to.")
    category: str = "health"
    severity: Severity = Severity.MAJOR
    weight: float | None = Field(
        None, ge=0, le=1000, allow_inf_nan=False, description="Defaults by severity: 3, 2, 1."
    )
    on_fail: Action | None = None
    description: str = ""
    skip_if: SkipIf | None = None
    timeout: float | None = Field(
        None,
        gt=0,
        le=7 * 86400,
        allow_inf_nan=False,
        description="The check's own deadline (seconds, or 90s / 30m): past it the check is an"
        " ERROR. Default by kind: smoke 60s, db 2m, slo 10m, canary 15m, load and chaos 30m.",
    )

    kind: str = Field("smoke", json_schema_extra={"enum": list(KINDS)})

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return None if value is None else duration_s(value)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            import difflib

            close = difflib.get_close_matches(value, list(KINDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown kind {value!r}{hint}: one of {', '.join(KINDS)}")
        return value

    def info(self, nodeid: str = "") -> CheckInfo:
        return CheckInfo(
            name=self.name,
            kind=self.kind,
            category=self.category,
            severity=self.severity,
            weight=self.weight if self.weight is not None else self.severity.default_weight,
            phases=tuple(self.phases),
            on_fail=self.on_fail,
            description=self.description,
            nodeid=nodeid,
        )


class HttpCheck(CheckBase):
    """A declarative HTTP request and what its answer must look like."""

    type: Literal["http"]
    request: HttpRequest
    expect: Expect = Field(default_factory=Expect)
    retry: Retry | None = None


class LivenessCheck(CheckBase):
    """GET the liveness endpoint; it must answer 2xx."""

    type: Literal["liveness"]
    path: str = Field("/healthz", pattern=r"^/")
    max_latency_ms: float | None = Field(None, gt=0)
    retry: Retry | None = None


class ReadinessCheck(CheckBase):
    """GET the readiness endpoint; it must answer 2xx and report every dependency up."""

    type: Literal["readiness"]
    path: str = Field("/readyz", pattern=r"^/")
    mode: Literal["json", "status", "text"] = Field(
        "json",
        description="json: a 2xx answer with every dependency healthy; status: any 2xx answer"
        " (Prometheus /-/ready); text: a 2xx answer whose body is expect_body (Kubernetes"
        " /readyz answers 'ok').",
    )
    expect_body: str = Field(
        "ok", min_length=1, description="mode text: the body, trimmed, case-insensitive."
    )
    dependencies_key: str = Field("dependencies", description="Key of the per-dependency map.")
    healthy_values: list[str] = Field(default_factory=lambda: ["ok", "healthy", "up", "ready"])
    required: list[str] = Field(
        default_factory=list, description="Dependencies that must be present and healthy."
    )
    retry: Retry | None = None


class ReadFrom(Strict):
    """Where in an answer a value is: exactly one of a JSON key, a JSONPath, a header or a
    regular expression over the text body (its first group if it has one, else the match)."""

    key: str | None = Field(None, min_length=1, description="JSON key or dotted path (a.b).")
    jsonpath: str | None = Field(None, min_length=1, description="JSONPath, e.g. $.build.sha.")
    header: str | None = Field(None, min_length=1, description="Response header name.")
    regex: str | None = Field(None, min_length=1, description="Regex over the text body.")

    @model_validator(mode="after")
    def _one(self) -> ReadFrom:
        given = [name for name in ("key", "jsonpath", "header", "regex") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of key, jsonpath, header or regex"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.jsonpath is not None:
            check_jsonpath(self.jsonpath)
        if self.regex is not None:
            check_regex(self.regex)
            if re.compile(self.regex).groups > 1:
                raise ValueError(f"regex {self.regex!r} has several groups: keep one, or none")
        return self

    @property
    def needs_json(self) -> bool:
        return self.key is not None or self.jsonpath is not None

    def describe(self) -> str:
        if self.header is not None:
            return f"header {self.header}"
        if self.regex is not None:
            return f"regex {self.regex}"
        return str(self.jsonpath or self.key)


class VersionCheck(CheckBase):
    """GET the version endpoint; the deployed version/commit must equal the expected one."""

    type: Literal["version"]
    path: str = Field("/version", pattern=r"^/")
    version_key: str = Field("version", description="Shorthand for version_from: {key: ...}.")
    commit_key: str = Field("commit", description="Shorthand for commit_from: {key: ...}.")
    version_from: ReadFrom | None = Field(
        None, description="Where the version is: {key|jsonpath|header|regex: ...}."
    )
    commit_from: ReadFrom | None = Field(
        None, description="Where the commit is: {key|jsonpath|header|regex: ...}."
    )
    retry: Retry | None = None

    @model_validator(mode="after")
    def _one_source(self) -> VersionCheck:
        for what in ("version", "commit"):
            if getattr(self, f"{what}_from") is not None and f"{what}_key" in self.model_fields_set:
                raise ValueError(f"give {what}_key or {what}_from, not both")
        return self

    def source(self, what: Literal["version", "commit"]) -> ReadFrom:
        """Where ``what`` is read from (``*_key`` when no ``*_from`` is given)."""
        given: ReadFrom | None = getattr(self, f"{what}_from")
        return given if given is not None else ReadFrom(key=getattr(self, f"{what}_key"))


class FuzzEndpoint(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    example: dict[str, Any] = Field(
        default_factory=dict, description="A valid JSON body; its fields are mutated."
    )


class BadInputCheck(CheckBase):
    """Malformed requests (hypothesis) must never get a 5xx or hang."""

    type: Literal["bad_input"]
    category: str = "security"
    endpoints: list[FuzzEndpoint] = Field(min_length=1)
    max_examples: int = Field(60, ge=1, le=10_000)
    deadline_s: float = Field(20.0, gt=0, le=600)
    request_timeout_s: float = Field(3.0, gt=0, le=60)


class DbCheckBase(CheckBase):
    """Fields of every DB check; their own fields are in ``spec_db.py``."""

    kind: str = "db"
    category: str = "data"


class OrphansCheck(spec_db.OrphansFields, DbCheckBase):
    """Child rows whose parent is missing: reflected foreign keys and declared references."""


class NotNullCheck(spec_db.NotNullFields, DbCheckBase):
    """Rows where a column is NULL."""


class UniqueCheck(spec_db.UniqueFields, DbCheckBase):
    """Keys (one column or a compound key) that more than one row has."""


class AcceptedValuesCheck(spec_db.AcceptedValuesFields, DbCheckBase):
    """Rows whose column holds a value outside the accepted list (NULL is not counted)."""


class ValueRangeCheck(spec_db.ValueRangeFields, DbCheckBase):
    """Rows whose column is outside [min, max] (NULL is not counted)."""


class RowCountCheck(spec_db.RowCountFields, DbCheckBase):
    """The table's row count: bounds, and growth against a snapshot's count."""


class FreshnessCheck(spec_db.FreshnessFields, DbCheckBase):
    """The newest timestamp in a column is at most max_age_s old."""


class SchemaDriftCheck(spec_db.SchemaDriftFields, DbCheckBase):
    """The live schema against a snapshot: tables, columns, types, indexes, foreign keys."""

    @model_validator(mode="after")
    def _capture_in_its_phases(self) -> SchemaDriftCheck:
        if self.capture_at is not None and self.capture_at not in self.phases:
            raise ValueError(
                f"capture_at {self.capture_at.value} is not one of the check's phases: add it"
                f" to phases (e.g. phases: [{self.capture_at.value}, t24h])"
            )
        return self


class MigrationHeadCheck(spec_db.MigrationHeadFields, DbCheckBase):
    """The applied migration revision (alembic_version) is the expected one."""


class SqlCheck(spec_db.SqlFields, DbCheckBase):
    """A read-only query returning one number, held to min/max."""


class PrometheusCheck(spec_slo.PrometheusFields, CheckBase):
    """PromQL held to a threshold, now or at every step of a window (kind slo)."""


class MetricsCheck(spec_slo.MetricsFields, CheckBase):
    """A scraped /metrics endpoint: a rate, ratio, gauge or histogram quantile (kind slo)."""


class JsonMetricCheck(spec_slo.JsonMetricFields, CheckBase):
    """A number in a JSON endpoint, by JSONPath, sampled over a window (kind slo)."""


class LogPatternCheck(spec_slo.LogPatternFields, CheckBase):
    """New lines of a log file classed GOOD / CONCERNING / BAD over a window (kind slo)."""


class BurnRateCheck(spec_slo.BurnRateFields, CheckBase):
    """Multiwindow multi-burn-rate gate of an SLO over Prometheus (kind slo)."""


class CanaryCheck(spec_canary.CanaryFields, CheckBase):
    """The canary against its baseline, metric by metric, with a test per metric (kind canary)."""


class LoadCheck(spec_load.LoadFields, CheckBase):
    """A locust run held to k6-style thresholds on exact percentiles (kind load)."""


# The check types: one model and one probe each (``module:function`` in releasegate.probes).
for _model, _probe in (
    (HttpCheck, "http:probe_http"),
    (LivenessCheck, "http:probe_liveness"),
    (ReadinessCheck, "http:probe_readiness"),
    (VersionCheck, "http:probe_version"),
    (BadInputCheck, "fuzz:probe_bad_input"),
    (OrphansCheck, "sql:probe_integrity"),
    (NotNullCheck, "sql:probe_integrity"),
    (UniqueCheck, "sql:probe_integrity"),
    (AcceptedValuesCheck, "sql:probe_integrity"),
    (ValueRangeCheck, "sql:probe_integrity"),
    (RowCountCheck, "sql:probe_row_count"),
    (FreshnessCheck, "sql:probe_freshness"),
    (SchemaDriftCheck, "sql:probe_schema_drift"),
    (MigrationHeadCheck, "sql:probe_migration_head"),
    (SqlCheck, "sql:probe_sql"),
    (PrometheusCheck, "slo:probe_prometheus"),
    (MetricsCheck, "slo:probe_metrics"),
    (JsonMetricCheck, "slo:probe_json_metric"),
    (LogPatternCheck, "logs:probe_log_pattern"),
    (BurnRateCheck, "slo:probe_burn_rate"),
    (CanaryCheck, "canary:probe_canary"),
    (LoadCheck, "load:probe_load"),
):
    checktypes.register(_model, _probe)

if TYPE_CHECKING:
    Check = CheckBase
else:
    Check = checktypes.union()


class CommandHook(Strict):
    """Run a command (an argv list, never a shell string) when the decision is one of ``on``."""

    name: str
    type: Literal["command"] = "command"
    argv: list[str] = Field(min_length=1)
    on: list[Verdicts] = Field(default_factory=lambda: list(_ROLLBACK_ON))
    timeout_s: float = Field(60.0, gt=0, le=3600)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None


class Spec(Strict):
    """A whole ``releasegate.yaml``."""

    version: Literal[1] = 1
    deployment: Deployment
    target: Target
    scoring: Scoring = Field(default_factory=Scoring)
    policy: RunPolicy = Field(default_factory=RunPolicy)
    phases: dict[Phase, PhaseSettings] = Field(
        default_factory=lambda: {Phase.T0H: PhaseSettings(mode=Mode.DARK)}
    )
    checks: list[Check] = Field(default_factory=list)
    hooks: list[CommandHook] = Field(default_factory=list)
    databases: dict[str, Database] = Field(
        default_factory=dict, description="Databases the DB checks read, by name (main first)."
    )
    slo: spec_slo.SloSettings = Field(
        default_factory=spec_slo.SloSettings,
        description="SLO sources shared by the checks (prometheus) and the time scale.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Where gate traffic may go besides loopback: host names (exact, or"
        " *.example.com), IP addresses or networks (10.0.0.0/8). HTTP targets and each redirect"
        " hop, database hosts and hooks' webhooks are checked against it; empty means loopback"
        " only.",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        from .netguard import validate_allowed_hosts

        return validate_allowed_hosts(value)

    @model_validator(mode="after")
    def _known_databases(self) -> Spec:
        problem = spec_db.unknown_database(self.checks, self.databases)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _read_only_queries(self, info: ValidationInfo) -> Spec:
        """A ``sql`` check's query is refused at load, not at 3 a.m., if it is not one SELECT.

        The loader passes the databases' backends as validation context, and each check's
        query is judged where it stands (its own line in the error); without it, here.
        """
        if isinstance(info.context, dict) and DB_BACKENDS in info.context:
            return self
        backends = {name: spec_db.backend_of(db.url) for name, db in self.databases.items()}
        for index, check in enumerate(self.checks):
            query = getattr(check, "query", None)
            if isinstance(check, (SqlCheck, MigrationHeadCheck)) and query is not None:
                problem = spec_db.refused_query(query, backends.get(check.database))
                if problem:
                    raise ValueError(f"checks[{index}].query ({check.name}): {problem}")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Spec:
        seen: set[str] = set()
        for index, check in enumerate(self.checks):
            if check.name in seen:
                raise ValueError(
                    f"checks[{index}].name {check.name!r} is used twice: check names must be unique"
                )
            seen.add(check.name)
        return self

    def mode_for(self, phase: Phase) -> Mode:
        settings = self.phases.get(phase)
        return settings.mode if settings else Mode.ENFORCE

    def checks_for(self, phase: Phase) -> list[Any]:
        return [c for c in self.checks if phase in c.phases]
