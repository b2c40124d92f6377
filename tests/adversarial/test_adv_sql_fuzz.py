"""Spellings of the write, file-access and time-bomb corpus (tests/test_db_readonly.py), run as
``sql`` checks on each real database: every mutant is refused by the query guard or by the
read-only session, or reads harmlessly; none ever passes a write, and afterwards nothing has
changed (the same rows and tables, no new file).

Mutations: letter case, comments and odd whitespace between tokens, parentheses, CTE prefixes,
trailing and stacked statements, MySQL executable comments, quoted and schema-qualified function
names. The guard (load time and run time) and the server are judged together: a mutant the guard
lets through must still change nothing on the server.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from _adversarial import examples, tried
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ScratchDb
from releasegate.db.connect import guard_read_query
from releasegate.errors import ProbeError
from releasegate.model import Status
from releasegate.spec_db import backend_of
from test_db_readonly import ATTACKS, FOREVER_CTE, OUT, TAG, new_files, snapshot

TIMEOUT_S = 1.0
_READY: set[str] = set()
# Queries the guard lets through, whose harm only the server's bounds stop: drawn often, so that
# the read-only session and the deadline behind the guard are fuzzed too.
GUARD_PASSES = [
    FOREVER_CTE,
    "SELECT COUNT(*) FROM child a, child b, child c, child d, child e, child f, child g",
    "SELECT COUNT(*) FROM child WHERE email LIKE '%x%'",
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000000)"
    " SELECT MAX(i) FROM r",
] * 5
SEPARATORS = [" ", "  ", "\t", "\n", "\r\n", "/**/", "/* x */", " -- c\n", " # c\n", "\x0c"]
WRAPS = [
    "{q}",
    "({q})",
    "{q};",
    "{q} ;  ",
    "{q};;",
    "{q}; -- done",
    "WITH q0 AS (SELECT 1) {q}",
    "/*!{q}*/",
    "/*!50000 {q}*/",
    "/*M!{q}*/",
    "SELECT 1; {q}",
    "{q}; SELECT 1",
    "SELECT COUNT(*) FROM ({q}) AS s",
]
FUNCTIONS = re.compile(
    r"\b(pg_read_file|pg_read_binary_file|pg_ls_dir|pg_stat_file|lo_import|lo_export|"
    r"load_file|sleep|pg_sleep|benchmark|dblink|query_to_xml|set_config|get_lock)\b",
    re.IGNORECASE,
)


@st.composite
def mutant(draw: Any) -> str:
    query = draw(st.sampled_from(ATTACKS + GUARD_PASSES)).replace(OUT, f"/tmp/{TAG}")
    if draw(st.booleans()):
        flips = draw(st.lists(st.booleans(), min_size=len(query), max_size=len(query)))
        query = "".join(c.upper() if f else c.lower() for c, f in zip(query, flips, strict=True))
        query = query.replace(f"/TMP/{TAG.upper()}", f"/tmp/{TAG}")  # keep the file trap
    if draw(st.booleans()):
        words = query.split(" ")
        seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
        query = "".join(w + s for w, s in zip(words, seps, strict=True)).rstrip()
    if draw(st.booleans()):
        spelling = draw(st.sampled_from(['"{f}"', "`{f}`", "pg_catalog.{f}", "{F}", "{f} "]))
        query = FUNCTIONS.sub(lambda m: spelling.format(f=m.group(0), F=m.group(0).upper()), query)
    return draw(st.sampled_from(WRAPS)).format(q=query)


@pytest.mark.parametrize("scratch_db", ["sqlite", "postgresql", "mariadb"], indirect=True)
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=mutant())
def test_no_spelling_of_an_attack_writes_reads_files_or_outlives_its_deadline(
    scratch_db: ScratchDb, db_check: Any, query: str
) -> None:
    if (
        scratch_db.url + (scratch_db.schema or "") not in _READY
    ):  # one database for all of this test's examples
        scratch_db.create_shop()
        _READY.add(scratch_db.url + (scratch_db.schema or ""))
    before = snapshot(scratch_db)
    tried("sql")
    backend = backend_of(scratch_db.url)
    assert backend is not None
    try:
        guard_read_query(query, backend)
        accepted = True
    except ProbeError:
        accepted = False
    started = time.monotonic()
    try:
        result = db_check(
            {"name": "mutant", "type": "sql", "query": query, "max": 0},
            statement_timeout_s=TIMEOUT_S,
        )
    finally:
        db_check.dispose()  # each example's connections closed: hundreds of examples in a row
    took = time.monotonic() - started
    if not accepted:
        assert result.status is Status.ERROR, (query, result)
        assert "refused" in result.reason
    assert result.status is not Status.PASSED or accepted, (query, result)
    assert took < TIMEOUT_S + 1.5, f"{took:.2f} s: {query!r}: {result.reason}"
    assert snapshot(scratch_db) == before, query
    assert new_files() == [], query
