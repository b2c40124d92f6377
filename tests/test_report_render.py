"""Rendering the reports from decision records: content, order, escaping, redaction, overrides."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from _report_records import (
    START,
    healthy_outcomes,
    http_evidence,
    make_record,
    nogo_outcomes,
    outcome,
    rollback_action,
)
from releasegate.decision import Policy
from releasegate.model import STATUS_ORDER, Mode, Outcome, Severity, Status
from releasegate.phases import Phase
from releasegate.report import (
    ReportError,
    build_view,
    render_executive,
    render_scorecard,
    render_summary,
    write_reports,
)
from releasegate.report.charts import category_chart, threshold_chart
from releasegate.report.history import RUNS_FILE, phase_results, read_runs
from releasegate.report.render import md_escape
from releasegate.report.view import comparison

ROOT = Path(__file__).resolve().parent.parent

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</textarea><script>alert(1)</script>",
    "</style><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "{{7*7}}",
    "{% raw %}x",
    "<iframe src=javascript:alert(1)>",
    "[click](javascript:alert(1))",
    "| broken | table |",
]


def xss_record() -> dict[str, Any]:
    """Every field a target or a spec author controls carries a payload."""
    outcomes = []
    for i, payload in enumerate(PAYLOADS):
        evidence = http_evidence("GET", f"/p{i}?q={payload}", 500, 12.0, 300, payload)
        evidence.details["response"]["headers"]["X-Evil"] = payload
        outcomes.append(
            outcome(
                f"check-{i}-{payload}",
                f"cat-{payload}",
                Severity.MAJOR,
                Status.FAILED if i % 2 else Status.PASSED,
                f"reason {payload}",
                (evidence,),
                description=payload,
            )
        )
    record = make_record(outcomes, deployment="shop")
    record["target"] = "http://127.0.0.1/" + PAYLOADS[1]
    record["versions"] = {"expected": PAYLOADS[0], "commit": PAYLOADS[3]}
    record["summary"]["reasons"].append(PAYLOADS[4])
    return record


def test_scorecard_shows_decision_score_categories_and_failures_first() -> None:
    page = render_scorecard(make_record(nogo_outcomes()))
    assert 'id="decision">NO-GO<' in page
    assert 'id="score">6.84/10<' in page
    for category in ("functionality", "health", "observability", "performance", "release"):
        assert f"<td>{category}</td>" in page
    rows = re.findall(r'<div class="r s-(\w+) c\d+">.*?<span><b>([^<]+)</b>', page)
    assert [status for status, _ in rows] == ["failed", "failed", "error"] + ["passed"] * 5
    assert rows[0][1] == "catalog-latency"  # critical before major among the failed
    assert "latency 412 ms &gt; 300 ms" in page
    assert "GET http://127.0.0.1:8765/api/products" in page  # the request excerpt
    assert "sum(rate(http_requests_total" in page  # a query
    assert "<script" not in page


def test_scorecard_filters_need_no_script() -> None:
    page = render_scorecard(make_record(nogo_outcomes()))
    assert 'type="radio" name="fs" id="fs-failed"' in page
    assert "#fs-failed:checked~.checks .r:not(.s-failed){display:none}" in page
    assert re.search(r"#fc-c\d:checked~\.checks \.r:not\(\.c\d\)\{display:none\}", page)
    assert "<script" not in page and "onclick" not in page


def test_charts_are_inline_svg_from_value_objects() -> None:
    rv = build_view(make_record(nogo_outcomes()))
    chart = category_chart(rv.categories, rv.scoring)
    health = next(b for b in chart.bars if b.label == "health")
    assert health.width == chart.plot_w  # 10/10 fills the plot
    assert [m.label for m in chart.markers] == ["conditional 7.5", "go 9"]
    bars = threshold_chart(rv.comparisons).bars
    assert bars[0].label == "catalog-latency" and bars[0].css == "s-failed"
    assert "412 ms (limit ≤ 300 ms)" in bars[0].value_text
    page = render_scorecard(make_record(nogo_outcomes()))
    assert page.count("<svg") == 2 and 'id="chart-thresholds"' in page
    assert "http://" not in re.sub(r"http://127\.0\.0\.1:8765[^\s<\"]*", "", page)  # no CDN


def test_comparison_reads_numbers_out_of_thresholds() -> None:
    evidence = [
        {
            "value": {"status": 200, "latency_ms": 412.0},
            "threshold": "status 2xx; latency <= 300 ms",
        }
    ]
    c = comparison("x", evidence)
    assert c is not None and (c.value, c.op, c.limit, c.unit, c.passed) == (
        412.0,
        "<=",
        300.0,
        "ms",
        False,
    )
    c = comparison("y", [{"value": 0.002, "threshold": "< 0.01"}])
    assert c is not None and c.passed and c.pressure == pytest.approx(0.2)
    c = comparison("z", [{"value": 97.0, "threshold": "availability >= 99.9 %"}])
    assert c is not None and not c.passed and c.pressure == pytest.approx(99.9 / 97.0)
    assert (
        comparison("v", [{"value": {"version": "1.4.2"}, "threshold": "version == 1.4.2"}]) is None
    )


def test_executive_has_every_section_and_the_right_judgement() -> None:
    page = render_executive(make_record(nogo_outcomes(), actions=(rollback_action(),)))
    for section in (
        "deployment-summary",
        "key-metrics",
        "risk",
        "recommendation",
        "phases",
        "rollback",
    ):
        assert f'id="{section}"' in page
    assert "DO NOT PROCEED: ROLL BACK" in page
    assert "Technical risk" in page and ">HIGH<" in page
    assert "rollback: fired, exit 0" in page
    assert "gradual rollback if catalog-latency fail" in page
    healthy = render_executive(make_record(healthy_outcomes(), phase=Phase.T72H))
    assert "APPROVE PERMANENT DEPLOYMENT" in healthy and ">LOW<" in healthy


def test_inconclusive_and_conditional_recommendations() -> None:
    outcomes = healthy_outcomes()
    outcomes[0] = outcome("liveness", "health", Severity.CRITICAL, Status.ERROR, "timed out")
    page = render_executive(make_record(outcomes))
    assert "INCONCLUSIVE" in page and "HOLD: RE-RUN THE GATE" in page
    outcomes = healthy_outcomes()
    outcomes[4] = outcome("order-accepted", "functionality", Severity.MAJOR, Status.FAILED, "500")
    page = render_executive(make_record(outcomes))
    assert "CONDITIONAL GO" in page and "PROCEED WITH CONDITIONS" in page


def test_markdown_summary_for_ci() -> None:
    text = render_summary(make_record(nogo_outcomes()))
    assert text.startswith("### ⛔ releasegate: NO-GO for demo-shop 1.4.2, phase t24h")
    assert "**Score 6.84/10**" in text
    assert "| performance | 4/10 | failed |" in text
    assert "| catalog-latency | critical | failed |" in text
    assert "latency &lt;= 300 ms" in text
    assert "<script" not in text


def test_payloads_cannot_inject_html() -> None:
    record = xss_record()
    for page in (render_scorecard(record), render_executive(record)):
        assert "<script" not in page
        assert "<img" not in page and "<svg onload" not in page and "<iframe" not in page
        assert "onerror=alert(1)>" not in page.replace("onerror=alert(1)&gt;", "")
        assert "</textarea>" not in page and "</title><script" not in page
        assert 'href="javascript' not in page and "src=javascript" not in page.replace(
            "&lt;iframe src=javascript", ""
        )
        assert html.escape(PAYLOADS[0], quote=False) in page  # shown, escaped
        assert "{{7*7}}" in page  # data is never evaluated as a template
    text = render_summary(record)
    assert "<script" not in text and "<img" not in text and "<svg" not in text
    assert not re.search(r"(?<!\\)\]\(javascript", text)  # no live Markdown link
    table_rows = [line for line in text.splitlines() if line.startswith("| check-")]
    assert table_rows and all(line.count(" | ") == 5 for line in table_rows)  # pipes escaped


def test_md_escape() -> None:
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("<b>@team</b>") == "&lt;b&gt;&#64;team&lt;/b&gt;"
    assert md_escape("[x](javascript:y)") == "\\[x\\](javascript:y)"
    assert md_escape("line\nbreak") == "line break"


def secret_record() -> dict[str, Any]:
    """Raw secrets, as if record.py had not redacted them (it does: this is the second line)."""
    record = make_record(nogo_outcomes())
    evidence = record["outcomes"][0]["evidence"][0]
    evidence["details"]["request"]["url"] = "https://admin:hunter2pass@db.example/api?x=1"
    evidence["details"]["request"]["headers"]["Authorization"] = "Bearer sk-live-abcdef123456"
    evidence["details"]["request"]["headers"]["Cookie"] = "session=cookievalue98765"
    evidence["details"]["response"]["body"] = '{"password": "s3cr3t-pw-value", "ok": true}'
    evidence["details"]["password"] = "plain-password-value"
    evidence["value"] = {"api_token": "tok-123456789", "status": 500}
    record["outcomes"][0]["reason"] = "login with token abcdefghijklmnop failed"
    record["target"] = "postgresql://rg:dbpass12345@127.0.0.1/shop"
    return record


SECRETS = (
    "hunter2pass",
    "sk-live-abcdef123456",
    "cookievalue98765",
    "s3cr3t-pw-value",
    "plain-password-value",
    "tok-123456789",
    "abcdefghijklmnop",
    "dbpass12345",
)


def test_secrets_are_redacted_in_every_output(tmp_path: Path) -> None:
    written = write_reports(secret_record(), tmp_path)
    assert [p.name for p in written] == ["scorecard.html", "executive.html", "summary.md"]
    for path in written:
        text = path.read_text(encoding="utf-8")
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {path.name}"
    scorecard = written[0].read_text(encoding="utf-8")
    assert "Authorization: ***" in scorecard and "admin:***@db.example" in scorecard


def test_reports_open_offline_and_carry_a_csp() -> None:
    page = render_scorecard(make_record(healthy_outcomes()))
    assert "default-src 'none'" in page
    assert not re.search(r'(src|href)="https?://', page)


def write_phase(base: Path, record: dict[str, Any]) -> Path:
    folder = base / record["deployment"] / record["phase"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decision.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def test_executive_lists_earlier_phases_and_runs(tmp_path: Path) -> None:
    t0h = make_record(healthy_outcomes(), Phase.T0H, Mode.DARK)
    write_reports(t0h, write_phase(tmp_path, t0h))
    t8h = make_record(nogo_outcomes()[:5] + healthy_outcomes()[5:], Phase.T8H)
    write_reports(t8h, write_phase(tmp_path, t8h))
    later = make_record(healthy_outcomes(), Phase.T48H)
    write_phase(tmp_path, later)  # a later phase's record is not "so far" for t24h
    current = make_record(nogo_outcomes())
    folder = write_phase(tmp_path, current)
    write_reports(current, folder)
    write_reports(current, folder)  # re-rendering logs no second run
    runs = read_runs(tmp_path / "demo-shop")
    assert [(r.phase, r.decision) for r in runs] == [
        ("t0h", "GO"),
        ("t8h", "CONDITIONAL GO"),
        ("t24h", "NO-GO"),
    ]
    phases = {p.phase: p for p in phase_results(current, tmp_path / "demo-shop")}
    assert phases["t0h"].decision == "GO" and phases["t0h"].mode == "dark"
    assert phases["t16h"].decision is None and not phases["t16h"].upcoming
    assert phases["t48h"].decision is None and phases["t48h"].upcoming
    page = (folder / "executive.html").read_text(encoding="utf-8")
    assert "CONDITIONAL GO" in page and "upcoming" in page and "not run" in page
    assert page.count('<circle class="') == 3 + 3  # three phases, three runs
    assert (tmp_path / "demo-shop" / RUNS_FILE).exists()
    assert "t0h GO (10) · t8h CONDITIONAL GO (8.95) · t24h NO-GO (6.84)" in (
        folder / "summary.md"
    ).read_text(encoding="utf-8")


def test_runs_from_another_deployment_are_ignored(tmp_path: Path) -> None:
    other = make_record(healthy_outcomes(), Phase.T0H, deployment="other")
    folder = tmp_path / "demo-shop" / "t0h"
    folder.mkdir(parents=True)
    (folder / "decision.json").write_text(json.dumps(other), encoding="utf-8")
    phases = phase_results(make_record(nogo_outcomes()), tmp_path / "demo-shop")
    assert phases[0].decision is None


def test_an_earlier_phase_of_another_release_is_not_completed(tmp_path: Path) -> None:
    previous = make_record(healthy_outcomes(), Phase.T8H)
    previous["versions"] = {"expected": "1.4.1", "commit": "0aa0aa0"}
    write_phase(tmp_path, previous)
    same = make_record(healthy_outcomes(), Phase.T0H)
    write_phase(tmp_path, same)
    phases = {
        p.phase: p for p in phase_results(make_record(nogo_outcomes()), tmp_path / "demo-shop")
    }
    assert phases["t0h"].decision == "GO"
    assert phases["t8h"].decision is None and not phases["t8h"].upcoming


def test_user_template_extends_ours(tmp_path: Path) -> None:
    (tmp_path / "scorecard.html.j2").write_text(
        '{% extends "releasegate/scorecard.html.j2" %}'
        '{% block banner %}<div class="acme">ACME {{ record.deployment }}</div>{% endblock %}',
        encoding="utf-8",
    )
    page = render_scorecard(make_record(nogo_outcomes()), template_dirs=[tmp_path])
    assert '<div class="acme">ACME demo-shop</div>' in page
    assert 'id="categories"' in page  # the rest is ours
    assert "acme" not in render_scorecard(make_record(nogo_outcomes()))  # cache is per folder


def test_user_base_template_reaches_every_html_report(tmp_path: Path) -> None:
    (tmp_path / "base.html.j2").write_text(
        '{% extends "releasegate/base.html.j2" %}'
        "{% block footer %}<footer>Internal</footer>{% endblock %}",
        encoding="utf-8",
    )
    record = make_record(healthy_outcomes())
    for page in (render_scorecard(record, [tmp_path]), render_executive(record, [tmp_path])):
        assert "<footer>Internal</footer>" in page and "Rendered by releasegate" not in page


def test_user_template_replaces_the_summary(tmp_path: Path) -> None:
    (tmp_path / "summary.md.j2").write_text(
        "{{ record.decision }}: {{ record.summary.reasons[0] }} <b>\n", encoding="utf-8"
    )
    text = render_summary(make_record(nogo_outcomes()), [tmp_path])
    assert text == "NO-GO: 1 critical check(s) failed &lt;b&gt;\n".replace(" &lt;b&gt;", " <b>")


def test_the_repository_example_override_renders() -> None:
    page = render_scorecard(make_record(healthy_outcomes()), [ROOT / "reports" / "templates"])
    assert 'class="company-banner"' in page and 'id="categories"' in page


def test_template_errors_and_missing_folders_are_report_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        write_reports(make_record(healthy_outcomes()), tmp_path / "out", [tmp_path / "nope"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scorecard.html.j2").write_text("{% block x %}", encoding="utf-8")
    with pytest.raises(ReportError, match=r"scorecard\.html\.j2"):
        write_reports(make_record(healthy_outcomes()), tmp_path / "out", [broken])


def test_a_record_from_json_renders(tmp_path: Path) -> None:
    record = json.loads(json.dumps(make_record(nogo_outcomes(), finished=START)))
    assert "NO-GO" in render_summary(record)
    page = render_scorecard({"decision": "GO"})  # a sparse record still renders, unverified
    assert 'id="decision">UNVERIFIED<' in page and "schema_version: missing" in page
    assert 'id="decision">GO<' not in page


def not_run_and_skipped_outcomes() -> list[Outcome]:
    outcomes = healthy_outcomes()
    outcomes[3] = outcome(
        "catalog-lists-products",
        "functionality",
        Severity.MAJOR,
        Status.NOT_RUN,
        "not run: the run stopped early",
    )
    outcomes[7] = outcome(
        "metrics-exposed", "observability", Severity.MINOR, Status.SKIPPED, "skip_if: no metrics"
    )
    return outcomes


def test_not_run_and_skipped_show_everywhere() -> None:
    record = make_record(not_run_and_skipped_outcomes())
    assert record["decision"] == "INCONCLUSIVE"
    rv = build_view(record)
    assert list(rv.counts) == [s.value for s in STATUS_ORDER]
    assert rv.counts["not_run"] == 1 and rv.counts["skipped"] == 1
    assert [r.status for r in rv.checks][:2] == ["not_run", "skipped"]  # worst first
    page = render_scorecard(record)
    for status, label in (("not_run", "not run"), ("skipped", "skipped")):
        assert f'type="radio" name="fs" id="fs-{status}"' in page
        assert f"#fs-{status}:checked~.checks .r:not(.s-{status}){{display:none}}" in page
        assert f'<label for="fs-{status}">{label} (1)</label>' in page
        assert f'<b class="b s-{status}">{label}</b>' in page
        assert f".b.s-{status}" in page and f"svg .s-{status}" in page
    assert "0 failed, 1 not run, 0 error, 0 no data, 1 skipped, 6 passed" in page
    assert "metrics-exposed (skipped)" in page  # the category's notes
    executive = render_executive(record)
    assert re.search(
        r">Could not measure</div><div class=\"v\">1</div><div class=\"w\">"
        r"catalog-lists-products<",
        executive,
    )
    assert "HOLD: RE-RUN THE GATE" in executive
    summary = render_summary(record)
    assert "| catalog-lists-products | major | not run |" in summary
    assert "| metrics-exposed | minor | skipped |" in summary


def test_allowances_and_interruptions_show_beside_the_reasons() -> None:
    outcomes = healthy_outcomes()
    outcomes[7] = outcome(
        "metrics-exposed", "observability", Severity.MINOR, Status.ERROR, "refused"
    )
    record = make_record(outcomes, policy=Policy(9.0, 7.5, max_errors=1))
    assert record["decision"] == "GO"
    allowed = (
        "allowed by policy.max_errors = 1: metrics-exposed (could not measure; not held"
        " against the decision)"
    )
    assert build_view(record).notes == (allowed,)
    assert f'<li class="note">{allowed}</li>' in render_scorecard(record)
    assert allowed in render_executive(record)
    assert f"- {md_escape(allowed)}" in render_summary(record)
    record = make_record(healthy_outcomes(), interrupted="SIGTERM", policy=Policy(max_errors=2))
    record["actions_state"] = "withheld"
    notes = build_view(record).notes
    assert notes == (
        "interrupted: SIGTERM; no hook fired (policy.on_interrupt is 'none')",
        "policy.max_errors = 2: up to 2 non-critical check(s) may fail to measure; none was"
        " allowed this run",
    )
    executive = render_executive(record)
    assert "interrupted: SIGTERM" in executive
    assert "the gate could not decide (interrupted: SIGTERM)" in executive
    assert "the run was interrupted (SIGTERM); the gate fails closed" in executive


def test_an_inconsistent_record_never_shows_its_stored_verdict() -> None:
    record = make_record(nogo_outcomes())
    record["decision"] = "GO"
    record["summary"]["reasons"] = []  # an edit that also hid why
    rv = build_view(record)
    assert rv.record["decision"] == "INCONSISTENT" and rv.verdict_css == "bad"
    assert rv.integrity is not None
    assert (rv.integrity.stored, rv.integrity.recomputed) == ("GO", "NO-GO")
    assert rv.record["summary"]["reasons"][0] == "1 critical check(s) failed"
    assert record["decision"] == "GO"  # the caller's record is left alone
    for page in (render_scorecard(record), render_executive(record)):
        assert 'role="alert"' in page and "stored verdict <del>GO</del>" in page
        assert 'class="d v-bad" id="decision">INCONSISTENT<' in page
    text = render_summary(record)
    assert text.startswith("### 🚨 releasegate: INCONSISTENT")


def test_the_banner_survives_a_template_that_replaces_the_banner_block(tmp_path: Path) -> None:
    record = make_record(nogo_outcomes())
    record["decision"] = "GO"
    page = render_scorecard(record, [ROOT / "reports" / "templates"])
    assert 'class="company-banner"' in page and 'id="integrity"' in page
