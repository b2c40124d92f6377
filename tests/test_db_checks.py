"""DB check probes against SQLite, PostgreSQL and MariaDB: clean data passes, broken data fails
with the count, the SQL and example keys as evidence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conftest import ScratchDb
from releasegate.model import Status

OLD = datetime(2020, 1, 1)


def details(result: Any, index: int = 0) -> dict[str, Any]:
    detail: dict[str, Any] = result.evidence[index].details
    return detail


def test_orphans_over_reflected_foreign_keys(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    check = {"name": "orphans", "type": "orphans", "table": "child"}
    assert db_check(check).status is Status.PASSED
    scratch_db.run_unchecked(
        "INSERT INTO child (id, parent_id, email) VALUES (100, 77, 'o1@x')",
        "INSERT INTO child (id, parent_id, email) VALUES (101, 78, 'o2@x')",
    )
    result = db_check(check)
    assert result.status is Status.FAILED, result.reason
    assert "2 offending row(s)" in result.reason
    assert result.evidence[0].value == 2
    assert "LEFT JOIN" in details(result)["sql"]
    examples = details(result)["examples"]
    assert sorted(e["parent_id"] for e in examples) == [77, 78]
    assert sorted(e["id"] for e in examples) == [100, 101]


def test_orphans_of_every_table_and_declared_references(
    scratch_db: ScratchDb, db_check: Any
) -> None:
    scratch_db.create_shop()
    check = {
        "name": "orphans",
        "type": "orphans",
        "references": [{"table": "loose", "columns": "parent_id", "parent": "parent"}],
    }
    result = db_check(check)
    assert result.status is Status.PASSED, result.reason
    measured = {e.measured for e in result.evidence}
    assert measured == {
        "orphans child(parent_id) -> parent(id)",
        "orphans loose(parent_id) -> parent(id)",
    }
    scratch_db.run("INSERT INTO loose (id, parent_id) VALUES (9, 999)")
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "1 orphans loose(parent_id) -> parent(id)" in result.reason


def test_orphans_tolerance_and_null_keys(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    scratch_db.run(
        "INSERT INTO loose (id, parent_id) VALUES (8, NULL)", "INSERT INTO loose VALUES (9, 99)"
    )
    check: dict[str, Any] = {
        "name": "o",
        "type": "orphans",
        "table": "loose",
        "references": [{"columns": ["parent_id"], "parent": "parent", "parent_columns": "id"}],
    }
    assert db_check(check).status is Status.FAILED
    assert db_check({**check, "max_violations": 1}).status is Status.PASSED


def test_orphans_without_any_reference_is_no_data(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    result = db_check({"name": "o", "type": "orphans", "table": "parent"})
    assert result.status is Status.NO_DATA
    assert "references" in result.reason


def test_not_null(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    check = {"name": "nn", "type": "not_null", "table": "child", "columns": ["email", "status"]}
    assert db_check(check).status is Status.PASSED
    scratch_db.run("UPDATE child SET email = NULL WHERE id IN (3, 4, 5)")
    result = db_check(check)
    assert result.status is Status.FAILED
    assert [e.value for e in result.evidence] == [3, 0]
    assert sorted(e["id"] for e in details(result)["examples"]) == [3, 4, 5]


def test_unique_single_and_compound(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    single = {"name": "u1", "type": "unique", "table": "child", "columns": "email"}
    compound = {
        "name": "u2",
        "type": "unique",
        "table": "child",
        "columns": ["parent_id", "status"],
    }
    assert db_check(single).status is Status.PASSED
    assert db_check(compound).status is Status.PASSED
    scratch_db.run(
        "UPDATE child SET email = 'same@x' WHERE id IN (1, 2, 3)",
        "UPDATE child SET status = 'open' WHERE id = 6",  # now like child 1: parent 2, open
    )
    result = db_check(compound)
    assert result.status is Status.FAILED
    assert details(result)["examples"] == [{"parent_id": 2, "status": "open", "n": 2}]
    result = db_check(single)
    assert result.status is Status.FAILED
    assert result.evidence[0].value == 2  # three rows share a key: two too many
    assert details(result)["examples"] == [{"email": "same@x", "n": 3}]


def test_accepted_values_and_value_range(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    accepted = {
        "name": "av",
        "type": "accepted_values",
        "table": "child",
        "column": "status",
        "values": ["open", "done"],
    }
    ranged = {"name": "vr", "type": "value_range", "table": "child", "column": "score", "max": 1}
    assert [r.status for r in db_check(accepted, ranged)] == [Status.PASSED, Status.PASSED]
    scratch_db.run(
        "UPDATE child SET status = 'bogus' WHERE id = 2",
        "UPDATE child SET score = 7.5 WHERE id = 6",
        "UPDATE child SET score = NULL WHERE id = 7",  # NULL is not out of range
    )
    bad_value, bad_range = db_check(accepted, ranged)
    assert bad_value.status is Status.FAILED
    assert details(bad_value)["examples"] == [{"id": 2, "status": "bogus"}]
    assert bad_range.status is Status.FAILED
    assert details(bad_range)["examples"] == [{"id": 6, "score": 7.5}]


def test_checks_on_one_table_share_one_query(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    checks = [
        {"name": "o", "type": "orphans", "table": "child"},
        {"name": "nn", "type": "not_null", "table": "child", "columns": ["email"]},
        {"name": "u", "type": "unique", "table": "child", "columns": ["email"], "examples": 0},
        {"name": "rc", "type": "row_count", "table": "child", "min": 1},
        {"name": "other", "type": "not_null", "table": "parent", "columns": ["name"]},
    ]
    results = db_check(*checks)
    assert all(r.status is Status.PASSED for r in results), [r.reason for r in results]
    sqls = {details(r)["sql"] for r in results[:4]}
    assert len(sqls) == 1, "the four checks of child must share one query"
    assert details(results[0])["bundled_with"] == ["nn", "rc", "u"]
    assert details(results[4])["bundled_with"] == []


def test_unique_with_examples_groups_once_for_number_and_keys(
    scratch_db: ScratchDb, db_check: Any
) -> None:
    scratch_db.create_shop()
    nn = {"name": "nn", "type": "not_null", "table": "child", "columns": ["email"]}
    u = {"name": "u", "type": "unique", "table": "child", "columns": ["email"]}
    clean_nn, clean_u = db_check(nn, u)
    assert clean_u.status is Status.PASSED
    assert details(clean_u)["sql"] != details(clean_nn)["sql"]
    assert "HAVING COUNT(*) > 1" in details(clean_u)["sql"]
    assert details(clean_nn)["bundled_with"] == []
    scratch_db.run(
        "UPDATE child SET email = 'same@x' WHERE id IN (1, 2, 3)",
        "UPDATE child SET email = 'twice@x' WHERE id IN (4, 5)",
    )
    _, bad = db_check(nn, {**u, "examples": 1})
    assert bad.status is Status.FAILED
    assert bad.evidence[0].value == 3  # 2 extra rows of same@x, 1 of twice@x
    assert len(details(bad)["examples"]) == 1  # the number is not capped by the examples
    assert details(bad)["examples"][0]["email"] in ("same@x", "twice@x")


def test_a_broken_sibling_does_not_break_the_bundle(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    good = {"name": "good", "type": "not_null", "table": "child", "columns": ["email"]}
    bad = {"name": "bad", "type": "not_null", "table": "child", "columns": ["nope"]}
    result_good, result_bad = db_check(good, bad)
    assert result_good.status is Status.PASSED
    assert result_bad.status is Status.FAILED
    assert "nope not in table child" in result_bad.reason


def test_where_restricts_rows(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    scratch_db.run("UPDATE child SET email = NULL WHERE id = 1")
    check = {"name": "nn", "type": "not_null", "table": "child", "columns": ["email"]}
    assert db_check(check).status is Status.FAILED
    assert db_check({**check, "where": "id > 1"}).status is Status.PASSED


def test_missing_table_fails_clearly(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    result = db_check({"name": "nn", "type": "not_null", "table": "gone", "columns": ["x"]})
    assert result.status is Status.FAILED
    assert "table gone does not exist" in result.reason.replace(f"{scratch_db.schema}.", "")


def test_row_count_bounds(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    assert (
        db_check({"name": "rc", "type": "row_count", "table": "child", "min": 5, "max": 20}).status
        is Status.PASSED
    )
    result = db_check({"name": "rc", "type": "row_count", "table": "child", "min": 50})
    assert result.status is Status.FAILED
    assert "10 rows, fewer than min 50" in result.reason


def test_freshness(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    check = {
        "name": "f",
        "type": "freshness",
        "table": "child",
        "column": "created_at",
        "max_age_s": 3600,
    }
    result = db_check(check)
    assert result.status is Status.PASSED, result.reason
    assert 0 <= result.evidence[0].value < 3600
    scratch_db.run("UPDATE child SET created_at = :old", params={"old": OLD})
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "2020-01-01" in result.reason


def test_freshness_of_an_empty_table_fails(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    scratch_db.run("DELETE FROM child")
    check = {
        "name": "f",
        "type": "freshness",
        "table": "child",
        "column": "created_at",
        "max_age_s": 60,
    }
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "no rows" in result.reason


def test_sql_threshold(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    mean = {"name": "mean", "type": "sql", "query": "SELECT AVG(score) FROM child", "max": 0.2}
    high = {
        "name": "high",
        "type": "sql",
        "query": "SELECT COUNT(CASE WHEN score > 1 THEN 1 END) FROM child;",
        "max": 0,
    }
    assert [r.status for r in db_check(mean, high)] == [Status.PASSED, Status.PASSED]
    scratch_db.run("UPDATE child SET score = 3 WHERE id <= 5")
    mean_result, high_result = db_check(mean, high)
    assert mean_result.status is Status.FAILED
    assert mean_result.evidence[0].value == pytest.approx(1.55)
    assert high_result.status is Status.FAILED
    assert high_result.evidence[0].value == 5


def test_sql_without_a_number_is_no_data(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    result = db_check(
        {"name": "s", "type": "sql", "query": "SELECT MAX(score) FROM child WHERE id < 0", "min": 0}
    )
    assert result.status is Status.NO_DATA


def test_migration_head(scratch_db: ScratchDb, db_check: Any) -> None:
    check = {"name": "m", "type": "migration_head", "expected": "ae1027a6acf"}
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "no table" in result.reason and "alembic_version" in result.reason
    scratch_db.run(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version (version_num) VALUES ('ae1027a6acf')",
    )
    assert db_check(check).status is Status.PASSED
    scratch_db.run("UPDATE alembic_version SET version_num = '1975ea83b712'")
    result = db_check(check)
    assert result.status is Status.FAILED
    assert "at revision 1975ea83b712, expected ae1027a6acf" in result.reason
    custom = {
        **check,
        "query": "SELECT version_num FROM alembic_version",
        "expected": ["1975ea83b712"],
    }
    assert db_check(custom).status is Status.PASSED


def test_timestamps_are_read_as_utc() -> None:
    from releasegate.probes.sql import as_utc

    expected = datetime(2026, 1, 21, 18, 0, tzinfo=timezone.utc)
    assert as_utc("2026-01-21 18:00:00") == expected
    assert as_utc("2026-01-21T19:00:00+01:00") == expected
    assert as_utc("2026-01-21T18:00:00Z") == expected
    assert as_utc(expected.timestamp()) == expected
    assert as_utc(datetime(2026, 1, 21, 18, 0)) == expected
    assert as_utc(expected + timedelta(0)) == expected
    assert as_utc(None) is None


def test_sql_text_is_taken_literally(scratch_db: ScratchDb, db_check: Any) -> None:
    scratch_db.create_shop()
    query = "SELECT COUNT(*) FROM child WHERE email LIKE '%@example.org' AND email <> 'a:b'"
    result = db_check({"name": "literal", "type": "sql", "query": query, "min": 10, "max": 10})
    assert result.status is Status.PASSED, result.reason
