"""Probes of the DB checks: integrity, row counts, freshness, schema drift, migrations, SQL.

Every number is computed by the database (see ``db/build.py``). Checks on the same table and
``where:`` that run in the same phase share one bundled query: the first of them to run
measures all of them and leaves the others' results in ``context.bundles``, where each
sibling takes its own once, within ``BUNDLE_TTL_S``. Under xdist each worker does this on its
own. A bundle that fails (a sibling's bad ``where:``, a timeout) is retried with the check
alone, so one broken check never takes its siblings down.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from ..db.build import TableRef, plain, table_names
from ..db.connect import database, guard_read_query, read_only
from ..db.measure import CachedBundle, Measured, bundle_key, measure, relations
from ..db.schema import default_baseline_path, diff, read_snapshot, take_snapshot, write_snapshot
from ..errors import ProbeError
from ..model import Evidence, Limit, Status
from ..redact import redact_text, redact_value
from .base import ProbeContext, ProbeResult

BUNDLE_TTL_S = 60.0


def siblings(check: Any, context: ProbeContext) -> list[Any]:
    """``check`` and the spec's other checks of this phase that share its bundle key."""
    phase = context.phase
    key = bundle_key(check)
    found = [check]
    if phase is None or key is None:
        return found
    for other in context.spec.checks:
        if other.name != check.name and phase in other.phases and bundle_key(other) == key:
            found.append(other)
    return found


def _measured(check: Any, context: ProbeContext) -> Measured:
    key = bundle_key(check)
    cached = context.bundles.get(key) if key is not None else None
    if cached is not None and time.monotonic() - cached.at < BUNDLE_TTL_S:
        hit = cached.pending.pop(check.name, None)
        if hit is not None:
            return hit
    db = database(context.spec.databases, check.database)
    members = siblings(check, context)
    try:
        with read_only(check.database, db, context.db) as session:
            results = measure(session, check.table, getattr(check, "where", None), members)
    except ProbeError:
        if len(members) == 1:
            raise
        with read_only(check.database, db, context.db) as session:
            results = measure(session, check.table, getattr(check, "where", None), [check])
    mine = results.pop(check.name)
    if key is not None:
        context.bundles[key] = CachedBundle(time.monotonic(), results)
    return mine


def _orphans_everywhere(check: Any, context: ProbeContext) -> Measured:
    """An orphans check without ``table:``: every table with references, one query each."""
    db = database(context.spec.databases, check.database)
    with read_only(check.database, db, context.db) as session:
        total = Measured(session.label)
        with session.errors():
            children = {ref.name.lower(): ref for ref in table_names(session)}
            for declared in check.references:
                ref = TableRef.parse(declared.table, session.schema)
                children.setdefault(ref.name.lower(), ref)
            wanted = [c for c in children.values() if relations(session, check, c)]
        for child in wanted:
            part = measure(session, str(child), None, [check])[check.name]
            total.found += part.found
            total.missing = total.missing or part.missing
    return total


def _evidence(check: Any, measured: Measured, threshold: str) -> list[Evidence]:
    limit = Limit("offending rows", "<=", float(check.max_violations))
    return [
        Evidence(
            measured=found.what,
            value=found.value,
            threshold=threshold,
            limits=(limit,),
            reason=f"{found.value} {found.what}",
            details=redact_value(
                {
                    "database": measured.database,
                    "sql": found.sql,
                    "examples": found.examples,
                    "examples_sql": found.examples_sql,
                    "bundled_with": measured.bundled_with,
                }
            ),
        )
        for found in measured.found
    ]


def _missing(check: Any, measured: Measured) -> ProbeResult:
    reason = redact_text(f"{check.type}: {measured.missing}")
    return ProbeResult.failed(reason, Evidence(measured=check.type, reason=reason))


def probe_integrity(check: Any, context: ProbeContext) -> ProbeResult:
    """orphans, not_null, unique, accepted_values, value_range: count offending rows."""
    if check.type == "orphans" and bundle_key(check) is None:
        measured = _orphans_everywhere(check, context)
    else:
        measured = _measured(check, context)
    if measured.missing:
        return _missing(check, measured)
    if not measured.found:
        return ProbeResult(
            Status.NO_DATA,
            f"{check.type}: nothing to check: no foreign keys found and no references:"
            " declared. Fix: declare references: (child columns -> parent table)",
        )
    total = sum(int(f.value or 0) for f in measured.found)
    threshold = f"<= {check.max_violations}"
    evidence = _evidence(check, measured, threshold)
    bad = [f"{f.value} {f.what}" for f in measured.found if f.value]
    if total > check.max_violations:
        shown = "; ".join(bad[:5])
        example = next((f.examples[:3] for f in measured.found if f.examples), [])
        more = f"; e.g. {redact_value(example)}" if example else ""
        return ProbeResult.failed(
            f"{total} offending row(s), {threshold} allowed: {shown}{more}", *evidence
        )
    what = ", ".join(f.what for f in measured.found[:3])
    return ProbeResult.passed(f"{total} offending row(s) ({threshold}) for {what}", *evidence)


def _base_dir(context: ProbeContext) -> Path:
    return context.spec_dir or Path.cwd()


def baseline_path(baseline: str | None, database_name: str, context: ProbeContext) -> Path:
    if baseline is None:
        name = context.spec.deployment.name
        return default_baseline_path(_base_dir(context), name, database_name)
    path = Path(baseline)
    return path if path.is_absolute() else _base_dir(context) / path


def probe_row_count(check: Any, context: ProbeContext) -> ProbeResult:
    measured = _measured(check, context)
    if measured.missing:
        return _missing(check, measured)
    rows = int(measured.found[0].value)
    problems: list[str] = []
    limits: list[str] = []
    if check.min is not None:
        limits.append(f">= {check.min}")
        if rows < check.min:
            problems.append(f"{rows} rows, fewer than min {check.min}")
    if check.max is not None:
        limits.append(f"<= {check.max}")
        if rows > check.max:
            problems.append(f"{rows} rows, more than max {check.max}")
    details: dict[str, Any] = {"database": measured.database, "sql": measured.found[0].sql}
    if check.max_growth is not None or check.min_growth is not None:
        path = baseline_path(check.baseline, check.database, context)
        counts = read_snapshot(path).get("row_counts", {})
        table = TableRef.parse(check.table).name
        if table not in counts:
            raise ProbeError(
                f"the baseline {path} has no row count for table {table}. Fix: take a new"
                " snapshot with `releasegate db snapshot`"
            )
        before = int(counts[table])
        ratio = rows / before if before else (1.0 if rows == 0 else float("inf"))
        details.update(baseline=str(path), baseline_rows=before, growth=ratio)
        if check.max_growth is not None:
            limits.append(f"growth <= {check.max_growth:g}x")
            if ratio > check.max_growth:
                problems.append(f"grew {ratio:.2f}x from {before} rows (max {check.max_growth:g}x)")
        if check.min_growth is not None:
            limits.append(f"growth >= {check.min_growth:g}x")
            if ratio < check.min_growth:
                problems.append(f"{ratio:.2f}x of {before} rows (min {check.min_growth:g}x)")
    threshold = ", ".join(limits)
    bounds = [Limit("rows", ">=", float(check.min))] if check.min is not None else []
    bounds += [Limit("rows", "<=", float(check.max))] if check.max is not None else []
    evidence = Evidence(
        measured=measured.found[0].what,
        value=rows,
        threshold=threshold,
        details=details,
        limits=tuple(bounds),
    )
    if problems:
        return ProbeResult.failed(f"{check.table}: " + "; ".join(problems), evidence)
    return ProbeResult.passed(f"{check.table}: {rows} rows ({threshold})", evidence)


def as_utc(value: Any) -> datetime | None:
    """A timestamp from the database as an aware UTC datetime; naive values are UTC."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ProbeError(f"cannot read {value!r} as a timestamp (ISO 8601 or epoch)") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def probe_freshness(check: Any, context: ProbeContext) -> ProbeResult:
    measured = _measured(check, context)
    if measured.missing:
        return _missing(check, measured)
    found = measured.found[0]
    newest = as_utc(found.value)
    threshold = f"age <= {check.max_age_s:g} s"
    age_limit = (Limit("age", "<=", float(check.max_age_s), "s"),)
    details = {"database": measured.database, "sql": found.sql, "newest": plain(found.value)}
    if newest is None:
        evidence = Evidence(
            measured=found.what, threshold=threshold, details=details, limits=age_limit
        )
        return ProbeResult.failed(f"{check.table}.{check.column}: no rows, nothing fresh", evidence)
    age = (datetime.now(timezone.utc) - newest).total_seconds()
    evidence = Evidence(
        measured=found.what,
        value=round(age, 3),
        threshold=threshold,
        details=details,
        limits=age_limit,
    )
    text = f"{check.table}.{check.column}: newest {newest.isoformat()} is {age:.0f} s old"
    if age > check.max_age_s:
        return ProbeResult.failed(f"{text}, older than {check.max_age_s:g} s", evidence)
    return ProbeResult.passed(f"{text} ({threshold})", evidence)


def probe_schema_drift(check: Any, context: ProbeContext) -> ProbeResult:
    path = baseline_path(check.baseline, check.database, context)
    db = database(context.spec.databases, check.database)
    with read_only(check.database, db, context.db) as session:
        phase = context.phase
        capture_now = check.capture_at is not None and phase == check.capture_at
        if capture_now or (check.capture_if_missing and not path.exists()):
            snapshot = take_snapshot(session)
            write_snapshot(path, snapshot)
            why = f"phase {phase} takes the baseline" if capture_now else "no baseline yet"
            return ProbeResult.passed(
                f"{why}: captured the schema of {session.label} to {path}",
                Evidence(
                    measured=f"schema of {session.label}",
                    value=len(snapshot["tables"]),
                    reason=f"{len(snapshot['tables'])} table(s) captured",
                    details={"baseline": str(path), "taken_at": snapshot.get("taken_at")},
                ),
            )
        live = take_snapshot(session, row_counts=False)
        label = session.label
    baseline = read_snapshot(path)
    changes = diff(baseline, live, check.tables)
    failing = [c for c in changes if c.kind in check.fail_on]
    threshold = f"no {'/'.join(check.fail_on)} changes"
    evidence = Evidence(
        measured=f"schema of {label} against {path}",
        value=len(failing),
        threshold=threshold,
        reason="; ".join(str(c) for c in changes[:20]) or "no changes",
        details={
            "baseline": str(path),
            "baseline_taken_at": baseline.get("taken_at"),
            "changes": [c.to_dict() for c in changes],
        },
    )
    if failing:
        shown = "; ".join(str(c) for c in failing[:8])
        more = f" and {len(failing) - 8} more" if len(failing) > 8 else ""
        return ProbeResult.failed(f"schema drift: {shown}{more}", evidence)
    note = f" ({len(changes)} reported only: {changes[0]}...)" if changes else ""
    return ProbeResult.passed(f"schema matches the baseline {path.name}{note}", evidence)


def probe_migration_head(check: Any, context: ProbeContext) -> ProbeResult:
    db = database(context.spec.databases, check.database)
    expected = sorted(check.expected)
    with read_only(check.database, db, context.db) as session:
        if check.query is None:
            table = TableRef(session.schema, "alembic_version")
            with session.errors():
                present = session.inspector().has_table(table.name, schema=table.schema)
            if not present:
                reason = f"no table {table} in {session.label}: no migration applied"
                return ProbeResult.failed(
                    f"{reason} (expected {', '.join(expected)})",
                    Evidence(measured=str(table), threshold=f"== {expected}", reason=reason),
                )
            query = f"SELECT version_num FROM {table.sql(session)}"
        else:
            query = guard_read_query(check.query, session.backend)
        found = sorted({str(plain(r[0])) for r in session.rows(query)})
        label = session.label
    evidence = Evidence(
        measured=f"migration revision of {label}",
        value=found,
        threshold=f"== {expected}",
        details={"sql": query},
    )
    if found != expected:
        shown = ", ".join(found) or "none"
        return ProbeResult.failed(f"at revision {shown}, expected {', '.join(expected)}", evidence)
    return ProbeResult.passed(f"at the expected revision {', '.join(found)}", evidence)


def probe_sql(check: Any, context: ProbeContext) -> ProbeResult:
    db = database(context.spec.databases, check.database)
    with read_only(check.database, db, context.db) as session:
        query = guard_read_query(check.query, session.backend)
        row = session.row(query)
        label = session.label
    limits = [f">= {check.min:g}" if check.min is not None else "", ""]
    limits[1] = f"<= {check.max:g}" if check.max is not None else ""
    threshold = " and ".join(t for t in limits if t)
    raw = plain(row[0]) if row is not None and len(row) else None
    details = {"database": label, "sql": redact_text(query)}
    bounds = [Limit("value", ">=", float(check.min))] if check.min is not None else []
    bounds += [Limit("value", "<=", float(check.max))] if check.max is not None else []
    if raw is None:
        return ProbeResult(
            Status.NO_DATA,
            "the query returned no number (no row, or NULL): no data is not a pass",
            (Evidence(measured="sql", threshold=threshold, details=details, limits=tuple(bounds)),),
        )
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ProbeError(
            f"the query returned {raw!r}, not a number. Fix: SELECT one number"
        ) from None
    evidence = Evidence(
        measured="sql", value=raw, threshold=threshold, details=details, limits=tuple(bounds)
    )
    low_ok = check.min is None or value >= check.min
    high_ok = check.max is None or value <= check.max
    if low_ok and high_ok:  # NaN fails both comparisons, so it never passes
        return ProbeResult.passed(f"{raw} ({threshold})", evidence)
    return ProbeResult.failed(f"{raw}, expected {threshold}", evidence)
