"""Read-only by construction: a corpus of write, file-access and time-bomb queries, run as
``sql`` checks on every real database, each refused or an ERROR within its timeout + 1 s,
and afterwards nothing changed: the same rows, no new table, no new file under /tmp."""

from __future__ import annotations

import json
import os
import time
import uuid
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

TIMEOUT_S = 2.0
# Files an attack would create: /tmp/{TAG}*, a name of this process's own (the queries say
# {OUT} so that every xdist worker collects the same test ids).
TAG = f"rg_ro_{uuid.uuid4().hex[:8]}"
OUT = "{OUT}"

FOREVER_CTE = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT COUNT(*) FROM r"
)

ATTACKS: list[str] = [
    # writes
    "UPDATE child SET email = NULL",
    "DELETE FROM child",
    "INSERT INTO child (id, parent_id) VALUES (900, 1)",
    "INSERT INTO loose (id, parent_id) SELECT id + 100, parent_id FROM loose",
    "CREATE TABLE intruder AS SELECT * FROM child",
    "CREATE TABLE intruder (id INTEGER)",
    "DROP TABLE child",
    "TRUNCATE TABLE child",
    "ALTER TABLE child ADD COLUMN intruder INTEGER",
    "SELECT 1; DROP TABLE child",
    "SELECT COUNT(*) FROM child;DELETE FROM child",
    "/*!50000 DROP TABLE child*/",
    "SELECT 1 /*!50000 ; DROP TABLE child */",
    "SELECT 1 /*M! , SLEEP(30) */",
    "SELECT /*+ MAX_EXECUTION_TIME(100000) */ COUNT(*) FROM child",
    "DR/**/OP TABLE child",
    "DEL/* x */ETE FROM child",
    "SELECT 1 --\nDROP TABLE child",
    "WITH d AS (DELETE FROM child RETURNING *) SELECT COUNT(*) FROM d",
    "WITH u AS (UPDATE child SET email = NULL RETURNING id) SELECT COUNT(*) FROM u",
    "SELECT * INTO intruder FROM child",
    "SELECT id FROM child FOR UPDATE",
    "SELECT id FROM child FOR SHARE",
    "SELECT id FROM child LOCK IN SHARE MODE",
    "SET default_transaction_read_only = off",
    "SET SESSION TRANSACTION READ WRITE",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "COMMIT",
    "BEGIN",
    "PRAGMA query_only = OFF",
    f"ATTACH DATABASE '{OUT}.db' AS intruder",
    "REPLACE INTO child (id, parent_id) VALUES (1, 1)",
    # files
    f"SELECT * FROM child INTO OUTFILE '{OUT}.out'",
    f"SELECT id FROM child INTO DUMPFILE '{OUT}.dump'",
    f"SELECT * FROM child INTO/**/OUTFILE '{OUT}.c'",
    "SELECT id INTO @v FROM child LIMIT 1",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_read_file('/etc/passwd')",
    "SELECT \"pg_read_file\"('/etc/passwd')",
    "SELECT PG_READ_BINARY_FILE('/etc/passwd')",
    "SELECT * FROM pg_ls_dir('/')",
    "SELECT pg_stat_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    f"SELECT lo_export(1, '{OUT}.lo')",
    f"COPY child TO '{OUT}.copy'",
    f"COPY (SELECT 1) TO PROGRAM 'touch {OUT}.prog'",
    "COPY child FROM '/etc/passwd'",
    "SELECT * FROM dblink('dbname=test', 'DELETE FROM child') AS t(x text)",
    "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')",
    "SELECT load_extension('/tmp/evil')",
    f"SELECT writefile('{OUT}.w', 'x')",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE child",
    # time bombs
    "SELECT pg_sleep(30)",
    "SELECT pg_sleep_for('30 seconds')",
    "SELECT SLEEP(30)",
    "SELECT BENCHMARK(10000000000, MD5('a'))",
    "SELECT GET_LOCK('rg', 30)",
    "SELECT pg_advisory_lock(42)",
    "DO SLEEP(30)",
    "SELECT COUNT(*) FROM child WHERE 1 = (SELECT SLEEP(30))",
    FOREVER_CTE,
]


def snapshot(db: ScratchDb) -> tuple[Any, ...]:
    if db.kind == "sqlite":
        tables = db.scalar("SELECT COUNT(*) FROM sqlite_master")
        columns = db.scalar("SELECT COUNT(*) FROM pragma_table_info('child')")
    else:
        mine = "current_schema()" if db.kind == "postgresql" else "DATABASE()"
        tables = db.scalar(
            f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {mine}"
        )
        columns = db.scalar(
            "SELECT COUNT(*) FROM information_schema.columns"
            f" WHERE table_schema = {mine} AND table_name = 'child'"
        )
    return (
        db.scalar("SELECT COUNT(*) FROM child"),
        db.scalar("SELECT COUNT(email) FROM child"),
        db.scalar("SELECT COUNT(*) FROM loose"),
        tables,
        columns,
    )


def new_files() -> list[str]:
    return sorted(str(p) for p in Path("/tmp").glob(f"{TAG}*"))


def test_the_corpus_is_big_enough() -> None:
    assert len(ATTACKS) >= 30
    assert len(set(ATTACKS)) == len(ATTACKS)


@pytest.mark.parametrize("query", ATTACKS)
def test_an_attack_is_refused_or_an_error_in_time(
    scratch_db: ScratchDb, db_check: Any, query: str
) -> None:
    scratch_db.create_shop()
    before = snapshot(scratch_db)
    query = query.replace(OUT, f"/tmp/{TAG}")
    started = time.monotonic()
    result = db_check(
        {"name": "attack", "type": "sql", "query": query, "max": 0},
        statement_timeout_s=TIMEOUT_S,
    )
    took = time.monotonic() - started
    if scratch_db.kind == "mariadb" and query == FOREVER_CTE:
        # MariaDB ends a recursive CTE itself at max_recursive_iterations (1000): no runaway.
        assert result.status is Status.FAILED, result
    else:
        assert result.status is Status.ERROR, result
    assert took < TIMEOUT_S + 1, f"{took:.2f} s: {result.reason}"
    assert snapshot(scratch_db) == before
    assert new_files() == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT COUNT(*) FROM child",
        "SELECT COUNT(*) FROM child WHERE email LIKE '%@example.org' AND status = 'open'",
        "WITH o AS (SELECT * FROM child WHERE status = 'open') SELECT COUNT(*) FROM o",
        "SELECT COUNT(*) FROM (SELECT id FROM child UNION SELECT id FROM loose) u",
        "-- a comment\nSELECT COUNT(*) FROM child /* and another */;",
        "SELECT COUNT(*) FROM child c JOIN parent p ON p.id = c.parent_id WHERE p.name <> 'x:y'",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5)"
        " SELECT COUNT(*) FROM r",
    ],
)
def test_a_reading_query_still_runs(scratch_db: ScratchDb, db_check: Any, query: str) -> None:
    scratch_db.create_shop()
    result = db_check({"name": "read", "type": "sql", "query": query, "min": 1})
    assert result.status is Status.PASSED, result


@pytest.mark.parametrize(
    ("sql", "backend", "message"),
    [
        ("SELECT pg_read_file('/etc/passwd')", "postgresql", "pg_read_file.*server files"),
        ("SELECT LOAD_FILE('/etc/passwd')", "mariadb", "LOAD_FILE.*server files"),
        ("SELECT SLEEP(30)", "mysql", "SLEEP.*time bomb"),
        ("SELECT 1 /*!50000 , SLEEP(1) */", "mariadb", "executable comment"),
        ("SELECT 1 /*M!100000 , SLEEP(1) */", "mariadb", "executable comment"),
        ("SELECT id FROM t FOR UPDATE", "postgresql", "FOR UPDATE/SHARE"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "postgresql", "DELETE"),
        ("COPY t TO '/tmp/x'", "postgresql", "COPY"),
        ("SELECT 1; SELECT 2", "sqlite", "2 statements"),
        ("SELECT a INTO @v FROM t", "mysql", "INTO"),
        ("SELECT 1 FROM", "postgresql", "does not parse as postgres SQL"),
    ],
)
def test_a_refusal_names_what_and_why(sql: str, backend: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        guard_read_query(sql, backend)


def test_a_function_name_in_a_string_is_not_a_call() -> None:
    sql = "SELECT COUNT(*) FROM t WHERE note = 'pg_sleep(30); DROP TABLE t'"
    assert guard_read_query(sql, "postgresql") == sql


def _session(scratch_db: ScratchDb) -> tuple[Database, DbState]:
    db = Database.model_validate(
        {"url": scratch_db.url, "schema": scratch_db.schema, "statement_timeout_s": TIMEOUT_S}
    )
    return db, DbState()


SERVER_WRITES = [
    "DELETE FROM child",
    "CREATE TABLE intruder (id INTEGER)",
    "DROP TABLE loose",
]


@pytest.mark.parametrize("statement", SERVER_WRITES)
def test_the_server_refuses_writes_even_after_a_commit(
    scratch_db: ScratchDb, statement: str
) -> None:
    """Past the guard: a COMMIT ends the read-only transaction, the session stays read-only."""
    scratch_db.create_shop()
    before = snapshot(scratch_db)
    db, db_state = _session(scratch_db)
    try:
        with pytest.raises(ProbeError), read_only("main", db, db_state) as s:
            try:
                s.conn.exec_driver_sql("COMMIT")
                s.conn.exec_driver_sql(statement)
            except exc.DBAPIError as err:
                raise s.error(err) from None
    finally:
        dispose_engines(db_state)
    assert snapshot(scratch_db) == before


@pytest.mark.parametrize("scratch_db", ["sqlite"], indirect=True)
def test_sqlite_is_opened_read_only_and_interrupts_at_the_deadline(scratch_db: ScratchDb) -> None:
    scratch_db.create_shop()
    db, db_state = _session(scratch_db)
    try:
        with read_only("main", db, db_state) as s:
            raw = s.conn.connection.dbapi_connection
            assert raw is not None
            # The query_only pragma is refused, writes are refused below the guard.
            with pytest.raises(ProbeError):
                try:
                    s.conn.exec_driver_sql("PRAGMA query_only = OFF")
                    s.conn.exec_driver_sql("DELETE FROM child")
                except exc.DBAPIError as err:
                    raise s.error(err) from None
            started = time.monotonic()
            with pytest.raises(ProbeError, match="statement timeout"):
                s.rows(FOREVER_CTE)
            assert time.monotonic() - started < TIMEOUT_S + 1
        assert "mode=ro" in str(s.url)
    finally:
        dispose_engines(db_state)
    assert scratch_db.scalar("SELECT COUNT(*) FROM child") == 10


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_postgresql_sessions_are_read_only_at_the_server(scratch_db: ScratchDb) -> None:
    db, db_state = _session(scratch_db)
    try:
        with read_only("main", db, db_state) as s:
            settings = s.rows(
                "SELECT current_setting('default_transaction_read_only'),"
                " current_setting('transaction_read_only'), current_setting('statement_timeout')"
            )
        assert tuple(settings[0]) == ("on", "on", "2s")
    finally:
        dispose_engines(db_state)


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_postgresql_client_deadline_cancels_when_the_server_does_not(
    scratch_db: ScratchDb,
) -> None:
    """With the server's timeout lifted (as a hostile pooler might), the client cancels."""
    db, db_state = _session(scratch_db)
    try:
        with read_only("main", db, db_state) as s:
            s.conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            started = time.monotonic()
            with pytest.raises(ProbeError, match="statement timeout"), s.errors():
                s.conn.exec_driver_sql("SELECT pg_sleep(30)")
            took = time.monotonic() - started
        assert took < TIMEOUT_S + 2
    finally:
        dispose_engines(db_state)


@pytest.mark.parametrize("scratch_db", ["mariadb"], indirect=True)
def test_mariadb_sessions_are_read_only_at_the_server(scratch_db: ScratchDb) -> None:
    db, db_state = _session(scratch_db)
    try:
        with read_only("main", db, db_state) as s:
            row = s.row("SELECT @@session.tx_read_only, @@session.max_statement_time")
        assert row is not None
        assert int(row[0]) == 1
        assert float(row[1]) == TIMEOUT_S
    finally:
        dispose_engines(db_state)


def teardown_module() -> None:
    for path in new_files():  # never expected; do not leave them behind if a test failed
        os.unlink(path)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///app.db",
        "postgresql+psycopg://gate@127.0.0.1/test",
        "mysql+pymysql://root@127.0.0.1/test",
        "mariadb+pymysql://root@127.0.0.1/test",
    ],
)
def test_validate_refuses_at_load_what_the_guard_refuses_at_run(tmp_path: Path, url: str) -> None:
    """`releasegate validate` and the run agree: every corpus query the guard refuses on a
    backend makes the spec invalid, naming the check's line; every other one loads."""
    from releasegate.errors import SpecError
    from releasegate.loader import load_spec
    from releasegate.spec_db import backend_of

    backend = backend_of(url)
    assert backend is not None
    refused_at_load = 0
    for index, attack in enumerate(ATTACKS):
        query = attack.replace(OUT, f"/tmp/{TAG}_{index}")
        path = tmp_path / f"spec{index}.yaml"
        path.write_text(
            "version: 1\ndeployment: {name: shop}\ntarget: {base_url: demo://}\n"
            f"databases: {{main: {{url: '{url}'}}}}\n"
            "checks:\n"
            "  - name: q\n    type: sql\n    phases: [t24h]\n    max: 0\n"
            f"    query: {json.dumps(query)}\n"
        )
        try:
            guard_read_query(query, backend)
        except ProbeError as err:
            with pytest.raises(SpecError) as refused:
                load_spec(path)
            assert f"{path}:6: checks[0]: its query: " in str(refused.value)
            assert str(err) in str(refused.value)
            refused_at_load += 1
        else:
            load_spec(path)
    assert refused_at_load >= 25
