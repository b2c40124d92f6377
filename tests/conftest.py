"""Shared wiring for releasegate's own tests."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

# In-process pytester runs drop the modules they imported when they end. requests keeps a
# reference to http.cookiejar, so importing it in a run and again in the next one mixes two
# copies of CookieJar ("You can only merge into CookieJar"): import it once, here.
import requests  # noqa: F401

pytest_plugins = ["pytester"]

# Everything the tests start runs on loopback; refuse anything else.
os.environ.setdefault("RELEASEGATE_LOOPBACK_ONLY", "1")


def require_service(name: str, reason: str) -> None:
    """Skip for a missing service, or fail when RELEASEGATE_REQUIRE_SERVICES=1 (CI)."""
    message = f"{name} is not available: {reason}"
    if os.environ.get("RELEASEGATE_REQUIRE_SERVICES", "") not in ("", "0"):
        pytest.fail(f"{message} (RELEASEGATE_REQUIRE_SERVICES=1: a missing service fails)")
    pytest.skip(message)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a real Prometheus scraping loopback targets every second: ``prometheus(url, ...)``
    returns a ``_prometheus.Prometheus``; every one started is killed after the test."""
    from _prometheus import Prometheus, prometheus_binary

    binary = prometheus_binary()
    if binary is None:
        require_service("prometheus", "no prometheus on PATH (Debian: apt-get install prometheus)")
    started: list[Prometheus] = []

    def start(*targets: str) -> Prometheus:
        server = Prometheus(targets, tmp_path / f"prometheus{len(started)}", binary)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


# Databases for the DB check tests (tests/test_db_*.py): each test gets its own SQLite file,
# PostgreSQL schema or MariaDB database, created here and dropped after it.
DB_KINDS = ("sqlite", "postgresql", "mariadb")
PG_URL = os.environ.get(
    "RELEASEGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "RELEASEGATE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
_service_errors: dict[str, str | None] = {}

# pytester restores sys.modules after each test that uses it; a module first imported inside
# such a test is imported a second time later, and SQLAlchemy's dialects (and exception classes
# caught by identity) break when two copies meet. Import them once, up front.
for _module in (
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.mysql.pymysql",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "psycopg",
    "pymysql",
    "releasegate.probes.sql",
):
    importlib.import_module(_module)


def _service_error(kind: str) -> str | None:
    """Why the server of ``kind`` cannot be used (checked once per process), or None."""
    if kind == "sqlite":
        return None
    if kind not in _service_errors:
        import sqlalchemy as sa

        url = PG_URL if kind == "postgresql" else MARIADB_URL
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            _service_errors[kind] = None
        except sa.exc.SQLAlchemyError as err:
            _service_errors[kind] = f"{url}: {str(err.orig or err).splitlines()[0]}"
        finally:
            engine.dispose()
    return _service_errors[kind]


class ScratchDb:
    """A database of one test's own, and a read-write engine to set up and break its data."""

    def __init__(self, kind: str, url: str, schema: str | None, engine: Any) -> None:
        self.kind = kind
        self.url = url
        self.schema = schema
        self.engine = engine

    @property
    def timestamp(self) -> str:
        return "DATETIME" if self.kind == "mariadb" else "TIMESTAMP"

    def database_yaml(self, **extra: Any) -> str:
        """The spec's ``databases: main:`` entry for this database, as flow YAML."""
        fields = {"url": self.url, **({"schema": self.schema} if self.schema else {}), **extra}
        return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}"

    def run(self, *statements: str, params: dict[str, Any] | None = None) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params or {})

    def run_unchecked(self, *statements: str) -> None:
        """Run ``statements`` with foreign key enforcement off (to create orphans)."""
        off = {
            "postgresql": "SET LOCAL session_replication_role = replica",
            "mariadb": "SET FOREIGN_KEY_CHECKS = 0",
            "sqlite": "PRAGMA foreign_keys = OFF",
        }[self.kind]
        self.run(off, *statements)
        if self.kind == "mariadb":
            self.run("SET FOREIGN_KEY_CHECKS = 1")

    def scalar(self, sql: str) -> Any:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()

    def create_shop(self, children: int = 10) -> None:
        """parent <- child (a foreign key), loose.parent_id (a logical reference, no FK)."""
        self.run(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)",
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER, email VARCHAR(100),"
            f" status VARCHAR(20), score DOUBLE PRECISION, created_at {self.timestamp},"
            " FOREIGN KEY (parent_id) REFERENCES parent (id))",
            "CREATE INDEX child_status ON child (status)",
            "CREATE TABLE loose (id INTEGER PRIMARY KEY, parent_id INTEGER)",
        )
        now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        self.run(*(f"INSERT INTO parent (id, name) VALUES ({i}, 'p{i}')" for i in range(1, 6)))
        for i in range(1, children + 1):
            self.run(
                "INSERT INTO child (id, parent_id, email, status, score, created_at)"
                " VALUES (:id, :parent, :email, :status, 0.1, :at)",
                params={
                    "id": i,
                    "parent": i % 5 + 1,
                    "email": f"u{i}@example.org",
                    "status": "open" if i % 2 else "done",
                    "at": now - timedelta(minutes=i),
                },
            )
        self.run(*(f"INSERT INTO loose (id, parent_id) VALUES ({i}, {i})" for i in range(1, 4)))


@pytest.fixture(params=DB_KINDS)
def scratch_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScratchDb]:
    """A fresh empty database: SQLite file, PostgreSQL schema or MariaDB database."""
    import sqlalchemy as sa

    kind: str = request.param
    problem = _service_error(kind)
    if problem:
        require_service(kind, problem)
    name = f"rg_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        sqlite3.connect(tmp_path / "app.db").close()  # an empty database, as an app would have
        url = f"sqlite:///{tmp_path / 'app.db'}"
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        yield ScratchDb(kind, url, None, engine)
        engine.dispose()
        return
    admin = sa.create_engine(
        PG_URL if kind == "postgresql" else MARIADB_URL, poolclass=sa.pool.NullPool
    )
    if kind == "postgresql":
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        url = PG_URL
        engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool, connect_args={"options": f"-c search_path={name}"}
        )
        drop = f"DROP SCHEMA IF EXISTS {name} CASCADE"
    else:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        url = sa.make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        drop = f"DROP DATABASE IF EXISTS {name}"
    try:
        yield ScratchDb(kind, url, name if kind == "postgresql" else None, engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(drop)
        admin.dispose()


@pytest.fixture
def db_check(scratch_db: ScratchDb, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Run spec check(s) (dicts) against ``scratch_db`` with the probes, as a gate run would.

    Returns the ``ProbeResult`` of each check, in order; the checks share one probe context.
    """
    from releasegate.db.connect import dispose_engines
    from releasegate.phases import Phase
    from releasegate.probes import ProbeContext, run_check
    from releasegate.spec import Spec
    from releasegate.spec_db import DB_BACKENDS

    contexts: list[Any] = []

    def run(*checks: dict[str, Any], **database: Any) -> Any:
        main: dict[str, Any] = {"url": scratch_db.url}
        if scratch_db.schema:
            main["schema"] = scratch_db.schema
        spec = Spec.model_validate(
            {
                "deployment": {"name": "shop"},
                "target": {"base_url": "http://127.0.0.1:9"},
                "databases": {"main": {**main, **database}},
                "checks": [{"phases": ["t24h"], **c} for c in checks],
            },
            # No backends named: the load-time query check stands aside, so that these tests
            # reach the run-time guard and the server's read-only session behind it.
            context={DB_BACKENDS: {}},
        )
        context = ProbeContext(spec=spec, target=None, phase=Phase.T24H, spec_dir=tmp_path)
        contexts.append(context)
        results = [run_check(check, context) for check in spec.checks]
        return results[0] if len(results) == 1 else results

    def dispose() -> None:
        """Close the engines of every run so far (a test that runs many: the fuzzers)."""
        while contexts:
            dispose_engines(contexts.pop().db)

    run.dispose = dispose  # type: ignore[attr-defined]
    yield run
    dispose()
