"""Measuring checks on one table with one bundled query (see ``build.py`` for the SQL).

``measure`` takes every check of a bundle, reflects the table once, adds each check's items,
runs the aggregate query and, for each number over zero, the example query. A check that
names a missing table or column gets ``missing`` (a FAILED result) and stays out of the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .build import (
    Builder,
    Bundle,
    Item,
    Relation,
    TableRef,
    foreign_keys,
    is_unique_key,
    plain,
    table_info,
)
from .connect import DbSession

TABLE_TYPES = frozenset(
    {"not_null", "unique", "accepted_values", "value_range", "row_count", "freshness"}
)

# (database, table in lower case, where:): checks with equal keys share one query.
BundleKey = tuple[str, str, str | None]


@dataclass(slots=True)
class Found:
    """One number measured for a check, with the SQL and the offending keys."""

    what: str
    value: Any
    sql: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    examples_sql: str | None = None


@dataclass(slots=True)
class Measured:
    """What one check got from a bundle run."""

    database: str
    found: list[Found] = field(default_factory=list)
    missing: str | None = None
    bundled_with: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CachedBundle:
    """The results a bundled query measured for the siblings that have not taken theirs yet."""

    at: float
    pending: dict[str, Measured]


def bundle_key(check: Any) -> BundleKey | None:
    """Checks with the same key can share one query; None when a check is never bundled."""
    if check.type in TABLE_TYPES:
        return (check.database, check.table.lower(), check.where)
    if check.type == "orphans" and check.table is not None:
        if any(ref.table not in (None, check.table) for ref in check.references):
            return None
        return (check.database, check.table.lower(), None)
    return None


def _columns(check: Any) -> list[str]:
    if check.type in ("not_null", "unique"):
        return list(check.columns)
    if check.type in ("accepted_values", "value_range", "freshness"):
        return [check.column]
    return []


def relations(session: DbSession, check: Any, child: TableRef) -> list[Relation]:
    """The references an orphans check follows out of ``child``: foreign keys, then declared."""
    found = foreign_keys(session, child) if check.foreign_keys else []
    for ref in check.references:
        table = TableRef.parse(ref.table or check.table, session.schema)
        if table.name.lower() == child.name.lower():
            parent = TableRef.parse(ref.parent, session.schema)
            found.append(
                Relation(child, tuple(ref.columns), parent, tuple(ref.parent_columns), True)
            )
    return found


def _add(builder: Builder, session: DbSession, check: Any, child: TableRef) -> str | None:
    """Add ``check``'s items to the bundle; return why it cannot be measured, if so."""
    missing = builder.info.missing(_columns(check))
    if missing:
        known = ", ".join(builder.info.columns)
        return f"column(s) {', '.join(missing)} not in table {child} (it has: {known})"
    name, limit = check.name, check.examples
    if check.type == "not_null":
        for column in check.columns:
            builder.nulls(name, column, limit)
    elif check.type == "unique":
        builder.duplicates(name, check.columns, limit)
    elif check.type == "accepted_values":
        builder.accepted(name, check.column, check.values, limit)
    elif check.type == "value_range":
        builder.out_of_range(name, check.column, check.min, check.max, limit)
    elif check.type == "row_count":
        builder.rows(name)
    elif check.type == "freshness":
        builder.newest(name, check.column)
    elif check.type == "orphans":
        for relation in relations(session, check, child):
            parent = table_info(session, relation.parent)
            if parent is None:
                return f"parent table {relation.parent} of {relation} does not exist"
            lost = builder.info.missing(relation.columns) + parent.missing(relation.parent_columns)
            if lost:
                return f"{relation}: column(s) {', '.join(lost)} do not exist"
            unique = is_unique_key(parent, relation.parent_columns)
            builder.orphans(name, _with_unique(relation, unique), limit)
    return None


def _with_unique(relation: Relation, unique: bool) -> Relation:
    return Relation(
        relation.child,
        relation.columns,
        relation.parent,
        relation.parent_columns,
        relation.declared,
        unique,
    )


def measure(
    session: DbSession, table: str, where: str | None, members: list[Any]
) -> dict[str, Measured]:
    """Run one bundled query for ``members`` (checks on ``table``) and their example queries."""
    ref = TableRef.parse(table, session.schema)
    results = {m.name: Measured(session.label) for m in members}
    with session.errors():
        info = table_info(session, ref)
        if info is None:
            for measured in results.values():
                measured.missing = f"table {ref} does not exist in {session.label}"
            return results
        bundle = Bundle(ref, where)
        builder = Builder(session, bundle, info)
        for member in members:
            results[member.name].missing = _add(builder, session, member, ref)
    aggregated = bundle.in_bundle
    sql = bundle.sql(session) if aggregated else ""
    row = session.row(sql, bundle.params) if aggregated else None
    in_bundle = sorted({item.check for item in aggregated})
    index = 0
    for item in bundle.items:
        if item.own_sql is not None:
            found = _measure_alone(session, item, bundle.params)
        else:
            assert row is not None  # an aggregate query without GROUP BY returns one row
            found = Found(item.what, plain(row[index]), sql, examples_sql=item.examples_sql)
            index += 1
            if item.examples_sql and isinstance(found.value, int) and found.value > 0:
                found.examples = [
                    {k: plain(v) for k, v in r._mapping.items()}
                    for r in session.rows(item.examples_sql, bundle.params)
                ]
            results[item.check].bundled_with = [n for n in in_bundle if n != item.check]
        results[item.check].found.append(found)
    return results


def _measure_alone(session: DbSession, item: Item, params: dict[str, Any]) -> Found:
    """An item with its own statement: example rows, each carrying the number (none: 0)."""
    assert item.own_sql is not None
    rows = session.rows(item.own_sql, params)
    value = plain(rows[0]._mapping["rg_total"]) if rows else 0
    examples = [{k: plain(v) for k, v in r._mapping.items() if k != "rg_total"} for r in rows]
    return Found(item.what, value, item.own_sql, examples)
