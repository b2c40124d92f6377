"""The fuzzers' long mode: every adversarial fuzzer with its example budget multiplied, and the
figures docs/benchmarks.md reports (inputs tried, tracebacks, GOs that were not earned, secrets
leaked). Usage:

    .venv/bin/python bench/fuzz_long.py [--scale 20] [-n 2]

Needs the local PostgreSQL and MariaDB (the SQL fuzzer runs on them). A failing fuzzer exits 1
with pytest's output; the figures are what the passing run tried.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZERS = [
    "tests/adversarial/test_adv_spec_fuzz.py",
    "tests/adversarial/test_adv_urls.py",
    "tests/adversarial/test_adv_sql_fuzz.py",
    "tests/adversarial/test_adv_hypothesis.py",
    "tests/test_redaction_canary.py",
]
LABELS = {
    "specs": "specs tried (mutated, raw bytes, wrong types)",
    "urls": "URL spellings tried",
    "sql": "SQL attempts tried (on SQLite, PostgreSQL, MariaDB)",
    "gate runs": "random gate runs",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("-n", "--workers", default="2")
    args = parser.parse_args()
    fuzzers = [f for f in FUZZERS if (ROOT / f).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        tally = Path(tmp, "tally.jsonl")
        env = {
            **os.environ,
            "RELEASEGATE_FUZZ_SCALE": str(args.scale),
            "RELEASEGATE_FUZZ_REPORT": str(tally),
        }
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-n",
                args.workers,
                *fuzzers,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
        totals: dict[str, int] = {}
        if tally.exists():
            for line in tally.read_text().splitlines():
                for key, count in json.loads(line).items():
                    totals[key] = totals.get(key, 0) + int(count)
    output = done.stdout + done.stderr
    tracebacks = output.count("Traceback (most recent call last)")
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    print(f"fuzzers at scale {args.scale:g}, {elapsed:.0f} s: {summary}")
    for key, label in LABELS.items():
        print(f"  {label:<55} {totals.get(key, 0):>8}")
    print(f"  {'tracebacks (a crash instead of one clear error)':<55} {tracebacks:>8}")
    unearned = totals.get("unearned GOs", 0)
    print(f"  {'GOs not earned (a GO on what did not measure)':<55} {unearned:>8}")
    checked = totals.get("secret forms checked", 0)
    leaked = totals.get("secrets leaked", 0)
    print(f"  {'secret forms x artefacts checked (canary test)':<55} {checked:>8}")
    print(f"  {'secrets leaked':<55} {leaked:>8}")
    print(f"  {'pytest exit code':<55} {done.returncode:>8}")
    if done.returncode != 0:
        print(output[-6000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
