"""DB checks cannot write, stop at their statement timeout, fail closed on an unreachable
database and never show a password."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc

from conftest import ScratchDb
from releasegate.db.connect import dispose_engines, guard_read_query, read_only
from releasegate.db.state import DbState
from releasegate.errors import ProbeError
from releasegate.model import Status
from releasegate.spec_db import Database

SECRET = "Sup3rS3cretPw"

WRITES = [
    "INSERT INTO child (id, parent_id, email) VALUES (500, 1, 'w@x')",
    "UPDATE child SET email = NULL",
    "DELETE FROM child",
    "SELECT 1; DELETE FROM child",
    "SELECT COUNT(*) FROM child; DROP TABLE child",
    "DROP TABLE child",
    "CREATE TABLE intruder (id INTEGER)",
]


def state(db: ScratchDb) -> tuple[Any, ...]:
    tables = db.scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'intruder'"
        if db.kind != "sqlite"
        else "SELECT COUNT(*) FROM sqlite_master WHERE name = 'intruder'"
    )
    return (
        db.scalar("SELECT COUNT(*) FROM child"),
        db.scalar("SELECT COUNT(email) FROM child"),
        tables,
    )


@pytest.mark.parametrize("query", WRITES)
def test_a_sql_check_cannot_write(scratch_db: ScratchDb, db_check: Any, query: str) -> None:
    scratch_db.create_shop()
    before = state(scratch_db)
    result = db_check({"name": "w", "type": "sql", "query": query, "max": 0})
    assert result.status is Status.ERROR
    assert state(scratch_db) == before


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_a_writing_cte_is_stopped_by_the_read_only_transaction(
    scratch_db: ScratchDb, db_check: Any
) -> None:
    scratch_db.create_shop()
    before = state(scratch_db)
    query = "WITH gone AS (DELETE FROM child RETURNING id) SELECT COUNT(*) FROM gone"
    result = db_check({"name": "w", "type": "sql", "query": query, "max": 100})
    assert result.status is Status.ERROR
    assert "refused: it holds DELETE" in result.reason
    # Below the guard, the transaction refuses it as well.
    db = Database.model_validate({"url": scratch_db.url, "schema": scratch_db.schema})
    db_state = DbState()
    try:
        with (
            pytest.raises(ProbeError, match="read-only transaction"),
            read_only("main", db, db_state) as s,
        ):
            try:
                s.conn.exec_driver_sql(query)
            except exc.DBAPIError as err:
                raise s.error(err) from None
    finally:
        dispose_engines(db_state)
    assert state(scratch_db) == before


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO child (id, parent_id) VALUES (600, 1)",
        "UPDATE child SET email = NULL",
        "DELETE FROM child",
    ],
)
def test_the_session_transaction_itself_is_read_only(scratch_db: ScratchDb, statement: str) -> None:
    """Below the query guard: the transaction refuses writes on every database."""
    scratch_db.create_shop()
    before = state(scratch_db)
    db = Database.model_validate({"url": scratch_db.url, "schema": scratch_db.schema})
    db_state = DbState()
    try:
        with (
            pytest.raises(ProbeError, match="refused a write"),
            read_only("main", db, db_state) as s,
        ):
            try:
                s.conn.exec_driver_sql(statement)
            except exc.DBAPIError as err:
                raise s.error(err) from None
    finally:
        dispose_engines(db_state)
    assert state(scratch_db) == before


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_postgresql_refuses_a_second_statement_after_commit(scratch_db: ScratchDb) -> None:
    scratch_db.create_shop()
    before = state(scratch_db)
    db = Database.model_validate({"url": scratch_db.url, "schema": scratch_db.schema})
    db_state = DbState()
    try:
        with (
            pytest.raises(exc.DBAPIError, match="multiple commands"),
            read_only("main", db, db_state) as s,
        ):
            s.conn.exec_driver_sql("COMMIT; DELETE FROM child")
    finally:
        dispose_engines(db_state)
    assert state(scratch_db) == before


SLOW = {  # expensive, not sleeping: the guard refuses pg_sleep and SLEEP (test_db_readonly)
    "postgresql": "SELECT COUNT(*) FROM generate_series(1, 10000000000)",
    "mariadb": "SELECT SUM(a.seq % 7) FROM seq_1_to_10000000000 a",
    "sqlite": "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1000000000)"
    " SELECT COUNT(*) FROM r",
}


def test_a_slow_query_times_out_as_an_error(scratch_db: ScratchDb, db_check: Any) -> None:
    started = time.monotonic()
    result = db_check(
        {"name": "slow", "type": "sql", "query": SLOW[scratch_db.kind], "max": 1},
        statement_timeout_s=1,
    )
    assert time.monotonic() - started < 4
    assert result.status is Status.ERROR
    assert "statement timeout of 1 s" in result.reason
    assert "raise statement_timeout_s" in result.reason


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://gate:{SECRET}@127.0.0.1:1/app",
        f"mysql+pymysql://gate:{SECRET}@127.0.0.1:1/app",
    ],
)
def test_an_unreachable_database_is_an_error_without_the_password(url: str, tmp_path: Path) -> None:
    from releasegate.phases import Phase
    from releasegate.probes import ProbeContext, run_check
    from releasegate.spec import Spec

    spec = Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": {"base_url": "http://127.0.0.1:9"},
            "databases": {"main": {"url": url, "statement_timeout_s": 2}},
            "checks": [
                {"name": "rc", "type": "row_count", "table": "t", "min": 1, "phases": ["t24h"]}
            ],
        }
    )
    context = ProbeContext(spec=spec, target=None, phase=Phase.T24H)
    result = run_check(spec.checks[0], context)
    dispose_engines(context.db)
    assert result.status is Status.ERROR
    assert "cannot connect to database 'main'" in result.reason
    assert SECRET not in repr(result)
    assert "***" in result.reason


@pytest.mark.parametrize("scratch_db", ["postgresql", "mariadb"], indirect=True)
def test_a_password_never_shows(scratch_db: ScratchDb, db_check: Any) -> None:
    """PostgreSQL trusts any password here and MariaDB refuses one: neither shows it."""
    from sqlalchemy import make_url

    scratch_db.create_shop()
    url = make_url(scratch_db.url).set(password=SECRET).render_as_string(hide_password=False)
    results = db_check(
        {"name": "nn", "type": "not_null", "table": "child", "columns": ["email"]},
        {"name": "q", "type": "sql", "query": "SELECT COUNT(*) FROM nope", "max": 0},
        url=url,
    )
    for result in results:
        assert SECRET not in repr(result)
    if scratch_db.kind == "postgresql":
        assert results[0].status is Status.PASSED
        assert "postgres:***@" in results[0].evidence[0].details["database"]
    else:
        assert all(r.status is Status.ERROR for r in results)


def test_a_missing_sqlite_file_is_an_error_and_stays_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    db = Database(url=f"sqlite:///{path}")
    with pytest.raises(ProbeError, match="does not exist"), read_only("main", db, DbState()):
        pass
    assert not path.exists()


def test_demo_url_without_a_demo_target_says_what_to_do() -> None:
    with (
        pytest.raises(ProbeError, match="RELEASEGATE_DB_URL"),
        read_only("main", Database(url="demo://"), DbState()),
    ):
        pass


@pytest.mark.parametrize(
    ("sql", "backend"),
    [
        ("-- counts\nSELECT COUNT(*) FROM t;", "postgresql"),
        ("select ';' AS semi, 'it''s' FROM t", "postgresql"),
        ("(SELECT 1)", "sqlite"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "mysql"),
        ("/* note; */ SELECT 'a'';' FROM t", "mysql"),
        ("TABLE t", "postgresql"),
        ("SELECT x FROM t WHERE ts > now() - interval '1 hour' AND note ~ '\\d'", "postgresql"),
    ],
)
def test_guard_accepts_one_reading_statement(sql: str, backend: str) -> None:
    assert not guard_read_query(sql, backend).endswith(";")


@pytest.mark.parametrize(
    ("sql", "backend", "message"),
    [
        ("INSERT INTO t VALUES (1)", "postgresql", "it is INSERT"),
        ("SELECT 1; DELETE FROM t", "sqlite", "it holds 2 statements"),
        ("-- SELECT\nDROP TABLE t", "postgresql", "it is DROP"),
        ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "mysql", "writes a file"),
        ("SELECT 1 /*!, SLEEP(1) */", "mariadb", "executable comment"),
        ("SELECT 'a\\';' FROM t", "mysql", "backslash"),
        ("VALUES (1)", "postgresql", "not a SELECT"),
        ("", "sqlite", "no statement"),
    ],
)
def test_guard_refuses_anything_else(sql: str, backend: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        guard_read_query(sql, backend)
