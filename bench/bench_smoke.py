"""500 declarative smoke checks through releasegate, beside the same checks as plain pytest.

Both suites run against the same embedded demo target, alternating, in one run (the machines
are noisy: only ratios measured side by side mean anything). Usage:

    .venv/bin/python bench/bench_smoke.py [--checks 500] [--rounds 3]

Target: releasegate's wall time at most 1.3x the plain loop's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from releasegate.demo import DemoTarget

PRODUCTS = 12


def write_releasegate_suite(folder: Path, checks: int) -> None:
    lines = [
        "version: 1",
        "deployment: {name: bench}",
        "target: {base_url: '${RELEASEGATE_TARGET_URL}'}",
        "checks:",
    ]
    for i in range(checks):
        product = i % PRODUCTS + 1
        lines += [
            f"  - name: product-{i}",
            "    type: http",
            "    phases: [t24h]",
            f"    request: {{method: GET, path: /api/products/{product}}}",
            f"    expect: {{status: 200, json: {{id: {product}}}, max_latency_ms: 2000}}",
        ]
    (folder / "releasegate.yaml").write_text("\n".join(lines) + "\n")
    (folder / "pytest.ini").write_text("[pytest]\ntestpaths = releasegate.yaml\n")


def write_plain_suite(folder: Path, checks: int) -> None:
    (folder / "test_plain.py").write_text(
        textwrap.dedent(
            f"""
            import os
            import time

            import pytest
            import requests

            BASE = os.environ["RELEASEGATE_TARGET_URL"]
            SESSION = requests.Session()

            @pytest.mark.parametrize("i", range({checks}))
            def test_product(i):
                product = i % {PRODUCTS} + 1
                started = time.perf_counter()
                response = SESSION.get(f"{{BASE}}/api/products/{{product}}", timeout=5)
                elapsed_ms = (time.perf_counter() - started) * 1000
                assert response.status_code == 200
                assert response.json()["id"] == product
                assert elapsed_ms <= 2000
            """
        )
    )
    (folder / "pytest.ini").write_text("[pytest]\n")


def run(folder: Path, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run in {folder} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    # No background traffic: the demo serves only the two suites being compared.
    with tempfile.TemporaryDirectory() as tmp, DemoTarget(traffic_rps=0) as target:
        gated, plain = Path(tmp, "releasegate"), Path(tmp, "plain")
        gated.mkdir()
        plain.mkdir()
        write_releasegate_suite(gated, args.checks)
        write_plain_suite(plain, args.checks)
        env = {**os.environ, "RELEASEGATE_TARGET_URL": target.url, "RELEASEGATE_LOOPBACK_ONLY": "1"}
        # Byte-code caching as on a user's machine (this sandbox turns it off): without it
        # both sides recompile every import on every run, and that is not what we measure.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        times: dict[str, list[float]] = {"releasegate": [], "plain": []}
        run(plain, ["-p", "no:releasegate"], env)  # warm-up: byte-code caches, page cache
        run(gated, ["-m", "gate_t24h"], env)
        for _ in range(args.rounds):
            times["releasegate"].append(run(gated, ["-m", "gate_t24h"], env))
            times["plain"].append(run(plain, ["-p", "no:releasegate"], env))

    gate = statistics.median(times["releasegate"])
    base = statistics.median(times["plain"])
    print(f"{args.checks} smoke checks, {args.rounds} rounds, median wall time")
    print(f"  plain pytest + requests : {base:6.2f} s  {[round(t, 2) for t in times['plain']]}")
    print(
        f"  releasegate spec checks : {gate:6.2f} s  {[round(t, 2) for t in times['releasegate']]}"
    )
    print(f"  ratio                   : {gate / base:6.2f}x  (target <= 1.30x)")
    return 0 if gate / base <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
