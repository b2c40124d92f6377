"""200 Prometheus SLO checks in one phase, beside a plain serial loop of the same 200 queries.

Both sides query the same real Prometheus (Debian's package), which scrapes the embedded demo
target every second; they alternate, in one run (only ratios measured side by side mean
anything on a noisy machine). releasegate's side is a whole gate run: the spec loaded and
validated, every query judged with its evidence, the decision, the record and the reports.
The plain side is a parametrized pytest test sending the same instant query with requests and
comparing the value. Usage:

    .venv/bin/python bench/bench_slo.py [--checks 200] [--rounds 3]

Target: releasegate at most 1.0x the plain loop (aim 0.5x: a phase's queries go together).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests
from bench_smoke import run  # one way to time a pytest run, beside this script

from releasegate.demo import DemoTarget
from releasegate.demo.prometheus import Prometheus, prometheus_binary

QUERIES = [
    'sum(rate(http_requests_total{{status=~"5.."}}[{w}s])) or vector(0)',
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[{w}s])))",
    "sum(rate(http_requests_total[{w}s]))",
    "max(http_requests_in_flight)",
]
THRESHOLDS = ["< 100", "< 5", "< 100000", "< 1000"]


def query(i: int) -> tuple[str, str]:
    kind = i % len(QUERIES)
    return QUERIES[kind].format(w=5 + i % 7), THRESHOLDS[kind]


def write_releasegate_suite(folder: Path, checks: int, prometheus_url: str) -> None:
    lines = [
        "version: 1",
        "deployment: {name: bench}",
        "target: {base_url: '${RELEASEGATE_TARGET_URL}'}",
        f"slo: {{prometheus: {{url: '{prometheus_url}'}}}}",
        "checks:",
    ]
    for i in range(checks):
        promql, threshold = query(i)
        lines += [
            f"  - name: slo-{i}",
            "    type: prometheus",
            "    phases: [t24h]",
            f"    query: '{promql.replace(chr(39), chr(39) * 2)}'",
            f"    threshold: '{threshold}'",
        ]
    (folder / "releasegate.yaml").write_text("\n".join(lines) + "\n")
    (folder / "pytest.ini").write_text("[pytest]\ntestpaths = releasegate.yaml\n")


def write_plain_suite(folder: Path, checks: int, prometheus_url: str) -> None:
    cases = [query(i) for i in range(checks)]
    (folder / "test_plain.py").write_text(
        textwrap.dedent(
            f"""
            import math

            import pytest
            import requests

            URL = {prometheus_url!r} + "/api/v1/query"
            SESSION = requests.Session()
            CASES = {cases!r}

            @pytest.mark.parametrize("case", CASES)
            def test_slo(case):
                promql, threshold = case
                body = SESSION.get(URL, params={{"query": promql}}, timeout=10).json()
                assert body["status"] == "success"
                values = [float(r["value"][1]) for r in body["data"]["result"]]
                assert values and all(math.isfinite(v) for v in values)
                assert all(v < float(threshold.split()[1]) for v in values)
            """
        )
    )
    (folder / "pytest.ini").write_text("[pytest]\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = prometheus_binary()
    if binary is None:
        raise SystemExit("Prometheus is not installed (Debian: apt-get install prometheus)")

    with tempfile.TemporaryDirectory() as tmp, DemoTarget() as target:  # noqa: SIM117 (traffic: data to query)
        with Prometheus([target.url], Path(tmp, "prometheus"), binary) as prom:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # data for the widest rate window (11 s)
                found = requests.get(
                    f"{prom.url}/api/v1/query",
                    params={"query": "count_over_time(http_requests_in_flight[12s])"},
                    timeout=5,
                ).json()["data"]["result"]
                if found and float(found[0]["value"][1]) >= 12:
                    break
                time.sleep(0.5)
            gated, plain = Path(tmp, "releasegate"), Path(tmp, "plain")
            gated.mkdir()
            plain.mkdir()
            write_releasegate_suite(gated, args.checks, prom.url)
            write_plain_suite(plain, args.checks, prom.url)
            env = {
                **os.environ,
                "RELEASEGATE_TARGET_URL": target.url,
                "RELEASEGATE_LOOPBACK_ONLY": "1",
            }
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte-code caching, as for users
            times: dict[str, list[float]] = {"releasegate": [], "plain": []}
            run(plain, ["-p", "no:releasegate"], env)  # warm-up
            run(gated, ["-m", "gate_t24h"], env)
            for _ in range(args.rounds):
                times["releasegate"].append(run(gated, ["-m", "gate_t24h"], env))
                times["plain"].append(run(plain, ["-p", "no:releasegate"], env))

    gate = statistics.median(times["releasegate"])
    base = statistics.median(times["plain"])
    print(f"{args.checks} Prometheus SLO checks, {args.rounds} rounds, median wall time")
    print(f"  plain pytest + requests : {base:6.2f} s  {[round(t, 2) for t in times['plain']]}")
    print(
        f"  releasegate prometheus  : {gate:6.2f} s  {[round(t, 2) for t in times['releasegate']]}"
    )
    print(f"  ratio                   : {gate / base:6.2f}x  (target <= 1.0x, aim 0.5x)")
    return 0 if gate / base <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
