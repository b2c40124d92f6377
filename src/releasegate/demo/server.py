"""Run the demo target: ``python -m releasegate.demo.server --port 0 --db demo.sqlite3``.

Once listening it prints one JSON line, ``{"url": ..., "pid": ..., "fault_seed": ...,
"log_file": ...}``, to stdout; it serves until SIGTERM or SIGINT and then exits 0. Usage errors
exit 2 with a one-line message. While it serves, a thread sends it background traffic
(``--traffic-rps``, 0 for none) and it writes an application log (``--log-file``).
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
from ..netguard import LOOPBACK, is_loopback_host
from . import DEMO_COMMIT, DEMO_VERSION
from .app import DemoApp, RedisAddress
from .applog import DEFAULT_MAX_BYTES, AppLog
from .data import create_database
from .faults import FAULTS, Faults, fresh_seed, parse_fault, parse_seed
from .traffic import DEFAULT_RPS, MAX_RPS, Traffic
from .window import DEFAULT_WINDOW_S

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


def _seed(text: str) -> int:
    try:
        return parse_seed(text)
    except ReleasegateError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _rps(text: str) -> float:
    try:
        rps = float(text)
    except ValueError:
        rps = -1.0
    if not 0 <= rps <= MAX_RPS:  # also rejects NaN
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate: use 0..{MAX_RPS:.0f} requests a second (0 = no traffic)"
        )
    return rps


def _size(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes (0 = never rotate)")
    return int(text)


def _window(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a window: use 0 < seconds <= 3600")
    return seconds


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
        "--fault-seed",
        type=_seed,
        metavar="N",
        help="seed of the random faults (error_rate, latency_jitter_ms); default: a fresh one,"
        " reported at start and by GET /_faults",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="application log (default: demo.log next to --db)",
    )
    parser.add_argument(
        "--log-max-bytes",
        type=_size,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"rotate the log by rename past N bytes, keeping 3 (default {DEFAULT_MAX_BYTES};"
        " 0 = never)",
    )
    parser.add_argument(
        "--traffic-rps",
        type=_rps,
        default=DEFAULT_RPS,
        metavar="RATE",
        help=f"background requests a second to its own routes (default {DEFAULT_RPS:.0f};"
        " 0 = none)",
    )
    parser.add_argument(
        "--metrics-window-s",
        type=_window,
        default=DEFAULT_WINDOW_S,
        metavar="S",
        help=f"span of GET /metrics.json (default {DEFAULT_WINDOW_S:.0f} s)",
    )
    parser.add_argument(
        "--version",
        dest="serve_version",
        default=DEMO_VERSION,
        help=f"the version it serves and reports (default {DEMO_VERSION}; a canary's baseline"
        " runs the previous one)",
    )
    parser.add_argument("--commit", default=DEMO_COMMIT, help=f"its commit (default {DEMO_COMMIT})")
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
        # Judge the host the pings dial (as RedisAddress parsed it), and pin its address.
        checked = LOOPBACK.resolve(redis.host, redis.port, "readiness pings")
        redis = RedisAddress(str(checked[0][4][0]), redis.port)
    faults = Faults.from_mapping(dict(parse_fault(spec) for spec in args.fault))
    db_path: Path = args.db
    if not db_path.exists():
        create_database(db_path)
    return _app(args, db_path, redis, faults)


def _app(
    args: argparse.Namespace, db_path: Path, redis: RedisAddress | None, faults: Faults
) -> DemoApp:
    log_file: Path = args.log_file or db_path.with_name("demo.log")
    try:
        log = AppLog(log_file, max_bytes=args.log_max_bytes)
    except OSError as err:
        raise ReleasegateError(f"cannot open the log file {log_file}: {err}") from err
    seed = fresh_seed() if args.fault_seed is None else args.fault_seed
    return DemoApp(
        db_path,
        redis,
        faults,
        fault_seed=seed,
        log=log,
        window_s=args.metrics_window_s,
        version=args.serve_version,
        commit=args.commit,
    )


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

    traffic = None
    if args.traffic_rps:
        traffic = Traffic(server.host, server.port, args.traffic_rps, app.fault_seed)
    app.url = _url(server)
    app.traffic_rps = args.traffic_rps

    def stop(signum: int | None = None, frame: FrameType | None = None) -> None:
        if traffic is not None:
            traffic.request_stop()
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

    assert app.log is not None  # _app always gives it one
    print(
        json.dumps(
            {
                "url": app.url,
                "pid": os.getpid(),
                "fault_seed": app.fault_seed,
                "log_file": str(app.log.path),
                "version": app.version,
            }
        ),
        flush=True,
    )
    app.log.info(
        f"demo target {app.describe()['version']} listening on {app.url} (pid {os.getpid()});"
        f" fault seed {app.fault_seed}; traffic {args.traffic_rps:g} req/s"
    )
    app.start()
    if traffic is not None:
        traffic.start()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        if traffic is not None:
            traffic.stop(timeout_s=1.0)  # a daemon thread: a request stuck on a fault is dropped
        server.server_close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
