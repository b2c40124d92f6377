"""Every expected check ends with an outcome: one that did not run is NOT RUN, never a pass.

Deselected (-k, --deselect, -m), skipped at setup, not collected, stopped early: each must end
INCONCLUSIVE (12), or NO-GO (11) when a critical check failed. A skip the author declared is
SKIPPED and allowed, but a run where everything was skipped measured nothing.
"""

from __future__ import annotations

import pytest
from _adversarial import (
    ALL_VERDICTS,
    assert_consistent,
    by_name,
    fired,
    hooks_yaml,
    make_gate,
    output,
    read_record,
)

THREE = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
def test_a(rg_evidence):
    rg_evidence.measure("a", 1, "== 1")

@pytest.mark.gate_t24h
@pytest.mark.db
@pytest.mark.releasegate(severity="minor")
def test_b():
    pass

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="major")
def test_c():
    pass
"""

CRITICAL_FAILS = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(severity="critical")
def test_a():
    assert False, "a is broken"

@pytest.mark.gate_t24h
@pytest.mark.db
@pytest.mark.releasegate(severity="minor")
def test_b():
    pass

@pytest.mark.gate_t24h
def test_c():
    pass
"""


def _gate(pytester: pytest.Pytester, source: str = THREE) -> None:
    make_gate(pytester, source, hooks=hooks_yaml(rollback_on=ALL_VERDICTS))


def test_baseline_the_whole_phase_passes_and_says_go(pytester: pytest.Pytester) -> None:
    """The control: nothing wrong, GO, exit 0 (the other cases differ from it by one fault)."""
    _gate(pytester)
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (0, "GO")
    assert {o["status"] for o in data["outcomes"]} == {"passed"}
    assert_consistent(data, result.ret, pytester.path)
    assert [e["decision"] for e in fired(pytester.path)] == ["GO"]


SELECTIONS = {
    "k": ["-m", "gate_t24h", "-k", "not test_b"],
    "deselect": ["-m", "gate_t24h", "--deselect", "test_checks.py::test_b"],
    "m_and_not": ["-m", "gate_t24h and not db"],
    "k_xdist": ["-m", "gate_t24h", "-k", "not test_b", "-n", "2"],
}


@pytest.mark.parametrize("how", list(SELECTIONS))
def test_a_deselected_check_is_not_run_and_the_run_inconclusive(
    pytester: pytest.Pytester, how: str
) -> None:
    _gate(pytester)
    args = SELECTIONS[how]
    if "-n" in args:
        result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    else:
        result = pytester.runpytest(*args)
    data = read_record(pytester.path)
    assert data["decision"] == "INCONCLUSIVE", output(result)
    assert result.ret == 12
    outcome = by_name(data)["test_b"]
    assert outcome["status"] == "not_run"
    assert "deselected" in outcome["reason"]
    assert by_name(data)["test_a"]["status"] == "passed"
    assert_consistent(data, result.ret, pytester.path)


@pytest.mark.parametrize("how", ["k", "deselect", "m_and_not"])
def test_a_deselected_check_beside_a_failed_critical_one_is_no_go(
    pytester: pytest.Pytester, how: str
) -> None:
    _gate(pytester, CRITICAL_FAILS)
    result = pytester.runpytest(*SELECTIONS[how])
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (11, "NO-GO")
    assert by_name(data)["test_b"]["status"] == "not_run"
    assert by_name(data)["test_a"]["status"] == "failed"
    assert_consistent(data, result.ret, pytester.path)


def test_a_deselected_spec_check_is_not_run(pytester: pytest.Pytester) -> None:
    """-k that leaves out a spec check of the phase: the spec check is expected all the same."""
    make_gate(
        pytester,
        "import pytest\n\n@pytest.mark.gate_t24h\ndef test_ok():\n    pass\n",
        checks="""
        - {name: live, type: liveness, phases: [t24h], severity: critical}
        """,
    )
    result = pytester.runpytest("-m", "gate_t24h", "-k", "not live")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert by_name(data)["live"]["status"] == "not_run"
    assert_consistent(data, result.ret, pytester.path)


def test_the_spec_left_out_of_the_paths_is_not_run(pytester: pytest.Pytester) -> None:
    """``pytest test_checks.py -m gate_t24h``: the spec's checks of the phase never ran."""
    make_gate(
        pytester,
        "import pytest\n\n@pytest.mark.gate_t24h\ndef test_ok():\n    pass\n",
        checks="""
        - {name: live, type: liveness, phases: [t24h], severity: critical}
        """,
    )
    result = pytester.runpytest("test_checks.py", "-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert by_name(data)["live"]["status"] == "not_run"
    assert_consistent(data, result.ret, pytester.path)


SETUP_SKIPS = {
    "fixture_skip": """
        import pytest

        @pytest.fixture
        def creds():
            pytest.skip("no credentials in this environment")

        @pytest.mark.gate_t24h
        def test_ok():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor")
        def test_needs_creds(creds):
            pass
        """,
    "fixture_importorskip": """
        import pytest

        @pytest.fixture
        def client():
            return pytest.importorskip("no_such_client_library_xyz")

        @pytest.mark.gate_t24h
        def test_ok():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor")
        def test_needs_creds(client):
            pass
        """,
    "autouse_class_fixture": """
        import pytest

        @pytest.mark.gate_t24h
        def test_ok():
            pass

        class TestGroup:
            @pytest.fixture(autouse=True)
            def _env(self):
                pytest.skip("environment not ready")

            @pytest.mark.gate_t24h
            @pytest.mark.releasegate(name="test_needs_creds", severity="minor")
            def test_needs_creds(self):
                pass
        """,
    "xfail_run_false": """
        import pytest

        @pytest.mark.gate_t24h
        def test_ok():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor")
        @pytest.mark.xfail(run=False, reason="flaky")
        def test_needs_creds():
            pass
        """,
}


@pytest.mark.parametrize("how", list(SETUP_SKIPS))
def test_a_check_skipped_at_setup_is_not_run_never_go(pytester: pytest.Pytester, how: str) -> None:
    _gate(pytester, SETUP_SKIPS[how])
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE"), output(result)
    assert by_name(data)["test_needs_creds"]["status"] == "not_run"
    assert by_name(data)["test_ok"]["status"] == "passed"
    assert_consistent(data, result.ret, pytester.path)


OK_MODULE = "import pytest\n\n@pytest.mark.gate_t24h\ndef test_ok():\n    pass\n"

NOT_COLLECTED = {
    "importorskip": """
        import pytest

        pytest.importorskip("no_such_module_xyz")

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor")
        def test_lost():
            pass
        """,
    "import_error": """
        import pytest
        import no_such_module_xyz

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor")
        def test_lost():
            pass
        """,
    "syntax_error": """
        import pytest

        @pytest.mark.gate_t24h
        def test_lost(:
            pass
        """,
    "module_level_skip": """
        import pytest

        pytest.skip("not here", allow_module_level=True)

        @pytest.mark.gate_t24h
        def test_lost():
            pass
        """,
}


@pytest.mark.parametrize("continue_on_errors", [True, False], ids=["continue", "stop"])
@pytest.mark.parametrize("how", list(NOT_COLLECTED))
def test_a_module_that_is_not_collected_is_not_run_never_go(
    pytester: pytest.Pytester, how: str, continue_on_errors: bool
) -> None:
    _gate(pytester, {"test_checks": OK_MODULE, "test_more": NOT_COLLECTED[how]})
    args = ["-m", "gate_t24h"]
    if continue_on_errors:
        args.append("--continue-on-collection-errors")
    result = pytester.runpytest(*args)
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE"), output(result)
    lost = [o for o in data["outcomes"] if "test_more" in (o["check"]["nodeid"] or "")]
    assert lost, data["outcomes"]
    assert all(o["status"] == "not_run" for o in lost)
    assert all(o["reason"] for o in lost)
    # A collection error without --continue-on-collection-errors runs nothing at all.
    ran = continue_on_errors or how in ("importorskip", "module_level_skip")
    assert by_name(data)["test_ok"]["status"] == ("passed" if ran else "not_run")
    assert_consistent(data, result.ret, pytester.path)


def test_a_module_that_is_not_collected_beside_a_failed_critical_check_is_no_go(
    pytester: pytest.Pytester,
) -> None:
    failing = (
        "import pytest\n\n@pytest.mark.gate_t24h\n@pytest.mark.releasegate(severity='critical')\n"
        "def test_bad():\n    assert False\n"
    )
    _gate(pytester, {"test_checks": failing, "test_more": NOT_COLLECTED["import_error"]})
    result = pytester.runpytest("-m", "gate_t24h", "--continue-on-collection-errors")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (11, "NO-GO")
    assert_consistent(data, result.ret, pytester.path)


@pytest.mark.parametrize("stop", [["-x"], ["--maxfail=1"]], ids=["x", "maxfail"])
def test_a_run_stopped_early_leaves_its_remaining_checks_not_run(
    pytester: pytest.Pytester, stop: list[str]
) -> None:
    _gate(
        pytester,
        """
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="minor", weight=0.1)
        def test_1_small():
            assert False

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_2_big():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_3_big():
            pass
        """,
    )
    result = pytester.runpytest("-m", "gate_t24h", "-p", "no:randomly", *stop)
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert by_name(data)["test_2_big"]["status"] == "not_run"
    assert by_name(data)["test_3_big"]["status"] == "not_run"
    assert_consistent(data, result.ret, pytester.path)


DECLARED = {
    "skip_marker": '@pytest.mark.skip(reason="not on this platform")',
    "skipif_marker": '@pytest.mark.skipif(True, reason="not on this platform")',
    "skipif_string": '@pytest.mark.skipif("1 == 1", reason="not on this platform")',
}


@pytest.mark.parametrize("how", list(DECLARED))
def test_a_declared_skip_is_skipped_and_allowed(pytester: pytest.Pytester, how: str) -> None:
    _gate(
        pytester,
        f"""
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_ok():
            pass

        @pytest.mark.gate_t24h
        {DECLARED[how]}
        def test_declared():
            pass
        """,
    )
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (0, "GO"), output(result)
    assert by_name(data)["test_declared"]["status"] == "skipped"
    assert_consistent(data, result.ret, pytester.path)


def test_a_spec_skip_if_is_skipped_and_allowed(pytester: pytest.Pytester) -> None:
    make_gate(
        pytester,
        OK_MODULE,
        checks="""
        - name: live
          type: liveness
          phases: [t24h]
          severity: critical
          skip_if: {condition: true, reason: no load balancer here}
        """,
        hooks=hooks_yaml(rollback_on=ALL_VERDICTS),
    )
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (0, "GO"), output(result)
    assert by_name(data)["live"]["status"] == "skipped"
    assert_consistent(data, result.ret, pytester.path)


def test_a_run_where_every_check_is_skipped_is_inconclusive(pytester: pytest.Pytester) -> None:
    make_gate(
        pytester,
        """
        import pytest

        @pytest.mark.gate_t24h
        @pytest.mark.skip(reason="later")
        def test_one():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.skipif(True, reason="later")
        def test_two():
            pass
        """,
        checks="""
        - name: live
          type: liveness
          phases: [t24h]
          skip_if: {condition: true, reason: later}
        """,
        hooks=hooks_yaml(rollback_on=ALL_VERDICTS),
    )
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert {o["status"] for o in data["outcomes"]} == {"skipped"}
    assert len(data["outcomes"]) == 3
    assert_consistent(data, result.ret, pytester.path)


def test_a_phase_with_no_check_at_all_is_inconclusive(pytester: pytest.Pytester) -> None:
    _gate(pytester, "import pytest\n\n@pytest.mark.gate_t48h\ndef test_other():\n    pass\n")
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert_consistent(data, result.ret, pytester.path)


def test_a_check_parametrized_over_nothing_is_never_a_go(pytester: pytest.Pytester) -> None:
    """The list a check is parametrized over came back empty (its data source was down): pytest
    skips the check with "got empty parameter set". Its author declared no skip, and it
    measured nothing."""
    _gate(
        pytester,
        """
        import pytest

        def regions():
            return []  # e.g. the inventory service answered with an empty list

        @pytest.mark.gate_t24h
        def test_ok():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        @pytest.mark.parametrize("region", regions())
        def test_region_healthy(region):
            assert region
        """,
    )
    result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    [lost] = [o for o in data["outcomes"] if "test_region_healthy" in o["check"]["nodeid"]]
    assert lost["status"] in ("no_data", "not_run"), lost
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE"), output(result)[-3000:]
    assert_consistent(data, result.ret, pytester.path)


DROPPERS = {
    "tryfirst": "@pytest.hookimpl(tryfirst=True)\ndef pytest_collection_modifyitems(items):\n"
    '    items[:] = [i for i in items if "flaky" not in i.name]\n',
    "plain": "def pytest_collection_modifyitems(items):\n"
    '    items[:] = [i for i in items if "flaky" not in i.name]\n',
    "wrapper": "@pytest.hookimpl(wrapper=True)\ndef pytest_collection_modifyitems(items):\n"
    '    items[:] = [i for i in items if "flaky" not in i.name]\n'
    "    return (yield)\n",
}


@pytest.mark.parametrize(
    ("how", "xdist"),
    [(how, False) for how in DROPPERS] + [("wrapper", True)],
    ids=[*(f"{how}-serial" for how in DROPPERS), "wrapper-n2"],
)
def test_a_check_a_conftest_drops_silently_is_not_run(
    pytester: pytest.Pytester, how: str, xdist: bool
) -> None:
    """A conftest that removes a (failing, critical) check from ``items`` without telling
    pytest it deselected it: the check was collected, so it is expected all the same."""
    pytester.makeconftest("import pytest\n\n" + DROPPERS[how])
    _gate(
        pytester,
        """
        import pytest

        @pytest.mark.gate_t24h
        def test_ok():
            pass

        @pytest.mark.gate_t24h
        @pytest.mark.releasegate(severity="critical")
        def test_flaky_checkout():
            assert False, "checkout is broken"
        """,
    )
    if xdist:
        result = pytester.runpytest_subprocess(
            "-m", "gate_t24h", "-n", "2", "-p", "no:cacheprovider"
        )
    else:
        result = pytester.runpytest("-m", "gate_t24h")
    data = read_record(pytester.path)
    assert data["decision"] not in ("GO", "CONDITIONAL GO"), output(result)[-3000:]
    assert (result.ret, data["decision"]) == (12, "INCONCLUSIVE")
    assert by_name(data)["test_flaky_checkout"]["status"] == "not_run"
    assert_consistent(data, result.ret, pytester.path)
