"""A real HTTP server on a free loopback port whose routes each test sets.

    with LocalServer() as server:
        server.route("/healthz", lambda request: Response("ok"))
        client = TargetClient(base_url=server.url)

Handlers are plain functions from a werkzeug ``Request`` to a ``Response``; unknown paths get a
404. The server is threaded so that a handler that hangs (see ``hang``) does not block the
others, and every hang is released when the server stops.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers, mimetype="application/json")


class LocalServer:
    """A werkzeug server in a daemon thread; ``hits`` counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def hang(self, seconds: float = 30.0) -> None:
        """Block the calling handler until the server stops (or ``seconds`` pass)."""
        self.released.wait(seconds)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.hits[request.path] += 1
        handler = self.routes.get(request.path)
        if handler is None:
            response = Response("not found", status=404)
        else:
            # Read the body like a real API would: a server that closes with unread input
            # resets the connection, which is not what these tests are about.
            request.get_data()
            response = handler(request)
        return response(environ, start_response)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


RawHandler = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A bare TCP server on a free loopback port: ``handler(conn, stopped)`` writes whatever
    bytes it likes, as slowly as it likes, until ``stopped`` is set (when the server stops).

    For what werkzeug would not send: headers dripped a byte at a time, endless bodies.
    """

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.stopped = threading.Event()
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(65536)  # the request (small in these tests)
                self.handler(conn, self.stopped)
            except OSError:  # the client hung up: what these tests want
                pass

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)
        self._sock.close()


def http_check(path: str = "/api", **fields: Any) -> Any:
    """A spec ``http`` check (releasegate.spec.HttpCheck) for probe tests; ``request`` fields
    other than the path go in ``fields["request"]``."""
    from releasegate.spec import HttpCheck

    return HttpCheck.model_validate(
        {
            "name": "api",
            "type": "http",
            "phases": ["t0h"],
            "request": {"path": path, **fields.pop("request", {})},
            **fields,
        }
    )
