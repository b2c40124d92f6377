"""Run the demo target: ``python -m releasegate.demo.server --port 0 --db demo.sqlite3``.

Once listening it prints one JSON line, ``{"url": ..., "pid": ...}``, to stdout; it serves
until SIGTERM or SIGINT and then exits 0. Usage errors exit 2 with a one-line message.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..errors import ReleasegateError, TargetRefused
from ..netguard import ensure_loopback, is_loopback_host
from .app import DemoApp, RedisAddress
from .data import create_database
from .faults import FAULTS, Faults, parse_fault

PROG = "python -m releasegate.demo.server"


class _QuietHandler(WSGIRequestHandler):
    # Gate runs send thousands of requests; access lines would bury real errors on stderr.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _port(text: str) -> int:
    # The socket module would silently wrap 99999 around to 34463.
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 0..65535 (0 = any free one)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve the releasegate demo target.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=_port, default=0, help="port; 0 picks a free one")
    parser.add_argument("--db", type=Path, required=True, help="SQLite file, seeded if missing")
    parser.add_argument("--redis-url", help="Redis that /readyz pings, e.g. redis://127.0.0.1:6379")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject a fault; repeatable. "
        + "; ".join(f"{name}: {text}" for name, text in FAULTS.items()),
    )
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="shut down when stdin closes, so the server dies with the process that started it",
    )
    return parser


def _build_app(args: argparse.Namespace) -> DemoApp:
    if not is_loopback_host(args.host):
        raise TargetRefused(
            f"--host {args.host!r} is not a loopback address; the demo target only listens on"
            " loopback: use --host 127.0.0.1"
        )
    redis = None
    if args.redis_url is not None:
        redis = RedisAddress.parse(args.redis_url)
        ensure_loopback(args.redis_url, "readiness pings")
    faults = Faults.from_mapping(dict(parse_fault(spec) for spec in args.fault))
    db_path: Path = args.db
    if not db_path.exists():
        create_database(db_path)
    return DemoApp(db_path, redis, faults)


def _url(server: BaseWSGIServer) -> str:
    host = server.host
    return f"http://[{host}]:{server.port}" if ":" in host else f"http://{host}:{server.port}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        app = _build_app(args)
        server = make_server(
            args.host, args.port, app, threaded=True, request_handler=_QuietHandler
        )
    except (ReleasegateError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2

    def stop(signum: int | None = None, frame: FrameType | None = None) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on the thread
        # that serves; signal handlers do run there.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.stop_on_stdin_eof:

        def stop_on_eof() -> None:
            # The raw fd, not sys.stdin: a daemon thread blocked inside a buffered reader makes
            # interpreter shutdown abort.
            while os.read(sys.stdin.fileno(), 4096):
                pass
            stop()

        threading.Thread(target=stop_on_eof, daemon=True).start()

    print(json.dumps({"url": _url(server), "pid": os.getpid()}), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
