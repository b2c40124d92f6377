"""Detection, measured: the demo's t24h gate over many runs, each with a fresh fault seed.

For each scenario it runs ``releasegate demo --phase t24h`` N times and counts the runs that
were NO-GO, and among them those where a check of the scenario's kind failed: detection by
that gate, not by the chance of one request. The scenarios: healthy; a 2% error rate against
the 1% error SLO and a latency fault against the p95 < 300 ms SLO (on the canary and its
baseline alike: kind slo); a 5% error rate and 150 ms more latency on the canary only, against
its healthy baseline (kind canary). Every run draws its faults from its own seeds, which the
record keeps (``demo.fault_seed``, ``demo.baseline.fault_seed``), so N runs are N different
trials. Usage:

    .venv/bin/python bench/bench_detection.py [--runs 20] [--scenario all|healthy|errors|...]

Target: each fault NO-GO through its kind in 20 of 20 runs; healthy NO-GO in 0 of 20 (and
never CONDITIONAL GO).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "healthy": [],
    "errors": ["--fault", "error_rate=0.02"],
    "latency": ["--fault", "latency_ms=250", "--fault", "latency_jitter_ms=200"],
    "canary-errors": ["--canary-fault", "error_rate=0.05"],
    "canary-latency": ["--canary-fault", "latency_ms=150"],
}
#: The kind of check that must catch each scenario's fault.
KIND = {"errors": "slo", "latency": "slo", "canary-errors": "canary", "canary-latency": "canary"}


def one_run(extra: list[str], report_dir: Path, kind: str) -> dict[str, object]:
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "releasegate.cli",
            "demo",
            "--phase",
            "t24h",
            *extra,
            "--",
            "--rg-report-dir",
            str(report_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    record_path = report_dir / "demo-shop" / "t24h" / "decision.json"
    if not record_path.exists():
        raise SystemExit(f"no record (exit {done.returncode}):\n{done.stdout[-3000:]}")
    record = json.loads(record_path.read_text())
    failed_kind = sorted(
        o["check"]["name"]
        for o in record["outcomes"]
        if o["check"]["kind"] == kind and o["status"] == "failed"
    )
    failed_other = sorted(
        o["check"]["name"]
        for o in record["outcomes"]
        if o["check"]["kind"] != kind and o["status"] not in ("passed", "skipped")
    )
    return {
        "decision": record["decision"],
        "seed": (record.get("demo") or {}).get("fault_seed"),
        "failed_kind": failed_kind,
        "failed_other": failed_other,
        "seconds": round(elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--scenario", default="all", choices=["all", *SCENARIOS])
    args = parser.parse_args()
    chosen = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    ok = True
    for name in chosen:
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):
                # A folder per run: a run that wrote no record must not be read from another's.
                runs.append(one_run(SCENARIOS[name], Path(tmp, f"run-{i}"), KIND.get(name, "slo")))
        nogo = sum(r["decision"] == "NO-GO" for r in runs)
        go = sum(r["decision"] == "GO" for r in runs)
        caught = sum(r["decision"] == "NO-GO" and bool(r["failed_kind"]) for r in runs)
        seeds = len({r["seed"] for r in runs})
        mean = sum(float(r["seconds"]) for r in runs) / len(runs)  # type: ignore[arg-type]
        kind = KIND.get(name, "-")
        print(
            f"{name:14} {' '.join(SCENARIOS[name]) or '(no fault)':45} NO-GO {nogo}/{len(runs)},"
            f" GO {go}/{len(runs)}, through kind {kind} {caught}/{len(runs)}, {seeds} distinct"
            f" seeds, {mean:.1f} s a run"
        )
        kind_names: dict[str, int] = {}
        for r in runs:
            for check in r["failed_kind"]:  # type: ignore[attr-defined]
                kind_names[check] = kind_names.get(check, 0) + 1
        others: dict[str, int] = {}
        for r in runs:
            for check in r["failed_other"]:  # type: ignore[attr-defined]
                others[check] = others.get(check, 0) + 1
        print(
            f"{'':15}{kind} checks failed: {kind_names or 'none'}; other blockers:"
            f" {others or 'none'}"
        )
        met = go == len(runs) if name == "healthy" else caught == len(runs)
        ok = ok and met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
