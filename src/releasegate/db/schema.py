"""Schema snapshots and their diff: the baseline of ``schema_drift`` and of row-count growth.

A snapshot is JSON: per table its columns (type, nullability), primary key, indexes and foreign
keys, plus every table's row count. ``releasegate db snapshot`` writes one; ``schema_drift``
compares the live schema with it and ``row_count`` reads the counts for ``max_growth``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine.interfaces import ReflectedColumn

from ..errors import ProbeError
from .build import TableRef, table_names
from .connect import DbSession

FORMAT = 1
BASELINE_DIR = Path("reports/baselines")


def default_baseline_path(base_dir: Path, deployment: str, database: str) -> Path:
    """Where ``releasegate db snapshot`` writes by default, relative to the spec's folder."""
    return base_dir / BASELINE_DIR / deployment / f"{database}.schema.json"


def _type_name(session: DbSession, column: ReflectedColumn) -> str:
    kind = column["type"]
    try:
        return str(kind.compile(dialect=session.dialect)).upper()
    except exc.CompileError:
        return type(kind).__name__.upper()


def describe_table(session: DbSession, ref: TableRef) -> dict[str, Any]:
    """One table's shape, with names sorted so that two snapshots compare line by line."""
    inspector = session.inspector()
    columns = {
        str(c["name"]): {"type": _type_name(session, c), "nullable": bool(c["nullable"])}
        for c in inspector.get_columns(ref.name, schema=ref.schema)
    }
    pk = inspector.get_pk_constraint(ref.name, schema=ref.schema).get("constrained_columns")
    indexes = {
        str(i["name"]): {
            "columns": [str(c) for c in i["column_names"] if c is not None],
            "unique": bool(i.get("unique")),
        }
        for i in inspector.get_indexes(ref.name, schema=ref.schema)
        if i.get("name")
    }
    fks = sorted(
        (
            {
                "columns": list(fk["constrained_columns"]),
                "parent": str(fk["referred_table"]),
                "parent_columns": list(fk["referred_columns"]),
            }
            for fk in inspector.get_foreign_keys(ref.name, schema=ref.schema)
        ),
        key=lambda fk: json.dumps(fk, sort_keys=True),
    )
    return {
        "columns": columns,
        "primary_key": list(pk or []),
        "indexes": dict(sorted(indexes.items())),
        "foreign_keys": fks,
    }


def take_snapshot(session: DbSession, row_counts: bool = True) -> dict[str, Any]:
    """The live schema of the session's database (and each table's row count)."""
    with session.errors():
        tables = {ref.name: describe_table(session, ref) for ref in table_names(session)}
    counts: dict[str, int] = {}
    if row_counts:
        for name in tables:
            row = session.row(f"SELECT COUNT(*) FROM {TableRef(session.schema, name).sql(session)}")
            counts[name] = int(row[0]) if row is not None else 0
    return {
        "format": FORMAT,
        "taken_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "database": session.name,
        "url": session.shown,
        "dialect": session.backend,
        "schema": session.schema,
        "tables": tables,
        "row_counts": counts,
    }


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot file, or a ``ProbeError`` saying how to make one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProbeError(
            f"no schema baseline at {path}. Fix: run `releasegate db snapshot` before the"
            " deployment (or set capture_if_missing: true on a t0h schema_drift check)"
        ) from None
    except (OSError, ValueError) as err:
        raise ProbeError(f"cannot read the schema baseline {path}: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise ProbeError(f"{path} is not a releasegate schema snapshot (no 'tables')")
    return data


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the baseline and the live schema."""

    kind: str  # added, removed, changed
    what: str  # "table risk_log", "column risk_log.ts", ...
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.what}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "what": self.what, "detail": self.detail}


def _fk_key(fk: dict[str, Any]) -> str:
    return f"({', '.join(fk['columns'])}) -> {fk['parent']}({', '.join(fk['parent_columns'])})"


def _compare(kind: str, table: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    for name in sorted(old.keys() - new.keys()):
        changes.append(Change("removed", f"{kind} {table}.{name}"))
    for name in sorted(new.keys() - old.keys()):
        changes.append(Change("added", f"{kind} {table}.{name}"))
    for name in sorted(old.keys() & new.keys()):
        before, after = old[name], new[name]
        if before != after:
            diffs = [
                f"{key} {before.get(key)} -> {after.get(key)}"
                for key in sorted(set(before) | set(after))
                if before.get(key) != after.get(key)
            ]
            changes.append(Change("changed", f"{kind} {table}.{name}", "; ".join(diffs)))
    return changes


def diff(
    baseline: dict[str, Any], live: dict[str, Any], tables: list[str] | None = None
) -> list[Change]:
    """What changed from ``baseline`` to ``live`` (only ``tables`` when given)."""
    old, new = baseline["tables"], live["tables"]
    if tables is not None:
        old = {k: v for k, v in old.items() if k in tables}
        new = {k: v for k, v in new.items() if k in tables}
        for name in tables:
            if name not in old and name not in new:
                old = {**old, name: None}
    changes = [Change("removed", f"table {name}") for name in sorted(old.keys() - new.keys())]
    changes += [Change("added", f"table {name}") for name in sorted(new.keys() - old.keys())]
    for name in sorted(old.keys() & new.keys()):
        before, after = old[name], new[name]
        changes += _compare("column", name, before["columns"], after["columns"])
        changes += _compare("index", name, before["indexes"], after["indexes"])
        if before["primary_key"] != after["primary_key"]:
            detail = f"{before['primary_key']} -> {after['primary_key']}"
            changes.append(Change("changed", f"primary key of {name}", detail))
        old_fks: dict[str, Any] = {_fk_key(fk): {} for fk in before["foreign_keys"]}
        new_fks: dict[str, Any] = {_fk_key(fk): {} for fk in after["foreign_keys"]}
        changes += _compare("foreign key", name, old_fks, new_fks)
    return changes
