"""Plugin behaviour through pytester: phases, decisions, exit codes, records, hooks, errors."""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

import pytest

SPEC = """\
version: 1
deployment: {{name: shop, version: "1.0.0"}}
target: {{base_url: "http://127.0.0.1:9"}}
phases:
  t0h: {{mode: dark}}
{extra}
"""

CHECKS = """
import pytest
from releasegate.errors import ProbeError

@pytest.mark.gate_t24h
@pytest.mark.smoke
@pytest.mark.releasegate(category="health", severity="critical", on_fail="immediate_rollback")
def test_health(rg_evidence):
    rg_evidence.expect({health_ok}, "GET /healthz", 200 if {health_ok} else 500, "status == 200")

@pytest.mark.gate_t24h
@pytest.mark.gate_t48h
@pytest.mark.releasegate(category="performance", severity="major")
def test_latency(rg_evidence):
    rg_evidence.measure("GET /api p95", 120, "<= 300 ms", "p95 120 ms")

@pytest.mark.gate_t48h
def test_only_in_t48h():
    pass

@pytest.mark.gate_t0h
@pytest.mark.releasegate(severity="critical")
def test_dark(rg_evidence):
    rg_evidence.fail("would block")

def test_not_a_gate_check():
    pass
"""


def make_suite(pytester: pytest.Pytester, health_ok: bool = True, extra: str = "") -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(extra=extra))
    pytester.makepyfile(test_checks=CHECKS.format(health_ok=health_ok))


def record(pytester: pytest.Pytester, phase: str = "t24h") -> dict[str, Any]:
    path = pytester.path / "reports" / "out" / "shop" / phase / "decision.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.gate_t0h:*dark merge*", "@pytest.mark.gate_t72h:*"])
    result.stdout.fnmatch_lines(["@pytest.mark.smoke:*", "@pytest.mark.releasegate(*"])


def test_a_phase_runs_exactly_its_checks_and_decides_go(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = pytester.runpytest("-m", "gate_t24h", "--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, deselected=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "releasegate: deciding phase t24h (feature flag activation*) for shop, mode enforce*",
            "*releasegate: phase t24h*",
            "decision: GO   score 10.00/10   criteria met 2/2",
            "record: *decision.json",
            "exit code: 0 (GO)",
        ]
    )
    data = record(pytester)
    assert data["decision"] == "GO"
    assert data["phase"] == "t24h"
    assert data["versions"] == {"expected": "1.0.0", "commit": None}
    assert {o["check"]["name"] for o in data["outcomes"]} == {"test_health", "test_latency"}
    latency = next(o for o in data["outcomes"] if o["check"]["name"] == "test_latency")
    assert latency["evidence"][0] == {
        "measured": "GET /api p95",
        "value": 120,
        "threshold": "<= 300 ms",
        "limits": [{"subject": "", "op": "<=", "value": 300.0, "unit": "ms", "field": None}],
        "reason": "p95 120 ms",
        "details": {},
    }
    assert latency["check"]["category"] == "performance"
    assert data["summary"]["criteria_met"] == 2


def test_rg_phase_option_selects_like_m(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = pytester.runpytest("--rg-phase", "t48h")
    result.assert_outcomes(passed=2, deselected=3)
    assert record(pytester, "t48h")["decision"] == "GO"


def test_failed_critical_check_is_no_go_with_exit_11(pytester: pytest.Pytester) -> None:
    make_suite(pytester, health_ok=False)
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 11
    result.stdout.fnmatch_lines(
        [
            "decision: NO-GO*",
            "blockers:",
            "  - test_health [critical, failed]: GET /healthz: 500 breaks status == 200",
            "exit code: 11 (NO-GO)",
        ]
    )
    data = record(pytester)
    assert data["decision"] == "NO-GO"
    assert data["summary"]["blockers"][0]["check"] == "test_health"
    assert data["would_action"] == "immediate_rollback"
    assert data["outcomes"][0]["status"] == "failed"  # failed checks first


def test_a_check_that_cannot_measure_is_an_error_and_inconclusive(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(extra=""))
    pytester.makepyfile(
        """
        import pytest, requests
        from releasegate.errors import ProbeError

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_probe(rg_evidence):
            rg_evidence.cannot_measure("GET /metrics: no answer within 5s")

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_unreachable():
            requests.get("http://127.0.0.1:9/healthz", timeout=2)

        @pytest.mark.gate_t24h
        def test_fine():
            pass
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 12
    data = record(pytester)
    assert data["decision"] == "INCONCLUSIVE"
    by_name = {o["check"]["name"]: o for o in data["outcomes"]}
    assert by_name["test_probe"]["status"] == "error"
    assert by_name["test_probe"]["reason"] == "GET /metrics: no answer within 5s"
    assert by_name["test_unreachable"]["status"] == "error"
    assert "ConnectionError" in by_name["test_unreachable"]["reason"]
    assert "failing closed" in " ".join(data["summary"]["reasons"])


def test_a_check_that_skips_itself_is_no_data_never_go(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(extra=""))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_needs_prometheus():
            pytest.skip("prometheus not configured")
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 12
    outcome = record(pytester)["outcomes"][0]
    assert outcome["status"] == "no_data"
    assert outcome["reason"].endswith("measuring nothing: prometheus not configured")


def test_fixture_error_is_an_error_outcome(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(extra=""))
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def db():
            raise ConnectionRefusedError("db down")

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_db(db):
            pass
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 12
    outcome = record(pytester)["outcomes"][0]
    assert outcome["status"] == "error"
    assert outcome["reason"].startswith("setup failed: check raised ConnectionRefusedError")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "gate_t24h or gate_t48h"], "*selects phases t24h, t48h*exactly one phase*"),
        (["--rg-phase", "t48h", "-m", "gate_t24h"], "*--rg-phase t48h contradicts -m*"),
        # A negated or widened phase would decide t24h on other phases' checks (or none).
        (["-m", "not gate_t24h"], "*-m 'not gate_t24h' selects checks outside phase t24h*"),
        (["-m", "gate_t24h or smoke"], "*selects checks outside phase t24h*-m gate_t24h*"),
        (["--rg-phase", "t25h"], "*unknown phase 't25h'*t0h, t8h*"),
        (
            [],
            "*4 gate check(s) of phase(s) t0h, t24h, t48h were selected but no phase*-m gate_t24h*",
        ),
        (
            ["--rg-mode", "loud", "-m", "gate_t24h"],
            "*--rg-mode 'loud': expected 'enforce' or 'dark'*",
        ),
    ],
)
def test_ambiguous_or_contradictory_runs_are_refused(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    make_suite(pytester)
    result = pytester.runpytest(*args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert not (pytester.path / "reports").exists()


def test_a_phase_narrowed_with_and_still_decides(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = pytester.runpytest("-m", "gate_t24h and not slow")
    assert "releasegate: phase t24h" in result.stdout.str()
    assert (pytester.path / "reports/out/shop/t24h/decision.json").exists()


def test_a_run_without_gate_checks_is_left_alone(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = pytester.runpytest("-k", "not_a_gate")
    result.assert_outcomes(passed=1, deselected=4)
    assert result.ret == 0
    assert "releasegate: phase" not in result.stdout.str()


def test_a_bad_spec_stops_the_run_before_any_check(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        releasegate="version: 1\ndeployment: {name: shop}\ntarget: {base_url: 'http://x'}\n"
        "scoring: {go: 9, conditonal: 7}\n",
    )
    pytester.makepyfile(test_x="def test_x():\n    raise SystemExit('must not run')\n")
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "ERROR: *releasegate.yaml: the gate spec is not valid (1 problem(s)):",
            "*releasegate.yaml:4: scoring.conditonal: unknown key 'conditonal'."
            " Did you mean 'conditional'?",
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_gate_run_without_a_spec_says_how_to_fix_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.gate_t24h\ndef test_x():\n    pass\n")
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: a gate run (phase t24h) needs a gate spec: create*"])


def test_explicit_missing_spec_is_an_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--rg-spec", "nope.yaml")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: *nope.yaml: no such gate spec. Fix:*"])


def test_bad_releasegate_marker_names_the_check(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    pytester.makepyfile(
        test_more="""
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critcal")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["ERROR: test_more.py::test_typo: @pytest.mark.releasegate:*critcal*"]
    )


def hook_spec(argv: list[str], on: str = "[NO-GO, INCONCLUSIVE]", timeout: float = 30) -> str:
    return textwrap.dedent(
        f"""\
        hooks:
          - name: rollback
            type: command
            on: {on}
            argv: {json.dumps(argv)}
            timeout_s: {timeout}
        """
    )


HOOK_SCRIPT = """
import json, os, sys
payload = json.load(sys.stdin)
with open("hook-fired.json", "w") as fh:
    json.dump({"stdin": payload, "env": {k: v for k, v in os.environ.items()
               if k.startswith("RELEASEGATE_")}}, fh)
print("rolled back")
"""


def test_command_hook_fires_on_no_go_with_decision_on_stdin_and_env(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(hook=HOOK_SCRIPT)
    make_suite(pytester, health_ok=False, extra=hook_spec([sys.executable, "hook.py"]))
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 11
    result.stdout.fnmatch_lines(["hooks:", "  - rollback: fired, exit 0 in *s"])
    fired = json.loads((pytester.path / "hook-fired.json").read_text())
    assert fired["stdin"]["verdict"] == "NO-GO"
    assert fired["stdin"]["blockers"][0]["check"] == "test_health"
    assert fired["env"]["RELEASEGATE_DECISION"] == "NO-GO"
    assert fired["env"]["RELEASEGATE_PHASE"] == "t24h"
    assert fired["env"]["RELEASEGATE_ACTION"] == "immediate_rollback"
    action = record(pytester)["actions"][0]
    assert action["fired"] is True
    assert action["returncode"] == 0
    assert action["stdout"] == "rolled back\n"
    assert record(pytester)["actual_action"] == "immediate_rollback"


def test_command_hook_does_not_fire_on_go(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(hook=HOOK_SCRIPT)
    make_suite(pytester, extra=hook_spec([sys.executable, "hook.py"]))
    assert pytester.runpytest("-m", "gate_t24h").ret == 0
    assert not (pytester.path / "hook-fired.json").exists()
    assert record(pytester)["actions"] == []


@pytest.mark.parametrize(
    ("argv", "timeout", "error"),
    [
        (
            [sys.executable, "-c", "import sys; sys.exit(3)"],
            30,
            "*rollback: FAILED (exit status 3)*",
        ),
        (
            [sys.executable, "-c", "import time; time.sleep(30)"],
            0.5,
            "*no exit within 0.5s: killed*",
        ),
        (
            # The hook's own children die with it and cannot hold the gate on its pipes.
            ["sh", "-c", "sleep 60 & sleep 60"],
            0.5,
            "*no exit within 0.5s: killed with its child processes*",
        ),
        (["/nonexistent/rollback"], 30, "*cannot run '/nonexistent/rollback'*"),
    ],
)
def test_a_failing_hook_is_loud_with_exit_13(
    pytester: pytest.Pytester, argv: list[str], timeout: float, error: str
) -> None:
    make_suite(pytester, health_ok=False, extra=hook_spec(argv, timeout=timeout))
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 13
    result.stdout.fnmatch_lines([error, "exit code: 13 (a hook failed)"])
    assert record(pytester)["actions"][0]["ok"] is False
    assert record(pytester)["actual_action"] is None  # the rollback did not happen


def test_dark_mode_records_what_it_would_do_fires_nothing_and_exits_0(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(hook=HOOK_SCRIPT)
    make_suite(pytester, extra=hook_spec([sys.executable, "hook.py"]))
    result = pytester.runpytest("-m", "gate_t0h")  # t0h is dark in the spec
    assert result.ret == 0
    result.stdout.fnmatch_lines(["decision: NO-GO*", "  - rollback: would fire (dark mode)"])
    assert not (pytester.path / "hook-fired.json").exists()
    data = record(pytester, "t0h")
    assert data["mode"] == "dark"
    assert data["decision"] == "NO-GO"
    assert data["would_action"] == "rollback"
    assert data["actual_action"] is None
    assert data["actions"][0]["fired"] is False


def test_mode_override_on_the_command_line(pytester: pytest.Pytester) -> None:
    make_suite(pytester, health_ok=False)
    result = pytester.runpytest("-m", "gate_t24h", "--rg-mode", "dark")
    assert result.ret == 0
    assert record(pytester)["mode"] == "dark"
    result = pytester.runpytest("-m", "gate_t0h", "--rg-mode", "enforce")
    assert result.ret == 11


def test_decision_hook_lets_a_conftest_replace_the_decision(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    pytester.makeconftest(
        """
        import dataclasses
        from releasegate.decision import Verdict

        def pytest_releasegate_decision(config, decision):
            return dataclasses.replace(decision, verdict=Verdict.CONDITIONAL_GO)
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == 10
    assert record(pytester)["decision"] == "CONDITIONAL GO"


def test_secrets_from_the_environment_never_reach_the_record(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cr3t-t0ken-value")
    pytester.makefile(
        ".yaml",
        releasegate="version: 1\ndeployment: {name: shop}\n"
        "target:\n  base_url: 'http://127.0.0.1:9'\n"
        "  headers: {Authorization: 'Bearer ${API_TOKEN}'}\n",
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gate_t24h
        def test_leaky(rg_evidence):
            rg_evidence.measure("GET http://admin:hunter22@127.0.0.1/x", "token s3cr3t-t0ken-value",
                                reason="password=hunter22")
            print("captured: s3cr3t-t0ken-value")
            assert False, "got s3cr3t-t0ken-value back"
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    text = (pytester.path / "reports/out/shop/t24h/decision.json").read_text()
    assert "s3cr3t-t0ken-value" not in text
    assert "hunter22" not in text
    # Nor does pytest's own failure output: traceback, short summary, captured stdout.
    output = "\n".join(result.outlines + result.errlines)
    assert "s3cr3t-t0ken-value" not in output
    assert "got *** back" in output
    assert "captured: ***" in output


def test_report_dir_option(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    pytester.runpytest("-m", "gate_t24h", "--rg-report-dir", "elsewhere")
    assert (pytester.path / "elsewhere/shop/t24h/decision.json").exists()


def test_a_phase_without_checks_is_inconclusive(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = pytester.runpytest("-m", "gate_t72h")
    assert result.ret == 12
    assert record(pytester, "t72h")["summary"]["reasons"][0].startswith("no check reported")


def test_interrupted_run_is_inconclusive_never_go(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", releasegate=SPEC.format(extra=""))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor", weight=0.1)
        def test_first():
            assert False

        @pytest.mark.gate_t24h
        @pytest.mark.parametrize("i", range(20))
        def test_rest(i):
            pass
        """
    )
    result = pytester.runpytest("-m", "gate_t24h", "-x")
    assert result.ret == 12
    data = record(pytester)
    assert data["decision"] == "INCONCLUSIVE"
    assert data["summary"]["counts"]["not_run"] == 20
    assert "20 not run" in " ".join(data["summary"]["reasons"])
    assert len(data["outcomes"]) == 21


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_check_that_could_not_measure_reads_error_not_failed(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makefile(
        ".yaml",
        releasegate="version: 1\ndeployment: {name: shop}\n"
        "target: {base_url: 'http://127.0.0.1:9'}\n"
        "checks:\n  - {name: live, type: liveness, phases: [t24h]}\n"
        "  - {name: ready, type: readiness, phases: [t24h], severity: minor}\n",
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gate_t24h
        def test_plain_failure():
            assert 1 == 2
        """
    )
    result = pytester.runpytest("-m", "gate_t24h", *workers)
    result.assert_outcomes(errors=2, failed=1)
    assert "ERROR releasegate.yaml::check[live] - live: ERROR" in result.stdout.str()
    assert record(pytester)["decision"] in ("INCONCLUSIVE", "NO-GO")


def test_a_rerun_that_passes_decides_on_the_last_attempt_only(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    pytester.makefile(
        ".yaml",
        releasegate="version: 1\ndeployment: {name: shop}\n"
        "target: {base_url: 'http://127.0.0.1:9'}\n",
    )
    pytester.makepyfile(
        """
        import pytest
        from pathlib import Path

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_flaky(rg_evidence):
            marker = Path(__file__).with_name("attempted")
            first = not marker.exists()
            marker.touch()
            rg_evidence.measure("attempt", "first" if first else "second")
            assert not first, "first attempt fails"
        """
    )
    result = pytester.runpytest("-m", "gate_t24h", "--reruns", "1")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    data = record(pytester)
    assert data["decision"] == "GO"
    (outcome,) = data["outcomes"]
    assert outcome["status"] == "passed"
    assert [e["value"] for e in outcome["evidence"]] == ["second"]


def test_collect_only_lists_gate_checks_without_a_phase(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == 0
    assert "no phase to decide for" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()


def test_a_python_check_can_pass_with_a_caveat(pytester: pytest.Pytester) -> None:
    """``rg_evidence.marginal``: the check passes, the record says marginal, and the phase is
    at best CONDITIONAL GO (exit 10), with the caveat as the check's reason."""
    pytester.makefile(".yaml", releasegate=SPEC.format(extra=""))
    pytester.makepyfile(
        test_checks="""
        import pytest

        @pytest.mark.gate_t24h
        def test_canary_latency(rg_evidence):
            rg_evidence.measure("canary p95 - baseline p95", 40, "<= 100 ms")
            rg_evidence.marginal("canary p95 40 ms slower: significant, inside the 100 ms margin")

        @pytest.mark.gate_t24h
        def test_health():
            pass
        """
    )
    result = pytester.runpytest("-m", "gate_t24h", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == 10
    data = record(pytester)
    assert data["decision"] == "CONDITIONAL GO"
    canary = next(o for o in data["outcomes"] if o["check"]["name"] == "test_canary_latency")
    assert canary["status"] == "passed" and canary["marginal"] is True
    assert canary["reason"].startswith("canary p95 40 ms slower")
    assert data["summary"]["marginal"] == ["test_canary_latency"]
    health = next(o for o in data["outcomes"] if o["check"]["name"] == "test_health")
    assert "marginal" not in health
