"""The demo target's SQLite database (``databases: main: {url: demo://}``): clean, it passes;
with the ``orphans`` fault, the gate and ``releasegate demo`` block on the orphan rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SPEC = """\
version: 1
deployment: {name: demo-db}
target: {base_url: "${RELEASEGATE_TARGET_URL:-demo://}"}
databases:
  main: {url: "${RELEASEGATE_DB_URL:-demo://}"}
checks:
  - name: risk-log-orphans
    type: orphans
    phases: [t24h]
    severity: critical
    table: risk_log
  - name: risk-log-complete
    type: not_null
    phases: [t24h]
    table: risk_log
    columns: [episode_id, ts]
  - name: risk-gate-mean-score
    type: sql
    phases: [t24h]
    query: SELECT AVG(draft_total_score) FROM risk_log WHERE ts > datetime('now', '-6 hours')
    max: 0.2
"""


def record(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "reports/out/demo-db/t24h/decision.json").read_text())
    return data


def test_gate_on_the_demo_database(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", releasegate=SPEC)
    clean = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    assert (clean.ret, record(pytester.path)["decision"]) == (0, "GO")

    broken = pytester.runpytest_subprocess(
        "-m", "gate_t24h", "-p", "no:cacheprovider", "--rg-fault", "orphans=3"
    )
    data = record(pytester.path)
    assert (broken.ret, data["decision"]) == (11, "NO-GO")
    assert [b["check"] for b in data["summary"]["blockers"]] == ["risk-log-orphans"]
    orphans = next(o for o in data["outcomes"] if o["check"]["name"] == "risk-log-orphans")
    evidence = orphans["evidence"][0]
    assert evidence["value"] == 3
    assert len(evidence["details"]["examples"]) == 3
    assert "risk-log-complete" in evidence["details"]["bundled_with"]


def test_releasegate_demo_catches_orphans(tmp_path: Path) -> None:
    (tmp_path / "releasegate.yaml").write_text(SPEC)
    command = [sys.executable, "-m", "releasegate.cli", "demo", "--phase", "t24h"]
    done = subprocess.run(
        [*command, "--fault", "orphans=2"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 11, done.stdout + done.stderr
    assert "releasegate demo: NO-GO" in done.stdout
    assert "2 orphans risk_log(episode_id) -> episodes(id)" in done.stdout
