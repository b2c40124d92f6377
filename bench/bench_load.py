"""Load checks: releasegate's locust run against bare locust, and its percentiles against the
exact values, side by side in one run.

1. **Throughput**: the same locustfile (``FastHttpUser``, no wait, one static file) run by bare
   ``locust --headless`` and by releasegate (``LocustRun``: locust plus our HDR recorder,
   under proctree), alternating, ``--rounds`` times each. The upstream is Debian's nginx
   serving a static file on a free loopback port (the demo target, a Python server, would be
   the bottleneck and hide locust's own cost). rps is locust's own figure for both (requests
   over first-to-last request), so the two are measured the same way. Target: releasegate's
   median rps >= 95 % of bare locust's.
2. **Accuracy**: a releasegate run against the demo target (its real spread of response
   times) with every response time also appended to a side file (``RELEASEGATE_LOAD_TIMES``);
   the exact p50/p95/p99 from sorting all of them beside releasegate's HDR figures and
   locust's own, for one process and for a master with two workers. Target: within 1 %.

Usage::

    .venv/bin/python bench/bench_load.py [--seconds 5] [--rounds 10] [--users 20]

On a shared machine the wall-clock rps of two runs differs by far more than the recorder's
cost (other processes take the CPU); the bench therefore alternates many short rounds, judges
the ratio of the median rps (the paired rounds' median beside it), and also reports the locust
process's CPU time per request and the listener's own cost measured alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasegate.demo import DemoTarget
from releasegate.load.collector import Recorder
from releasegate.load.locust_main import ENV_TIMES
from releasegate.load.runner import LocustRun, child_env, free_port
from releasegate.load.thresholds import target_rank

NGINX = "/usr/sbin/nginx"
SHOP = Path(__file__).resolve().parents[1] / "loadtests" / "shop.py"

BENCH_LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Static(FastHttpUser):
    wait_time = constant(0)

    @task
    def static(self):
        self.client.get("/static.txt")
"""


class Nginx:
    """nginx serving one static file on a free loopback port, in the foreground."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        www = self.root / "www"
        www.mkdir(parents=True)
        (www / "static.txt").write_text("ok " * 100)
        conf = self.root / "nginx.conf"
        # Started as root, nginx's worker would run as nobody, who cannot read a private
        # temporary folder: keep it as the user who runs the benchmark.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""
{user}
worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{ listen 127.0.0.1:{self.port}; root {www}; }}
}}
"""
        )
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(self.root), "-e", str(self.root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        import socket

        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def bare_locust(
    locustfile: Path, host: str, users: int, seconds: int, work: Path
) -> tuple[float, int]:
    """Plain ``locust --headless``; its own total rps from ``--json-file``."""
    out = work / "bare.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "--host",
            host,
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--only-summary",
            "--exit-code-on-error",
            "0",
            "--json-file",
            str(out.with_suffix("")),  # locust adds .json
        ],
        env=child_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 60,
    )
    entries = json.loads(out.read_text())
    requests = sum(e["num_requests"] for e in entries)
    start = min(e["start_time"] for e in entries)
    last = max(e["last_request_timestamp"] for e in entries)
    return float(requests / (last - start)), int(requests)


def releasegate_locust(
    locustfile: Path,
    host: str,
    users: int,
    seconds: int,
    work: Path,
    workers: int = 0,
    extra_env: dict[str, str] | None = None,
) -> Any:
    with LocustRun(
        locustfile=locustfile,
        host=host,
        users=users,
        spawn_rate=users,
        run_time_s=seconds,
        workers=workers,
        workdir=work,
        extra_env=extra_env,
    ) as run:
        run.start()
        while run.running:  # as the probe does: read the intervals live
            run.poll()
            time.sleep(0.2)
        return run.wait()


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Runs:
    rps: list[float] = field(default_factory=list)
    #: CPU time of the locust process per request (microseconds): the recorder's cost, free of
    #: the wall-clock noise of a shared machine
    cpu_us: list[float] = field(default_factory=list)


def throughput(args: argparse.Namespace, work: Path) -> tuple[Runs, Runs]:
    locustfile = work / "static_locustfile.py"
    locustfile.write_text(BENCH_LOCUSTFILE)
    bare, ours = Runs(), Runs()
    with Nginx(work / "nginx") as nginx:
        for round_ in range(args.rounds):
            # Alternate the order so neither always runs on a warmer machine.
            order = ("bare", "ours") if round_ % 2 == 0 else ("ours", "bare")
            for which in order:
                run_dir = work / f"{which}{round_}"
                run_dir.mkdir()
                cpu = children_cpu_s()
                if which == "bare":
                    rps, requests = bare_locust(
                        locustfile, nginx.url, args.users, args.seconds, run_dir
                    )
                    runs = bare
                else:
                    result = releasegate_locust(
                        locustfile, nginx.url, args.users, args.seconds, run_dir
                    )
                    assert result.locust is not None and result.exit_code == 0
                    assert result.totals.requests == result.locust["total"]["requests"]
                    rps, requests = float(result.locust["total"]["rps"]), result.totals.requests
                    runs = ours
                runs.rps.append(rps)
                runs.cpu_us.append((children_cpu_s() - cpu) / requests * 1e6)
                cost = runs.cpu_us[-1]
                print(f"  round {round_ + 1} {which}: {rps:.0f} rps, {cost:.0f} µs CPU/request")
    return bare, ours


def recorder_cost_us(requests: int = 200_000) -> float:
    """What our listener adds per request, measured alone (no locust): a name, an interval,
    a histogram record."""
    recorder = Recorder(1.0)
    started = time.process_time()
    for _ in range(requests):
        recorder.record("GET /static.txt", 1.234, False)
    return (time.process_time() - started) / requests * 1e6


def exact(values: list[int], q: float) -> float:
    """The value at HDR's rank for ``q`` (microseconds), from all values sorted."""
    ordered = sorted(values)
    return float(ordered[target_rank(q, len(ordered)) - 1])


def accuracy(args: argparse.Namespace, work: Path, workers: int) -> list[dict[str, Any]]:
    times_dir = work / f"times{workers}"
    times_dir.mkdir()
    with DemoTarget(traffic_rps=0, fault_seed=3) as demo:
        result = releasegate_locust(
            SHOP,
            demo.url,
            args.users,
            args.seconds,
            work / f"acc{workers}",
            workers=workers,
            extra_env={ENV_TIMES: str(times_dir / "rt")},
        )
    values: list[int] = []
    for path in times_dir.iterdir():
        values += [int(line) for line in path.read_text().split()]
    assert result.locust is not None
    rows = []
    for q in (50.0, 95.0, 99.0):
        truth = exact(values, q) / 1000
        ours = result.totals.percentile_ms(q)
        assert ours is not None
        theirs = result.locust["total"][f"p{q:g}_ms"]
        rows.append(
            {
                "q": q,
                "samples": len(values),
                "recorded": result.totals.samples,
                "exact_ms": truth,
                "ours_ms": ours,
                "ours_err": (ours - truth) / truth,
                "locust_ms": theirs,
                "locust_err": (theirs - truth) / truth,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    if not os.access(NGINX, os.X_OK):
        print(f"{NGINX} is not installed (Debian: apt-get install nginx)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="rg-bench-load-"))
    load_before = os.getloadavg()[0]
    try:
        print(f"throughput: {args.users} users, {args.seconds}s runs, {args.rounds} rounds, nginx")
        bare, ours = throughput(args, work)
        print(f"accuracy: {args.users} users, {args.seconds}s against the demo target")
        single = accuracy(args, work, workers=0)
        distributed = accuracy(args, work, workers=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = os.cpu_count()
    print(
        f"\nload average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after ({cores} cores)"
    )
    ratio = statistics.median(ours.rps) / statistics.median(bare.rps)
    paired = statistics.median(o / b for o, b in zip(ours.rps, bare.rps, strict=True))
    cpu_ratio = statistics.median(ours.cpu_us) / statistics.median(bare.cpu_us)
    print()
    print("| runner | rps per round | median rps | CPU per request (median) |")
    print("|---|---|---|---|")
    for label, runs in (("bare `locust --headless`", bare), ("releasegate (LocustRun)", ours)):
        each = ", ".join(f"{r:.0f}" for r in runs.rps)
        print(
            f"| {label} | {each} | {statistics.median(runs.rps):.0f}"
            f" | {statistics.median(runs.cpu_us):.0f} µs |"
        )
    cost = recorder_cost_us()
    expected = statistics.median(bare.cpu_us) / (statistics.median(bare.cpu_us) + cost)
    print(
        f"our listener alone: {cost:.1f} µs CPU per request, so expected throughput"
        f" {expected:.1%} of bare locust's when locust's CPU is the bottleneck"
    )
    print(
        f"\nreleasegate / bare: {ratio:.1%} of the median rps (median of the paired rounds"
        f" {paired:.1%}; target >= 95%); CPU per request {cpu_ratio:.2f}x, so"
        f" {1 / cpu_ratio:.1%} of bare locust's requests per CPU second\n"
    )
    print(
        "| run | percentile | samples | exact (all times sorted) | releasegate (HDR) | error"
        " | locust | error |"
    )
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for label, rows in (("1 process", single), ("master + 2 workers", distributed)):
        for row in rows:
            worst = max(worst, abs(row["ours_err"]))
            print(
                f"| {label} | p{row['q']:g} | {row['samples']} | {row['exact_ms']:.3f} ms"
                f" | {row['ours_ms']:.3f} ms | {row['ours_err']:+.3%} | {row['locust_ms']:.0f} ms"
                f" | {row['locust_err']:+.1%} |"
            )
            if row["samples"] != row["recorded"]:
                print(f"  (recorded {row['recorded']} of {row['samples']} response times!)")
    print(f"\nworst releasegate error: {worst:.3%} (target <= 1%)")
    ok = ratio >= 0.95 and worst <= 0.01 and not math.isnan(ratio)
    print("targets met" if ok else "TARGETS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
