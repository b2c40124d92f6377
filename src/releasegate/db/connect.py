"""Connections: URL resolution, an engine cache, read-only sessions with a statement timeout.

Every check runs in a session opened by ``read_only``:

* PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout``; statements
  are prepared server-side (``prepare_threshold=0``) so a query can never smuggle a second
  statement (``...; COMMIT; DELETE ...``) past the transaction.
* MariaDB/MySQL: ``SET SESSION max_statement_time`` (MySQL: ``max_execution_time``), then
  ``START TRANSACTION READ ONLY``; PyMySQL refuses multi-statements by default.
* SQLite: the file is opened ``mode=ro`` (a wrong path is an error, not a new file),
  ``PRAGMA query_only``, an authorizer that lets a statement only read (and call no denied
  function), and a progress handler that interrupts a statement past its deadline.

Every new connection is made read-only for its whole life when it opens (PostgreSQL
``default_transaction_read_only``, MariaDB/MySQL ``SET SESSION TRANSACTION READ ONLY``, SQLite
``query_only``); the transactions above come on top, and the query guard (``sqlguard.py``,
a real SQL parser) refuses anything but one SELECT before it is sent. The server's statement
timeout has a client-side deadline behind it (see ``DbSession.errors``).

The session always ends in a rollback. Any database error becomes a ``ProbeError`` whose text
has the URL's password masked.

Where a connection may go is the spec's ``allowed_hosts`` (``netguard``), judged when the engine
is made, before any connection, on the parameters the driver will receive (the URL's host and
port, and query parameters such as ``host=``, multi-host lists, ``hostaddr=``,
``unix_socket=``). Every TCP host is looked up once and pinned: psycopg gets ``hostaddr=`` with
each checked address beside ``host=<name>`` (TLS and authentication keep the name); PyMySQL
connects over a socket dialed to the checked address. A unix socket is local: its path must be
absolute and be a socket. Indirections that could send the connection elsewhere are refused:
``service=``, ``servicefile=``, ``passfile=``, a conninfo string, option files
(``read_default_file``), and ``PGSERVICE`` in the environment. A PostgreSQL URL without a host
means the default unix socket: ``host`` and ``hostaddr`` are always passed, so ``PGHOST`` and
``PGHOSTADDR`` from the environment never redirect it.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import URL, Inspector, Row, make_url

from ..errors import ProbeError, TargetRefused
from ..netguard import AddrInfo, Policy, dial, literal_address
from ..redact import redact_text
from ..spec_db import Database
from ..sqlguard import denied_function, guard_read_query
from .state import DbState

__all__ = ["DbSession", "database", "dispose_engines", "guard_read_query", "read_only"]

PROGRESS_STEPS = 1000  # SQLite VM instructions between deadline checks
CLIENT_GRACE_S = 1.0  # the client cancels this long after the server's statement timeout

# What a SQLite statement may do (its authorizer): read, and the pragmas reflection reads.
_SQLITE_READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
     "foreign_key_list", "database_list", "collation_list"}
)  # fmt: skip

_TIMEOUT_CODES = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_READ_ONLY_CODES = {1792}  # MariaDB/MySQL: cannot execute statement in a READ ONLY transaction


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
            query = {**parsed.query, "mode": "ro", "uri": "true"}
            parsed = parsed.set(database=f"file:{quote(str(path))}", query=query)
        elif database.startswith("file:"):  # the user's own URI: opened read-only all the same
            parsed = parsed.set(query={**parsed.query, "mode": "ro", "uri": "true"})
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
        # The client's deadline: a socket read timeout a little behind the server's own
        # statement timeout (max_statement_time), which normally fires first.
        read_s = math.ceil(db.statement_timeout_s) + CLIENT_GRACE_S + 1
        return {"connect_timeout": connect_s, "read_timeout": read_s}
    if backend == "sqlite":
        return {"timeout": min(db.statement_timeout_s, 5.0)}
    return {}


def engine_for(db: Database, state: DbState) -> Engine:
    """One engine per URL per run (``state.engines``), created on first use."""
    url = resolve_url(db.url, state)
    key = url.render_as_string(hide_password=False)
    engine = state.engines.get(key)
    if engine is None:
        args = _connect_args(url, db)
        try:
            engine = create_engine(url, connect_args=args)
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
            raise ProbeError(
                redact_text(f"cannot use {shown_url(url)}: {err}. Fix: check the URL's driver")
            ) from None
        _pin(engine, args, state.policy)
        event.listen(engine, "connect", _read_only_on_connect(url.get_backend_name(), db))
        state.engines[key] = engine
    return engine


# Connection parameters that make the driver read where to connect from somewhere else.
_PG_INDIRECT = ("service", "servicefile", "passfile", "conninfo", "dsn")
_MYSQL_INDIRECT = ("read_default_file", "read_default_group")


def _pin(engine: Engine, args: dict[str, Any], policy: Policy) -> None:
    """Judge every host the driver would dial and make it dial the checked addresses
    (module doc); ``TargetRefused`` or ``ProbeError`` before any connection is made."""
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        return
    cargs, cparams = engine.dialect.create_connect_args(url)
    cparams = {**cparams, **args}
    shown = shown_url(url)
    purpose = f"database traffic ({shown})"
    if backend == "postgresql":
        if any(cargs):
            raise TargetRefused(f"{shown}: a conninfo string cannot be checked; use URL parts")
        pins = _pg_pins(cparams, policy, purpose, shown, url.get_driver_name())
        event.listen(engine, "do_connect", lambda _d, _r, _a, params: params.update(pins))
    elif backend in ("mysql", "mariadb"):
        _mysql_pins(engine, cparams, policy, purpose, shown)
    else:
        raise TargetRefused(
            f"{shown}: releasegate checks where connections of sqlite, postgresql, mysql and"
            f" mariadb databases go, not of {backend}"
        )


def _indirect(shown: str, keys: tuple[str, ...], cparams: dict[str, Any]) -> None:
    for key in keys:
        if key in cparams:
            raise TargetRefused(
                f"{shown}: {key}= is refused: it could send the connection somewhere the gate"
                " cannot check. Fix: give host, port and credentials in the URL itself"
            )


def _resolve(policy: Policy, host: str, port: int | None, purpose: str) -> list[AddrInfo]:
    try:
        return policy.resolve(host, port, purpose)
    except socket.gaierror as err:
        raise ProbeError(
            f"{purpose}: host {host!r} does not resolve ({err}). Fix: check the URL's host"
        ) from None
    except TimeoutError as err:
        raise ProbeError(f"{purpose}: {err}: the resolver does not answer") from None


def _socket_file(path: str, shown: str) -> None:
    """A unix socket is local; its path must be absolute and exist as a socket."""
    if not os.path.isabs(path):
        raise TargetRefused(f"{shown}: unix socket {path!r} must be an absolute path")
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        is_socket = False
    if not is_socket:
        raise ProbeError(
            f"{shown}: no unix socket at {path}. Fix: check the path, and that the server runs"
        )


def _pg_pins(
    cparams: dict[str, Any], policy: Policy, purpose: str, shown: str, driver: str
) -> dict[str, Any]:
    """``host``/``hostaddr``/``port`` for libpq: one entry per checked address."""
    _indirect(shown, _PG_INDIRECT, cparams)
    if os.environ.get("PGSERVICE"):
        raise TargetRefused(
            f"{shown}: PGSERVICE is set in the environment, and libpq would read where to"
            " connect from its service file. Fix: unset PGSERVICE for the gate"
        )

    def split(key: str) -> list[str]:
        value = cparams.get(key)
        return [] if value is None or value == "" else str(value).split(",")

    hosts, addrs, ports = split("host"), split("hostaddr"), split("port")
    count = max(len(hosts), len(addrs), 1)
    if (hosts and addrs and len(hosts) != len(addrs)) or len(ports) not in (0, 1, count):
        raise ProbeError(
            f"{shown}: {len(hosts)} host(s), {len(addrs)} hostaddr(s) and {len(ports)} port(s)"
            " do not pair up. Fix: give one port, or one per host"
        )
    entries: list[tuple[str, str, str]] = []
    for index in range(count):
        host = hosts[index] if hosts else ""
        addr = addrs[index] if addrs else ""
        port = ports[index] if len(ports) == count else (ports[0] if ports else "")
        if addr:
            if literal_address(addr) is None:
                raise TargetRefused(f"{shown}: hostaddr {addr!r} is not an IP address")
            entries += [(host, _address(i), port) for i in _resolve(policy, addr, None, purpose)]
        elif host.startswith("/"):
            default_port = os.environ.get("PGPORT") or "5432"
            _socket_file(os.path.join(host, f".s.PGSQL.{port or default_port}"), shown)
            entries.append((host, "", port))
        elif host.startswith("@"):
            raise TargetRefused(f"{shown}: abstract socket {host!r} cannot be checked")
        elif not host:
            entries.append(("", "", port))  # the default unix socket: local
        else:
            for info in _resolve(policy, host, None, purpose):
                if (host, _address(info), port) not in entries:
                    entries.append((host, _address(info), port))
    if driver not in ("psycopg", "psycopg2"):  # no libpq: no hostaddr, one host
        if len(entries) > 1:
            raise TargetRefused(f"{shown}: several hosts need the psycopg driver")
        return {"host": entries[0][1]} if entries[0][1] else {}
    pins = {"host": ",".join(e[0] for e in entries), "hostaddr": ",".join(e[1] for e in entries)}
    if ports:
        pins["port"] = ",".join(e[2] for e in entries)
    return pins


def _address(info: AddrInfo) -> str:
    return str(info[4][0])


def _mysql_pins(
    engine: Engine, cparams: dict[str, Any], policy: Policy, purpose: str, shown: str
) -> None:
    """A unix socket is checked; a TCP host is resolved once and the driver dials the checked
    address (PyMySQL: a socket handed over, the name kept for TLS; others: host=address)."""
    _indirect(shown, _MYSQL_INDIRECT, cparams)
    path = cparams.get("unix_socket")
    if path:
        _socket_file(str(path), shown)
        return
    host = str(cparams.get("host") or "localhost")
    port = int(cparams.get("port") or 3306)
    infos = _resolve(policy, host, port, purpose)
    if engine.url.get_driver_name() != "pymysql":
        event.listen(
            engine, "do_connect", lambda _d, _r, _a, params: params.update(host=_address(infos[0]))
        )
        return
    timeout = cparams.get("connect_timeout")
    source = cparams.get("bind_address")

    def connect(dialect: Any, _record: Any, cargs: list[Any], params: dict[str, Any]) -> Any:
        module = dialect.loaded_dbapi
        conn = module.connect(*cargs, **{**params, "defer_connect": True})
        try:
            sock = dial(infos, timeout, (source, 0) if source else None)
        except OSError as err:
            raise module.OperationalError(
                2003, f"Can't connect to MySQL server on {host!r} ({err})"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn.host_info = f"socket {host}:{port}"
        conn.connect(sock)
        return conn

    event.listen(engine, "do_connect", connect)


def _read_only_on_connect(backend: str, db: Database) -> Callable[[Any, Any], None]:
    """Make every new connection read-only for its whole life, before SQLAlchemy sees it.

    Session settings, not per-transaction ones: a rollback does not undo them and the guard
    refuses ``SET`` and ``set_config``. ``begin`` makes each transaction read-only on top.
    """
    timeout_ms = int(db.statement_timeout_s * 1000)
    if backend == "postgresql":
        statements = [
            "SET SESSION default_transaction_read_only = on",
            # The server must read string literals as the guard's parser does.
            "SET SESSION standard_conforming_strings = on",
            f"SET SESSION statement_timeout = {timeout_ms}",
        ]
    elif backend in ("mysql", "mariadb"):
        statements = ["SET SESSION TRANSACTION READ ONLY"]
    elif backend == "sqlite":
        statements = ["PRAGMA query_only = ON"]
    else:
        statements = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        if backend != "sqlite":
            dbapi_connection.commit()  # PostgreSQL: SET inside an open transaction is undone

    return on_connect


def dispose_engines(state: DbState) -> None:
    """Close every cached engine's connections (at the end of a run) and forget the engines."""
    engines, state.engines = state.engines, {}
    for engine in engines.values():
        engine.dispose()


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

    def _cancel(self) -> None:
        """The client's deadline on PostgreSQL: cancel the running statement (57014)."""
        raw = self.conn.connection.dbapi_connection
        cancel = getattr(raw, "cancel_safe", None) or getattr(raw, "cancel", None)
        if cancel is not None:
            with contextlib.suppress(Exception):  # best effort; the session fails anyway
                cancel()

    @contextmanager
    def errors(self, sql: str = "") -> Iterator[None]:
        """Start a statement deadline; turn database errors into ``ProbeError``.

        The server's statement timeout normally stops a statement; the client's deadline
        (SQLite: the progress handler at the deadline; PostgreSQL: a cancel request
        ``CLIENT_GRACE_S`` after it; MariaDB/MySQL: the socket read timeout) stops it when
        the server does not.
        """
        timeout_s = self.db.statement_timeout_s
        self._deadline = time.monotonic() + timeout_s
        timer = None
        if self.backend == "postgresql":
            timer = threading.Timer(timeout_s + CLIENT_GRACE_S, self._cancel)
            timer.daemon = True
            timer.start()
        try:
            yield
        except exc.DBAPIError as err:
            raise self.error(err, sql) from None
        except exc.SQLAlchemyError as err:
            raise ProbeError(redact_text(f"{self.label}: {err}")) from None
        finally:
            if timer is not None:
                timer.cancel()

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
        elif (
            sqlstate == "25006"
            or code in _READ_ONLY_CODES
            or "readonly" in message
            or (self.backend == "sqlite" and "not authorized" in message)  # the authorizer
        ):
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
                raw.set_authorizer(_sqlite_authorize)

    def end(self) -> None:
        if self.backend == "sqlite":
            raw = self.conn.connection.dbapi_connection
            if raw is not None:
                raw.set_progress_handler(None, 0)
                raw.set_authorizer(None)


def _sqlite_authorize(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    """SQLite's own check of every statement it compiles: reading only, no denied function."""
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if denied_function(arg2 or "") else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        return (
            sqlite3.SQLITE_OK
            if (arg1 or "").lower() in _SQLITE_READ_PRAGMAS
            else sqlite3.SQLITE_DENY
        )
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        return sqlite3.SQLITE_OK  # BEGIN/ROLLBACK of the session; query_only stops writes
    return sqlite3.SQLITE_DENY


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
