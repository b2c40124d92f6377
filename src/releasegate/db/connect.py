"""Connections: URL resolution, an engine cache, read-only sessions with a statement timeout.

Every check runs in a session opened by ``read_only``:

* PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout``; statements
  are prepared server-side (``prepare_threshold=0``) so a query can never smuggle a second
  statement (``...; COMMIT; DELETE ...``) past the transaction.
* MariaDB/MySQL: ``SET SESSION max_statement_time`` (MySQL: ``max_execution_time``), then
  ``START TRANSACTION READ ONLY``; PyMySQL refuses multi-statements by default.
* SQLite: ``PRAGMA query_only`` and a progress handler that interrupts a statement past its
  deadline; the file is opened ``mode=rw`` so that a wrong path is an error, not a new file.

The session always ends in a rollback. Any database error becomes a ``ProbeError`` whose text
has the URL's password masked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, exc, inspect, text
from sqlalchemy.engine import URL, Inspector, Row, make_url

from ..errors import ProbeError
from ..redact import redact_text
from ..spec_db import Database
from .state import DbState

PROGRESS_STEPS = 1000  # SQLite VM instructions between deadline checks

_TIMEOUT_CODES = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_READ_ONLY_CODES = {1792}  # MariaDB/MySQL: cannot execute statement in a READ ONLY transaction
_READ_WORDS = {"select", "with", "values", "table", "show"}


def resolve_url(url: str, state: DbState) -> URL:
    """The SQLAlchemy URL for ``url``; ``demo://`` is the running demo target's SQLite file."""
    if url == "demo://":
        if state.demo_db_path is None:
            raise ProbeError(
                "database url demo:// means the embedded demo target's SQLite file, but no demo"
                " target runs for this gate. Fix: use target.base_url: demo://, or point the"
                " database at a real one, e.g. RELEASEGATE_DB_URL=sqlite:///path/app.db"
            )
        url = f"sqlite:///{state.demo_db_path}"
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError) as err:
        raise ProbeError(redact_text(f"not a SQLAlchemy URL: {url}: {err}")) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).resolve()
            if not path.is_file():
                raise ProbeError(
                    f"SQLite database {path} does not exist (a gate never creates one)."
                    " Fix: point the database url at the application's file"
                )
            query = {**parsed.query, "mode": "rw", "uri": "true"}
            parsed = parsed.set(database=f"file:{quote(str(path))}", query=query)
    return parsed


def shown_url(url: URL) -> str:
    """The URL as it may appear in output: password masked."""
    return url.render_as_string(hide_password=True)


def display_url(url: str, state: DbState) -> str:
    """The spec's URL for messages: password masked, ``demo://`` with its file."""
    if url == "demo://":
        return f"demo:// ({state.demo_db_path})"
    try:
        return shown_url(make_url(url))
    except (exc.ArgumentError, ValueError):
        return redact_text(url)


def _connect_args(url: URL, db: Database) -> dict[str, Any]:
    connect_s = max(1, int(min(db.statement_timeout_s, 10.0)))
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"connect_timeout": connect_s, "prepare_threshold": 0}
    if backend in ("mysql", "mariadb"):
        # The socket read timeout is a backstop behind the server's own statement timeout.
        return {"connect_timeout": connect_s, "read_timeout": int(db.statement_timeout_s) + 10}
    if backend == "sqlite":
        return {"timeout": min(db.statement_timeout_s, 5.0)}
    return {}


def engine_for(db: Database, state: DbState) -> Engine:
    """One engine per URL per run (``state.engines``), created on first use."""
    url = resolve_url(db.url, state)
    key = url.render_as_string(hide_password=False)
    engine = state.engines.get(key)
    if engine is None:
        try:
            engine = create_engine(url, connect_args=_connect_args(url, db))
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
            raise ProbeError(
                redact_text(f"cannot use {shown_url(url)}: {err}. Fix: check the URL's driver")
            ) from None
        state.engines[key] = engine
    return engine


def dispose_engines(state: DbState) -> None:
    """Close every cached engine's connections (at the end of a run) and forget the engines."""
    engines, state.engines = state.engines, {}
    for engine in engines.values():
        engine.dispose()


def _strip(sql: str, backslash_escapes: bool) -> str:
    """``sql`` with comments blanked and string literals emptied (for the guard only)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if backslash_escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(f"{ch}{ch}")
            i = j + 1
        elif sql.startswith("--", i) or (backslash_escapes and ch == "#"):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def guard_read_query(sql: str, backend: str) -> str:
    """Refuse anything but one reading statement; return ``sql`` without a trailing ``;``.

    The read-only transaction is what stops writes; this guard adds a clear message and stops
    what a transaction does not cover on MariaDB/MySQL (DDL commits implicitly, ``INTO OUTFILE``).
    """
    mysql = backend in ("mysql", "mariadb")
    body = _strip(sql, backslash_escapes=mysql).strip().rstrip(";").strip()
    first = re.match(r"[\s(]*([A-Za-z]+)", body)
    word = first.group(1).lower() if first else ""
    if word not in _READ_WORDS:
        raise ProbeError(
            f"the check's query starts with {word.upper() or 'nothing'!r}: a check query must"
            " be one SELECT (or WITH ... SELECT). Checks only read; releasegate runs them in a"
            " read-only transaction"
        )
    if ";" in body:
        raise ProbeError(
            "the check's query holds more than one statement (a ';' in the middle): write"
            " one SELECT"
        )
    if mysql and re.search(r"(?i)\binto\s+(outfile|dumpfile)\b|/\*!", sql):
        raise ProbeError("the check's query writes a file (INTO OUTFILE/DUMPFILE): not allowed")
    return sql.strip().rstrip(";").rstrip()


class DbSession:
    """A read-only connection with a per-statement deadline; every error is a ``ProbeError``."""

    def __init__(self, conn: Connection, name: str, db: Database, url: URL, shown: str) -> None:
        self.conn = conn
        self.shown = shown
        self.name = name
        self.db = db
        self.url = url
        self.dialect = conn.dialect
        self.backend = url.get_backend_name()
        self.is_mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
        self.schema = db.schema_name
        self._deadline = 0.0
        self._inspector: Inspector | None = None

    def inspector(self) -> Inspector:
        """Reflection on this connection (inside the read-only transaction), cached per session."""
        if self._inspector is None:
            self._inspector = inspect(self.conn)
        return self._inspector

    @property
    def label(self) -> str:
        return f"database {self.name!r} ({self.shown})"

    def _interrupt(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    @contextmanager
    def errors(self, sql: str = "") -> Iterator[None]:
        """Start a statement deadline; turn database errors into ``ProbeError``."""
        self._deadline = time.monotonic() + self.db.statement_timeout_s
        try:
            yield
        except exc.DBAPIError as err:
            raise self.error(err, sql) from None
        except exc.SQLAlchemyError as err:
            raise ProbeError(redact_text(f"{self.label}: {err}")) from None

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row[Any]]:
        """Run one reading statement and return its rows (callers LIMIT or aggregate).

        Without ``params`` the text is taken literally: a ``:name`` in it is not a parameter
        (a user's query may well say ``WHERE note = 'a:b'``).
        """
        sql = guard_read_query(sql, self.backend)
        statement = text(sql) if params is not None else text(sql.replace(":", "\\:"))
        with self.errors(sql):
            result = self.conn.execute(statement, dict(params or {}))
            return list(result.fetchall()) if result.returns_rows else []

    def row(self, sql: str, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def error(self, err: exc.DBAPIError, sql: str = "") -> ProbeError:
        """A ``ProbeError`` saying what went wrong and the fix, with secrets masked."""
        orig = err.orig
        code = orig.args[0] if orig is not None and orig.args else None
        message = str(orig).strip().splitlines()[0] if orig is not None else str(err)
        sqlstate = getattr(orig, "sqlstate", None)
        timed_out = (
            sqlstate == "57014"
            or code in _TIMEOUT_CODES
            or (self.backend == "sqlite" and "interrupted" in message)
        )
        if timed_out:
            text_ = (
                f"{self.label}: the query did not finish within the statement timeout of"
                f" {self.db.statement_timeout_s:g} s and was cancelled. Fix: make it cheaper"
                " (an index, a narrower where:) or raise statement_timeout_s"
            )
        elif sqlstate == "25006" or code in _READ_ONLY_CODES or "readonly" in message:
            text_ = (
                f"{self.label} refused a write: {message}. Checks run in a read-only"
                " transaction; a check query must only read"
            )
        else:
            text_ = f"{self.label}: {message}"
        if sql:
            text_ += f" [SQL: {' '.join(sql.split())[:300]}]"
        return ProbeError(redact_text(text_))

    def begin(self) -> None:
        """Make the transaction read-only and set the statement timeout, per dialect."""
        timeout_s = self.db.statement_timeout_s
        if self.backend == "postgresql":
            self.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            self.conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            if self.schema:
                quoted = self.dialect.identifier_preparer.quote(self.schema)
                self.conn.exec_driver_sql(f"SET LOCAL search_path TO {quoted}")
        elif self.backend in ("mysql", "mariadb"):
            if self.is_mariadb:
                self.conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout_s:.3f}")
            else:
                ms = int(timeout_s * 1000)
                self.conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
            self.conn.exec_driver_sql("START TRANSACTION READ ONLY")
        elif self.backend == "sqlite":
            self.conn.exec_driver_sql("PRAGMA query_only = ON")
            raw = self.conn.connection.dbapi_connection
            if raw is not None:
                raw.set_progress_handler(self._interrupt, PROGRESS_STEPS)

    def end(self) -> None:
        if self.backend == "sqlite":
            raw = self.conn.connection.dbapi_connection
            if raw is not None:
                raw.set_progress_handler(None, 0)


@contextmanager
def read_only(name: str, db: Database, state: DbState) -> Iterator[DbSession]:
    """A ``DbSession`` on database ``name``, inside a read-only transaction that is rolled back."""
    engine = engine_for(db, state)
    try:
        conn = engine.connect()
    except exc.DBAPIError as err:
        orig = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err)
        raise ProbeError(
            redact_text(
                f"cannot connect to database {name!r} ({display_url(db.url, state)}): {orig}."
                " Fix: check that the server runs and the URL, user and password are right"
            )
        ) from None
    session = DbSession(conn, name, db, engine.url, display_url(db.url, state))
    try:
        try:
            session.begin()
        except exc.DBAPIError as err:
            raise session.error(err) from None
        yield session
    finally:
        try:
            session.end()
            conn.rollback()
        except exc.SQLAlchemyError:
            conn.invalidate()  # a broken connection must not go back to the pool
        finally:
            conn.close()


def database(spec_databases: Mapping[str, Database], name: str) -> Database:
    """The spec's database ``name`` (validation guarantees it exists for spec checks)."""
    try:
        return spec_databases[name]
    except KeyError:
        known = ", ".join(sorted(spec_databases)) or "none"
        raise ProbeError(
            f"no database {name!r} in the spec (known: {known}). Fix: declare it under databases:"
        ) from None
