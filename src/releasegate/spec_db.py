"""The database part of the gate spec: ``databases:`` and the fields of the DB check types.

The check classes themselves (``OrphansCheck``, ``NotNullCheck``, ...) are declared in
``spec.py`` on top of ``CheckBase`` and the field sets below, so that this module needs nothing
from ``spec.py`` and either can be imported first. Import the check classes from
``releasegate.spec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .phases import Phase
from .slo.window import Window
from .spec_slo import DEFAULT_STEPS
from .spec_text import StrictModel as _Strict
from .spec_text import duration_or_none as _duration

# A table or column name, optionally schema-qualified (``audit.risk_log``). Quoted by the dialect.
IDENT = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"
COLUMN = r"^[A-Za-z_][A-Za-z0-9_$]*$"

DEFAULT_DATABASE = "main"
# Validation context key: the backend (sqlite, postgresql, ...) of each declared database.
DB_BACKENDS = "db_backends"


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Database(_Strict):
    """A database the DB checks read, by SQLAlchemy URL. ``demo://`` is the demo target's."""

    url: str = Field(
        description="SQLAlchemy URL, e.g. postgresql+psycopg://gate:${DB_PASSWORD}@db/app,"
        " mysql+pymysql://..., sqlite:///path.db; demo:// for the embedded demo target."
    )
    statement_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Per-statement timeout; a slower query is an ERROR."
    )
    schema_name: str | None = Field(
        None, alias="schema", pattern=COLUMN, description="Schema to reflect and query."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value == "demo://" or "://" in value:
            return value
        raise ValueError(
            "must be a SQLAlchemy URL such as sqlite:///app.db or"
            " postgresql+psycopg://user:${DB_PASSWORD}@host/db (or demo://)"
        )


class DbFields(_Strict):
    """Fields of every DB check."""

    database: str = Field(DEFAULT_DATABASE, description="Name under databases: (default main).")
    examples: int = Field(20, ge=0, le=1000, description="Offending keys shown as evidence.")


class TableFields(DbFields):
    """Fields of the checks on one table."""

    table: str = Field(pattern=IDENT, description="Table checked, optionally schema.table.")
    where: str | None = Field(
        None, description="SQL predicate restricting the rows checked, e.g. ts > now() - ..."
    )
    max_violations: int = Field(0, ge=0, description="Offending rows tolerated (default 0).")


class Reference(_Strict):
    """A logical reference: ``table.columns`` point at ``parent.parent_columns``."""

    table: str | None = Field(
        None, pattern=IDENT, description="Child table; defaults to the check's table."
    )
    columns: list[str] = Field(min_length=1, description="Child column(s).")
    parent: str = Field(pattern=IDENT, description="Parent table.")
    parent_columns: list[str] = Field(
        default_factory=lambda: ["id"], min_length=1, description="Parent key column(s)."
    )

    _lists = field_validator("columns", "parent_columns", mode="before")(_as_list)

    @model_validator(mode="after")
    def _same_arity(self) -> Reference:
        if len(self.columns) != len(self.parent_columns):
            raise ValueError(
                f"columns {self.columns} and parent_columns {self.parent_columns} must have"
                " the same length"
            )
        return self


class OrphansFields(DbFields):
    type: Literal["orphans"]
    table: str | None = Field(
        None, pattern=IDENT, description="Only references from this child table (default all)."
    )
    references: list[Reference] = Field(
        default_factory=list, description="Logical references the schema does not declare."
    )
    foreign_keys: bool = Field(True, description="Also check every reflected foreign key.")
    max_violations: int = Field(0, ge=0, description="Orphan rows tolerated (default 0).")

    @model_validator(mode="after")
    def _references_have_a_table(self) -> OrphansFields:
        for index, ref in enumerate(self.references):
            if ref.table is None and self.table is None:
                raise ValueError(
                    f"references[{index}] names no table: set table: on the reference or on"
                    " the check"
                )
        return self


class NotNullFields(TableFields):
    type: Literal["not_null"]
    columns: list[str] = Field(min_length=1, description="Columns that must not be NULL.")

    _lists = field_validator("columns", mode="before")(_as_list)


class UniqueFields(TableFields):
    type: Literal["unique"]
    columns: list[str] = Field(
        min_length=1, description="The key: one column, or several for a compound key."
    )

    _lists = field_validator("columns", mode="before")(_as_list)


class AcceptedValuesFields(TableFields):
    type: Literal["accepted_values"]
    column: str = Field(pattern=COLUMN)
    values: list[str | int | float | bool] = Field(min_length=1)


def _check_bounds(low: float | None, high: float | None, what: str) -> None:
    if low is None and high is None:
        raise ValueError(f"set min:, max: or both for {what}")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min ({low}) must not be above max ({high})")


class ValueRangeFields(TableFields):
    type: Literal["value_range"]
    column: str = Field(pattern=COLUMN)
    min: float | None = Field(None, description="Lowest accepted value (inclusive).")
    max: float | None = Field(None, description="Highest accepted value (inclusive).")

    @model_validator(mode="after")
    def _bounds(self) -> ValueRangeFields:
        _check_bounds(self.min, self.max, "the accepted range")
        return self


class RowCountFields(TableFields):
    type: Literal["row_count"]
    min: int | None = Field(None, ge=0, description="Fewest rows accepted.")
    max: int | None = Field(None, ge=0, description="Most rows accepted.")
    baseline: str | None = Field(
        None, description="Snapshot file of `releasegate db snapshot` (default: its default path)."
    )
    max_growth: float | None = Field(
        None, gt=0, description="rows / baseline rows must be <= this (1.5: at most +50%)."
    )
    min_growth: float | None = Field(
        None, ge=0, description="rows / baseline rows must be >= this (1.0: must not shrink)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> RowCountFields:
        if self.max_growth is None and self.min_growth is None:
            _check_bounds(self.min, self.max, "the row count (or max_growth/min_growth)")
        return self


class FreshnessFields(TableFields):
    type: Literal["freshness"]
    column: str = Field(pattern=COLUMN)
    max_age_s: float = Field(gt=0, description="The newest value must be at most this old.")


DriftKind = Literal["added", "removed", "changed"]


def _default_fail_on() -> list[DriftKind]:
    return ["removed", "changed"]


class SchemaDriftFields(DbFields):
    type: Literal["schema_drift"]
    baseline: str | None = Field(
        None, description="Snapshot file of `releasegate db snapshot` (default: its default path)."
    )
    tables: list[str] | None = Field(None, description="Compare only these tables.")
    fail_on: list[DriftKind] = Field(
        default_factory=_default_fail_on,
        description="Which differences fail the check; the others are reported only.",
    )
    capture_if_missing: bool = Field(
        False, description="Write the baseline when there is none (use it in phase t0h)."
    )
    capture_at: Phase | None = Field(
        None,
        description="In this phase (usually t0h, the dark merge), write the baseline afresh"
        " (schema and row counts) instead of comparing; later phases compare against it.",
    )


def _query_is_one_select(fields: Any, info: ValidationInfo) -> Any:
    """A check's own query must be one SELECT the query guard accepts, or the spec does not
    load. The loader names each database's backend (validation context)."""
    query = getattr(fields, "query", None)
    if isinstance(info.context, dict) and query is not None:
        backends = info.context.get(DB_BACKENDS, {})
        problem = refused_query(query, backends.get(fields.database))
        if problem:
            raise ValueError(f"its query: {problem}")
    return fields


class MigrationHeadFields(DbFields):
    type: Literal["migration_head"]
    expected: list[str] = Field(min_length=1, description="Expected revision(s).")
    query: str | None = Field(
        None, description="Query returning the revision(s); default alembic_version."
    )

    _lists = field_validator("expected", mode="before")(_as_list)
    _one_select = model_validator(mode="after")(_query_is_one_select)


#: What a duration field takes: seconds, or text such as 10m, 1h30m, 500ms (``parse_duration``).
_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h|d|w))+)\s*$"},
            {"type": "null"},
        ],
        "examples": ["10m", "30s"],
    }
)
Duration = Annotated[float | None, _DURATION_SCHEMA]


class SqlFields(DbFields):
    """One number from a read-only query, held to min/max: once, or with ``for:`` at every
    step of a window (the SLO library's semantics, docs/slo.md), which makes it kind ``slo``
    unless the spec says ``kind:``."""

    type: Literal["sql"]
    query: str = Field(min_length=1, description="A read-only query returning one number.")
    min: float | None = Field(None, description="The number must be >= this.")
    max: float | None = Field(None, description="The number must be <= this.")
    hold_for: Duration = Field(
        None,
        alias="for",
        description="Sample the query at every step of a window this long (10m), each sample"
        " held to min/max; omitted: one sample, now. Scaled by slo.time_scale.",
    )
    step: Duration = Field(None, description="How often within the window (default: a 20th of it).")
    min_coverage: float = Field(
        0.9,
        gt=0,
        le=1,
        description="With for: the fraction of steps that must have a number, else NO DATA.",
    )

    _one_select = model_validator(mode="after")(_query_is_one_select)
    _durations = field_validator("hold_for", "step", mode="before")(_duration)

    @model_validator(mode="before")
    @classmethod
    def _windowed_is_slo(cls, data: Any) -> Any:
        """A check sampled over a window is an SLO check (marker, default deadline) unless
        the spec names its kind."""
        windowed = isinstance(data, dict) and (
            data.get("for") is not None or data.get("hold_for") is not None
        )
        if windowed and "kind" not in data:
            return {**data, "kind": "slo"}
        return data

    @model_validator(mode="after")
    def _bounds_and_window(self) -> SqlFields:
        _check_bounds(self.min, self.max, "the query's number")
        if self.hold_for is None:
            for name in ("step", "min_coverage"):
                if name in self.model_fields_set:
                    raise ValueError(f"{name}: only applies with for: (a window); add e.g. for: 5m")
        elif self.hold_for <= 0:
            raise ValueError("for: must be a positive duration such as 10m")
        elif self.step is not None and self.step <= 0:
            raise ValueError("step: must be a positive duration such as 30s")
        self.window()  # a window that cannot be (a step longer than it, too many steps)
        return self

    def window(self) -> Window | None:
        """The nominal window (None for a check of one sample)."""
        if self.hold_for is None:
            return None
        step = self.step or self.hold_for / DEFAULT_STEPS
        return Window(self.hold_for, step, self.min_coverage)


def refused_query(query: str, backend: str | None) -> str | None:
    """Why ``query`` may not run on ``backend`` (the query guard's reason), or None."""
    if backend is None:
        return None  # an unknown database is named elsewhere
    from .errors import ProbeError
    from .sqlguard import guard_read_query  # sqlglot: imported for specs with SQL only

    try:
        guard_read_query(query, backend)
    except ProbeError as err:
        return str(err)
    return None


def backends_of(raw_databases: Any) -> dict[str, str | None]:
    """Each declared database's backend, from the spec's raw ``databases`` mapping."""
    if not isinstance(raw_databases, dict):
        return {}
    return {
        str(name): backend_of(db["url"])
        for name, db in raw_databases.items()
        if isinstance(db, dict) and isinstance(db.get("url"), str)
    }


def backend_of(url: str) -> str | None:
    """The SQL dialect family of a database URL (sqlite, postgresql, mysql, mariadb), if known."""
    if url == "demo://":
        return "sqlite"
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    return scheme if scheme in ("sqlite", "postgresql", "mysql", "mariadb") else None


def unknown_database(checks: Sequence[Any], databases: Mapping[str, Database]) -> str | None:
    """The message for the first DB check naming an undeclared database, or None."""
    for index, check in enumerate(checks):
        name = getattr(check, "database", None)
        if name is None or name in databases:
            continue
        known = ", ".join(sorted(databases)) or "none declared"
        return (
            f"checks[{index}] ({check.name}) uses database {name!r}, which is not under"
            f" databases: (known: {known}). Fix: declare it, e.g. databases: {{{name}:"
            " {url: 'sqlite:///app.db'}}, or set database: to a known one"
        )
    return None
