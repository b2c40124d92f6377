"""The canary's SQL and log sources against real databases and real log files, and the units
its reasons speak in.

Each source is shown to block: the same check passes a healthy canary, fails one with an
injected fault (more errors, slower requests) and has NO DATA when a side has nothing.
The SQL tests build their own table of requests (the demo's orders carry no version) on
SQLite and on PostgreSQL (``scratch_db``: skipped without a server unless
RELEASEGATE_REQUIRE_SERVICES=1). The log tests write the lines during the window through the
probe's own ``sleep`` (time is a parameter), except one against two real demo targets.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ScratchDb
from releasegate.canary import (
    HistogramData,
    Margin,
    MetricPolicy,
    RateData,
    SampleData,
    Unit,
    compare,
)
from releasegate.canary.model import format_latency
from releasegate.db.connect import dispose_engines
from releasegate.demo import BASELINE_VERSION, DemoTarget
from releasegate.errors import SpecError
from releasegate.loader import load_spec
from releasegate.model import Status
from releasegate.phases import Phase
from releasegate.probes.base import ProbeContext, ProbeResult, run_check
from releasegate.spec import Spec
from releasegate.target import TargetClient

CANARY, BASELINE = "1.4.2", "1.4.1"


def metrics_of(result: ProbeResult) -> dict[str, dict[str, Any]]:
    details = result.evidence[0].to_dict()["details"]
    return {m["metric"]: m for m in details["metrics"]}


# ------------------------------------------------------------------------------------ units


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.155, "155ms"),
        (0.004796, "4.8ms"),
        (0.0123456, "12.3ms"),
        (0.000123, "0.123ms"),
        (2.5, "2500ms"),
        (9.9994, "9999ms"),
        (12.34, "12.3s"),
        (250.0, "250s"),
        (0.0, "0ms"),
        (-0.05, "-50ms"),
    ],
)
def test_latencies_read_as_ms_below_ten_seconds_and_as_s_above(seconds: float, shown: str) -> None:
    assert format_latency(seconds) == shown


def _lognormal(seed: int, median_s: float, n: int, sigma: float = 0.3) -> list[float]:
    rng = random.Random(seed)
    return [median_s * rng.lognormvariate(0.0, sigma) for _ in range(n)]


def test_a_latency_reason_speaks_ms_and_quotes_the_margin_as_written() -> None:
    policy = MetricPolicy(
        "latency",
        margin=Margin(absolute=0.05, relative=0.10, text="50ms or 10%"),
        unit=Unit.SECONDS,
    )
    result = compare(
        policy,
        SampleData(_lognormal(1, 0.150, 200)),
        SampleData(_lognormal(2, 0.004, 200)),
    )
    assert result.verdict.value == "failed"
    found = re.search(r"canary p95 (\d+)ms vs baseline (\d\.\d\d)ms \(\+", result.reason)
    assert found, result.reason
    assert 150 < int(found.group(1)) < 400 and 3 < float(found.group(2)) < 10
    assert "beyond its margin of 50ms or 10%" in result.reason
    assert policy.to_dict()["margin"]["text"] == "50ms or 10%"
    assert policy.to_dict()["unit"] == "seconds"


def test_without_text_the_margin_is_shown_in_the_metric_unit() -> None:
    policy = MetricPolicy("latency", margin=Margin(absolute=0.2), unit=Unit.SECONDS)
    result = compare(
        policy, SampleData(_lognormal(3, 0.030, 300)), SampleData(_lognormal(4, 0.020, 300))
    )
    assert result.verdict.value == "marginal", result.reason
    assert "within its margin of 200ms" in result.reason


def test_a_histogram_reason_names_its_bucket_bound_in_ms() -> None:
    bounds = [0.05, 0.1, 0.25, 0.5, float("inf")]
    canary = HistogramData(bounds, [100, 300, 800, 990, 1000])
    baseline = HistogramData(bounds, [600, 950, 990, 1000, 1000])
    policy = MetricPolicy("latency", unit=Unit.SECONDS)
    result = compare(policy, canary, baseline)
    assert result.verdict.value == "failed"
    assert re.search(r"canary p95 ~\d+ms vs baseline ~\d+(\.\d+)?ms", result.reason), result.reason
    assert re.search(r"above \d+ms: \d+\.\d% vs \d+\.\d%", result.reason), result.reason


def test_a_rate_reason_speaks_percent_and_quotes_the_margin() -> None:
    policy = MetricPolicy("errors", margin=Margin(absolute=0.005, text="0.5%"))
    result = compare(policy, RateData(30, 300), RateData(0, 300))
    assert result.verdict.value == "failed"
    assert "canary 10% (30/300) vs baseline 0% (0/300)" in result.reason
    assert "beyond its margin of 0.5%" in result.reason


# -------------------------------------------------------------------------------------- sql


def _rows(
    version: str, n: int, seed: int, error_rate: float, median_ms: float
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "version": version,
            "status": "failed" if rng.random() < error_rate else "ok",
            "duration_ms": round(median_ms * rng.lognormvariate(0.0, 0.3), 3),
        }
        for _ in range(n)
    ]


def _fill(db: ScratchDb, *groups: list[dict[str, Any]]) -> None:
    db.run(
        "CREATE TABLE requests (id INTEGER PRIMARY KEY, version VARCHAR(20) NOT NULL,"
        " status VARCHAR(10) NOT NULL, duration_ms DOUBLE PRECISION)"
    )
    import sqlalchemy as sa

    rows = [{"id": i, **row} for i, row in enumerate((r for g in groups for r in g), 1)]
    with db.engine.begin() as conn:  # one transaction, many rows
        conn.execute(
            sa.text(
                "INSERT INTO requests (id, version, status, duration_ms)"
                " VALUES (:id, :version, :status, :duration_ms)"
            ),
            rows,
        )


ERRORS_SQL = (
    "SELECT SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), COUNT(*)"
    " FROM requests WHERE version = :version"
)
LATENCY_SQL = "SELECT duration_ms FROM requests WHERE version = :version"
SQL_CHECK: dict[str, Any] = {
    "source": "sql",
    "queries": {"errors": ERRORS_SQL, "latency": LATENCY_SQL},
    "latency_unit": "ms",
    "canary": {"params": {"version": CANARY}},
    "baseline": {"params": {"version": BASELINE}},
    "metrics": {"errors": {"margin": "0.5%"}, "latency": {"margin": "20ms or 10%"}},
}


@pytest.fixture
def sql_canary(scratch_db: ScratchDb, tmp_path: Path) -> Iterator[Callable[..., ProbeResult]]:
    """Run a canary check of source sql against ``scratch_db`` (the spec's database main)."""
    contexts: list[ProbeContext] = []

    def run(statement_timeout_s: float = 10, **check: Any) -> ProbeResult:
        database: dict[str, Any] = {
            "url": scratch_db.url,
            "statement_timeout_s": statement_timeout_s,
        }
        if scratch_db.schema:
            database["schema"] = scratch_db.schema
        spec = Spec.model_validate(
            {
                "deployment": {"name": "shop"},
                "target": {"base_url": "http://127.0.0.1:9"},
                "databases": {"main": database},
                "checks": [{"name": "canary", "phases": ["t24h"], "type": "canary", **check}],
            }
        )
        ctx = ProbeContext(spec=spec, target=None, phase=Phase.T24H, spec_dir=tmp_path)  # type: ignore[arg-type]
        contexts.append(ctx)
        return run_check(spec.checks[0], ctx)

    yield run
    for ctx in contexts:
        dispose_engines(ctx.db)


only_sqlite = pytest.mark.parametrize("scratch_db", ["sqlite"], indirect=True)


@pytest.mark.parametrize("scratch_db", ["sqlite", "postgresql"], indirect=True)
def test_sql_source_passes_a_healthy_canary_and_fails_one_with_more_errors(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    _fill(
        scratch_db,
        _rows(CANARY, 400, 1, 0.01, 20),
        _rows(BASELINE, 400, 2, 0.01, 20),
        _rows("1.4.3-bad", 400, 3, 0.08, 20),
    )
    healthy = sql_canary(**SQL_CHECK)
    assert healthy.status is Status.PASSED, healthy.reason
    found = metrics_of(healthy)
    assert found["errors"]["canary"]["count"] == found["errors"]["baseline"]["count"] == 400
    assert found["latency"]["canary"]["count"] == 400
    assert re.search(r"p95 \d+(\.\d+)?ms vs baseline \d+(\.\d+)?ms", healthy.reason), healthy.reason
    measured_from = healthy.evidence[0].to_dict()["details"]["measured_from"]
    assert measured_from["canary"]["params"] == {"version": CANARY}

    faulty = sql_canary(**{**SQL_CHECK, "canary": {"params": {"version": "1.4.3-bad"}}})
    assert faulty.status is Status.FAILED, faulty.reason
    assert metrics_of(faulty)["errors"]["verdict"] == "failed"
    assert "beyond its margin of 0.5%" in faulty.reason


@only_sqlite
def test_sql_source_fails_a_slower_canary_through_its_durations(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    _fill(scratch_db, _rows(CANARY, 300, 4, 0.0, 60), _rows(BASELINE, 300, 5, 0.0, 20))
    result = sql_canary(**SQL_CHECK)
    assert result.status is Status.FAILED, result.reason
    found = metrics_of(result)
    assert found["latency"]["verdict"] == "failed"
    assert found["errors"]["verdict"] == "passed"
    # durations read in ms, judged in seconds, shown in ms again
    assert 0.04 < found["latency"]["canary"]["p50"] < 0.08
    assert "beyond its margin of 20ms or 10%" in result.reason


@only_sqlite
def test_sql_source_with_no_rows_on_one_side_is_no_data(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    _fill(scratch_db, _rows(CANARY, 300, 6, 0.0, 20))
    result = sql_canary(**SQL_CHECK)
    assert result.status is Status.NO_DATA, result.reason
    found = metrics_of(result)
    assert found["errors"]["baseline"]["count"] == 0
    assert found["latency"]["verdict"] == "no_data"


@only_sqlite
def test_sql_source_with_a_query_per_side_and_one_metric(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    """Two queries (no params): the sides may live in different tables; only errors here."""
    _fill(scratch_db, _rows(CANARY, 300, 7, 0.10, 20), _rows(BASELINE, 300, 8, 0.0, 20))
    per_side = {
        "source": "sql",
        "canary": {"queries": {"errors": ERRORS_SQL.replace(":version", f"'{CANARY}'")}},
        "baseline": {"queries": {"errors": ERRORS_SQL.replace(":version", f"'{BASELINE}'")}},
    }
    result = sql_canary(**per_side)
    assert result.status is Status.FAILED, result.reason
    assert set(metrics_of(result)) == {"errors"}


@only_sqlite
def test_sql_source_refuses_more_rows_than_max_samples_and_writes(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    _fill(scratch_db, _rows(CANARY, 60, 9, 0.0, 20), _rows(BASELINE, 60, 10, 0.0, 20))
    capped = sql_canary(**{**SQL_CHECK, "max_samples": 50})
    assert capped.status is Status.ERROR
    assert "more than max_samples (50) rows" in capped.reason

    writing = {
        **SQL_CHECK,
        "queries": {"errors": "DELETE FROM requests WHERE version = :version"},
        "metrics": {"errors": {}, "latency": None},
    }
    refused = sql_canary(**writing)
    assert refused.status is Status.ERROR
    assert "SELECT" in refused.reason
    assert scratch_db.scalar("SELECT COUNT(*) FROM requests") == 120


@only_sqlite
def test_sql_source_reads_not_numbers_as_an_error(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    _fill(scratch_db, _rows(CANARY, 40, 11, 0.0, 20), _rows(BASELINE, 40, 12, 0.0, 20))
    one_column = {**SQL_CHECK, "queries": {"errors": LATENCY_SQL.replace("duration_ms", "status")}}
    one_column["metrics"] = {"errors": {}, "latency": None}
    result = sql_canary(**one_column)
    assert result.status is Status.ERROR
    assert "two numbers" in result.reason


@only_sqlite
def test_sql_source_stops_a_slow_query_at_the_statement_timeout(
    scratch_db: ScratchDb, sql_canary: Callable[..., ProbeResult]
) -> None:
    _fill(scratch_db, _rows(CANARY, 40, 13, 0.0, 20), _rows(BASELINE, 40, 14, 0.0, 20))
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)"
        " SELECT COUNT(*), COUNT(*) FROM c, requests WHERE requests.version = :version"
    )
    started = time.monotonic()
    result = sql_canary(
        statement_timeout_s=0.5,
        **{**SQL_CHECK, "queries": {"errors": slow}, "metrics": {"errors": {}, "latency": None}},
    )
    assert time.monotonic() - started < 5
    assert result.status is Status.ERROR
    assert "statement timeout" in result.reason


SPEC_HEAD = """\
deployment: {name: shop}
target: {base_url: "http://127.0.0.1:9"}
databases: {main: {url: "sqlite:///app.db"}}
checks:
  - name: canary
    type: canary
    phases: [t24h]
"""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            'source: sql\n    queries: {errors: "DELETE FROM requests"}\n'
            '    canary: {params: {v: "1"}}\n    baseline: {params: {v: "2"}}',
            "queries.errors",
        ),
        (
            f'source: sql\n    queries: {{errors: "{ERRORS_SQL}"}}',
            "same params",
        ),
        (
            f'source: sql\n    for: 5m\n    queries: {{errors: "{ERRORS_SQL}"}}',
            "select their window",
        ),
        (
            'source: sql\n    queries: {errors: "SELECT 1, 2"}\n'
            '    canary: {params: {v: "1"}}\n    baseline: {params: {v: "2"}}\n'
            "    metrics: {latency: {}}",
            "no latency: query",
        ),
        ("source: logs\n    for: 5s\n    file: app.log\n    patterns: {bad: [ERROR]}", "match"),
        (
            "source: logs\n    for: 5s\n    canary: {file: a.log}\n    baseline: {file: b.log}\n"
            "    patterns: {bad: [ERROR]}\n    metrics: {latency: {}}",
            "latency_pattern",
        ),
        ("source: logs\n    canary: {file: a.log}\n    baseline: {file: b.log}", "for:"),
        ("source: http\n    canary: {file: a.log}", "canary.file: only applies to source: logs"),
        ("source: http\n    database: main", "database: only applies"),
    ],
)
def test_a_misconfigured_sql_or_logs_canary_does_not_load(
    fields: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "releasegate.yaml"
    path.write_text(SPEC_HEAD + "    " + fields + "\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert message in str(caught.value)


# ------------------------------------------------------------------------------------- logs


class LogWriter:
    """The probe's clock and sleep: each sleep advances the clock and lets ``write`` append
    the lines the window would have seen meanwhile."""

    def __init__(self, write: Callable[[int], None]) -> None:
        self.now = 1_000_000.0
        self.ticks = 0
        self.write = write

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.ticks += 1
        self.write(self.ticks)
        self.now += seconds


def _log_probe(
    tmp_path: Path, check: dict[str, Any], writer: LogWriter | None = None
) -> ProbeResult:
    spec = Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": {"base_url": "http://127.0.0.1:9"},
            "checks": [
                {"name": "canary", "phases": ["t24h"], "type": "canary", "source": "logs", **check}
            ],
        }
    )
    ctx = ProbeContext(spec=spec, target=None, phase=Phase.T24H, spec_dir=tmp_path)  # type: ignore[arg-type]
    if writer is not None:
        ctx.clock, ctx.sleep = writer.clock, writer.sleep
    return run_check(spec.checks[0], ctx)


def _line(version: str, ok: bool, ms: float) -> str:
    level, status = ("INFO", 200) if ok else ("ERROR", 500)
    return (
        f"2026-01-21T18:00:01.123Z [{level}] GET /api/products -> {status} in {ms:.1f} ms"
        f" (route /api/products, version {version})\n"
    )


def _writer(
    files: dict[str, Path], error_rate: dict[str, float], median_ms: dict[str, float]
) -> LogWriter:
    """30 lines a side per tick, errors and durations drawn from a seeded generator."""
    rng = random.Random(42)

    def write(_tick: int) -> None:
        for version, path in files.items():
            with path.open("a") as log:
                for _ in range(30):
                    ok = rng.random() >= error_rate[version]
                    log.write(_line(version, ok, median_ms[version] * rng.lognormvariate(0, 0.3)))

    return LogWriter(write)


LOGS_ONE_FILE: dict[str, Any] = {
    "for": "10s",
    "file": "app.log",
    "canary": {"match": r"version 1\.4\.2\)"},
    "baseline": {"match": r"version 1\.4\.1\)"},
    "patterns": {"bad": [r"\[(ERROR|CRITICAL)\]"]},
    "latency_pattern": r" in (\d+(?:\.\d+)?) ms",
    "latency_unit": "ms",
}


def test_logs_one_file_split_by_version_passes_healthy_and_fails_errors(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_line(CANARY, False, 1.0) * 500)  # before the window: never counted
    both = {CANARY: log, BASELINE: log}
    healthy = _log_probe(
        tmp_path,
        LOGS_ONE_FILE,
        _writer(both, {CANARY: 0.01, BASELINE: 0.01}, {CANARY: 5, BASELINE: 5}),
    )
    assert healthy.status is Status.PASSED, healthy.reason
    found = metrics_of(healthy)
    assert found["errors"]["canary"]["count"] == found["errors"]["baseline"]["count"] == 600
    assert found["latency"]["canary"]["count"] == 600
    assert found["errors"]["canary"]["minutes"] == pytest.approx(10 / 60)

    faulty = _log_probe(
        tmp_path,
        LOGS_ONE_FILE,
        _writer(both, {CANARY: 0.10, BASELINE: 0.01}, {CANARY: 5, BASELINE: 5}),
    )
    assert faulty.status is Status.FAILED, faulty.reason
    assert metrics_of(faulty)["errors"]["verdict"] == "failed"
    assert re.search(r"canary \d+(\.\d+)?% \(\d+/600\) vs baseline", faulty.reason), faulty.reason


def test_logs_two_files_fail_a_slower_canary_through_the_durations(tmp_path: Path) -> None:
    files = {CANARY: tmp_path / "canary.log", BASELINE: tmp_path / "baseline.log"}
    for path in files.values():
        path.touch()
    check = {
        **{k: v for k, v in LOGS_ONE_FILE.items() if k not in ("file", "canary", "baseline")},
        "canary": {"file": "canary.log"},
        "baseline": {"file": str(files[BASELINE])},
        "metrics": {"latency": {"margin": "5ms or 10%"}},
    }
    writer = _writer(files, {CANARY: 0.0, BASELINE: 0.0}, {CANARY: 40, BASELINE: 20})
    result = _log_probe(tmp_path, check, writer)
    assert result.status is Status.FAILED, result.reason
    latency = metrics_of(result)["latency"]
    assert latency["verdict"] == "failed"
    assert "beyond its margin of 5ms or 10%" in result.reason
    assert re.search(r"canary p95 \d+(\.\d)?ms vs baseline \d+(\.\d)?ms", result.reason)


def test_logs_follow_a_rotation_within_the_window(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    inner = _writer(
        {CANARY: log, BASELINE: log}, {CANARY: 0.0, BASELINE: 0.0}, {CANARY: 5, BASELINE: 5}
    ).write

    def write(tick: int) -> None:
        inner(tick)
        if tick == 10:  # rotated by rename, as the demo's log and logrotate do
            log.rename(tmp_path / "app.log.1")
            log.touch()

    result = _log_probe(tmp_path, LOGS_ONE_FILE, LogWriter(write))
    assert result.status is Status.PASSED, result.reason
    assert metrics_of(result)["errors"]["canary"]["count"] == 600


def test_logs_with_a_silent_side_are_no_data(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    writer = _writer({CANARY: log}, {CANARY: 0.0}, {CANARY: 5})
    result = _log_probe(tmp_path, LOGS_ONE_FILE, writer)
    assert result.status is Status.NO_DATA, result.reason
    assert metrics_of(result)["errors"]["baseline"]["count"] == 0


def test_logs_without_the_file_or_past_the_byte_cap_are_errors(tmp_path: Path) -> None:
    missing = _log_probe(tmp_path, LOGS_ONE_FILE, LogWriter(lambda _tick: None))
    assert missing.status is Status.ERROR
    assert "app.log" in missing.reason

    log = tmp_path / "app.log"
    log.touch()
    writer = _writer(
        {CANARY: log, BASELINE: log}, {CANARY: 0.0, BASELINE: 0.0}, {CANARY: 5, BASELINE: 5}
    )
    capped = _log_probe(tmp_path, {**LOGS_ONE_FILE, "max_read_bytes": 20_000}, writer)
    assert capped.status is Status.ERROR
    assert "max_read_bytes" in capped.reason


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[DemoTarget, DemoTarget]]:
    with (
        DemoTarget(traffic_rps=0, fault_seed=21) as canary,
        DemoTarget(traffic_rps=0, fault_seed=22, version=BASELINE_VERSION) as baseline,
    ):
        yield canary, baseline


def test_logs_of_two_real_demo_targets_block_a_canary_with_errors(
    pair: tuple[DemoTarget, DemoTarget], tmp_path: Path
) -> None:
    """The demo's own application logs, one per version, while traffic goes to both."""
    canary, baseline = pair
    check = {
        "for": "2s",
        "canary": {"file": str(canary.log_path)},
        "baseline": {"file": str(baseline.log_path)},
        "patterns": {"bad": [r"\[(ERROR|CRITICAL)\]"]},
        "latency_pattern": r" in (?P<latency>\d+(?:\.\d+)?) ms",
        "latency_unit": "ms",
        "metrics": {"errors": {}, "latency": {"margin": "50ms or 10%"}},
    }

    def under_traffic() -> ProbeResult:
        stop = threading.Event()

        def drive() -> None:
            clients = [TargetClient(base_url=t.url, timeout_s=3) for t in pair]
            while not stop.is_set():
                for client in clients:
                    client.request("GET", "/api/products")

        threads = [threading.Thread(target=drive, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            return _log_probe(tmp_path, check)
        finally:
            stop.set()
            for thread in threads:
                thread.join(5)

    try:
        canary.clear_faults()
        baseline.clear_faults()
        healthy = under_traffic()
        assert healthy.status is Status.PASSED, healthy.reason
        assert metrics_of(healthy)["errors"]["canary"]["count"] >= 30
        canary.set_faults({"error_rate": 0.2})
        faulty = under_traffic()
        assert faulty.status is Status.FAILED, faulty.reason
        errors = metrics_of(faulty)["errors"]
        assert errors["verdict"] == "failed" and errors["baseline"]["events"] == 0
    finally:
        canary.clear_faults()


def test_logs_keep_a_bounded_random_sample_of_durations(tmp_path: Path) -> None:
    """max_samples bounds the durations kept per side; every line is still counted."""
    log = tmp_path / "app.log"
    log.touch()
    writer = _writer(
        {CANARY: log, BASELINE: log}, {CANARY: 0.0, BASELINE: 0.0}, {CANARY: 5, BASELINE: 5}
    )
    result = _log_probe(tmp_path, {**LOGS_ONE_FILE, "max_samples": 100}, writer)
    assert result.status is Status.PASSED, result.reason
    found = metrics_of(result)
    assert found["errors"]["canary"]["count"] == 600
    assert found["latency"]["canary"]["count"] == found["latency"]["baseline"]["count"] == 100
