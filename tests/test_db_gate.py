"""Proven to block: every DB check kind on every database, through a real gate run.

Clean data decides GO (exit 0); the same run after breaking the data decides NO-GO (exit 11)
with that check as the blocker. An unreachable database decides INCONCLUSIVE, never GO.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import ScratchDb

GROWTH_CHECK = {"type": "row_count", "table": "child", "min": 1, "max_growth": 1.5}


def _grow(db: ScratchDb, first: int, count: int) -> None:
    db.run(
        *(
            f"INSERT INTO child (id, parent_id, email, status, score) VALUES ({i}, 1,"
            f" 'g{i}@x', 'open', 0.1)"
            for i in range(first, first + count)
        )
    )


# kind -> (check fields, break the data); each check runs on the shop of conftest.ScratchDb.
SCENARIOS: dict[str, tuple[dict[str, Any], Callable[[ScratchDb], None]]] = {
    "orphans": (
        {"type": "orphans", "table": "child"},
        lambda db: db.run_unchecked("INSERT INTO child (id, parent_id) VALUES (90, 404)"),
    ),
    "not_null": (
        {"type": "not_null", "table": "child", "columns": ["email", "parent_id"]},
        lambda db: db.run("UPDATE child SET email = NULL WHERE id = 1"),
    ),
    "unique": (
        {"type": "unique", "table": "child", "columns": ["email"]},
        lambda db: db.run("UPDATE child SET email = 'dup@x' WHERE id IN (1, 2)"),
    ),
    "accepted_values": (
        {
            "type": "accepted_values",
            "table": "child",
            "column": "status",
            "values": ["open", "done"],
        },
        lambda db: db.run("UPDATE child SET status = 'bogus' WHERE id = 1"),
    ),
    "value_range": (
        {"type": "value_range", "table": "child", "column": "score", "min": 0, "max": 1},
        lambda db: db.run("UPDATE child SET score = 9 WHERE id = 1"),
    ),
    "row_count": (GROWTH_CHECK, lambda db: _grow(db, 200, 20)),
    "freshness": (
        {"type": "freshness", "table": "child", "column": "created_at", "max_age_s": 3600},
        lambda db: db.run(
            "UPDATE child SET created_at = :old", params={"old": datetime(2020, 1, 1)}
        ),
    ),
    "schema_drift": (
        {"type": "schema_drift"},
        lambda db: db.run("ALTER TABLE child DROP COLUMN score"),
    ),
    "migration_head": (
        {"type": "migration_head", "expected": "ae1027a6acf"},
        lambda db: db.run("UPDATE alembic_version SET version_num = '1975ea83b712'"),
    ),
    "sql": (
        {"type": "sql", "query": "SELECT AVG(score) FROM child", "max": 0.2},
        lambda db: db.run("UPDATE child SET score = 3 WHERE id <= 5"),
    ),
}


# pytester restores sys.modules after each test: run the gate and the CLI in child processes so
# that SQLAlchemy's lazily imported dialect modules are never imported twice in this process.


def write_spec(pytester: pytest.Pytester, database: str, check: dict[str, Any]) -> Path:
    spec = {
        "version": 1,
        "deployment": {"name": "shop"},
        "target": {"base_url": "http://127.0.0.1:9"},
        "databases": {"main": None},
        "checks": [{"name": "db-check", "phases": ["t24h"], "severity": "critical", **check}],
    }
    text = json.dumps(spec).replace('"main": null', f'"main": {database}')
    return Path(pytester.makefile(".yaml", releasegate=text))


def gate(pytester: pytest.Pytester) -> tuple[int, dict[str, Any]]:
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    record = pytester.path / "reports" / "out" / "shop" / "t24h" / "decision.json"
    data: dict[str, Any] = json.loads(record.read_text())
    return int(result.ret), data


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_broken_data_blocks_and_clean_data_goes(
    pytester: pytest.Pytester, scratch_db: ScratchDb, kind: str
) -> None:
    check, breaks = SCENARIOS[kind]
    scratch_db.create_shop()
    scratch_db.run(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version (version_num) VALUES ('ae1027a6acf')",
    )
    spec = write_spec(pytester, scratch_db.database_yaml(), check)
    if kind in ("schema_drift", "row_count"):
        snapshot = pytester.run(
            sys.executable, "-m", "releasegate.cli", "db", "snapshot", "--spec", spec
        )
        assert snapshot.ret == 0, snapshot.stderr.str()
        snapshot.stdout.fnmatch_lines(["releasegate db snapshot: 4 table(s) of database 'main'*"])
        assert (pytester.path / "reports/baselines/shop/main.schema.json").is_file()
    if kind == "row_count":
        _grow(scratch_db, 100, 2)  # modest growth (1.2x) is fine

    code, record = gate(pytester)
    assert (code, record["decision"]) == (0, "GO"), record["summary"]["blockers"]

    breaks(scratch_db)
    code, record = gate(pytester)
    assert (code, record["decision"]) == (11, "NO-GO"), record["summary"]
    blockers = record["summary"]["blockers"]
    assert [(b["check"], b["status"]) for b in blockers] == [("db-check", "failed")]


def test_an_unreachable_database_fails_closed(pytester: pytest.Pytester) -> None:
    database = '{"url": "postgresql+psycopg://gate:Sup3rS3cretPw@127.0.0.1:1/app"}'
    write_spec(pytester, database, {"type": "row_count", "table": "child", "min": 1})
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    record = json.loads((pytester.path / "reports/out/shop/t24h/decision.json").read_text())
    assert (result.ret, record["decision"]) == (12, "INCONCLUSIVE")
    blocker = record["summary"]["blockers"][0]
    assert blocker["status"] == "error"
    assert "cannot connect to database 'main'" in blocker["reason"]
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert "Sup3rS3cretPw" not in output + json.dumps(record)


def test_a_check_naming_an_unknown_database_is_a_spec_error(pytester: pytest.Pytester) -> None:
    write_spec(
        pytester,
        '{"url": "sqlite:///x.db"}',
        {"type": "sql", "query": "SELECT 1", "max": 1, "database": "audit"},
    )
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*uses database 'audit'*known: main*"])


def test_phase_t0h_takes_the_baseline_that_t24h_compares_against(
    pytester: pytest.Pytester, scratch_db: ScratchDb
) -> None:
    scratch_db.create_shop()
    check = {"type": "schema_drift", "capture_at": "t0h"}
    spec = write_spec(pytester, scratch_db.database_yaml(), check)
    spec.write_text(spec.read_text().replace('"phases": ["t24h"]', '"phases": ["t0h", "t24h"]'))
    baseline = pytester.path / "reports/baselines/shop/main.schema.json"
    baseline.parent.mkdir(parents=True)
    baseline.write_text('{"tables": {}}')  # a stale baseline of an earlier release

    t0h = pytester.runpytest_subprocess("-m", "gate_t0h", "-p", "no:cacheprovider")
    assert t0h.ret == 0, t0h.stdout.str()
    assert "child" in json.loads(baseline.read_text())["tables"]

    code, record = gate(pytester)
    assert (code, record["decision"]) == (0, "GO"), record["summary"]["blockers"]
    scratch_db.run("ALTER TABLE child DROP COLUMN score")
    code, record = gate(pytester)
    assert (code, record["decision"]) == (11, "NO-GO")
    assert "removed column child.score" in record["summary"]["blockers"][0]["reason"]


def test_capture_at_a_phase_the_check_is_not_in_is_a_spec_error(pytester: pytest.Pytester) -> None:
    write_spec(pytester, '{"url": "sqlite:///x.db"}', {"type": "schema_drift", "capture_at": "t0h"})
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*capture_at t0h is not one of the check's phases: add it*"])


def test_a_query_over_no_rows_is_no_data_never_go(
    pytester: pytest.Pytester, scratch_db: ScratchDb
) -> None:
    """The runbook's risk gate (AVG of the last hours' scores) on an empty table: no data."""
    scratch_db.create_shop()
    check = {"type": "sql", "query": "SELECT AVG(score) FROM child WHERE score > 100", "max": 0.2}
    write_spec(pytester, scratch_db.database_yaml(), check)
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    record = json.loads((pytester.path / "reports/out/shop/t24h/decision.json").read_text())
    assert (result.ret, record["decision"]) == (12, "INCONCLUSIVE")
    (outcome,) = record["outcomes"]
    assert outcome["status"] == "no_data"
    assert "no data is not a pass" in outcome["reason"]
    result.stdout.fnmatch_lines(["releasegate.yaml N*", "*1 no data*"])
