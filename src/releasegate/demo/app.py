"""The demo target's WSGI application: a small shop API with health, metrics and fault knobs.

Besides the shop it shows what SLO sources read: Prometheus metrics at ``/metrics``
(``metrics.py``), a runbook-002 style JSON summary of the last minute at ``/metrics.json``
(``window.py``) and an application log in runbook 004's line shapes (``applog.py``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ..errors import UsageError
from . import DEMO_COMMIT, DEMO_VERSION, data
from .applog import SLOW_REQUEST_MS, AppLog, ExceptionSpike, Level
from .faults import FaultDraws, Faults, fresh_seed
from .metrics import CONTENT_TYPE, DemoMetrics
from .window import DEFAULT_WINDOW_S, RequestWindow

MAX_BODY_BYTES = 64 * 1024
MAX_QUANTITY = 100
SQLITE_MAX_INT = 2**63 - 1  # larger ids cannot be bound as SQLite parameters
# The controls and the scrape endpoints: never delayed or failed by a fault (they must stay
# usable under any), and not measured (scraping or switching faults must not move an SLO).
CONTROL_PATHS = ("/_faults", "/_demo", "/metrics", "/metrics.json")
FAILING_PATHS = ("/healthz", "/readyz", "/version")
# The method is the client's to choose; a label of its own per invented method would not be.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}

Handler = Callable[[Request, Mapping[str, Any]], Response]


class _Request(Request):
    # One byte over the limit: werkzeug cuts a chunked body at the limit without complaint, so
    # a body that reaches this length is how an oversized chunked request shows itself.
    max_content_length = MAX_BODY_BYTES + 1


class _Response(Response):
    # Why a 5xx answer failed, for the log line; set by whoever chose to fail.
    failure: str | None = None


class _BadInput(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """``redis://host:port`` (port 6379 by default); anything else raises ``UsageError``."""
        parts = urlsplit(url)
        try:
            port = parts.port or 6379
        except ValueError:
            port = -1
        if parts.scheme != "redis" or not parts.hostname or port < 0:
            raise UsageError(
                f"redis url {url!r} is not of the form redis://HOST:PORT,"
                " e.g. redis://127.0.0.1:6379"
            )
        return cls(parts.hostname, port)

    def ping(self, timeout_s: float = 0.5) -> str | None:
        """None when Redis answers ``PING`` with ``+PONG``, else why it did not."""
        reply = b""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout_s) as sock:
                sock.sendall(b"PING\r\n")
                while not reply.endswith(b"\r\n") and len(reply) < 512:
                    chunk = sock.recv(512)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as err:
            return f"cannot reach redis at {self.host}:{self.port}: {err}"
        if reply.strip() != b"+PONG":
            return f"redis at {self.host}:{self.port} answered {reply[:80]!r} to PING"
        return None


def _json(payload: Any, status: int = 200, failure: str | None = None) -> Response:
    response = _Response(json.dumps(payload), status=status, mimetype="application/json")
    response.failure = failure
    return response


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


class DemoApp:
    """The WSGI application. Thread-safe: each request opens its own database connection.

    ``fault_seed`` seeds the random faults (a fresh one when None); ``log`` receives the
    application log; ``window_s`` is the span of ``/metrics.json``. Call ``start()`` before
    serving (the ``log_spike`` worker) and ``close()`` after.
    """

    def __init__(
        self,
        db_path: Path,
        redis: RedisAddress | None = None,
        faults: Faults | None = None,
        *,
        fault_seed: int | None = None,
        log: AppLog | None = None,
        window_s: float = DEFAULT_WINDOW_S,
        version: str = DEMO_VERSION,
        commit: str = DEMO_COMMIT,
    ) -> None:
        self.db_path = db_path
        self.version = version  # what it serves: a canary and its baseline differ here
        self.commit = commit
        self.redis = redis
        self.fault_seed = fresh_seed() if fault_seed is None else fault_seed
        self.log = log
        self.window = RequestWindow(window_s)
        self.metrics = DemoMetrics(version, commit)
        self.started_at = time.time()
        self.url: str | None = None  # set by the server once it listens
        self.traffic_rps = 0.0  # likewise: the rate of its background traffic
        self._lock = threading.Lock()
        self._faults = Faults()
        self._draws = FaultDraws(self.fault_seed)
        self.set_faults(faults or Faults())
        self._spike = (
            ExceptionSpike(log, lambda: self._faults.log_spike) if log is not None else None
        )
        self.url_map = Map(
            [
                Rule("/healthz", endpoint="healthz", methods=["GET"]),
                Rule("/readyz", endpoint="readyz", methods=["GET"]),
                Rule("/version", endpoint="version", methods=["GET"]),
                Rule("/metrics", endpoint="metrics", methods=["GET"]),
                Rule("/metrics.json", endpoint="metrics_json", methods=["GET"]),
                Rule("/api/products", endpoint="products", methods=["GET"]),
                Rule("/api/products/<int:product_id>", endpoint="product", methods=["GET"]),
                Rule("/api/orders", endpoint="create_order", methods=["POST"]),
                Rule("/api/episodes/recent", endpoint="recent_episodes", methods=["GET"]),
                Rule("/_faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
                Rule("/_demo", endpoint="demo", methods=["GET"]),
            ]
        )
        self._handlers: dict[str, Handler] = {
            "healthz": lambda request, args: _json({"status": "ok"}),
            "readyz": self._readyz,
            "version": self._version,
            "metrics": self._metrics,
            "metrics_json": lambda request, args: _json(self.window.snapshot()),
            "products": self._products,
            "product": self._product,
            "create_order": self._create_order,
            "recent_episodes": self._recent_episodes,
            "faults": self._faults_endpoint,
            "demo": lambda request, args: _json(self.describe()),
        }

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Switch to ``faults``: the random draws restart from the seed, orphan rows follow
        ``orphans``."""
        with self._lock:
            if faults.orphans != self._faults.orphans:
                data.remove_orphans(self.db_path)
                if faults.orphans:
                    data.inject_orphans(self.db_path, faults.orphans)
            changed = faults != self._faults
            self._faults = faults
            self._draws = FaultDraws(self.fault_seed)
        if changed and self.log is not None:
            self.log.info(f"faults set: {_describe_faults(faults)} (fault seed {self.fault_seed})")

    def start(self) -> None:
        """Start the background worker of the ``log_spike`` fault."""
        if self._spike is not None:
            self._spike.start()

    def close(self) -> None:
        """Stop the background worker and close the log."""
        if self._spike is not None:
            self._spike.stop()
        if self.log is not None:
            self.log.info("demo target stopped")
            self.log.close()

    def describe(self) -> dict[str, Any]:
        """The ``GET /_demo`` answer: where each signal is and how this run was started."""
        return {
            "version": self._faults.wrong_version or self.version,
            "commit": self.commit,
            "pid": os.getpid(),
            "url": self.url,
            "started_at": self.started_at,
            "fault_seed": self.fault_seed,
            "faults": self._faults.to_dict(),
            "log_file": str(self.log.path) if self.log is not None else None,
            "log_max_bytes": self.log.max_bytes if self.log is not None else None,
            "traffic_rps": self.traffic_rps,
            "metrics_window_s": self.window.window_s,
        }

    def _injected_error(self, path: str, faults: Faults) -> bool:
        if not faults.error_rate or (path not in FAILING_PATHS and not path.startswith("/api/")):
            return False
        return self._draws.fails(faults.error_rate)

    def _delay(self, faults: Faults) -> None:
        delay_ms: float = faults.latency_ms
        if faults.latency_jitter_ms:
            delay_ms += self._draws.jitter_ms(faults.latency_jitter_ms)
        if delay_ms:
            time.sleep(delay_ms / 1000)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request = _Request(environ)
        faults = self._faults
        method = request.method if request.method in METHODS else "other"
        measured = request.path not in CONTROL_PATHS
        label = "unmatched"
        if measured:
            self.metrics.in_flight.inc()
        try:
            if measured:
                self._delay(faults)
            rule, args = self.url_map.bind_to_environ(environ).match(return_rule=True)
            label = rule.rule
            if self._injected_error(request.path, faults):
                response = _json(
                    {"error": "injected fault: error_rate"},
                    500,
                    failure=f"InjectedFault: error_rate={faults.error_rate}",
                )
            else:
                response = self._handlers[str(rule.endpoint)](request, args)
        except MethodNotAllowed as err:
            response = _json({"error": f"method {request.method} not allowed here"}, 405)
            response.headers["Allow"] = ", ".join(err.valid_methods or ())
        except HTTPException as err:
            response = _json({"error": err.description}, err.code or 500)
        except Exception as err:  # a bug in the demo itself: answer like a real server would
            traceback.print_exc(file=sys.stderr)
            response = _json(
                {"error": f"internal error: {type(err).__name__}"},
                500,
                failure=f"{type(err).__name__}: {err}",
            )
        finally:
            if measured:
                self.metrics.in_flight.dec()
        elapsed = time.perf_counter() - started
        status = response.status_code
        self.metrics.legacy_requests.labels(method, label, str(status)).inc()
        if measured:
            version = faults.wrong_version or self.version
            self.metrics.observe(label, method, status, version, elapsed)
            self.window.add(version, f"{method} {label}", elapsed, status >= 500)
            if self.log is not None:
                self._log_request(request.path, method, label, status, version, elapsed, response)
        return response(environ, start_response)

    def _log_request(
        self,
        path: str,
        method: str,
        route: str,
        status: int,
        version: str,
        elapsed_s: float,
        response: Response,
    ) -> None:
        assert self.log is not None  # the caller checked
        elapsed_ms = elapsed_s * 1000
        line = f"{method} {path} -> {status} in {elapsed_ms:.1f} ms"
        line += f" (route {route}, version {version}"
        if status >= 500:
            failure = getattr(response, "failure", None) or f"HTTP {status}"
            self.log.write(Level.ERROR, f"{line}): {failure}")
        elif elapsed_ms > SLOW_REQUEST_MS:
            self.log.write(
                Level.WARNING, f"slow request: {line}; slow above {SLOW_REQUEST_MS:.0f} ms)"
            )
        else:
            self.log.write(Level.INFO, f"{line})")

    def _readyz(self, request: Request, args: Mapping[str, Any]) -> Response:
        problems: dict[str, str | None] = {"database": self._database_problem()}
        if self.redis is not None:
            problems["redis"] = self.redis.ping()
        down = self.faults.dependency_down
        if down is not None:
            problems[down] = f"injected fault: dependency_down={down}"
        dependencies = {
            name: {"status": "ok"} if reason is None else {"status": "down", "reason": reason}
            for name, reason in problems.items()
        }
        reasons = [f"{name} down ({why})" for name, why in problems.items() if why is not None]
        return _json(
            {"status": "not_ready" if reasons else "ready", "dependencies": dependencies},
            503 if reasons else 200,
            failure=f"not ready: {'; '.join(reasons)}" if reasons else None,
        )

    def _database_problem(self) -> str | None:
        try:
            data.check(self.db_path)
        except sqlite3.Error as err:
            return f"sqlite: {err}"
        return None

    def _version(self, request: Request, args: Mapping[str, Any]) -> Response:
        return _json({"version": self.faults.wrong_version or self.version, "commit": self.commit})

    def _metrics(self, request: Request, args: Mapping[str, Any]) -> Response:
        try:
            self.metrics.risk_mean.set(data.mean_risk_score(self.db_path))
        except sqlite3.Error:
            # The scrape must still answer; an unknown mean is NaN, not a stale value.
            self.metrics.risk_mean.set(float("nan"))
        return Response(self.metrics.exposition(), content_type=CONTENT_TYPE)

    def _products(self, request: Request, args: Mapping[str, Any]) -> Response:
        items = data.products(self.db_path)
        return _json({"items": items, "count": len(items)})

    def _product(self, request: Request, args: Mapping[str, Any]) -> Response:
        product_id: int = args["product_id"]
        found = data.product(self.db_path, product_id) if product_id <= SQLITE_MAX_INT else None
        if found is None:
            return _json({"error": f"no product with id {product_id}"}, 404)
        return _json(found)

    def _create_order(self, request: Request, args: Mapping[str, Any]) -> Response:
        try:
            product_id, quantity = self._read_order(request)
            order_id = data.create_order(self.db_path, product_id, quantity)
            if order_id is None:
                raise _BadInput(422, f"no product with id {product_id}; see GET /api/products")
        except _BadInput as err:
            if self.faults.bad_input_5xx:
                failure = f"InjectedFault: bad_input_5xx ({err.status}: {err.message})"
                return _json({"error": "internal error"}, 500, failure=failure)
            return _json({"error": err.message}, err.status)
        self.metrics.orders.inc()
        if self.log is not None:
            self.log.info(f"order {order_id} created (product: {product_id}, quantity: {quantity})")
        return _json({"id": order_id, "product_id": product_id, "quantity": quantity}, 201)

    def _read_order(self, request: Request) -> tuple[int, int]:
        body = _read_json(request)
        if not isinstance(body, dict):
            raise _BadInput(
                422,
                f'the order must be a JSON object like {{"product_id": 1, "quantity": 2}},'
                f" got {_json_type(body)}",
            )
        unknown = sorted(set(body) - {"product_id", "quantity"})
        if unknown:
            raise _BadInput(
                422, f"unknown field(s) {', '.join(unknown)}: send only product_id and quantity"
            )
        values = []
        for field, high in (("product_id", SQLITE_MAX_INT), ("quantity", MAX_QUANTITY)):
            if field not in body:
                raise _BadInput(422, f"missing field {field!r}")
            value = body[field]
            if type(value) is not int:  # bool is an int subclass and is no quantity
                raise _BadInput(422, f"{field!r} must be an integer, got {_json_type(value)}")
            if not 1 <= value <= high:
                raise _BadInput(422, f"{field!r} must be between 1 and {high}, got {value}")
            values.append(value)
        return values[0], values[1]

    def _recent_episodes(self, request: Request, args: Mapping[str, Any]) -> Response:
        raw = request.args.get("limit", "20")
        # isdigit() alone lets through "²" and 5000-digit strings, which int() rejects.
        limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else 0
        if not 1 <= limit <= 100:
            return _json({"error": f"limit must be an integer between 1 and 100, got {raw!r}"}, 400)
        items = data.recent_episodes(self.db_path, limit)
        return _json({"items": items, "count": len(items)})

    def _faults_endpoint(self, request: Request, args: Mapping[str, Any]) -> Response:
        if request.method == "DELETE":
            self.set_faults(Faults())
        elif request.method == "POST":
            try:
                body = _read_json(request)
                if not isinstance(body, dict):
                    raise _BadInput(400, f"send a JSON object of faults, got {_json_type(body)}")
                self.set_faults(self.faults.updated(body))
            except _BadInput as err:
                return _json({"error": err.message}, err.status)
            except UsageError as err:
                return _json({"error": str(err)}, 400)
        return _json({"faults": self.faults.to_dict(), "fault_seed": self.fault_seed})


def _describe_faults(faults: Faults) -> str:
    default = Faults().to_dict()
    changed = [f"{k}={v}" for k, v in faults.to_dict().items() if v != default[k]]
    return ", ".join(changed) or "none"


def _read_json(request: Request) -> Any:
    too_large = _BadInput(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        raise _BadInput(400, f"request body is not valid JSON: {err}") from None
