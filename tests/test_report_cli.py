"""Reports written by a gate run (controller only) and by `releasegate report`."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _report_records import as_schema_1, healthy_outcomes, make_record, nogo_outcomes, outcome
from releasegate.cli import main
from releasegate.decision import Verdict
from releasegate.exitcodes import BY_VERDICT
from releasegate.model import Severity, Status
from releasegate.phases import Phase

NO_GO = BY_VERDICT[Verdict.NO_GO]

SPEC = """\
version: 1
deployment: {name: shop, version: "1.0.0"}
target: {base_url: "http://127.0.0.1:9"}
"""

CHECKS = """
import pytest

@pytest.mark.gate_t24h
@pytest.mark.releasegate(category="health", severity="critical")
def test_health(rg_evidence):
    rg_evidence.expect(True, "GET /healthz", 200, "status == 200")

@pytest.mark.gate_t24h
@pytest.mark.releasegate(category="performance", severity="major")
def test_latency(rg_evidence):
    rg_evidence.expect(False, "GET /api p95", 412, "latency <= 300 ms")
"""


def gate_suite(pytester: pytest.Pytester) -> Path:
    pytester.makefile(".yaml", releasegate=SPEC)
    pytester.makepyfile(test_checks=CHECKS)
    return pytester.path / "reports" / "out" / "shop" / "t24h"


def test_a_gate_run_writes_the_reports_next_to_the_record(pytester: pytest.Pytester) -> None:
    folder = gate_suite(pytester)
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == NO_GO  # the major check weighs 2 of 5: score 6, below conditional
    result.stdout.fnmatch_lines(
        [
            "record: *decision.json",
            "scorecard: *shop/t24h/scorecard.html",
            "executive: *shop/t24h/executive.html",
            "summary: *shop/t24h/summary.md",
        ]
    )
    scorecard = (folder / "scorecard.html").read_text(encoding="utf-8")
    assert 'id="decision">' in scorecard and "GET /api p95" in scorecard
    assert "go 9" in scorecard  # the spec's scoring travels in the record
    assert (folder.parent / "runs.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_under_xdist_only_the_controller_writes_reports(pytester: pytest.Pytester) -> None:
    folder = gate_suite(pytester)
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-n", "2")
    result.stdout.fnmatch_lines(["scorecard: *scorecard.html"])
    assert result.stdout.str().count("scorecard: ") == 1
    assert (folder / "summary.md").exists()
    assert (folder.parent / "runs.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_a_broken_template_warns_and_keeps_record_and_exit_code(pytester: pytest.Pytester) -> None:
    folder = gate_suite(pytester)
    templates = pytester.mkdir("mytemplates")
    (templates / "scorecard.html.j2").write_text("{% block broken %}", encoding="utf-8")
    result = pytester.runpytest("-m", "gate_t24h", "--rg-templates", "mytemplates")
    result.stdout.fnmatch_lines(["record: *decision.json", "warning: reports not written: *"])
    assert result.ret == NO_GO  # the report's failure changes nothing
    assert (folder / "decision.json").exists()


def test_user_templates_from_the_ini(pytester: pytest.Pytester) -> None:
    folder = gate_suite(pytester)
    pytester.makeini("[pytest]\nreleasegate_templates = tpl\n")
    templates = pytester.mkdir("tpl")
    (templates / "summary.md.j2").write_text("custom {{ record.decision }}\n", encoding="utf-8")
    pytester.runpytest("-m", "gate_t24h")
    assert (folder / "summary.md").read_text(encoding="utf-8") == "custom NO-GO\n"


def test_a_missing_template_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    gate_suite(pytester)
    result = pytester.runpytest("-m", "gate_t24h", "--rg-templates", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*report templates 'nope'*is not a folder*"])


def write(base: Path, record: dict[str, object]) -> Path:
    path = base / str(record["deployment"]) / str(record["phase"]) / "decision.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def test_report_command_renders_a_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, make_record(nogo_outcomes()))
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "NO-GO" in out and str(path.parent / "scorecard.html") in out
    assert (path.parent / "executive.html").exists()


def test_report_command_renders_a_folder_into_another(tmp_path: Path) -> None:
    write(tmp_path / "in", make_record(healthy_outcomes(), Phase.T8H))
    write(tmp_path / "in", make_record(nogo_outcomes()))
    assert main(["report", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    for phase in ("t8h", "t24h"):
        assert (tmp_path / "out" / "demo-shop" / phase / "scorecard.html").exists()
    executive = (tmp_path / "out" / "demo-shop" / "t24h" / "executive.html").read_text()
    assert ">GO<" in executive.replace("<b>GO</b>", ">GO<")  # t8h read from the source folder


def test_report_command_with_templates(tmp_path: Path) -> None:
    path = write(tmp_path, make_record(healthy_outcomes()))
    root = Path(__file__).resolve().parent.parent
    assert main(["report", str(path), "--templates", str(root / "reports" / "templates")]) == 0
    assert "company-banner" in (path.parent / "scorecard.html").read_text(encoding="utf-8")


def test_report_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no decision.json" in capsys.readouterr().err
    bad = tmp_path / "x" / "decision.json"
    bad.parent.mkdir()
    bad.write_text("{not json", encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 2  # none could be read
    assert str(bad) in capsys.readouterr().err


def record_bytes(mutate: Any) -> bytes:
    record = make_record(nogo_outcomes())
    mutate(record)
    return json.dumps(record).encode()


def _set(key: str, value: Any) -> Any:
    return lambda record: record.__setitem__(key, value)


def _bad_status(record: dict[str, Any]) -> None:
    record["outcomes"][0]["status"] = "PASSED!"


# Each is written as the whole decision.json; the expected text is in its stderr line.
MALFORMED_FILES: dict[str, tuple[bytes, str]] = {
    "truncated JSON": (record_bytes(lambda r: None)[:700], "is not valid JSON"),
    "a list": (b"[1, 2, 3]", "holds a JSON list, not an object"),
    "bad status": (record_bytes(_bad_status), 'outcomes[0].status: "PASSED!" is not'),
    "missing outcomes": (record_bytes(lambda r: r.pop("outcomes")), "outcomes: missing"),
    "not UTF-8": (record_bytes(lambda r: None).replace(b"demo-shop", b"demo-\xe9shop", 1), "UTF-8"),
    "schema 99": (record_bytes(_set("schema_version", 99)), "schema_version: 99 is not one"),
    "NaN score": (record_bytes(_set("score", math.nan)), "score: nan is not a finite number"),
}


def write_bad(base: Path, name: str, content: bytes) -> Path:
    path = base / name.replace(" ", "-") / "t24h" / "decision.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    return captured.out, captured.err.splitlines()


@pytest.mark.parametrize("name", list(MALFORMED_FILES))
def test_a_malformed_record_costs_one_line_and_the_others_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    good = write(tmp_path, make_record(nogo_outcomes()))
    content, expected = MALFORMED_FILES[name]
    bad = write_bad(tmp_path, name, content)
    assert main(["report", str(tmp_path)]) == 1
    out, err = stderr_lines(capsys)
    assert len(err) == 1, err
    assert err[0].startswith(f"releasegate report: {bad}: ") and expected in err[0], err[0]
    assert f"{good}: NO-GO (score 6.84/10)" in out
    assert (good.parent / "scorecard.html").exists()
    assert sorted(p.name for p in bad.parent.iterdir()) == ["decision.json"]


def test_every_malformed_record_in_a_folder_is_reported_and_none_stops_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = [write_bad(tmp_path, name, content) for name, (content, _) in MALFORMED_FILES.items()]
    folder = tmp_path / "a-folder" / "t24h" / "decision.json"
    folder.mkdir(parents=True)  # a folder of that name: cannot be read as a file
    huge = write_bad(tmp_path, "huge", b"{")
    with huge.open("r+b") as handle:
        handle.truncate(201 * 1024 * 1024)  # sparse: costs no disk
    good = [
        write(tmp_path, make_record(healthy_outcomes(), Phase.T8H)),
        write(tmp_path / "more", make_record(nogo_outcomes())),
    ]
    assert main(["report", str(tmp_path)]) == 1
    out, err = stderr_lines(capsys)
    assert len(err) == len(bad) + 2
    for path in (*bad, folder, huge):
        assert sum(line.startswith(f"releasegate report: {path}: ") for line in err) == 1
    assert "is 201 MB, more than the 200 MB a record may be" in "\n".join(err)
    for path in good:
        assert (path.parent / "scorecard.html").exists() and str(path) in out


def test_a_folder_of_unreadable_records_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a list", "schema 99"):
        write_bad(tmp_path, name, MALFORMED_FILES[name][0])
    assert main(["report", str(tmp_path)]) == 2
    assert len(stderr_lines(capsys)[1]) == 2


def tampered(outcomes: Any = None, verdict: str = "GO", phase: Phase = Phase.T24H) -> Any:
    record = make_record(outcomes or nogo_outcomes(), phase)
    record["decision"] = verdict
    return record


def test_an_edited_verdict_renders_as_inconsistent_and_never_as_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, tampered())
    other = write(tmp_path / "other", make_record(healthy_outcomes()))
    assert main(["report", str(tmp_path)]) == 1
    out, err = stderr_lines(capsys)
    assert err == [
        f"releasegate report: {path}: stored verdict GO disagrees with its outcomes, which give"
        " NO-GO: the record was edited, or written by a decision that a"
        " pytest_releasegate_decision hook replaced; its reports show INCONSISTENT"
    ]
    assert f"{path}: INCONSISTENT (stored GO, its outcomes give NO-GO)" in out
    assert f"{other}: GO (score 10.0/10)" in out
    scorecard = (path.parent / "scorecard.html").read_text(encoding="utf-8")
    executive = (path.parent / "executive.html").read_text(encoding="utf-8")
    for page in (scorecard, executive):
        assert 'id="integrity"' in page and "INCONSISTENT RECORD" in page
        assert "stored verdict <del>GO</del> · its outcomes give" in page
        assert 'id="decision">INCONSISTENT<' in page and 'class="d v-bad"' in page
        assert 'class="d v-go"' not in page and 'class="top v-go"' not in page
        assert 'id="decision">GO<' not in page
        assert "<title>" in page and ": GO</title>" not in page
    assert "DO NOT PROCEED: THE RECORD DISAGREES WITH ITS OUTCOMES" in executive
    assert "PROCEED TO" not in executive and "<b>GO</b>" not in executive
    assert 'id="score">6.84/10<' in scorecard  # the outcomes' score, not an edited one
    assert "1 critical check(s) failed" in scorecard  # the outcomes' reasons
    summary = (path.parent / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("### 🚨 releasegate: INCONSISTENT for demo-shop")
    assert "stored verdict ~~GO~~ · its outcomes give **NO-GO**" in summary
    runs = (path.parent.parent / "runs.jsonl").read_text(encoding="utf-8")
    assert '"decision": "INCONSISTENT"' in runs and '"decision": "GO"' not in runs


def test_an_edited_earlier_phase_is_not_shown_as_its_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, tampered(nogo_outcomes()[:5] + healthy_outcomes()[5:], "GO", Phase.T8H))
    current = write(tmp_path, make_record(nogo_outcomes()))
    assert main(["report", str(current)]) == 0  # only the t24h record is rendered
    executive = (current.parent / "executive.html").read_text(encoding="utf-8")
    assert '<td class="t-bad"><b>INCONSISTENT</b>' in executive
    assert "<b>GO</b>" not in executive


def test_a_schema_1_record_under_other_rules_renders_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = healthy_outcomes()
    outcomes[7] = outcome("metrics-exposed", "observability", Severity.MINOR, Status.ERROR, "x")
    record = as_schema_1(make_record(outcomes))
    record["decision"] = record["summary"]["verdict"] = "GO"  # what schema 1 decided
    path = write(tmp_path, record)
    assert main(["report", str(path)]) == 0
    out, err = stderr_lines(capsys)
    assert err == []
    assert f"{path}: GO (score 9.47/10; written by an older releasegate (schema 1)" in out
    page = (path.parent / "scorecard.html").read_text(encoding="utf-8")
    assert "VERDICT NOT RECOMPUTED" in page and 'id="decision">GO<' in page
    assert "<del>" not in page  # the stored verdict is the one shown, not struck out


def test_a_gate_whose_decision_a_hook_replaced_reports_inconsistent(
    pytester: pytest.Pytester,
) -> None:
    folder = gate_suite(pytester)
    pytester.makeconftest(
        """
        import dataclasses
        from releasegate.decision import Verdict

        def pytest_releasegate_decision(config, decision):
            return dataclasses.replace(decision, verdict=Verdict.CONDITIONAL_GO)
        """
    )
    result = pytester.runpytest("-m", "gate_t24h")
    assert result.ret == BY_VERDICT[Verdict.CONDITIONAL_GO]  # the gate acts on the hook's
    scorecard = (folder / "scorecard.html").read_text(encoding="utf-8")
    assert 'id="decision">INCONSISTENT<' in scorecard
    assert (
        "stored verdict CONDITIONAL GO disagrees with its outcomes, which give NO-GO" in scorecard
    )
    assert main(["report", str(folder / "decision.json")]) == 1


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            found += _paths(item, (*prefix, i))
    return found


BASE = make_record(nogo_outcomes())
PATHS = _paths(BASE)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["passed", "skipped", "GO", "NO-GO", "critical", "t24h"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES | st.just(...)), max_size=3))
def test_no_edit_of_a_record_makes_the_command_fail_or_show_an_edited_verdict(
    capsys: pytest.CaptureFixture[str], edits: list[tuple[tuple[Any, ...], Any]]
) -> None:
    record = json.loads(json.dumps(BASE))
    for path, value in edits:
        target: Any = record
        try:
            for key in path[:-1]:
                target = target[key]
            if value is ...:
                del target[path[-1]]
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced the parent
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decision.json"
        path.write_text(json.dumps(record), encoding="utf-8")
        code = main(["report", str(path)])
        err = capsys.readouterr().err.splitlines()
        assert code in (0, 1, 2) and len(err) <= 1
        # A record that reads renders: every failure is one the reading names.
        assert all("archive/" in line or "show INCONSISTENT" in line for line in err), err
        scorecard = path.parent / "scorecard.html"
        if code == 0:
            assert record.get("decision") in {v.value for v in Verdict}
        if scorecard.exists() and record.get("decision") == "GO":
            # GO is shown only where the outcomes give GO, which the base record's do not
            assert 'id="decision">GO<' not in scorecard.read_text(encoding="utf-8")
