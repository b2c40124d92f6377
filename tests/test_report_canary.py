"""Canary comparisons and marginal passes in the reports: each latency metric's two ECDFs drawn
in the scorecard, a rate's counts as a table, a line per metric in the Markdown summary and
the executive report, and a pass with a caveat named wherever a status is shown."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from _report_records import healthy_outcomes, make_record, outcome
from releasegate.model import Evidence, Outcome, Severity, Status
from releasegate.report import build_view, render_executive, render_scorecard, render_summary
from releasegate.report.ecdf import (
    BOTTOM,
    LEFT,
    MAX_POINTS,
    RIGHT,
    TOP,
    nice_ticks,
    p_equals,
    p_text,
    read_canary,
    read_shape,
    step_points,
)
from releasegate.report.verify import verify_record

SVG = "{http://www.w3.org/2000/svg}"
NEED = (
    "need ≈250 more requests (≈3.1 minutes at the current rate) to detect a 10% regression"
    " at 80% power"
)
# A shape small enough to work its steps out by hand: latencies of 100, 200 and 300 ms.
SHAPE = {
    "kind": "ecdf",
    "x": [0.1, 0.2, 0.3],
    "canary": [0.2, 0.6, 1.0],
    "baseline": [0.5, 1.0, 1.0],
}


def latency_metric(**changes: Any) -> dict[str, Any]:
    metric = {
        "metric": "latency",
        "kind": "samples",
        "verdict": "failed",
        "reason": "p95 worse by 20 ms, beyond the 10% margin",
        "critical": True,
        "policy": {"name": "latency", "quantile": 0.95},
        "test": "Brunner-Munzel",
        "p_value": 0.0001,
        "p_adjusted": 0.0002,
        "effect": {
            "measure": "difference of p95",
            "estimate": 0.02,
            "relative": 0.143,
            "superiority": 0.97,
            "description": "canary p95 0.16 vs baseline 0.14 (+14.3%)",
        },
        "interval": [0.012, 0.018],
        "interval_level": 0.98,
        "canary": {"count": 300, "mean": 0.12, "quantile": 0.16},
        "baseline": {"count": 500, "mean": 0.1, "quantile": 0.14},
        "tests": [],
        "need": None,
        "shape": copy.deepcopy(SHAPE),
        "source": None,
    }
    metric.update(changes)
    return metric


def rate_metric(**changes: Any) -> dict[str, Any]:
    metric = {
        "metric": "errors",
        "kind": "rate",
        "verdict": "no_data",
        "reason": "too few requests to judge",
        "critical": False,
        "test": "Farrington-Manning",
        "p_value": 0.41,
        "p_adjusted": 0.41,
        "effect": {
            "measure": "difference of rates",
            "estimate": 0.0015,
            "relative": 1.5,
            "superiority": None,
            "description": "canary 0.25% (3/1,200) vs baseline 0.1% (1/1,000)",
        },
        "interval": [-0.002, None],
        "interval_level": 0.98,
        "canary": {"count": 1200, "events": 3, "rate": 0.0025},
        "baseline": {"count": 1000, "events": 1, "rate": 0.001},
        "need": {"samples": 1450, "more": 250, "minutes": 3.1, "sentence": NEED},
        "shape": None,
        "source": None,
    }
    metric.update(changes)
    return metric


def judgement(*metrics: dict[str, Any], verdict: str = "failed") -> dict[str, Any]:
    return {
        "verdict": verdict,
        "reason": "latency: p95 worse beyond the 10% margin",
        "correction": "Benjamini-Hochberg",
        "metrics": list(metrics),
    }


def canary_outcome(
    details: Any,
    status: Status = Status.FAILED,
    name: str = "canary-vs-stable",
    marginal: bool = False,
    reason: str = "latency: p95 worse beyond the 10% margin",
) -> Outcome:
    evidence = Evidence(
        "canary vs baseline (http)",
        {"latency": "failed"},
        "latency: no significant increase beyond 10%",
        reason,
        details,
    )
    made = outcome(name, "canary", Severity.CRITICAL, status, reason, (evidence,), kind="canary")
    return dataclasses.replace(made, marginal=marginal)


def record_with(*extra: Outcome) -> dict[str, Any]:
    return make_record(healthy_outcomes() + list(extra))


def ecdfs(page: str) -> list[ET.Element]:
    """Each ECDF chart's SVG, parsed: the markup the reports emit is well-formed XML."""
    found = re.findall(r'<svg class="ecdf".*?</svg>', page, flags=re.S)
    return [ET.fromstring(s.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1)) for s in found]


def line_points(svg: ET.Element, css: str) -> list[tuple[float, float]]:
    (line,) = [e for e in svg.iter(f"{SVG}polyline") if e.get("class") == css]
    pairs = [p.split(",") for p in line.get("points", "").split()]
    return [(float(x), float(y)) for x, y in pairs]


def canary_block(page: str) -> str:
    """The canary part of the first canary row: up to the next row."""
    start = page.index('<div class="cn">')
    end = page.find('<div class="r ', start)
    return page[start : end if end > 0 else len(page)]


# ---------------------------------------------------------------------- the scorecard


def test_a_latency_metric_draws_both_ecdfs_as_step_lines() -> None:
    page = render_scorecard(record_with(canary_outcome(judgement(latency_metric()))))
    (svg,) = ecdfs(page)
    assert svg.get("viewBox") == "0 0 300.0 150.0"

    def x(v: float) -> float:
        return round(LEFT + (v - 0.1) / 0.2 * (RIGHT - LEFT), 1)

    def y(share: float) -> float:
        return round(BOTTOM - share * (BOTTOM - TOP), 1)

    # An ECDF holds its share until the next point, then steps up: level, then vertical.
    assert line_points(svg, "ec-c") == [
        (x(0.1), y(0.2)),
        (x(0.2), y(0.2)),
        (x(0.2), y(0.6)),
        (x(0.3), y(0.6)),
        (x(0.3), y(1.0)),
    ]
    # The baseline is complete at 200 ms: its last level has no step up at 300 ms.
    assert line_points(svg, "ec-b") == [
        (x(0.1), y(0.5)),
        (x(0.2), y(0.5)),
        (x(0.2), y(1.0)),
        (x(0.3), y(1.0)),
    ]
    assert (x(0.1), x(0.3), y(0.0), y(1.0)) == (LEFT, RIGHT, BOTTOM, TOP)
    # A legend names the lines, drawn in their own styles: they read apart without colour.
    legend = [e for e in svg.iter(f"{SVG}line") if e.get("class") in ("ec-c", "ec-b")]
    assert [e.get("class") for e in legend] == ["ec-c", "ec-b"]
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "canary" in texts and "baseline" in texts
    # The x axis is in milliseconds, at round values; shares run 0% to 100%.
    assert texts[:3] == ["0%", "50%", "100%"]
    assert texts[3:8] == ["100", "150", "200", "250", "300"]
    assert "latency (ms)" in texts
    label = svg.get("aria-label", "")
    assert label == svg.findtext(f"{SVG}title")
    assert label.startswith(
        "latency: distributions of canary (solid, 300 values) and baseline (dashed, 500 values)"
        " from 100 ms to 300 ms"
    )
    assert "half of the canary's values at most 200 ms, of the baseline's at most 100 ms" in label
    assert "95% of the canary's values at most 300 ms, of the baseline's at most 200 ms" in label
    assert "widest gap 40 percentage points at 200 ms (canary below)" in label


def test_the_judgement_is_written_beside_the_chart() -> None:
    page = render_scorecard(record_with(canary_outcome(judgement(latency_metric()))))
    block = canary_block(page)
    assert '<b>latency</b> <b class="b s-failed">failed</b>' in block
    assert '<small class="sev-critical">critical</small>' in block
    assert "<div>p95 worse by 20 ms, beyond the 10% margin</div>" in block
    assert "<div>canary p95 0.16 vs baseline 0.14 (+14.3%)</div>" in block
    assert "<div>98% interval of canary - baseline: +12 ms to +18 ms</div>" in block
    assert (
        '<div class="mut">Brunner-Munzel: p = 0.0001, adjusted 0.0002 (Benjamini-Hochberg)</div>'
        in block
    )
    assert 'class="need"' not in block  # no power calculation for this metric


def test_a_rate_metric_shows_its_counts_as_a_table_and_its_need() -> None:
    page = render_scorecard(record_with(canary_outcome(judgement(rate_metric()))))
    assert ecdfs(page) == []
    block = canary_block(page)
    rows = re.findall(
        r'<tr><th>(\w+)</th><td class="n">([^<]*)</td><td class="n">([^<]*)</td>'
        r'<td class="n">([^<]*)</td></tr>',
        block,
    )
    assert rows == [("canary", "3", "1,200", "0.25%"), ("baseline", "1", "1,000", "0.1%")]
    assert '<b class="b s-no_data">no data</b>' in block
    assert f'<div class="need">{NEED}</div>' in block
    assert "<div>98% interval of canary - baseline: -0.2 pp or more</div>" in block


def test_every_metric_and_the_golden_baseline_are_shown() -> None:
    source = {"text": "the golden baseline of 1.4.1 captured 3 days ago", "stale": True}
    details = judgement(latency_metric(source=source), rate_metric(source=source))
    page = render_scorecard(record_with(canary_outcome(details)))
    assert len(ecdfs(page)) == 1
    block = canary_block(page)
    assert block.count('<figure class="cm">') == 2
    assert (
        "baseline: the golden baseline of 1.4.1 captured 3 days ago"
        ' <b class="t-nogo">(stale)</b>' in block
    )
    many = judgement(*[latency_metric(metric=f"m{i}") for i in range(11)])
    page = render_scorecard(record_with(canary_outcome(many)))
    assert len(ecdfs(page)) == 8 and "and 3 more metric(s) in the evidence" in page


def test_the_evidence_text_names_the_shape_instead_of_listing_it() -> None:
    rv = build_view(record_with(canary_outcome(judgement(latency_metric(), rate_metric()))))
    row = next(r for r in rv.checks if r.name == "canary-vs-stable")
    text = next(s.text for s in row.evidence[0].sections if s.label == "details")
    data = json.loads(text)
    assert data["metrics"][0]["shape"] == "drawn in the chart; all in decision.json"
    assert data["metrics"][1]["shape"] is None


def test_a_judgement_the_canary_model_wrote_draws() -> None:
    """The record as the judge writes it (``Judgement.to_dict``), not only as written here."""
    import releasegate.canary as model

    policy = model.MetricPolicy(name="latency", margin=model.Margin(relative=0.1), critical=True)
    comparison = model.Comparison(
        metric="latency",
        kind="samples",
        verdict=model.Verdict.MARGINAL,
        reason="p95 worse, inside the 10% margin",
        policy=policy,
        test="Brunner-Munzel",
        p_value=0.004,
        p_adjusted=0.008,
        effect=model.Effect("difference of p95", 0.005, 0.04, 0.58, "canary p95 0.13 vs 0.125"),
        interval=(0.001, math.inf),  # written as null: JSON has no infinity
        interval_level=0.98,
        canary=model.Summary(count=400, quantile=0.13),
        baseline=model.Summary(count=400, quantile=0.125),
        shape=model.Shape("ecdf", (0.1, 0.12, 0.14), (0.3, 0.7, 1.0), (0.4, 0.8, 1.0)),
    )
    details = model.Judgement(model.Verdict.MARGINAL, "inside the margin", (comparison,)).to_dict()
    record = json.loads(
        json.dumps(record_with(canary_outcome(details, Status.PASSED, marginal=True)))
    )
    page = render_scorecard(record)
    assert len(ecdfs(page)) == 1
    assert "98% interval of canary - baseline: +1 ms or more" in page
    assert "latency marginal: p95 130 ms vs 125 ms (+4.0%); p = 0.008 adjusted" in render_summary(
        record
    )


# ---------------------------------------------------------------- hostile and malformed


def _metric_with(**changes: Any) -> dict[str, Any]:
    return judgement(latency_metric(**changes))


MALFORMED: list[tuple[str, Any]] = [
    ("details null", None),
    ("details text", "judged"),
    ("metrics text", {"metrics": "latency"}),
    ("metrics not objects", {"metrics": [None, "latency", 3, ["a"]]}),
    ("shape text", _metric_with(shape="ecdf")),
    ("shape a list", _metric_with(shape=[0.1, 0.2])),
    ("shape of another kind", _metric_with(shape={**SHAPE, "kind": "histogram"})),
    ("shape mismatched", _metric_with(shape={**SHAPE, "canary": [0.2, 0.6]})),
    ("shape one point", _metric_with(shape={"x": [0.1], "canary": [1.0], "baseline": [1.0]})),
    ("shape nulls", _metric_with(shape={**SHAPE, "baseline": [0.5, None, 1.0]})),
    ("shape NaN", _metric_with(shape={**SHAPE, "x": [0.1, math.nan, 0.3]})),
    ("shape infinity", _metric_with(shape={**SHAPE, "x": [0.1, 0.2, math.inf]})),
    ("shape strings", _metric_with(shape={**SHAPE, "x": ["0.1", "0.2", "0.3"]})),
    ("shape booleans", _metric_with(shape={**SHAPE, "canary": [True, True, True]})),
    ("shape x falls", _metric_with(shape={**SHAPE, "x": [0.1, 0.3, 0.2]})),
    ("shape x repeats", _metric_with(shape={**SHAPE, "x": [0.1, 0.1, 0.2]})),
    ("shape share falls", _metric_with(shape={**SHAPE, "canary": [0.6, 0.2, 1.0]})),
    ("shape share over 1", _metric_with(shape={**SHAPE, "canary": [0.2, 0.6, 4.0]})),
    ("shape huge x", _metric_with(shape={**SHAPE, "x": [0.1, 1e300, 10**400]})),
    (
        "shape of 10k points",
        _metric_with(
            shape={
                "kind": "ecdf",
                "x": [i / 1000 for i in range(10_000)],
                "canary": [i / 10_000 for i in range(10_000)],
                "baseline": [i / 10_000 for i in range(10_000)],
            }
        ),
    ),
    (
        "every field of another type",
        judgement(
            {
                "metric": ["latency"],
                "kind": 7,
                "verdict": {"v": 1},
                "reason": 3.5,
                "critical": "yes",
                "policy": "p95",
                "test": None,
                "p_value": "0.01",
                "p_adjusted": math.nan,
                "effect": "large",
                "interval": "12 to 18",
                "interval_level": "98%",
                "canary": "300 requests",
                "baseline": None,
                "need": "more",
                "shape": None,
                "source": "golden",
            }
        ),
    ),
    (
        "numbers out of range",
        _metric_with(
            p_value=7.0,
            p_adjusted=-1.0,
            interval=[0.02, 0.01],
            interval_level=98,
            canary={"count": -3, "quantile": math.inf, "events": 2.5},
            baseline={"count": 10**400, "quantile": None},
            effect={"relative": math.nan, "description": None},
            shape=None,
        ),
    ),
]


@pytest.mark.parametrize(("case", "details"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_canary_evidence_renders_without_a_chart(case: str, details: Any) -> None:
    record = record_with(canary_outcome(judgement(latency_metric())))
    # Set in the record, as an edit would: the engine's own Evidence writes only objects.
    item = next(o for o in record["outcomes"] if o["check"]["name"] == "canary-vs-stable")
    item["evidence"][0]["details"] = details
    view = read_canary([{"details": copy.deepcopy(details)}])
    assert view is None or all(m.chart is None for m in view.metrics)
    # Details that are not an object make the record unreadable to the engine (an UNVERIFIED
    # record, shown without outcomes); anything else is read, and shown without a chart.
    readable = not isinstance(details, str)
    assert verify_record(json.loads(json.dumps(record))).readable is readable
    page = render_scorecard(copy.deepcopy(record))
    assert ecdfs(page) == [], case
    assert ("<b>canary-vs-stable</b>" in page) is readable
    render_executive(copy.deepcopy(record))
    render_summary(copy.deepcopy(record))


def test_every_malformed_field_becomes_nothing_rather_than_a_guess() -> None:
    (_, details) = next(m for m in MALFORMED if m[0] == "every field of another type")
    view = read_canary([{"details": details}])
    assert view is not None
    (metric,) = view.metrics
    assert (metric.metric, metric.verdict, metric.css, metric.critical) == (
        "metric 1",
        "unknown",
        "error",
        False,
    )
    assert (metric.reason, metric.test, metric.effect, metric.interval, metric.need) == (
        "",
        "",
        "",
        "",
        "",
    )
    assert metric.chart is None and metric.rates == ()
    assert metric.line == "metric 1 unknown"
    (_, details) = next(m for m in MALFORMED if m[0] == "numbers out of range")
    view = read_canary([{"details": details}])
    assert view is not None
    assert view.metrics[0].test == "Brunner-Munzel" and view.metrics[0].interval == ""


def test_hostile_text_is_escaped() -> None:
    payload = "<script>alert(1)</script>"
    details = judgement(
        latency_metric(metric=payload, reason=payload, test=payload),
        rate_metric(need={"sentence": payload}),
    )
    details["correction"] = payload
    record = record_with(canary_outcome(details))
    for page in (render_scorecard(record), render_executive(record), render_summary(record)):
        assert "<script" not in page
    page = render_scorecard(record)
    (svg,) = ecdfs(page)
    assert svg.get("aria-label", "").startswith(payload)  # as text: the escape was decoded


def test_a_canary_that_could_not_measure_shows_its_reason_only() -> None:
    golden = {"golden": {"file": "b.json", "version": "1.4.1", "age_s": 9e6}}
    record = record_with(canary_outcome(golden, Status.NO_DATA, reason="baseline too old"))
    page = render_scorecard(record)
    assert '<div class="cn">' not in page and "baseline too old" in page
    assert "Canary comparisons" not in render_summary(record)


def test_only_canary_checks_are_read_as_judgements() -> None:
    details = judgement(latency_metric())
    evidence = Evidence("a judgement-like object", None, None, "ok", details)
    other = outcome("lookalike", "canary", Severity.MAJOR, Status.PASSED, "ok", (evidence,))
    rv = build_view(record_with(other))
    assert all(r.canary is None for r in rv.checks)


# ----------------------------------------------------------- the summary and one-pager


def test_the_summary_has_one_line_per_canary_metric() -> None:
    details = judgement(latency_metric(), rate_metric())
    text = render_summary(record_with(canary_outcome(details)))
    assert "**Canary comparisons (1)**" in text
    lines = [x for x in text.splitlines() if x.startswith("- **canary-vs-stable**")]
    assert lines == [
        "- **canary-vs-stable** failed · latency failed (critical): p95 160 ms vs 140 ms"
        " (+14.3%); p = 0.0002 adjusted",
        "- **canary-vs-stable** failed · errors no data: 0.25% vs 0.1% (+150.0%); p = 0.41"
        f" adjusted; {NEED}",
    ]
    assert "Canary comparisons" not in render_summary(make_record(healthy_outcomes()))


def test_the_executive_report_lists_the_canary_metrics() -> None:
    details = judgement(latency_metric(), rate_metric())
    page = render_executive(record_with(canary_outcome(details)))
    section = page[page.index('<section id="canary">') : page.index('<section id="marginal">')]
    assert "<h2>Canary comparisons (1)</h2>" in section
    assert "<small>critical, failed</small>" in section
    items = re.findall(r"<li>([^<]*)</li>", section)
    assert (
        items[0] == "latency failed (critical): p95 160 ms vs 140 ms (+14.3%); p = 0.0002 adjusted"
    )
    # Capped, to keep the page to one printed page.
    assert items[1].startswith("errors no data: 0.25% vs 0.1% (+150.0%); p = 0.41 adjusted; need")
    assert len(items[1]) <= 150 and items[1].endswith("…")
    assert 'id="canary"' not in render_executive(make_record(healthy_outcomes()))


# ------------------------------------------------------------------------ marginal passes


def marginal_record() -> dict[str, Any]:
    details = judgement(latency_metric(verdict="marginal", critical=False), verdict="marginal")
    reason = "latency: p95 worse by 4%, inside the 10% margin"
    return record_with(canary_outcome(details, Status.PASSED, marginal=True, reason=reason))


def test_a_marginal_pass_shows_its_badge_and_the_decision_lists_it() -> None:
    record = marginal_record()
    assert record["decision"] == "CONDITIONAL GO"
    assert record["summary"]["marginal"] == ["canary-vs-stable"]
    page = render_scorecard(record)
    row = re.search(r'<div class="r s-passed c\d+"><b class="b s-passed mg">([^<]*)</b>', page)
    assert row and row.group(1) == "passed · marginal"
    assert page.count(" mg") == 1  # the other passes keep the plain badge
    assert "latency: p95 worse by 4%, inside the 10% margin" in page
    note = (
        "passed with a caveat (marginal): canary-vs-stable (each holds the decision to"
        " CONDITIONAL GO at best)"
    )
    reasons = page[page.index('<ul class="reasons"') : page.index("</ul>")]
    assert f'<li class="note">{note}</li>' in reasons
    assert "all 1 check(s) passed (1 marginal: canary-vs-stable)" in page  # its category
    # Among the passes, the marginal one comes first: it is what holds the decision.
    rv = build_view(record)
    assert next(r.name for r in rv.checks if r.status == "passed") == "canary-vs-stable"
    assert next(r for r in rv.checks if r.marginal).status_text == "passed · marginal"


def test_a_marginal_pass_shows_in_the_executive_report_and_the_summary() -> None:
    record = marginal_record()
    page = render_executive(record)
    section = page[page.index('<section id="marginal">') :]
    assert "<h2>Passed with a caveat (1)</h2>" in section
    assert (
        "<li><b>canary-vs-stable</b> <small>critical, passed · marginal</small>:"
        " latency: p95 worse by 4%, inside the 10% margin</li>" in section
    )
    assert "passed with a caveat (marginal): canary-vs-stable" in page  # beside the reasons
    text = render_summary(record)
    assert "**Passed with a caveat (1)**: at best CONDITIONAL GO" in text
    assert (
        "- **canary-vs-stable** passed · marginal: latency: p95 worse by 4%, inside the 10%"
        " margin" in text.splitlines()
    )
    assert "- **canary-vs-stable** passed · marginal · latency marginal: p95 160 ms" in text


def test_a_marginal_flag_on_a_check_that_did_not_pass_is_ignored() -> None:
    record = record_with(canary_outcome(judgement(latency_metric())))
    record["outcomes"][0]["marginal"] = True  # worst first: the failed canary
    assert record["outcomes"][0]["status"] == "failed"
    assert verify_record(record).consistent
    assert all(not r.marginal for r in build_view(record).checks)
    assert "mg" not in re.findall(r'class="b ([^"]*)"', render_scorecard(record))


def test_reports_without_marginal_passes_are_unchanged() -> None:
    record = make_record(healthy_outcomes())
    assert record["summary"]["marginal"] == []
    page = render_scorecard(record)
    assert "· marginal" not in page and " mg" not in page and "passed with a caveat" not in page
    assert "caveat" not in render_summary(record) and 'id="marginal"' not in render_executive(
        record
    )


# ------------------------------------------------------------------------- the verifier


def test_the_verifier_accepts_marginal_passes() -> None:
    record = json.loads(json.dumps(marginal_record()))
    assert [o.get("marginal") for o in record["outcomes"]].count(True) == 1
    check = verify_record(record)
    assert check.readable and check.consistent, check.problems + check.disagreements
    assert check.recomputed_verdict == "CONDITIONAL GO"
    unmarked = copy.deepcopy(record)
    for item in unmarked["outcomes"]:
        item["marginal"] = False
    # Without the caveat the outcomes give GO: the stored CONDITIONAL GO disagrees.
    assert verify_record(unmarked).disagreements


@pytest.mark.parametrize(
    ("where", "value", "problem"),
    [
        ("outcome", "yes", 'marginal: "yes" is not true or false'),
        ("outcome", 1, "marginal: 1 is not true or false"),
        ("outcome", None, "marginal: null is not true or false"),
        ("summary", "canary-vs-stable", 'summary.marginal: "canary-vs-stable" is not a list'),
        ("summary", [3], "summary.marginal[0]: 3 is not a string"),
    ],
)
def test_the_verifier_rejects_a_marginal_of_another_type(
    where: str, value: Any, problem: str
) -> None:
    record = json.loads(json.dumps(marginal_record()))
    index = next(i for i, o in enumerate(record["outcomes"]) if o.get("marginal"))
    if where == "outcome":
        record["outcomes"][index]["marginal"] = value
        problem = f"outcomes[{index}].{problem}"
    else:
        record["summary"]["marginal"] = value
    check = verify_record(record)
    assert not check.readable
    assert problem in check.problems
    assert "UNVERIFIED RECORD" in render_scorecard(record)


# ------------------------------------------------------------------------- the pieces


def test_step_points_leave_out_steps_of_no_height() -> None:
    assert step_points([0.0, 10.0, 20.0], [0.0, 0.0, 1.0]) == (
        (0.0, BOTTOM),
        (10.0, BOTTOM),
        (20.0, BOTTOM),
        (20.0, TOP),
    )


def test_read_shape_takes_only_a_pair_of_ecdfs() -> None:
    shape = read_shape({"x": [1, 2.5], "canary": [0, 1], "baseline": [0.5, 1.0 + 1e-12]})
    assert shape is not None
    assert (shape.x, shape.canary, shape.baseline) == ((1.0, 2.5), (0.0, 1.0), (0.5, 1.0))
    longest = [float(i) for i in range(MAX_POINTS)]
    shares = [i / MAX_POINTS for i in range(MAX_POINTS)]
    assert read_shape({"x": longest, "canary": shares, "baseline": shares}) is not None
    assert (
        read_shape({"x": [*longest, 1e4], "canary": [*shares, 1], "baseline": [*shares, 1]}) is None
    )


def test_nice_ticks_and_p_values() -> None:
    assert nice_ticks(100.0, 300.0) == (100.0, 150.0, 200.0, 250.0, 300.0)
    assert nice_ticks(34.49, 355.1) == (100.0, 200.0, 300.0)
    assert nice_ticks(-0.3, 0.3) == (-0.2, 0.0, 0.2)
    assert nice_ticks(1.0, 1.0) == () and nice_ticks(0.0, math.inf) == ()
    assert nice_ticks(0.0, 5e-324) == ()
    assert [p_text(p) for p in (0.0, 0.00004, 0.0023, 0.041, 0.41, 1.0)] == [
        "< 0.0001",
        "< 0.0001",
        "0.0023",
        "0.041",
        "0.41",
        "1.00",
    ]
    assert (p_equals(0.00004), p_equals(0.02)) == ("p < 0.0001", "p = 0.02")
