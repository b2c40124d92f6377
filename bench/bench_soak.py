"""The soak runner: fault onset -> rollback hook fired, and the releasegate process's memory.

1. **Onset to rollback.** ``releasegate soak --demo`` on the demo suite (its t48h phase: the SLO
   checks, the demo's own Prometheus when installed, the rollback hook of fixtures/hooks with
   ``ROLLBACK_LOG`` pointed at a temporary file), guard interval 1 s, the demo's thresholds
   (``p(95) < 300ms``, ``error_rate < 1%``, grace 3 s), ``--fault-at 10s latency_ms=400``.
   Measured per run: the hook's own timestamp (the ``at`` it logs) minus the moment the fault
   was switched on (``soak.fault.on_at`` in the record). Target: <= 10 s in every run.
2. **Memory.** A soak at about 500 requests a second (50 users at ``constant_throughput(10)``)
   against Debian's nginx on a free loopback port (the demo target, a Python WSGI server, does
   not serve 500/s on 2 cores beside locust), no full gate; the releasegate process's RSS
   (``/proc/<pid>/status`` VmRSS) sampled every 5 s. Reported: RSS after the warm-up, at the
   end, and the least-squares slope after the first minute, per hour. Target: < 20 MB/h.

Usage (from the repository root)::

    .venv/bin/python bench/bench_soak.py [--runs 10] [--memory-s 300] [--skip-onset]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RELEASEGATE = [sys.executable, "-m", "releasegate.cli"]


def onset_to_rollback(runs: int) -> list[float]:
    """Seconds from the fault's onset to the rollback hook, per run."""
    figures = []
    for n in range(runs):
        with tempfile.TemporaryDirectory(prefix="rg-bench-soak-") as tmp:
            log = Path(tmp) / "rollbacks.jsonl"
            env = {**os.environ, "ROLLBACK_LOG": str(log)}
            env.pop("CI", None)
            argv = [
                *RELEASEGATE,
                "soak",
                "--demo",
                "--duration",
                "60s",
                "--fault-at",
                "10s",
                "latency_ms=400",
                "--gate-every",
                "off",
                "--report-dir",
                str(Path(tmp) / "out"),
                "--plain",
            ]
            done = subprocess.run(
                argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180
            )
            record_path = Path(tmp) / "out" / "soak" / "demo-shop" / "t48h" / "decision.json"
            if done.returncode != 11 or not log.exists():
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"run {n + 1}: exit {done.returncode}, no rollback logged")
            record = json.loads(record_path.read_text())
            fired = datetime.fromisoformat(json.loads(log.read_text().splitlines()[0])["at"])
            onset = float(record["soak"]["fault"]["on_at"])
            took = fired.timestamp() - onset
            breach = record["soak"]["breach"]
            figures.append(took)
            print(
                f"run {n + 1:2d}: fault on -> rollback hook {took:5.2f}s (breach confirmed"
                f" {breach['confirmed_at'] - onset:5.2f}s after onset; {breach['rule']})",
                flush=True,
            )
    return figures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def memory(seconds: float, rate: int) -> dict[str, float]:
    """RSS of the releasegate process over a soak at ``rate`` requests a second."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="rg-bench-soak-mem-") as name:
        tmp = Path(name)
        port = _free_port()
        (tmp / "nginx.conf").write_text(
            textwrap.dedent(
                f"""\
                daemon off;
                worker_processes 1;
                pid {tmp}/nginx.pid;
                error_log stderr error;
                events {{ worker_connections 1024; }}
                http {{
                  access_log off;
                  client_body_temp_path {tmp}/body;
                  proxy_temp_path {tmp}/proxy;
                  fastcgi_temp_path {tmp}/fastcgi;
                  uwsgi_temp_path {tmp}/uwsgi;
                  scgi_temp_path {tmp}/scgi;
                  server {{
                    listen 127.0.0.1:{port};
                    location / {{ return 200 'ok'; }}
                  }}
                }}
                """
            )
        )
        users = max(rate // 10, 1)
        (tmp / "steady.py").write_text(
            textwrap.dedent(
                """\
                from locust import FastHttpUser, constant_throughput, task


                class Steady(FastHttpUser):
                    wait_time = constant_throughput(10)

                    @task
                    def root(self) -> None:
                        self.client.get("/")
                """
            )
        )
        (tmp / "releasegate.yaml").write_text(
            textwrap.dedent(
                f"""\
                version: 1
                deployment: {{name: bench-soak}}
                target: {{base_url: "http://127.0.0.1:{port}"}}
                phases: {{t48h: {{mode: enforce}}}}
                checks: []
                """
            )
        )
        server = subprocess.Popen(
            [nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], stderr=subprocess.PIPE
        )
        try:
            time.sleep(0.5)
            env = {**os.environ}
            env.pop("CI", None)
            argv = [
                *RELEASEGATE,
                "soak",
                "--spec",
                str(tmp / "releasegate.yaml"),
                "--phase",
                "t48h",
                "--locustfile",
                str(tmp / "steady.py"),
                "--users",
                str(users),
                "--spawn-rate",
                str(users),
                "--threshold",
                "p(95) < 300ms",
                "--threshold",
                "error_rate < 1%",
                "--duration",
                f"{seconds:g}s",
                "--gate-every",
                "off",
                "--report-dir",
                str(tmp / "out"),
                "--plain",
            ]
            soak = subprocess.Popen(
                argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            samples: list[tuple[float, float]] = []
            started = time.monotonic()
            while soak.poll() is None:
                rss = _rss_mb(soak.pid)
                if rss is not None:
                    samples.append((time.monotonic() - started, rss))
                time.sleep(5.0)
            out = soak.stdout.read().decode() if soak.stdout else ""
        finally:
            server.terminate()
            server.wait(10)
        record = json.loads(
            (tmp / "out" / "soak" / "bench-soak" / "t48h" / "decision.json").read_text()
        )
    section = record["soak"]
    rps = section["requests"] / max(section["elapsed_s"], 1e-9)
    late = [(t, r) for t, r in samples if t >= 60.0]
    slope_h = 0.0
    if len(late) >= 3:
        mean_t = statistics.fmean(t for t, _ in late)
        mean_r = statistics.fmean(r for _, r in late)
        cov = sum((t - mean_t) * (r - mean_r) for t, r in late)
        var = sum((t - mean_t) ** 2 for t, _ in late)
        slope_h = cov / var * 3600.0 if var else 0.0
    print(out.splitlines()[-8] if out else "", flush=True)
    return {
        "seconds": section["elapsed_s"],
        "rps": rps,
        "decision": record["decision"],
        "rss_at_60s": late[0][1] if late else float("nan"),
        "rss_end": samples[-1][1] if samples else float("nan"),
        "rss_max": max(r for _, r in samples) if samples else float("nan"),
        "slope_mb_per_h": slope_h,
        "samples": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--memory-s", type=float, default=300.0)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--skip-onset", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not args.skip_onset:
        figures = onset_to_rollback(args.runs)
        print(
            f"\nfault onset -> rollback hook, {len(figures)} runs, guard interval 1 s:"
            f" median {statistics.median(figures):.2f}s, max {max(figures):.2f}s,"
            f" min {min(figures):.2f}s (target <= 10 s each:"
            f" {'met' if max(figures) <= 10 else 'NOT met'})",
            flush=True,
        )
    if not args.skip_memory:
        found = memory(args.memory_s, args.rate)
        print(
            f"\nmemory: {found['seconds']:.0f}s at {found['rps']:.0f} req/s ({found['decision']});"
            f" RSS {found['rss_at_60s']:.1f} MB at 60 s, {found['rss_end']:.1f} MB at the end,"
            f" max {found['rss_max']:.1f} MB; slope after the first minute"
            f" {found['slope_mb_per_h']:+.1f} MB/h over {found['samples']} samples"
            f" (target < 20 MB/h: {'met' if found['slope_mb_per_h'] < 20 else 'NOT met'})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
