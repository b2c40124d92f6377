"""Reports written by a gate run (controller only) and by `releasegate report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _report_records import healthy_outcomes, make_record, nogo_outcomes
from releasegate.cli import main
from releasegate.decision import Verdict
from releasegate.exitcodes import BY_VERDICT
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
    assert main(["report", str(tmp_path)]) == 1
    assert str(bad) in capsys.readouterr().err
