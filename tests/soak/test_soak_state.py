"""The soak's files and timeline: state round trip, torn timeline lines, rows folded with merged
histograms, memory bounded, the progress output throttled, the soak report rendered."""

from __future__ import annotations

import gc
import io
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from test_soak_guard import T0, interval

from _report_records import make_record, nogo_outcomes, rollback_action
from releasegate.errors import UsageError
from releasegate.load.channel import Interval
from releasegate.phases import Phase
from releasegate.soak.guard import Guard, GuardState
from releasegate.soak.progress import LiveProgress, PlainProgress, Snapshot, clock_text, line
from releasegate.soak.report import build_soak_view, write_soak_reports
from releasegate.soak.rules import parse_rule, rule_dict
from releasegate.soak.state import SoakFiles, SoakState, soak_dir
from releasegate.soak.timeline import MAX_ROWS, Row, Timeline, row_width


def _state(**changes: object) -> SoakState:
    state = SoakState(
        run_id="abc",
        deployment="shop",
        phase="t48h",
        spec="releasegate.yaml",
        duration_s=60.0,
        guard_interval_s=1.0,
        gate_every_s=600.0,
        row_s=1.0,
        options={"locustfile": "loadtests/shop.py", "rules": []},
        started_at=T0,
    )
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def test_state_round_trip_and_refusals(tmp_path: Path) -> None:
    folder = soak_dir(tmp_path, "shop", Phase.T48H)
    assert folder == tmp_path / "soak" / "shop" / "t48h"
    files = SoakFiles(folder)
    with pytest.raises(UsageError, match="no soak to resume"):
        files.read_state()
    state = _state(elapsed_s=12.5, segments=2, gates=[{"number": 1, "verdict": "GO"}])
    files.write_state(state)
    assert files.read_state() == state
    assert not list(folder.glob(".*tmp*"))  # atomic: no temporary file left behind
    files.state_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(UsageError, match="not JSON"):
        files.read_state()
    files.state_path.write_text(json.dumps({**state.to_dict(), "version": 99}), encoding="utf-8")
    with pytest.raises(UsageError, match="version"):
        files.read_state()


def test_timeline_rows_survive_a_torn_last_line(tmp_path: Path) -> None:
    files = SoakFiles(tmp_path)
    files.start_timeline()
    timeline = Timeline(2.0)
    for s in range(6):
        closed = timeline.add(interval(s, latency_ms=10 + s), float(s + 1), None)
        if closed is not None:
            files.append_row(closed)
    last = timeline.close()
    assert last is not None
    files.append_row(last)
    with open(files.timeline_path, "a", encoding="utf-8") as fh:
        fh.write('{"index": 3, "start": ')  # a crash mid-write
    rows = files.read_rows()
    assert [r.index for r in rows] == [0, 1, 2]
    assert [r.requests for r in rows] == [600, 600, 600]
    assert rows[0].rps == pytest.approx(300.0)
    # p95 of row 2 (seconds 4 and 5: 14 and 15 ms): exact to HDR precision, from the merge.
    assert rows[2].p95_ms == pytest.approx(15.0, rel=0.01)
    files.truncate_torn_tail()
    assert files.timeline_path.read_text(encoding="utf-8").endswith("}\n")
    assert Row.from_dict(rows[1].to_dict()) == rows[1]


def test_row_width_fits_a_soak_in_bounded_rows() -> None:
    assert row_width(60) == 1
    assert row_width(3600) == 2
    assert row_width(48 * 3600) == 60
    assert row_width(30 * 86400) == 900
    assert 30 * 86400 / row_width(30 * 86400) <= MAX_ROWS


def test_memory_stays_flat_over_many_intervals() -> None:
    """Folding 80 minutes of 1-second intervals into 1-minute rows keeps memory bounded: the rows
    (numbers) grow until capped, the histograms do not; the guard's window keeps only its
    seconds."""
    timeline = Timeline(60.0, max_rows=20)
    one = interval(0)
    tracemalloc.start()
    try:
        for s in range(2400):
            timeline.add(shifted(one, s), float(s + 1), None)
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        for s in range(2400, 4800):
            timeline.add(shifted(one, s), float(s + 1), None)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(timeline.rows) == 20  # 79 rows closed; only the last 20 kept in memory
    assert after - warm < 200_000, f"grew {after - warm} bytes over 2400 intervals"
    guard = Guard([parse_rule("p(95) < 300ms")], window_s=5.0)
    for s in range(100):
        guard.observe(shifted(one, s))
    assert len(guard.window._slots) == 5


def shifted(template: Interval, second: int) -> Interval:
    return replace(template, start=T0 + second, end=T0 + second + 1)


def test_plain_progress_is_throttled() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = PlainProgress(out, every_s=10.0, clock=lambda: now[0])
    snap = Snapshot(
        elapsed_s=3725.0,
        duration_s=48 * 3600.0,
        rps=512.3,
        p95_ms=41.2,
        error_rate=0.001,
        requests=10_000,
        failures=10,
        users=50,
        guard=GuardState.OK,
        guard_reason="",
        next_gate_in_s=125.0,
    )
    for i in range(25):
        now[0] = float(i)
        progress.update(snap)
    progress.note("full gate #1: GO")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 0, 10 and 20 s, and the event at once
    assert lines[0] == line(snap)
    assert "1h02m05s/48h00m00s" in lines[0] and "512.3 req/s" in lines[0]
    assert "next gate 2m05s" in lines[0] and lines[-1] == "soak: full gate #1: GO"
    assert clock_text(None) == "-"


def test_live_progress_renders_the_panel() -> None:
    out = io.StringIO()
    progress = LiveProgress(out)
    progress.update(
        Snapshot(
            elapsed_s=90.0,
            duration_s=600.0,
            rps=88.0,
            p95_ms=None,
            error_rate=None,
            requests=7000,
            failures=0,
            users=10,
            guard=GuardState.BREACHING,
            guard_reason="p(95) < 300 ms: 95% of 600 samples at or past 300 ms",
            next_gate_in_s=None,
            slo=(("error-rate", "passed"),),
        )
    )
    progress.note("fault on")
    progress.close()
    text = out.getvalue()
    for part in ("1m30s of 10m00s", "88.0 req/s", "breaching", "error-rate", "soak: fault on"):
        assert part in text, part


def test_soak_report_marks_the_breach_and_the_rollback(tmp_path: Path) -> None:
    rows = [
        Row(
            i,
            T0 + i,
            T0 + i + 1,
            i + 1.0,
            100,
            0,
            100.0,
            5.0,
            9.0 if i < 5 else 410.0,
            12.0 if i < 5 else 420.0,
            10,
            GuardState.OK if i < 5 else GuardState.BREACHING,
            {"error-rate": "passed"},
            [],
        )
        for i in range(9)
    ]
    rows[5].events.append("fault on: latency_ms=400")
    rows[8].guard = GuardState.BREACHED
    record = make_record(nogo_outcomes(), phase=Phase.T48H, actions=(rollback_action(),))
    record["kind"] = "soak"
    record["soak"] = {
        "ended": "breach",
        "elapsed_s": 9.0,
        "duration_s": 60.0,
        "rules": [rule_dict(parse_rule("p(95) < 300ms"))],
        "breach": {
            "source": "load",
            "check": "soak-load",
            "rule": "p(95) < 300ms",
            "onset": T0 + 5,
            "confirmed_at": T0 + 9,
            "onset_utc": "2027-01-15T08:00:05+00:00",
            "confirmed_utc": "2027-01-15T08:00:09+00:00",
            "held_s": 4.0,
            "reason": "p(95) < 300ms breached: 410 ms",
        },
        "fault": {"at_s": 5, "faults": {"latency_ms": "400"}, "on_at": T0 + 5},
        "gates": [],
        "row_s": 1,
    }
    view = build_soak_view(record, rows)
    assert view.breach_elapsed_s == pytest.approx(9.0)
    assert [m.label for m in view.latency_chart.marks] == [  # type: ignore[union-attr]
        "fault on",
        "breach began",
        "breach: soak ended",
        "rollback",
    ]
    assert view.table[-1].css == "breach" and "rollback: rollback" in view.table[-1].events
    written = write_soak_reports(record, rows, tmp_path)
    html = (tmp_path / "soak.html").read_text(encoding="utf-8")
    assert [p.name for p in written] == ["soak.html", "soak.md"]
    assert "Sustained breach: soak-load" in html and "<script" not in html
    assert html.count('class="breach"') == 1 and "rollback" in html
    md = (tmp_path / "soak.md").read_text(encoding="utf-8")
    assert "NO-GO" in md and "rollback succeeded" in md
    # `releasegate report` accepts a soak record and renders its timeline page too.
    from releasegate.cli import main

    folder = tmp_path / "out" / "soak" / "demo-shop" / "t48h"
    folder.mkdir(parents=True)
    (folder / "decision.json").write_text(json.dumps(record), encoding="utf-8")
    files = SoakFiles(folder)
    for row in rows:
        files.append_row(row)
    assert main(["report", str(tmp_path / "out")]) == 0
    assert (folder / "soak.html").exists() and (folder / "scorecard.html").exists()


def test_soak_outcomes_fail_closed(tmp_path: Path) -> None:
    """The load outcome is NO_DATA when a threshold never had its samples, FAILED on a breach,
    ERROR when the load generator failed; an SLO check without a result is NOT_RUN."""
    from releasegate.soak.config import SoakConfig
    from releasegate.soak.outcomes import soak_outcomes

    config = SoakConfig(
        spec_path=tmp_path / "releasegate.yaml",
        phase=Phase.T48H,
        duration_s=60.0,
        locustfile=tmp_path / "shop.py",
        host="http://127.0.0.1:1",
        users=1,
        spawn_rate=1.0,
        rules=(parse_rule("p(99) < 300ms", window_s=1.0),),
        report_dir=tmp_path,
    )
    guard = Guard(config.rules)
    for s in range(5):
        guard.observe(interval(s, requests=50))  # p(99) needs 1000 samples: never judged

    class Slo:
        name = "error-rate"

        def info(self) -> object:
            from releasegate.model import CheckInfo

            return CheckInfo(name="error-rate", kind="slo")

    state = _state(requests=250, elapsed_s=5.0)
    outcomes, expected, not_run = soak_outcomes(config, state, guard, [Slo()], {}, None, None, None)
    assert [o.status.value for o in outcomes] == ["no_data"]
    assert "never enough requests" in outcomes[0].reason
    assert [e.name for e in expected] == ["soak-load", "error-rate"]
    assert not_run == {"spec:error-rate": "the soak ended before this SLO check's first result"}
    outcomes, _, _ = soak_outcomes(config, state, guard, [], {}, None, None, "locust died")
    assert (outcomes[0].status.value, outcomes[0].reason) == ("error", "locust died")
    empty = _state(requests=0)
    outcomes, _, _ = soak_outcomes(config, empty, Guard(config.rules), [], {}, None, None, None)
    assert outcomes[0].status.value == "no_data"


def test_the_state_keeps_no_password_of_the_host() -> None:
    """state.json is written every second; a URL password must not reach it (found by
    review). A resumed soak takes the credentials back from --host or the spec."""
    from releasegate.soak.config import with_credentials, without_credentials

    secret = "https://admin:s3cr3tPass@shop.example:8443/base"
    kept = without_credentials(secret)
    assert kept == "https://shop.example:8443/base" and "s3cr3t" not in kept
    assert with_credentials(kept, None, secret) == secret
    assert with_credentials(kept, "https://other.example") == kept
    assert without_credentials("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_a_target_that_stops_answering_does_not_pass_on_its_healthy_start(tmp_path: Path) -> None:
    """A minute of healthy traffic, then no answer ever completes: every later window is
    empty, which neither starts nor ends a breach. The end is unmeasured: NO DATA, not PASSED
    (found by review)."""
    from releasegate.load.channel import NameStats, new_histogram
    from releasegate.load.thresholds import parse_threshold
    from releasegate.model import Status
    from releasegate.soak.config import SoakConfig
    from releasegate.soak.outcomes import soak_outcomes

    rule = parse_threshold("p(95) < 300ms", abort_on_fail=True, grace_s=3)
    config = SoakConfig(
        spec_path=tmp_path / "s.yaml", phase=Phase.T48H, duration_s=300,
        locustfile=tmp_path / "l.py", host="http://127.0.0.1:1", users=1, spawn_rate=1,
        rules=(rule,), report_dir=tmp_path,
    )  # fmt: skip
    state = SoakState(
        run_id="x", deployment="dep", phase="t48h", spec="s", duration_s=300,
        guard_interval_s=1, gate_every_s=None, row_s=2, options={}, started_at=0.0,
    )  # fmt: skip
    guard = Guard([rule], window_s=5)
    for i in range(300):
        by_name = {}
        if i < 60:
            histogram = new_histogram()
            for _ in range(100):
                histogram.record_value(20_000)
            by_name = {"GET /": NameStats(100, 0, histogram)}
            state.requests += 100
        guard.observe(Interval(start=i, end=i + 1, users=10, by_name=by_name, index=i))
    assert guard.breach is None
    outcomes, _, _ = soak_outcomes(config, state, guard, [], {}, None, None, None)
    assert outcomes[0].status is Status.NO_DATA, outcomes[0].reason
    assert "not measured at the end" in outcomes[0].reason


def test_a_full_gate_that_decided_nothing_is_an_error_in_the_soak(tmp_path: Path) -> None:
    """A timed-out full gate used to vanish from the soak's decision (found by review)."""
    from releasegate.load.thresholds import parse_threshold
    from releasegate.model import Status
    from releasegate.soak.config import SoakConfig
    from releasegate.soak.fullgate import GateResult
    from releasegate.soak.outcomes import soak_outcomes

    rule = parse_threshold("p(95) < 300ms", abort_on_fail=True)
    config = SoakConfig(
        spec_path=tmp_path / "s.yaml", phase=Phase.T48H, duration_s=3600,
        locustfile=tmp_path / "l.py", host="http://127.0.0.1:1", users=1, spawn_rate=1,
        rules=(rule,), report_dir=tmp_path,
    )  # fmt: skip
    state = SoakState(
        run_id="x", deployment="dep", phase="t48h", spec="s", duration_s=3600,
        guard_interval_s=1, gate_every_s=600, row_s=2, options={}, started_at=0.0,
        requests=1000,
    )  # fmt: skip
    guard = Guard([rule])
    guard.measured[rule.label] = 3
    gate = GateResult(6, "INCONCLUSIVE", None, "no end within 630s: killed", 3000, 630)
    outcomes, expected, _ = soak_outcomes(config, state, guard, [], {}, gate, None, None)
    found = {o.check.name: o for o in outcomes}
    assert found["full-gate-6"].status is Status.ERROR
    assert "decided nothing" in found["full-gate-6"].reason
    assert "full-gate-6" in {e.name for e in expected}
