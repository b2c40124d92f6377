"""Every check runs under its own deadline: the spec's ``timeout``, the Python check's
``@pytest.mark.releasegate(timeout=...)``, else the default of its kind.

What waits on a check's behalf (HTTP requests and retries, fuzzing, SQL statements) stops at the
deadline; whatever is still running a short grace later is stopped by a ``SIGALRM``. Either way
the check is an ERROR whose reason names the deadline, and the run goes on with the next check.
Gate runs are real processes (signals), against real servers.
"""

from __future__ import annotations

import json
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from _httpserver import LocalServer
from conftest import MARIADB_URL, ScratchDb, _service_error, require_service
from releasegate.deadlines import Alarm, Timeout, current, within
from releasegate.errors import CheckDeadline
from releasegate.model import Status
from releasegate.probes import ProbeContext, ProbeResult, run_check
from releasegate.spec import Spec
from releasegate.target import TargetClient

SPEC = """\
version: 1
deployment: {{name: dl}}
target: {{base_url: "{url}"}}
checks:
{checks}
"""

# Both run far longer than any deadline here (minutes); neither sleeps, which the query guard
# refuses (pg_sleep, SLEEP: time bombs), nor writes anything to disk.
SLOW_QUERY = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    " SELECT count(*) FROM c",
    "postgresql": "SELECT count(*) FROM generate_series(1, 100000) AS a,"
    " generate_series(1, 100000) AS b",
    "mariadb": "SELECT count(*) FROM seq_1_to_100000 AS a, seq_1_to_100000 AS b",
}


def gate(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, float]:
    """A gate run of phase t24h in its own process, and how long it took."""
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-m", "gate_t24h", "-p", "no:cacheprovider", *args, timeout=120
    )
    return result, time.monotonic() - started


def outcomes(pytester: pytest.Pytester) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    data: dict[str, Any] = json.loads(
        (pytester.path / "reports/out/dl/t24h/decision.json").read_text()
    )
    return data, {o["check"]["name"]: o for o in data["outcomes"]}


def run_time(outcome: dict[str, Any]) -> dict[str, Any]:
    """The evidence a check that ran past its deadline carries."""
    found = [e for e in outcome["evidence"] if e["measured"] == "the check's run time"]
    assert len(found) == 1, outcome["evidence"]
    evidence: dict[str, Any] = found[0]
    return evidence


def spec_checks(*checks: str) -> str:
    return "\n".join(f"  - {check}" for check in checks)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:

        def hang(request: Request) -> Response:
            srv.hang()  # until the server stops
            return Response("late")

        srv.route("/ok", lambda request: Response("ok"))
        srv.route("/hang", hang)
        yield srv


# -- spec checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "seconds"), [("1s", 1.0), (2, 2.0), ("1500ms", 1.5)])
def test_a_hanging_http_check_is_an_error_at_its_timeout(
    pytester: pytest.Pytester, server: LocalServer, timeout: Any, seconds: float
) -> None:
    """Its retries would go on for 30 s and each request for 20 s; the check's timeout ends
    them, and the decision cannot be GO."""
    checks = spec_checks(
        "{name: ok, type: http, phases: [t24h], severity: critical, request: {path: /ok}}",
        "{name: hang, type: http, phases: [t24h], request: {path: /hang, timeout_s: 20},"
        f" retry: {{deadline_s: 30, backoff_s: 0.1}}, timeout: {timeout}}}",
    )
    pytester.makefile(".yaml", releasegate=SPEC.format(url=server.url, checks=checks))

    result, took = gate(pytester)

    data, by_name = outcomes(pytester)
    hang = by_name["hang"]
    assert hang["status"] == "error", hang
    assert hang["reason"].startswith(f"exceeded its deadline of {seconds:g}s (timeout): GET http")
    assert "/hang" in hang["reason"]
    assert seconds <= hang["duration_s"] < seconds + 1.0, hang
    assert run_time(hang)["details"] == {"timeout_s": seconds, "timeout_from": "timeout"}
    assert run_time(hang)["value"] >= seconds
    assert any(e["measured"] == "GET /hang" for e in hang["evidence"])  # the probe's own
    assert by_name["ok"]["status"] == "passed"
    assert data["decision"] == "INCONCLUSIVE"
    assert result.ret == 12
    assert server.hits["/hang"] >= 1
    assert took < 30
    result.stdout.fnmatch_lines(["*hang: ERROR (could not measure): exceeded its deadline of*"])


def test_a_fuzzing_budget_longer_than_the_checks_timeout_stops_at_the_timeout(
    server: LocalServer,
) -> None:

    def slow_refusal(request: Request) -> Response:
        time.sleep(0.2)
        return Response("no", 400)

    server.route("/api/orders", slow_refusal)
    spec = Spec.model_validate(
        {
            "deployment": {"name": "dl"},
            "target": {"base_url": server.url},
            "checks": [
                {
                    "name": "fuzz",
                    "type": "bad_input",
                    "phases": ["t24h"],
                    "endpoints": [{"path": "/api/orders", "example": {"sku": "A-1"}}],
                    "max_examples": 1000,
                    "deadline_s": 30,
                    "timeout": 1,
                }
            ],
        }
    )
    context = ProbeContext(spec=spec, target=TargetClient(base_url=server.url))

    started = time.monotonic()
    result = run_check(spec.checks[0], context)
    took = time.monotonic() - started

    assert took < 1.5, result
    value = result.evidence[0].value
    assert value["stopped_by_deadline"] is True
    assert 0 < value["requests"] < 20


# -- Python checks --------------------------------------------------------------------------

SLEEPER = """
import time
from pathlib import Path
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical", timeout={timeout!r})
def test_sleepy():
    time.sleep(60)

@pytest.mark.gate_t24h
def test_next():
    Path("next-ran").touch()
"""


@pytest.mark.parametrize(("timeout", "seconds"), [(1, 1.0), ("1.5s", 1.5), (0.5, 0.5)])
def test_a_sleeping_python_check_is_stopped_at_its_timeout_and_the_run_goes_on(
    pytester: pytest.Pytester, timeout: Any, seconds: float
) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(url="http://127.0.0.1:9", checks="  []"))
    pytester.makepyfile(test_checks=SLEEPER.format(timeout=timeout))

    result, took = gate(pytester)

    data, by_name = outcomes(pytester)
    sleepy = by_name["test_sleepy"]
    assert sleepy["status"] == "error"
    assert sleepy["reason"] == f"exceeded its deadline of {seconds:g}s (timeout)"
    assert seconds <= sleepy["duration_s"] < seconds + 1.0
    assert run_time(sleepy)["threshold"] == f"<= {seconds:g} s (timeout)"
    assert by_name["test_next"]["status"] == "passed"
    assert (pytester.path / "next-ran").exists()
    assert data["decision"] == "INCONCLUSIVE"
    assert result.ret == 12
    assert took < 30
    # Where the check was when it was stopped, not releasegate's handler.
    result.stdout.fnmatch_lines(
        ["E*CheckDeadline: exceeded its deadline of*", "test_checks.py:*: CheckDeadline"]
    )
    result.stdout.no_fnmatch_line("*deadlines.py*")


def test_under_xdist_the_python_check_backstop_works_on_the_workers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(url="http://127.0.0.1:9", checks="  []"))
    pytester.makepyfile(
        test_checks=SLEEPER.format(timeout=1)
        + textwrap.dedent(
            """
            @pytest.mark.gate_t24h
            @pytest.mark.releasegate(timeout="2s")
            def test_sleepy_too():
                time.sleep(60)
            """
        )
    )

    result, took = gate(pytester, "-n", "2")

    data, by_name = outcomes(pytester)
    for name, seconds in (("test_sleepy", 1.0), ("test_sleepy_too", 2.0)):
        assert by_name[name]["status"] == "error", by_name[name]
        assert by_name[name]["reason"] == f"exceeded its deadline of {seconds:g}s (timeout)"
        assert seconds <= by_name[name]["duration_s"] < seconds + 1.0
    assert by_name["test_next"]["status"] == "passed"
    assert data["decision"] == "INCONCLUSIVE"
    assert result.ret == 12
    assert took < 40


def test_a_python_checks_requests_to_the_target_end_at_its_deadline(
    pytester: pytest.Pytester, server: LocalServer
) -> None:
    """``rg_target`` requests stop at the check's deadline themselves (the request's own error,
    not the backstop's), whatever the target's own timeout."""
    spec = SPEC.format(url=server.url, checks="  []").replace(
        f'base_url: "{server.url}"', f'base_url: "{server.url}", timeout_s: 20'
    )
    pytester.makefile(".yaml", releasegate=spec)
    pytester.makepyfile(
        test_checks="""
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(timeout="1s")
        def test_hanging_target(rg_target):
            rg_target.get("/hang")
        """
    )

    result, _ = gate(pytester)

    _, by_name = outcomes(pytester)
    hanging = by_name["test_hanging_target"]
    assert hanging["status"] == "error"
    assert hanging["reason"].startswith("exceeded its deadline of 1s (timeout): GET http")
    assert "/hang" in hanging["reason"]
    assert 1.0 <= hanging["duration_s"] < 2.0
    assert result.ret == 12


DEFAULTS = """
from releasegate import deadlines

deadlines.DEFAULT_TIMEOUT_S.update(smoke=0.5, db=0.7, slo=0.9)
"""

BY_KIND = """
import time
import pytest

@pytest.mark.gate_t24h
def test_smoke_by_default():
    time.sleep(30)

@pytest.mark.gate_t24h
@pytest.mark.db
def test_db():
    time.sleep(30)

@pytest.mark.gate_t24h
@pytest.mark.slo
def test_slo():
    time.sleep(30)

@pytest.mark.gate_t24h
@pytest.mark.releasegate(timeout=3)
def test_own_timeout_over_the_default():
    time.sleep(1)
"""


def test_without_a_timeout_the_default_of_the_kind_applies(
    pytester: pytest.Pytester, server: LocalServer
) -> None:
    checks = spec_checks(
        "{name: hang, type: http, phases: [t24h], request: {path: /hang, timeout_s: 20}}",
        "{name: hang-slo, kind: slo, type: http, phases: [t24h],"
        " request: {path: /hang, timeout_s: 20}}",
    )
    pytester.makefile(".yaml", releasegate=SPEC.format(url=server.url, checks=checks))
    pytester.makeconftest(DEFAULTS)
    pytester.makepyfile(test_checks=BY_KIND)

    result, _ = gate(pytester)

    _, by_name = outcomes(pytester)
    expected = {
        "hang": (0.5, "smoke"),
        "hang-slo": (0.9, "slo"),
        "test_smoke_by_default": (0.5, "smoke"),
        "test_db": (0.7, "db"),
        "test_slo": (0.9, "slo"),
    }
    for name, (seconds, kind) in expected.items():
        outcome = by_name[name]
        assert outcome["status"] == "error", outcome
        assert outcome["reason"].startswith(
            f"exceeded its deadline of {seconds:g}s (the default for {kind} checks)"
        ), outcome
        assert seconds <= outcome["duration_s"] < seconds + 1.0, outcome
        assert run_time(outcome)["details"]["timeout_from"] == f"the default for {kind} checks"
    assert by_name["test_own_timeout_over_the_default"]["status"] == "passed"
    assert result.ret == 12


SWALLOWER = """
import signal
import time
import pytest

def foreign(signum, frame):
    pass

@pytest.fixture
def foreign_alarm_handler():
    # As pytest-timeout installs its own around a test.
    previous = signal.signal(signal.SIGALRM, foreign)
    yield
    signal.signal(signal.SIGALRM, previous)

@pytest.mark.gate_t24h
@pytest.mark.releasegate(timeout=1)
def test_swallows_the_deadline():
    try:
        time.sleep(30)
    except BaseException:
        pass

@pytest.mark.gate_t24h
@pytest.mark.releasegate(timeout=1)
def test_catches_exception_only():
    try:
        time.sleep(30)
    except Exception:
        pass

@pytest.mark.gate_t24h
@pytest.mark.releasegate(timeout=1)
def test_under_another_alarm_handler(foreign_alarm_handler):
    time.sleep(1.5)  # nothing stops it: the backstop stands down for a foreign handler
    assert signal.getsignal(signal.SIGALRM) is foreign
"""


def test_a_check_that_returns_past_its_deadline_is_an_error_all_the_same(
    pytester: pytest.Pytester,
) -> None:
    """Whether it swallowed the stop or nothing stopped it, a check that returns past its
    deadline did not say in time; ``except Exception`` does not catch the stop."""
    pytester.makefile(".yaml", releasegate=SPEC.format(url="http://127.0.0.1:9", checks="  []"))
    pytester.makepyfile(test_checks=SWALLOWER)

    result, _ = gate(pytester)

    _, by_name = outcomes(pytester)
    for name in ("test_swallows_the_deadline", "test_under_another_alarm_handler"):
        outcome = by_name[name]
        assert outcome["status"] == "error", outcome
        assert outcome["reason"].startswith(
            "exceeded its deadline of 1s (timeout): it returned only after 1."
        ), outcome
    assert by_name["test_under_another_alarm_handler"]["duration_s"] >= 1.5
    caught = by_name["test_catches_exception_only"]
    assert caught["reason"] == "exceeded its deadline of 1s (timeout)"
    assert caught["duration_s"] < 2.0
    assert result.ret == 12
    result.stdout.fnmatch_lines(
        [
            "test_swallows_the_deadline: ERROR (could not measure): exceeded its deadline of 1s"
            " (timeout): it returned only after 1.*s"
        ]
    )


def test_a_bad_timeout_in_the_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(url="http://127.0.0.1:9", checks="  []"))
    pytester.makepyfile(
        test_checks="""
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(timeout="soon")
        def test_bad():
            pass
        """
    )
    result = pytester.runpytest("-m", "gate_t24h", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_bad*releasegate*duration such as 90s*'soon'*"])


# -- SQL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1.0, 1.5])
def test_a_slow_query_ends_at_the_checks_timeout(
    scratch_db: ScratchDb, db_check: Callable[..., Any], seconds: float
) -> None:
    """The database's statement timeout (30 s by default) is cut to what is left of the
    check's: the server (or SQLite's progress handler) cancels the query, not the backstop."""
    query = SLOW_QUERY[scratch_db.kind]
    started = time.monotonic()
    result = db_check({"name": "slow", "type": "sql", "query": query, "min": 0, "timeout": seconds})
    took = time.monotonic() - started

    assert result.status is Status.ERROR, result.reason
    assert "did not finish within the statement timeout" in result.reason
    assert seconds * 0.9 <= took < seconds + 1.0, result.reason


def test_the_database_engine_keeps_its_own_timeout_after_a_cut_one(tmp_path: Path) -> None:
    """The engine (one per URL per run) is made from the database's own settings, never from
    the remainder of the check that happened to open it first (MariaDB's socket read timeout
    is such a setting)."""
    from releasegate.db.connect import dispose_engines
    from releasegate.phases import Phase

    problem = _service_error("mariadb")
    if problem:
        require_service("mariadb", problem)
    spec = Spec.model_validate(
        {
            "deployment": {"name": "dl"},
            "target": {"base_url": "http://127.0.0.1:9"},
            "databases": {"main": {"url": MARIADB_URL}},
            "checks": [
                {"name": "quick", "type": "sql", "query": "SELECT 1", "min": 1, "phases": ["t24h"]},
            ],
        }
    )
    context = ProbeContext(spec=spec, target=None, phase=Phase.T24H, spec_dir=tmp_path)  # type: ignore[arg-type]
    try:
        with within(0.8):
            assert run_check(spec.checks[0], context).status is Status.PASSED
        (engine,) = context.db.engines.values()
        raw = engine.raw_connection()
        try:
            assert raw.driver_connection._read_timeout > 30  # type: ignore[union-attr]
        finally:
            raw.close()
    finally:
        dispose_engines(context.db)


def test_a_gate_run_records_the_sql_deadline(pytester: pytest.Pytester, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    checks = spec_checks(
        "{name: slow, type: sql, phases: [t24h], database: main,"
        f" query: '{SLOW_QUERY['sqlite']}', min: 0, timeout: 1s}}",
    )
    spec = SPEC.format(url="http://127.0.0.1:9", checks=checks)
    spec += f"databases:\n  main: {{url: 'sqlite:///{db}'}}\n"
    pytester.makefile(".yaml", releasegate=spec)

    result, _ = gate(pytester)

    data, by_name = outcomes(pytester)
    slow = by_name["slow"]
    assert slow["status"] == "error"
    assert slow["reason"].startswith("exceeded its deadline of 1s (timeout): database 'main'")
    assert "statement timeout" in slow["reason"]
    assert 1.0 <= slow["duration_s"] < 2.0
    assert data["decision"] == "INCONCLUSIVE"
    assert result.ret == 12


# -- the pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.2, 0.5])
def test_the_alarm_stops_a_sleep_and_leaves_nothing_behind(seconds: float) -> None:
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(CheckDeadline, match="too slow"), Alarm(seconds, "too slow") as alarm:
        time.sleep(10)
    took = time.monotonic() - started
    assert alarm.armed
    assert seconds <= took < seconds + 0.5
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)

    with Alarm(5, "never") as quiet:
        pass
    assert quiet.armed
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.1)  # nothing fires later


def test_the_alarm_stands_down_for_another_handler_and_off_the_main_thread() -> None:
    def foreign(signum: int, frame: Any) -> None:
        pass

    previous = signal.signal(signal.SIGALRM, foreign)
    try:
        with Alarm(0.1, "x") as alarm:
            time.sleep(0.3)
        assert not alarm.armed
        assert signal.getsignal(signal.SIGALRM) is foreign
    finally:
        signal.signal(signal.SIGALRM, previous)

    armed: list[bool] = []

    def in_thread() -> None:
        with Alarm(0.1, "x") as alarm:
            time.sleep(0.3)
        armed.append(alarm.armed)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert armed == [False]


def test_run_check_holds_the_checks_deadline_for_what_it_waits_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, float | None] = {}

    measured = ProbeResult.passed("measured")

    def probe(check: Any, context: Any) -> ProbeResult:
        seen["deadline"] = current()
        seen["now"] = time.monotonic()
        return measured

    from releasegate.probes import base

    check = Spec.model_validate(
        {
            "deployment": {"name": "dl"},
            "target": {"base_url": "http://127.0.0.1:9"},
            "checks": [{"name": "x", "type": "liveness", "phases": ["t24h"], "timeout": "90s"}],
        }
    ).checks[0]
    monkeypatch.setattr(base, "probe_for", lambda check_type: probe)
    assert run_check(check, None) is measured  # type: ignore[arg-type]
    assert seen["deadline"] is not None and seen["now"] is not None
    assert 89 < seen["deadline"] - seen["now"] <= 90
    assert current() is None


@pytest.mark.parametrize(
    ("given", "kind", "seconds", "text"),
    [
        (2.0, "smoke", 2.0, "exceeded its deadline of 2s (timeout)"),
        (None, "db", 120.0, "exceeded its deadline of 120s (the default for db checks)"),
        (None, "load", 1800.0, "exceeded its deadline of 1800s (the default for load checks)"),
    ],
)
def test_a_timeout_says_where_it_comes_from(
    given: float | None, kind: str, seconds: float, text: str
) -> None:
    timeout = Timeout.of(given, kind)
    assert timeout.seconds == seconds
    assert timeout.exceeded == text
    assert 0.25 <= timeout.grace_s <= 1.0
