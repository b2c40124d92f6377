"""Runs that must decide nothing: partial runs (--rg-partial, --lf, --ff, --sw) show what they
would decide and write nothing; listing runs (--collect-only, --fixtures, ...) not even that.

Each suite has a failing critical check and hooks on every decision, so a record or a hook that
slips through is seen.
"""

from __future__ import annotations

import pytest
from _adversarial import (
    ALL_VERDICTS,
    files_under,
    fired,
    hooks_yaml,
    make_gate,
    output,
    read_record,
    record_file,
)

SUITE = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
def test_a():
    assert {a_ok}

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="minor")
def test_b():
    pass

@pytest.mark.gate_t24h
def test_c():
    pass
"""


def _gate(pytester: pytest.Pytester, a_ok: bool | str) -> None:
    make_gate(pytester, SUITE.format(a_ok=a_ok), hooks=hooks_yaml(rollback_on=ALL_VERDICTS))


def _snapshot(pytester: pytest.Pytester) -> dict[str, bytes]:
    folder = pytester.path / "reports"
    return {name: (folder / name).read_bytes() for name in files_under(folder)}


def _assert_partial(result: pytest.RunResult, pytester: pytest.Pytester) -> None:
    text = output(result)
    assert "would decide" in text, text[-3000:]
    assert "INTERNALERROR" not in text


@pytest.mark.parametrize(
    ("args", "a_ok", "pytest_code"),
    [
        (["-k", "not test_b"], True, 0),
        (["-k", "not test_b"], False, 1),
        (["-k", "test_a"], False, 1),
        ([], True, 0),
        ([], False, 1),
    ],
    ids=["some-pass", "some-fail", "only-failing", "all-pass", "all-fail"],
)
def test_rg_partial_shows_what_it_would_decide_and_writes_nothing(
    pytester: pytest.Pytester, args: list[str], a_ok: bool, pytest_code: int
) -> None:
    _gate(pytester, a_ok)
    result = pytester.runpytest("-m", "gate_t24h", "--rg-partial", *args)
    _assert_partial(result, pytester)
    assert result.ret == pytest_code
    assert files_under(pytester.path / "reports") == []
    assert fired(pytester.path) == []


def test_rg_partial_under_xdist_writes_nothing(pytester: pytest.Pytester) -> None:
    _gate(pytester, a_ok=False)
    result = pytester.runpytest_subprocess(
        "-m", "gate_t24h", "--rg-partial", "-k", "not test_b", "-n", "2", "-p", "no:cacheprovider"
    )
    _assert_partial(result, pytester)
    assert result.ret == 1
    assert files_under(pytester.path / "reports") == []
    assert fired(pytester.path) == []


def test_rg_partial_leaves_the_phases_earlier_record_and_reports_alone(
    pytester: pytest.Pytester,
) -> None:
    _gate(pytester, a_ok=False)
    first = pytester.runpytest("-m", "gate_t24h")
    assert first.ret == 11
    assert read_record(pytester.path)["decision"] == "NO-GO"
    before = _snapshot(pytester)
    hooks_before = fired(pytester.path)
    assert [e["decision"] for e in hooks_before] == ["NO-GO"]

    _gate(pytester, a_ok=True)  # the failing check is "fixed"; only it is run again
    result = pytester.runpytest("-m", "gate_t24h", "--rg-partial", "-k", "test_a")
    _assert_partial(result, pytester)
    assert result.ret == 0
    assert _snapshot(pytester) == before
    assert fired(pytester.path) == hooks_before


@pytest.mark.parametrize("flag", ["--lf", "--ff", "--sw", "--last-failed", "--failed-first"])
def test_a_cache_driven_rerun_is_partial_and_never_replaces_the_record(
    pytester: pytest.Pytester, flag: str
) -> None:
    _gate(pytester, a_ok=False)
    first = pytester.runpytest("-m", "gate_t24h")
    assert first.ret == 11
    before = _snapshot(pytester)
    assert read_record(pytester.path)["decision"] == "NO-GO"
    hooks_before = fired(pytester.path)

    # The failing check now passes (a different size, so no stale bytecode is used).
    _gate(pytester, a_ok="1 == 1  # fixed")
    result = pytester.runpytest("-m", "gate_t24h", flag)
    _assert_partial(result, pytester)
    assert result.ret == 0, output(result)[-3000:]
    assert _snapshot(pytester) == before
    assert read_record(pytester.path)["decision"] == "NO-GO"
    assert fired(pytester.path) == hooks_before


@pytest.mark.parametrize(
    ("flag", "pytest_code"),
    # pytest's own: 1 for a failed test; --sw stops at it, which pytest reports as 2.
    [("--lf", 1), ("--ff", 1), ("--sw", 2)],
)
def test_a_cache_driven_rerun_of_a_still_failing_check_keeps_pytests_exit_code(
    pytester: pytest.Pytester, flag: str, pytest_code: int
) -> None:
    _gate(pytester, a_ok=False)
    assert pytester.runpytest("-m", "gate_t24h").ret == 11
    before = _snapshot(pytester)
    hooks_before = fired(pytester.path)
    result = pytester.runpytest("-m", "gate_t24h", flag)
    _assert_partial(result, pytester)
    assert result.ret == pytest_code
    assert _snapshot(pytester) == before
    assert fired(pytester.path) == hooks_before


def test_lf_without_earlier_failures_is_still_partial(pytester: pytest.Pytester) -> None:
    """--lf with an empty cache runs everything, but it was asked as a rerun: no record."""
    _gate(pytester, a_ok=False)
    result = pytester.runpytest("-m", "gate_t24h", "--lf")
    _assert_partial(result, pytester)
    assert result.ret == 1
    assert not record_file(pytester.path).exists()
    assert fired(pytester.path) == []


LISTING = {
    "collect-only": ["--collect-only"],
    "co": ["--co"],
    "co-q": ["--co", "-q"],
    "fixtures": ["--fixtures"],
    "fixtures-per-test": ["--fixtures-per-test"],
    "setup-plan": ["--setup-plan"],
    "setup-only": ["--setup-only"],
    "markers": ["--markers"],
    "help": ["--help"],
    "version": ["--version"],
}


@pytest.mark.parametrize("how", list(LISTING))
def test_a_listing_run_records_nothing_and_fires_nothing(
    pytester: pytest.Pytester, how: str
) -> None:
    _gate(pytester, a_ok=False)
    result = pytester.runpytest("-m", "gate_t24h", *LISTING[how])
    text = output(result)
    assert "INTERNALERROR" not in text
    assert files_under(pytester.path / "reports") == [], text[-3000:]
    assert fired(pytester.path) == []
    assert "would decide" not in text
    assert result.ret in (0, 5), text[-3000:]


@pytest.mark.parametrize("how", ["collect-only", "setup-plan", "fixtures"])
def test_a_listing_run_leaves_an_earlier_record_alone(pytester: pytest.Pytester, how: str) -> None:
    _gate(pytester, a_ok=False)
    assert pytester.runpytest("-m", "gate_t24h").ret == 11
    before = _snapshot(pytester)
    hooks_before = fired(pytester.path)
    pytester.runpytest("-m", "gate_t24h", *LISTING[how])
    assert _snapshot(pytester) == before
    assert fired(pytester.path) == hooks_before
