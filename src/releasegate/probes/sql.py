"""Probes of the DB checks: integrity, row counts, freshness, schema drift, migrations, SQL.

Every number is computed by the database (see ``db/build.py``). Checks on the same table and
``where:`` that run in the same phase share one bundled query: the first of them to run
measures all of them and leaves the others' results in ``context.bundles``, where each
sibling takes its own once, within ``BUNDLE_TTL_S``. Under xdist each worker does this on its
own. A bundle that fails (a sibling's bad ``where:``, a timeout) is retried with the check
alone, so one broken check never takes its siblings down.

A session opened for a check never outlives the check's deadline by its statement timeout:
that is the database's ``statement_timeout_s`` or what is left of the check's deadline when the
session opens, whichever is shorter (``within_deadline``).

A ``sql`` check with ``for:`` samples its query at every step of its (scaled) window, each
sample in a session of its own, and lets ``releasegate.slo`` judge the steps against min/max
(``_probe_sql_window``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from .. import deadlines
from ..db.build import TableRef, plain, table_names
from ..db.connect import DbSession, database, engine_for, guard_read_query, read_only
from ..db.measure import CachedBundle, Measured, bundle_key, measure, relations
from ..db.schema import default_baseline_path, diff, read_snapshot, take_snapshot, write_snapshot
from ..errors import ProbeError
from ..model import Evidence, Limit, Status
from ..redact import redact_text, redact_value
from ..slo.condition import Condition
from ..slo.units import UnitKind, format_duration, format_number
from ..slo.window import Window, judge_steps
from ..spec_db import Database
from .base import ProbeContext, ProbeResult

BUNDLE_TTL_S = 60.0
MIN_STATEMENT_S = 0.005  # less left of the check's deadline than this: no statement starts


def within_deadline(name: str, db: Database, context: ProbeContext) -> Database:
    """``db`` with a statement timeout no longer than what is left of the running check's
    deadline: the server's statement timeout and the client's deadline behind it (see
    ``db/connect.py``) both follow it."""
    until = deadlines.current()
    if until is None:
        return db
    left = math.floor((until - time.monotonic()) * 1000) / 1000
    if left >= db.statement_timeout_s:
        return db
    if left < MIN_STATEMENT_S:
        raise ProbeError(
            f"database {name!r}: no time left of the check's deadline to run a statement"
        )
    # The engine (one per URL per run) keeps connection settings from the database's own
    # timeout (MariaDB's socket read timeout): never from one check's remainder.
    engine_for(db, context.db)
    return db.model_copy(update={"statement_timeout_s": left})


@contextmanager
def _session(check: Any, context: ProbeContext) -> Iterator[DbSession]:
    """A read-only session on the check's database whose statements end by its deadline."""
    db = database(context.spec.databases, check.database)
    with read_only(check.database, within_deadline(check.database, db, context), context.db) as s:
        yield s


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
    members = siblings(check, context)
    try:
        with _session(check, context) as session:
            results = measure(session, check.table, getattr(check, "where", None), members)
    except ProbeError:
        if len(members) == 1:
            raise
        with _session(check, context) as session:
            results = measure(session, check.table, getattr(check, "where", None), [check])
    mine = results.pop(check.name)
    if key is not None:
        context.bundles[key] = CachedBundle(time.monotonic(), results)
    return mine


def _orphans_everywhere(check: Any, context: ProbeContext) -> Measured:
    """An orphans check without ``table:``: every table with references, one query each."""
    with _session(check, context) as session:
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
    with _session(check, context) as session:
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
    expected = sorted(check.expected)
    with _session(check, context) as session:
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


def _number(row: Any) -> tuple[Any, float | None]:
    """The first column of ``row`` as the database gave it and as a number (None: no row or
    NULL); text that is not a number is the query's mistake, a ``ProbeError``."""
    raw = plain(row[0]) if row is not None and len(row) else None
    if raw is None:
        return None, None
    try:
        return raw, float(raw)
    except (TypeError, ValueError):
        raise ProbeError(
            f"the query returned {raw!r}, not a number. Fix: SELECT one number"
        ) from None


def probe_sql(check: Any, context: ProbeContext) -> ProbeResult:
    """One number held to min/max: now, or with ``for:`` at every step of the window."""
    window = check.window()
    if window is not None:
        scale = context.spec.slo.time_scale * context.time_scale
        return _probe_sql_window(check, context, window.scaled(scale))
    with _session(check, context) as session:
        query = guard_read_query(check.query, session.backend)
        row = session.row(query)
        label = session.label
    limits = [f">= {check.min:g}" if check.min is not None else "", ""]
    limits[1] = f"<= {check.max:g}" if check.max is not None else ""
    threshold = " and ".join(t for t in limits if t)
    details = {"database": label, "sql": redact_text(query)}
    bounds = [Limit("value", ">=", float(check.min))] if check.min is not None else []
    bounds += [Limit("value", "<=", float(check.max))] if check.max is not None else []
    raw, value = _number(row)
    if value is None:
        return ProbeResult(
            Status.NO_DATA,
            "the query returned no number (no row, or NULL): no data is not a pass",
            (Evidence(measured="sql", threshold=threshold, details=details, limits=tuple(bounds)),),
        )
    evidence = Evidence(
        measured="sql", value=raw, threshold=threshold, details=details, limits=tuple(bounds)
    )
    low_ok = check.min is None or value >= check.min
    high_ok = check.max is None or value <= check.max
    if low_ok and high_ok:  # NaN fails both comparisons, so it never passes
        return ProbeResult.passed(f"{raw} ({threshold})", evidence)
    return ProbeResult.failed(f"{raw}, expected {threshold}", evidence)


def _bound_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _conditions(check: Any) -> list[Condition]:
    """min and max as the SLO library's conditions (plain numbers)."""
    return [
        Condition(op, float(bound), UnitKind.NUMBER, f"{op} {_bound_text(float(bound))}")
        for op, bound in ((">=", check.min), ("<=", check.max))
        if bound is not None
    ]


def _sample(check: Any, context: ProbeContext) -> tuple[str, float | None]:
    """The query's number now (None: no row or NULL), in a read-only session of its own."""
    with _session(check, context) as session:
        row = session.row(check.query)
        return session.label, _number(row)[1]


def _probe_sql_window(check: Any, context: ProbeContext, window: Window) -> ProbeResult:
    """Sample the query at every step of ``window``; every sample is held to min/max.

    Each sample runs in a session (and transaction) of its own, so that it reads what is
    committed at that step (MariaDB's REPEATABLE READ would keep the first sample's snapshot,
    and a transaction held open for the window would hold SQLite's lock against writers), and
    so that its statement timeout is what is left of the check's deadline then. A sample that
    fails or returns NULL leaves its step missing; one that fails before any sample has
    answered is an ERROR (the database cannot be read at all); a step whose sample would start
    a whole step late, behind a slow one, is skipped (missing), so that the loop keeps to the
    window.
    """
    measured = "sql"
    query = redact_text(check.query)
    base = {"sql": query, "database": check.database}
    until = deadlines.current()
    if until is not None and until - time.monotonic() < window.duration_s:
        left = max(until - time.monotonic(), 0.0)
        reason = (
            f"the window of {window.describe()} does not fit in what is left of the check's"
            f" deadline ({format_duration(round(left, 3))}). Fix: raise timeout: above for:"
        )
        return ProbeResult.error(reason, Evidence(measured, reason=reason, details=base))
    values: list[float | None] = []
    errors: list[str] = []
    failed = skipped = 0
    label = ""
    start = context.clock()
    for index in range(window.steps):
        wait = start + (index + 1) * window.step_s - context.clock()
        if wait > 0:
            context.sleep(wait)
        elif -wait >= window.step_s:  # the next step is due already: keep to the window
            values.append(None)
            skipped += 1
            continue
        try:
            label, value = _sample(check, context)
        except ProbeError as err:
            text = redact_text(str(err))
            if not label:
                details = {**base, "window": window.to_dict(), "step": index}
                return ProbeResult.error(text, Evidence(measured, reason=text, details=details))
            failed += 1
            if text not in errors and len(errors) < 5:
                errors.append(text)
            value = None
        values.append(value)
    now = start + window.duration_s
    status, reason, evidence = _window_verdict(
        values, _conditions(check), window, now, measured, check.name
    )
    details = {
        **evidence.details,
        **base,
        "database": label,
        "samples": window.steps - skipped,
        "failed_samples": failed,
        "skipped_samples": skipped,
        "errors": errors,
        "evaluated_at": round(now, 3),
    }
    if status is Status.NO_DATA and errors:
        reason += f" ({failed} sample(s) failed: {errors[0]})"
    reason = redact_text(reason)
    return ProbeResult(
        status,
        reason,
        (
            Evidence(
                evidence.measured,
                evidence.value,
                evidence.threshold,
                reason,
                redact_value(details),
                evidence.limits,
            ),
        ),
    )


def _window_verdict(
    values: list[float | None],
    conditions: list[Condition],
    window: Window,
    now: float,
    measured: str,
    subject: str = "value",
) -> tuple[Status, str, Evidence]:
    """The SLO library's verdict on the per-step numbers: each held to min and/or max."""
    verdicts = [judge_steps(values, c, window, now, subject) for c in conditions]
    if len(verdicts) == 1:
        return verdicts[0].status, verdicts[0].reason, verdicts[0].evidence(measured)
    # Both bounds: a step holds when min <= value <= max, that is when its distance outside
    # [min, max] is <= 0; the worst step is the one nearest to (or furthest past) a bound.
    low, high = conditions
    outside = [None if v is None else max(low.threshold - v, v - high.threshold) for v in values]
    inside = Condition("<=", 0.0, UnitKind.NUMBER, "<= 0")
    both = judge_steps(outside, inside, window, now, subject)
    text = f"{low.text} and {high.text}"
    show = low.display
    worst = None if both.worst_index is None else show(values[both.worst_index] or 0.0)
    coverage = f"{format_number(round(both.coverage * 100, 1))}% coverage"
    if both.status is Status.FAILED:
        reason = "; ".join(v.reason for v in verdicts if v.status is Status.FAILED)
    elif both.status is Status.PASSED and worst is not None:
        reason = (
            f"{subject} held {text} over {window.describe()} at {both.steps_with_data} of"
            f" {both.total_steps} steps ({coverage}); worst {format_number(worst)}"
        )
    else:
        reason = both.reason  # no data: the reason names no value
    record = both.to_dict()
    record.update(
        condition=text,
        worst=worst,
        steps=[
            [i, t, None if ok is None else show(values[i] or 0.0), ok]
            for i, t, _, ok in record["steps"]
        ],
    )
    value = {"worst": worst, "coverage": round(both.coverage, 4)}
    threshold = f"{text} at every step over {window.describe()}"
    limits = (low.limit(subject, key="worst"), high.limit(subject, key="worst"))
    return both.status, reason, Evidence(measured, value, threshold, reason, record, limits)
