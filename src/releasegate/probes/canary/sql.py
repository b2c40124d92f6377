"""The ``sql`` source: read-only queries per side (bound parameters or a query each)."""

from __future__ import annotations

import math
from typing import Any

from ...errors import ProbeError
from ..base import ProbeContext
from .common import LATENCY_SCALE

#: What a sql row says that is not a count: the query's mistake, said with the fix.
_ERRORS_ROW = "the errors query must return one row of two numbers: the errors and the total"


def _count(value: Any, what: str) -> int:
    """A count from the database (None: 0, as SUM over no row is NULL)."""
    if value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProbeError(f"{_ERRORS_ROW}; its {what} is {value!r}") from None
    if not number.is_integer() or number < 0:
        raise ProbeError(f"{_ERRORS_ROW}; its {what} is {value!r}, not a count")
    return int(number)


def _rate_row(row: Any, side: str) -> tuple[int, int]:
    """(errors, total) from the errors query's row; no row is no data (0 of 0)."""
    if row is None:
        return 0, 0
    if len(row) != 2:
        raise ProbeError(f"{_ERRORS_ROW}; the {side}'s row has {len(row)} column(s)")
    errors, total = _count(row[0], "first column (errors)"), _count(row[1], "second (total)")
    if errors > total:
        raise ProbeError(f"the errors query says {errors:,} errors out of {total:,} for the {side}")
    return errors, total


def _durations(rows: list[Any], scale: float, side: str) -> list[float]:
    """The first column as seconds; NULL becomes NaN, which the judge drops and counts."""
    values = []
    for row in rows:
        raw = row[0] if len(row) else None
        if raw is None:
            values.append(math.nan)
            continue
        try:
            values.append(float(raw) * scale)
        except (TypeError, ValueError):
            raise ProbeError(
                f"the latency query returned {raw!r} for the {side}, not a duration. Fix:"
                " SELECT one numeric column (in latency_unit)"
            ) from None
    return values


def _limited(query: str, backend: str, limit: int) -> str:
    """``query`` (guarded) read through a LIMIT, so that the server stops at ``limit`` rows.

    The newline before the parenthesis ends a trailing ``--`` comment of the user's query."""
    from ...db.connect import guard_read_query

    inner = guard_read_query(query, backend)
    return f"SELECT * FROM (\n{inner}\n) AS rg_canary_samples LIMIT {int(limit)}"


def measure_sql(check: Any, ctx: ProbeContext, sides: tuple[str, ...]) -> dict[str, Any]:
    """Each side's queries in one read-only session on the check's database, each statement
    under the database's statement timeout and the check's deadline: errors and total
    (``RateData``), a column of durations (``SampleData``, at most ``max_samples`` rows: more
    is an error, as the rows cut would be any the database chose)."""
    from ...canary import RateData, SampleData
    from ...db.connect import database, read_only
    from ..sql import within_deadline

    wanted = check.measured_metrics()
    scale = LATENCY_SCALE[check.latency_unit]
    db = database(ctx.spec.databases, check.database)
    out: dict[str, Any] = {}
    with read_only(check.database, within_deadline(check.database, db, ctx), ctx.db) as session:
        for side in sides:
            spec_side = getattr(check, side)
            queries = spec_side.queries or check.queries
            # Without params a ':' is text (WHERE note = 'a:b'); with them, :name binds.
            params = dict(spec_side.params) or None
            data: dict[str, Any] = {}
            if "errors" in wanted:
                errors, total = _rate_row(session.row(queries.errors, params), side)
                data["errors"] = RateData(errors, total)
            if "latency" in wanted:
                limited = _limited(queries.latency, session.backend, check.max_samples + 1)
                rows = session.rows(limited, params)
                if len(rows) > check.max_samples:
                    raise ProbeError(
                        f"the latency query returned more than max_samples"
                        f" ({check.max_samples:,}) rows for the {side}: a cut sample would be"
                        " the rows the database happened to send first. Fix: narrow its"
                        " window, sample it (ORDER BY random() LIMIT n) or raise max_samples"
                    )
                data["latency"] = SampleData(_durations(rows, scale, side))
            out[side] = data
    return out
