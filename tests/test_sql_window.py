"""`sql` checks with `for:`: the query sampled at every step of a (scaled) window, each sample
held to min/max with the SLO library's semantics, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ScratchDb
from releasegate.model import Status
from releasegate.spec import SqlCheck

COUNT = "SELECT COUNT(*) FROM events"


@pytest.fixture
def events(scratch_db: ScratchDb) -> ScratchDb:
    """A table ``events`` of three rows."""
    scratch_db.run(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, n INTEGER)",
        *(f"INSERT INTO events (id, n) VALUES ({i}, {i})" for i in range(1, 4)),
    )
    return scratch_db


@pytest.fixture
def later(events: ScratchDb) -> Iterator[Callable[[float, Callable[[], None]], None]]:
    """``later(seconds, action)``: run ``action`` in a thread that many seconds from now, as
    another client of the database would; its failure fails the test."""
    threads: list[threading.Thread] = []
    failures: list[BaseException] = []

    def schedule(seconds: float, action: Callable[[], None]) -> None:
        def run() -> None:
            time.sleep(seconds)
            try:
                action()
            except BaseException as err:  # reported when the fixture ends
                failures.append(err)

        thread = threading.Thread(target=run, daemon=True)
        threads.append(thread)
        thread.start()

    yield schedule
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures


def timed(run: Callable[..., Any], *checks: dict[str, Any], **database: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = run(*checks, **database)
    return result, time.monotonic() - started


def evidence(result: Any) -> Any:
    (found,) = result.evidence
    return found


def test_a_count_within_bounds_at_every_step_passes(
    events: ScratchDb, db_check: Callable[..., Any]
) -> None:
    check = {"name": "events", "type": "sql", "query": COUNT, "min": 1, "max": 5}
    result, took = timed(db_check, {**check, "for": "1s", "step": "200ms"})
    assert result.status is Status.PASSED, result.reason
    assert result.reason.startswith("events held >= 1 and <= 5 over 1s at 5 of 5 steps")
    assert took >= 0.9
    found = evidence(result)
    assert found.value == {"worst": 3, "coverage": 1.0}
    assert found.threshold == ">= 1 and <= 5 at every step over 1s"
    assert [(limit.op, limit.value, limit.key) for limit in found.limits] == [
        (">=", 1, "worst"),
        ("<=", 5, "worst"),
    ]
    details = found.details
    assert details["sql"] == COUNT
    assert details["database"].startswith("database 'main' (")
    assert details["samples"] == 5 and details["failed_samples"] == 0
    assert [step[2:] for step in details["steps"]] == [[3, True]] * 5
    assert details["window"]["steps"] == 5
    json.dumps(details)  # the record can hold it


def test_a_query_answering_null_at_every_step_is_no_data(
    events: ScratchDb, db_check: Callable[..., Any]
) -> None:
    check = {"name": "top", "type": "sql", "query": "SELECT MAX(n) FROM events WHERE n > 100"}
    result = db_check({**check, "max": 5, "for": "1s", "step": "250ms"})
    assert result.status is Status.NO_DATA, result.reason
    assert result.reason == "top: no data over 1s at any of 4 steps"
    found = evidence(result)
    assert found.value == {"worst": None, "coverage": 0.0}
    assert [step[2:] for step in found.details["steps"]] == [[None, None]] * 4


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_database_that_is_down_is_an_error_at_the_first_step(
    events: ScratchDb, db_check: Callable[..., Any], tmp_path: Path
) -> None:
    port = _closed_port()
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'gone.db'}",
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        "mariadb": f"mysql+pymysql://root@127.0.0.1:{port}/test",
    }[events.kind]
    check = {"name": "events", "type": "sql", "query": COUNT, "max": 5}
    result, took = timed(db_check, {**check, "for": "2s", "step": "200ms"}, url=url)
    assert result.status is Status.ERROR, result.reason
    assert "cannot connect" in result.reason or "does not exist" in result.reason
    assert took < 1.5  # not a window of missing steps
    assert evidence(result).details["step"] == 0


def _spec(db: ScratchDb, *checks: dict[str, Any], **top: Any) -> Any:
    from releasegate.spec import Spec
    from releasegate.spec_db import DB_BACKENDS

    main: dict[str, Any] = {"url": db.url, **({"schema": db.schema} if db.schema else {})}
    return Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": {"base_url": "http://127.0.0.1:9"},
            "databases": {"main": main},
            "checks": [{"phases": ["t24h"], **c} for c in checks],
            **top,
        },
        context={DB_BACKENDS: {}},
    )


@pytest.fixture
def run_spec() -> Iterator[Callable[..., Any]]:
    """Run every check of a spec as a gate run would; ``options`` go to the ``ProbeContext``
    (``time_scale``: ``--rg-time-scale``; ``sleep``)."""
    from releasegate.db.connect import dispose_engines
    from releasegate.phases import Phase
    from releasegate.probes import ProbeContext, run_check

    contexts: list[Any] = []

    def run(spec: Any, **options: Any) -> list[Any]:
        context = ProbeContext(
            spec=spec,
            target=None,  # type: ignore[arg-type]  # no HTTP target: DB checks only
            phase=Phase.T24H,
            **options,
        )
        contexts.append(context)
        return [run_check(check, context) for check in spec.checks]

    yield run
    for context in contexts:
        dispose_engines(context.db)


def when_the_window_starts(
    later: Callable[[float, Callable[[], None]], None], seconds: float, action: Callable[[], None]
) -> Callable[[float], None]:
    """A ``ProbeContext.sleep`` that schedules ``action`` ``seconds`` after the window's first
    wait begins (so the test's timing does not depend on how long the setup took)."""
    scheduled = threading.Event()

    def sleep(duration: float) -> None:
        if not scheduled.is_set():
            scheduled.set()
            later(seconds, action)
        time.sleep(duration)

    return sleep


def test_rows_inserted_during_the_window_fail_it_at_the_steps_past_max(
    events: ScratchDb, run_spec: Callable[..., Any], later: Callable[..., None]
) -> None:
    def insert() -> None:
        events.run(*(f"INSERT INTO events (id, n) VALUES ({i}, {i})" for i in range(10, 14)))

    # 3 rows, then 7 from 0.9 s into the window on: the steps at 1.0 s and later break max.
    sleep = when_the_window_starts(later, 0.9, insert)
    check = {"name": "events", "type": "sql", "query": COUNT, "min": 1, "max": 5}
    (result,) = run_spec(_spec(events, {**check, "for": "2s", "step": "200ms"}), sleep=sleep)
    assert result.status is Status.FAILED, result.reason
    details = evidence(result).details
    breaches = details["breach_steps"]
    assert 2 <= breaches[0] <= 6  # the early steps held
    assert breaches == list(range(breaches[0], 10))
    assert f"events broke <= 5 over 2s at {len(breaches)} of 10 steps" in result.reason
    assert f"step {breaches[0]} (now-" in result.reason
    assert details["worst"] == 7 and evidence(result).value["worst"] == 7
    oks = [step[3] for step in details["steps"]]
    assert oks == [i not in breaches for i in range(10)]


def test_samples_that_fail_mid_window_are_missing_steps(
    events: ScratchDb, run_spec: Callable[..., Any], later: Callable[..., None]
) -> None:
    sleep = when_the_window_starts(later, 0.5, lambda: events.run("DROP TABLE events"))
    check = {"name": "events", "type": "sql", "query": COUNT, "max": 5}
    (result,) = run_spec(_spec(events, {**check, "for": "1s", "step": "200ms"}), sleep=sleep)
    assert result.status is Status.NO_DATA, result.reason
    assert "below the 90% floor" in result.reason and "sample(s) failed" in result.reason
    details = evidence(result).details
    assert details["failed_samples"] >= 2 and details["errors"]
    assert details["steps"][0][2:] == [3, True] and details["steps"][-1][2:] == [None, None]


def test_the_time_scale_runs_a_long_window_fast_and_the_record_keeps_both(
    events: ScratchDb, run_spec: Callable[..., Any]
) -> None:
    check = {"name": "events", "type": "sql", "query": COUNT, "max": 5, "for": "2m"}
    spec = _spec(events, {**check, "step": "10s"}, slo={"time_scale": 60})
    started = time.monotonic()
    (result,) = run_spec(spec)
    took = time.monotonic() - started
    assert result.status is Status.PASSED, result.reason
    assert 1.9 <= took < 5
    assert "held <= 5 over 2m (2s at time scale 60) at " in result.reason
    found = evidence(result)
    assert found.threshold == "<= 5 at every step over 2m (2s at time scale 60)"
    window = found.details["window"]
    assert (window["duration_s"], window["step_s"], window["time_scale"]) == (120, 10, 60)
    assert window["steps"] == 12
    assert window["scaled_duration_s"] == pytest.approx(2)
    assert window["scaled_step_s"] == pytest.approx(1 / 6)
    # --rg-time-scale multiplies the spec's: 2m at 60 x 2 is 1 s.
    (faster,) = run_spec(spec, time_scale=2)
    assert faster.status is Status.PASSED
    assert evidence(faster).details["window"]["time_scale"] == 120


def test_a_window_longer_than_the_deadline_is_an_error_at_once(
    events: ScratchDb, run_spec: Callable[..., Any]
) -> None:
    check = {"name": "events", "type": "sql", "query": COUNT, "max": 5, "for": "10m"}
    started = time.monotonic()
    (result,) = run_spec(_spec(events, check))  # the default deadline of kind slo: 10m
    assert time.monotonic() - started < 1
    assert result.status is Status.ERROR
    assert "does not fit in what is left of the check's deadline" in result.reason


def _model(**fields: Any) -> SqlCheck:
    base = {"name": "n", "phases": ["t24h"], "type": "sql", "query": "SELECT 1", "max": 1}
    return SqlCheck.model_validate({**base, **fields})


def test_for_makes_a_sql_check_kind_slo_unless_the_spec_names_its_kind() -> None:
    assert _model().kind == "db" and _model().window() is None
    windowed = _model(**{"for": "5m"})
    assert windowed.kind == "slo" and windowed.category == "data"
    window = windowed.window()
    assert window is not None and (window.duration_s, window.step_s) == (300, 15)
    assert _model(**{"for": "5m", "kind": "db"}).kind == "db"
    assert _model(hold_for=60).kind == "slo"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"step": "10s"}, "step: only applies with for:"),
        ({"min_coverage": 0.5}, "min_coverage: only applies with for:"),
        ({"for": "0s"}, "for: must be a positive duration"),
        ({"for": "10s", "step": "1m"}, "is longer than the window"),
        ({"for": "soon"}, "write a number and a unit"),
        ({"for": "1m", "min_coverage": 0}, "greater than 0"),
    ],
)
def test_bad_window_fields_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model(**fields)


def test_a_gate_run_records_kind_slo_and_marker_slo_selects_it(
    pytester: pytest.Pytester,
) -> None:
    db = pytester.path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY)")
    spec = {
        "version": 1,
        "deployment": {"name": "shop"},
        "target": {"base_url": "http://127.0.0.1:9"},
        "databases": {"main": {"url": f"sqlite:///{db}"}},
        "slo": {"time_scale": 60},
        "checks": [
            {"name": "windowed", "type": "sql", "phases": ["t24h"], "query": COUNT,
             "max": 5, "for": "1m"},
            {"name": "once", "type": "sql", "phases": ["t24h"], "query": COUNT, "max": 5},
        ],
    }  # fmt: skip
    pytester.makefile(".yaml", releasegate=json.dumps(spec))
    listed = pytester.runpytest_subprocess("--collect-only", "-q", "-m", "slo")
    listed.stdout.fnmatch_lines(["*check?windowed?*"])
    listed.stdout.no_fnmatch_line("*check?once?*")
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    record = json.loads((pytester.path / "reports/out/shop/t24h/decision.json").read_text())
    kinds = {o["check"]["name"]: (o["check"]["kind"], o["status"]) for o in record["outcomes"]}
    assert kinds == {"windowed": ("slo", "passed"), "once": ("db", "passed")}
