"""A real Prometheus as a child process: the demo's own, scraping the demo target.

Debian's ``prometheus`` package provides the binary; without it the demo's Prometheus checks
are skipped with the reason and the scraped-``/metrics`` checks measure the same SLOs. It
listens on a free loopback port (never 9090: a system Prometheus may hold it), scrapes every
second, keeps its data in a temporary folder, runs in a process group of its own and is killed
whole when it stops, so nothing outlives the run. Expect the first scrape about 5 s after
``/-/ready`` (Prometheus 2.x hands targets to its scrape manager on a 5 s tick).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import requests

DEFAULT_BINARY = "/usr/bin/prometheus"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")


BINARY_ENV = "RELEASEGATE_PROMETHEUS_BINARY"


def prometheus_binary() -> str | None:
    """The prometheus executable: ``RELEASEGATE_PROMETHEUS_BINARY`` if set (empty: none, as
    on a machine without Prometheus), else on PATH or Debian's; None when there is none."""
    if BINARY_ENV in os.environ:
        return os.environ[BINARY_ENV].strip() or None
    found = shutil.which("prometheus")
    if found:
        return found
    return DEFAULT_BINARY if os.access(DEFAULT_BINARY, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape_target(url: str) -> tuple[str, str]:
    """``http://127.0.0.1:41234[/path]`` -> (``127.0.0.1:41234``, metrics path); loopback only."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if parts.hostname not in LOOPBACK or parts.port is None:
        raise ValueError(f"scrape target {url!r}: only loopback host:port targets")
    return f"{parts.hostname}:{parts.port}", parts.path or "/metrics"


class Prometheus:
    """Prometheus scraping ``targets`` (loopback URLs) every ``interval_s``; a context manager."""

    def __init__(
        self,
        targets: Sequence[str],
        workdir: Path,
        binary: str | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.targets = [_scrape_target(t) for t in targets]
        self.workdir = Path(workdir)
        self.binary = binary or prometheus_binary() or DEFAULT_BINARY
        self.interval_s = interval_s
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def _write_config(self) -> Path:
        interval = f"{int(self.interval_s * 1000)}ms"
        jobs = [
            {
                "job_name": f"target{n}",
                "metrics_path": path,
                "static_configs": [{"targets": [address]}],
            }
            for n, (address, path) in enumerate(self.targets)
        ]
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": jobs,
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    def start(self) -> Prometheus:
        """Start it and wait for ``/-/ready``; a port taken meanwhile is retried on another."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        for _ in range(3):
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # its own process group, killed whole in stop()
                )
            if self._wait_ready():
                return self
            log_text = self.log_path.read_text(errors="replace")
            self.stop()
            if "address already in use" not in log_text:
                break
        raise RuntimeError(
            f"prometheus did not become ready within {START_TIMEOUT_S:.0f} s;"
            f" its log ends with:\n{self.log_path.read_text(errors='replace')[-3000:]}"
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self._process is not None
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 5 s."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(STOP_TIMEOUT_S)
                break
            except subprocess.TimeoutExpired:
                continue
        process.wait()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
