"""SQL for the DB checks: identifiers, one aggregate query for many checks, example queries.

Checks that read the same table (and the same ``where:``) share one query, as Soda bundles
its metrics: every check adds aggregate expressions to one ``SELECT ... FROM table c``.

* ``not_null``: ``COUNT(*) - COUNT(c.col)``
* ``accepted_values`` / ``value_range``: ``SUM(CASE WHEN <outside> THEN 1 ELSE 0 END)``
* ``row_count`` / ``freshness``: ``COUNT(*)`` / ``MAX(c.col)``
* ``orphans``: a ``LEFT JOIN`` of each parent (made unique with ``DISTINCT`` unless the parent
  columns are its primary key or a unique key), counting rows with a key but no parent
* ``unique``: ``COUNT(key) - COUNT(DISTINCT key)`` (extra rows); a compound key uses
  ``COUNT(DISTINCT ROW(...))`` on PostgreSQL, ``COUNT(DISTINCT a, b)`` on MariaDB and a scalar
  subquery over ``GROUP BY key HAVING COUNT(*) > 1`` on SQLite

A check whose number is over zero then runs one ``LIMIT``-ed query for its example keys.
``unique`` with examples is the exception: its own ``GROUP BY key HAVING COUNT(*) > 1``
statement returns the duplicated keys and their number at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .connect import DbSession


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table name, optionally schema-qualified; quoted per dialect when rendered."""

    schema: str | None
    name: str
    explicit: bool = field(default=False, compare=False)  # shown with its schema

    @classmethod
    def parse(cls, text: str, default_schema: str | None = None) -> TableRef:
        schema, _, name = text.rpartition(".")
        return cls(schema or default_schema, name, bool(schema))

    def sql(self, session: DbSession) -> str:
        quote = session.dialect.identifier_preparer.quote
        return f"{quote(self.schema)}.{quote(self.name)}" if self.schema else quote(self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema and self.explicit else self.name


@dataclass(frozen=True, slots=True)
class Relation:
    """Child columns that point at parent columns: a foreign key or a declared reference."""

    child: TableRef
    columns: tuple[str, ...]
    parent: TableRef
    parent_columns: tuple[str, ...]
    declared: bool = False
    parent_unique: bool = True

    def __str__(self) -> str:
        return (
            f"{self.child}({', '.join(self.columns)}) ->"
            f" {self.parent}({', '.join(self.parent_columns)})"
        )


@dataclass(frozen=True, slots=True)
class TableInfo:
    ref: TableRef
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...]

    def missing(self, columns: Sequence[str]) -> list[str]:
        known = {c.lower() for c in self.columns}
        return [c for c in columns if c.lower() not in known]


def table_info(session: DbSession, ref: TableRef) -> TableInfo | None:
    """Columns and keys of ``ref`` by reflection, or None when the table does not exist."""
    inspector = session.inspector()
    if not inspector.has_table(ref.name, schema=ref.schema):
        return None
    columns = tuple(str(c["name"]) for c in inspector.get_columns(ref.name, schema=ref.schema))
    pk = tuple(
        inspector.get_pk_constraint(ref.name, schema=ref.schema).get("constrained_columns") or ()
    )
    uniques = [
        tuple(u["column_names"])
        for u in inspector.get_unique_constraints(ref.name, schema=ref.schema)
    ]
    uniques += [
        tuple(str(c) for c in i["column_names"] if c is not None)
        for i in inspector.get_indexes(ref.name, schema=ref.schema)
        if i.get("unique")
    ]
    return TableInfo(ref, columns, pk, tuple(uniques))


def is_unique_key(info: TableInfo | None, columns: Sequence[str]) -> bool:
    if info is None:
        return False
    wanted = {c.lower() for c in columns}
    keys = [info.primary_key, *info.unique_keys]
    return any(key and {k.lower() for k in key} <= wanted for key in keys)


def foreign_keys(session: DbSession, child: TableRef) -> list[Relation]:
    """The foreign keys declared on ``child`` (PostgreSQL, MariaDB and SQLite all reflect them)."""
    found = []
    for fk in session.inspector().get_foreign_keys(child.name, schema=child.schema):
        other = fk.get("referred_schema")
        parent = TableRef(
            other or child.schema, str(fk["referred_table"]), other not in (None, child.schema)
        )
        found.append(
            Relation(
                child,
                tuple(fk["constrained_columns"]),
                parent,
                tuple(fk["referred_columns"]),
            )
        )
    return found


def table_names(session: DbSession) -> list[TableRef]:
    names = session.inspector().get_table_names(schema=session.schema)
    return [TableRef(session.schema, str(n)) for n in sorted(names)]


@dataclass(slots=True)
class Item:
    """One number a check needs from a bundle, and how to find its offending rows."""

    check: str
    what: str
    expr: str
    examples_sql: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # Measured by a statement of its own that returns up to N example rows, each with the
    # number in column ``rg_total`` (no row: the number is 0); ``expr`` is then unused.
    own_sql: str | None = None


@dataclass(slots=True)
class Bundle:
    """One aggregate query over ``table`` (rows restricted by ``where``) for many items."""

    table: TableRef
    where: str | None
    items: list[Item] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def in_bundle(self) -> list[Item]:
        """The items the aggregate query measures (the others have a statement each)."""
        return [item for item in self.items if item.own_sql is None]

    def sql(self, session: DbSession) -> str:
        source = self.table.sql(session)
        if self.where:
            source = f"(SELECT * FROM {source} WHERE ({self.where}))"
        columns = ",\n  ".join(f"{item.expr} AS a{i}" for i, item in enumerate(self.in_bundle))
        joins = "".join(f"\n{join}" for join in self.joins)
        return f"SELECT\n  {columns}\nFROM {source} c{joins}"


class Builder:
    """Adds items to a bundle; quoting and parameter names come from here."""

    def __init__(self, session: DbSession, bundle: Bundle, info: TableInfo) -> None:
        self.session = session
        self.bundle = bundle
        self.info = info
        self.q = session.dialect.identifier_preparer.quote

    def _filter(self, condition: str) -> str:
        where = self.bundle.where
        return f"({condition}) AND ({where})" if where else condition

    def _keys(self, extra: Sequence[str] = ()) -> str:
        names = [*self.info.primary_key, *[c for c in extra if c not in self.info.primary_key]]
        return ", ".join(f"c.{self.q(n)}" for n in names) or "COUNT(*)"

    def _examples(self, condition: str, limit: int, extra: Sequence[str] = ()) -> str | None:
        if limit <= 0:
            return None
        table = self.bundle.table.sql(self.session)
        keys = self._keys(extra)
        return f"SELECT {keys} FROM {table} c WHERE {self._filter(condition)} LIMIT {limit}"

    def param(self, value: Any) -> str:
        name = f"p{len(self.bundle.params)}"
        self.bundle.params[name] = value
        return f":{name}"

    def add(self, item: Item) -> None:
        self.bundle.items.append(item)

    def rows(self, check: str) -> None:
        self.add(Item(check, f"rows in {self.bundle.table}", "COUNT(*)"))

    def newest(self, check: str, column: str) -> None:
        self.add(Item(check, f"newest {self.bundle.table}.{column}", f"MAX(c.{self.q(column)})"))

    def nulls(self, check: str, column: str, limit: int) -> None:
        col = f"c.{self.q(column)}"
        examples = self._examples(f"{col} IS NULL", limit) if self.info.primary_key else None
        what = f"NULL {self.bundle.table}.{column}"
        self.add(Item(check, what, f"COUNT(*) - COUNT({col})", examples))

    def outside(self, check: str, column: str, condition: str, what: str, limit: int) -> None:
        expr = f"COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"
        examples = self._examples(condition, limit, [column])
        self.add(Item(check, what, expr, examples))

    def accepted(self, check: str, column: str, values: Sequence[Any], limit: int) -> None:
        listed = ", ".join(self.param(v) for v in values)
        condition = f"c.{self.q(column)} NOT IN ({listed})"
        what = f"{self.bundle.table}.{column} not in the accepted values"
        self.outside(check, column, condition, what, limit)

    def out_of_range(
        self, check: str, column: str, low: float | None, high: float | None, limit: int
    ) -> None:
        col = f"c.{self.q(column)}"
        parts = []
        if low is not None:
            parts.append(f"{col} < {self.param(low)}")
        if high is not None:
            parts.append(f"{col} > {self.param(high)}")
        what = f"{self.bundle.table}.{column} outside [{low}, {high}]"
        self.outside(check, column, " OR ".join(parts), what, limit)

    def duplicates(self, check: str, columns: Sequence[str], limit: int) -> None:
        table = self.bundle.table.sql(self.session)
        keys = ", ".join(self.q(c) for c in columns)
        present = self._filter(" AND ".join(f"{self.q(c)} IS NOT NULL" for c in columns))
        groups = f"SELECT {keys}, COUNT(*) AS n FROM {table} WHERE {present} GROUP BY {keys}"
        groups += " HAVING COUNT(*) > 1"
        what = f"duplicate rows of {self.bundle.table}({', '.join(columns)})"
        if limit > 0:
            # The duplicated keys are the examples: one grouping gives the number and them
            # (the database keeps the groups once for both). Counting inside the bundle and
            # grouping again for examples would read the table twice when a check fails.
            own = (
                f"WITH d AS ({groups})\nSELECT d.*, (SELECT COALESCE(SUM(g.n - 1), 0) FROM d g)"
                f" AS rg_total FROM d LIMIT {limit}"
            )
            self.add(Item(check, what, "", own_sql=own))
            return
        cols = [f"c.{self.q(c)}" for c in columns]
        present_c = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        rows = f"COALESCE(SUM(CASE WHEN {present_c} THEN 1 ELSE 0 END), 0)"
        # Extra rows = rows with a key - distinct keys, in the same scan as the other checks.
        if len(cols) == 1:
            expr = f"COUNT({cols[0]}) - COUNT(DISTINCT {cols[0]})"
        elif self.session.backend == "postgresql":
            key = f"CASE WHEN {present_c} THEN ROW({', '.join(cols)}) END"
            expr = f"{rows} - COUNT(DISTINCT {key})"
        elif self.session.backend in ("mysql", "mariadb"):
            expr = f"{rows} - COUNT(DISTINCT {', '.join(cols)})"
        else:  # SQLite has no multi-column COUNT(DISTINCT): a subquery over the groups
            expr = f"(SELECT COALESCE(SUM(d.n - 1), 0) FROM ({groups}) d)"
        self.add(Item(check, what, expr))

    def orphans(self, check: str, relation: Relation, limit: int) -> None:
        alias = f"p{len(self.bundle.joins)}"
        parent = relation.parent.sql(self.session)
        if not relation.parent_unique:
            cols = ", ".join(self.q(c) for c in relation.parent_columns)
            parent = f"(SELECT DISTINCT {cols} FROM {parent})"
        pairs = list(zip(relation.columns, relation.parent_columns, strict=True))
        on = " AND ".join(f"{alias}.{self.q(p)} = c.{self.q(k)}" for k, p in pairs)
        self.bundle.joins.append(f"LEFT JOIN {parent} {alias} ON {on}")
        has_key = " AND ".join(f"c.{self.q(k)} IS NOT NULL" for k in relation.columns)
        first_parent = self.q(relation.parent_columns[0])
        expr = (
            f"COALESCE(SUM(CASE WHEN {has_key} AND {alias}.{first_parent} IS NULL"
            " THEN 1 ELSE 0 END), 0)"
        )
        match = " AND ".join(f"p.{self.q(p)} = c.{self.q(k)}" for k, p in pairs)
        parent_table = relation.parent.sql(self.session)
        missing = f"{has_key} AND NOT EXISTS (SELECT 1 FROM {parent_table} p WHERE {match})"
        examples = self._examples(missing, limit, relation.columns)
        self.add(Item(check, f"orphans {relation}", expr, examples))


def plain(value: Any) -> Any:
    """A database value as JSON: numbers and strings stay, the rest becomes text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    return str(value)
