"""How each way a check can end maps to a status, and that none of the bad ones passes.

Each case is one critical check (plus a passing one, so that the run measured something); the
status of the critical check, the decision and the exit code are asserted.
"""

from __future__ import annotations

import textwrap

import pytest
from _adversarial import EXIT, assert_consistent, by_name, make_gate, output, read_record

HEADER = """
import os, signal, sys
import pytest

@pytest.mark.gate_t24h
def test_ok():
    pass

"""

# name -> (source of the critical check ``test_subject``, its status, the decision)
CASES: dict[str, tuple[str, str, str]] = {
    "xfail_fails": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        @pytest.mark.xfail(reason="known bug")
        def test_subject():
            assert False
        """,
        "failed",
        "NO-GO",
    ),
    "xfail_raises_other": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        @pytest.mark.xfail(raises=ValueError, reason="known bug")
        def test_subject():
            raise ValueError("still broken")
        """,
        "failed",
        "NO-GO",
    ),
    "xpass_not_strict": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        @pytest.mark.xfail(strict=False, reason="was flaky")
        def test_subject():
            pass
        """,
        "passed",
        "GO",
    ),
    "xpass_strict": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        @pytest.mark.xfail(strict=True, reason="known bug")
        def test_subject():
            pass
        """,
        "failed",
        "NO-GO",
    ),
    "pytest_fail": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject():
            pytest.fail("threshold broken")
        """,
        "failed",
        "NO-GO",
    ),
    "pytest_fail_no_trace": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject():
            pytest.fail("threshold broken", pytrace=False)
        """,
        "failed",
        "NO-GO",
    ),
    "fixture_error": (
        """
        @pytest.fixture
        def conn():
            raise ConnectionRefusedError("db down")

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject(conn):
            pass
        """,
        "error",
        "INCONCLUSIVE",
    ),
    "fixture_fails": (
        """
        @pytest.fixture
        def conn():
            pytest.fail("cannot open the connection")

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject(conn):
            pass
        """,
        "error",
        "INCONCLUSIVE",
    ),
    "teardown_fails_after_pass": (
        """
        @pytest.fixture
        def conn():
            yield 1
            raise RuntimeError("teardown broke")

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject(conn):
            pass
        """,
        "error",
        "INCONCLUSIVE",
    ),
    "teardown_asserts_after_pass": (
        """
        @pytest.fixture
        def conn():
            yield 1
            assert False, "leaked a connection"

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject(conn):
            pass
        """,
        "error",
        "INCONCLUSIVE",
    ),
    "skip_in_body": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject():
            pytest.skip("prometheus not configured")
        """,
        "no_data",
        "INCONCLUSIVE",
    ),
    "importorskip_in_body": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject():
            pytest.importorskip("no_such_module_xyz")
        """,
        "no_data",
        "INCONCLUSIVE",
    ),
    "xfail_imperative": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject():
            pytest.xfail("cannot check this today")
        """,
        "failed",
        "NO-GO",
    ),
    "no_data": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject(rg_evidence):
            rg_evidence.no_data("no samples in the window")
        """,
        "no_data",
        "INCONCLUSIVE",
    ),
    "cannot_measure": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject(rg_evidence):
            rg_evidence.cannot_measure("GET /metrics timed out")
        """,
        "error",
        "INCONCLUSIVE",
    ),
    "raises_exception": (
        """
        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_subject():
            {}["missing"]
        """,
        "error",
        "INCONCLUSIVE",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_check_ending_this_way_has_this_status(pytester: pytest.Pytester, case: str) -> None:
    source, status, decision = CASES[case]
    make_gate(pytester, HEADER + textwrap.dedent(source))
    result = pytester.runpytest("-m", "gate_t24h")
    text = output(result)
    assert "INTERNALERROR" not in text
    data = read_record(pytester.path)
    subject = by_name(data)["test_subject"]
    assert subject["status"] == status, (subject, text[-3000:])
    assert subject["reason"]
    assert (result.ret, data["decision"]) == (EXIT[decision], decision)
    assert_consistent(data, result.ret, pytester.path)


def test_xfail_strict_from_the_ini_is_failed_not_an_internal_error(
    pytester: pytest.Pytester,
) -> None:
    """``xfail_strict = true`` in the suite's ini (as this repository's own pytest.ini has)."""
    pytester.makeini("[pytest]\nxfail_strict = true\n")
    make_gate(
        pytester,
        HEADER
        + "@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='critical')\n"
        + "@pytest.mark.xfail(reason='known')\ndef test_subject():\n    pass\n",
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert "INTERNALERROR" not in output(result)
    data = read_record(pytester.path)
    assert by_name(data)["test_subject"]["status"] == "failed"
    assert (result.ret, data["decision"]) == (11, "NO-GO")


ENDINGS = {
    "os_exit_0": ("os._exit(0)", "not_run"),
    "os_exit_1": ("os._exit(1)", "not_run"),
    "sys_exit_0": ("sys.exit(0)", None),
    "keyboard_interrupt": ("raise KeyboardInterrupt", "not_run"),
    "pytest_exit": ('pytest.exit("leaving early")', "not_run"),
    "pytest_exit_0": ('pytest.exit("leaving early", returncode=0)', "not_run"),
}


_UNDER_XDIST = ("os_exit_0", "keyboard_interrupt", "pytest_exit", "pytest_exit_0")


@pytest.mark.parametrize(
    ("ending", "xdist"),
    [*((e, False) for e in ENDINGS), *((e, True) for e in _UNDER_XDIST)],
    ids=[*(f"{e}-serial" for e in ENDINGS), *(f"{e}-n2" for e in _UNDER_XDIST)],
)
def test_a_check_that_ends_the_run_is_not_run_and_inconclusive(
    pytester: pytest.Pytester, ending: str, xdist: bool
) -> None:
    """A check that tries to end the process (or the session) with a clean exit status."""
    how, status = ENDINGS[ending]
    make_gate(
        pytester,
        HEADER
        + "@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='critical')\n"
        + f"def test_subject():\n    {how}\n",
    )
    args = ["-m", "gate_t24h", "-p", "no:cacheprovider", "-p", "no:randomly"]
    if xdist:
        args += ["-n", "2"]
    result = pytester.runpytest_subprocess(*args, timeout=60)
    text = output(result)
    data = read_record(pytester.path)
    subject = by_name(data)["test_subject"]
    if status is None:
        assert subject["status"] in ("error", "not_run"), subject
    else:
        assert subject["status"] == status, (subject, text[-3000:])
    assert data["decision"] == "INCONCLUSIVE", text[-3000:]
    if xdist and ending == "pytest_exit_0":
        # xdist itself raises an INTERNALERROR when a worker's session ends with status 0 in
        # the middle of an item (its crashitem assertion); pytest's 3 is kept then. Not a pass.
        assert result.ret in (3, 12), text[-3000:]
        return
    assert "INTERNALERROR" not in text
    assert result.ret == 12, text[-3000:]
    assert_consistent(data, result.ret, pytester.path)


def test_sigkill_of_a_worker_is_not_run_and_inconclusive(pytester: pytest.Pytester) -> None:
    make_gate(
        pytester,
        HEADER
        + "@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='minor')\n"
        + "def test_subject():\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    result = pytester.runpytest_subprocess(
        "-m", "gate_t24h", "-n", "2", "-p", "no:cacheprovider", timeout=60
    )
    data = read_record(pytester.path)
    subject = by_name(data)["test_subject"]
    assert subject["status"] == "not_run"
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert_consistent(data, result.ret, pytester.path)


TEN_PASSING = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
@pytest.mark.parametrize("i", range(10))
def test_ok(i):
    pass

"""

XFAIL_UNMEASURED = {
    "cannot_measure": ('rg_evidence.cannot_measure("GET /metrics: timed out")', "error"),
    "no_data": ('rg_evidence.no_data("no samples in the window")', "no_data"),
    "connection_error": ('raise ConnectionError("refused")', "error"),
}


@pytest.mark.parametrize("how", list(XFAIL_UNMEASURED))
def test_an_xfail_check_that_could_not_measure_is_not_a_scored_failure(
    pytester: pytest.Pytester, how: str
) -> None:
    """An xfail marker expects the check to *fail*; a check that could not measure (or found
    no data) under it still measured nothing. Scored as a failure of a minor check beside ten
    passing critical ones it would be a GO (30/31 = 9.68)."""
    body, status = XFAIL_UNMEASURED[how]
    make_gate(
        pytester,
        TEN_PASSING
        + "@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='minor')\n"
        + "@pytest.mark.xfail(reason='known flaky')\n"
        + f"def test_subject(rg_evidence):\n    {body}\n",
    )
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert data["decision"] not in ("GO", "CONDITIONAL GO"), by_name(data)["test_subject"]
    assert by_name(data)["test_subject"]["status"] == status
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert_consistent(data, result.ret, pytester.path)


SUBTESTS = {
    "fails": ("assert region == 'eu'", "failed", "NO-GO"),
    "errors": ("raise ConnectionError('refused') if region == 'us' else None", "error", None),
    "skips": ("pytest.skip('no data for us') if region == 'us' else None", "no_data", None),
}


@pytest.mark.parametrize(
    ("how", "xdist"),
    [(how, False) for how in SUBTESTS] + [("fails", True)],
    ids=[*SUBTESTS, "fails-n2"],
)
def test_a_subtest_that_does_not_pass_decides_for_its_check(
    pytester: pytest.Pytester, how: str, xdist: bool
) -> None:
    body, status, decision = SUBTESTS[how]
    make_gate(
        pytester,
        HEADER
        + "@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='critical')\n"
        + "def test_subject(subtests):\n"
        + "    for region in ('eu', 'us'):\n"
        + "        with subtests.test(region=region):\n"
        + f"            {body}\n",
    )
    if xdist:
        result = pytester.runpytest_subprocess(
            "-m", "gate_t24h", "-n", "2", "-p", "no:cacheprovider"
        )
    else:
        result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert by_name(data)["test_subject"]["status"] == status
    assert data["decision"] == (decision or "INCONCLUSIVE")
    assert_consistent(data, result.ret, pytester.path)
