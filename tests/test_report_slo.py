"""SLO sparklines in the reports: a window check's steps drawn in the scorecard, the worst failed
one in the executive report, a Unicode line per SLO in the Markdown summary."""

from __future__ import annotations

import copy
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from _report_records import (
    healthy_outcomes,
    make_record,
    nogo_outcomes,
    outcome,
    slo_each_outcome,
    slo_outcome,
)
from releasegate.model import Evidence, Severity, Status
from releasegate.report import (
    build_view,
    render_executive,
    render_scorecard,
    render_summary,
    write_reports,
)
from releasegate.report.sparkline import (
    BLOCKS,
    MAX_DRAWN,
    NO_DATA,
    Step,
    Trace,
    draw,
    read_trace,
    text_sparkline,
)
from releasegate.report.view import comparison
from test_report_browser import browser, open_page, shoot  # noqa: F401  (the fixture)

SVG = "{http://www.w3.org/2000/svg}"
PASSING = [150.0 + (i % 7) * 10 for i in range(60)]  # 150..210 ms, under 300 ms
BREACHING = [120.0 + i for i in range(30)] + [412.0, 380.0, 350.0] + [200.0] * 27
MISSING = [130.0] * 20 + [None] * 5 + [140.0] * 10 + [None] + [150.0] * 24


def sparks(page: str) -> list[ET.Element]:
    """Each sparkline's SVG, parsed: the markup the reports emit is well-formed XML."""
    found = re.findall(r'<svg class="spark".*?</svg>', page, flags=re.S)
    return [ET.fromstring(s.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1)) for s in found]


def points(svg: ET.Element) -> list[tuple[float, float]]:
    """Every (x, y) of the value lines, in order."""
    found = []
    for line in svg.iter(f"{SVG}polyline"):
        for pair in line.get("points", "").split():
            x, y = pair.split(",")
            found.append((float(x), float(y)))
    return found


def circles(svg: ET.Element, css: str) -> list[ET.Element]:
    return [c for c in svg.iter(f"{SVG}circle") if c.get("class") == css]


def threshold_y(svg: ET.Element) -> float:
    (line,) = [e for e in svg.iter(f"{SVG}line") if e.get("class") == "lim"]
    assert line.get("y1") == line.get("y2")
    return float(line.get("y1", "nan"))


def record_with(*extra: Any) -> dict[str, Any]:
    return make_record(healthy_outcomes() + list(extra))


def evidence_of(record: dict[str, Any], name: str) -> dict[str, Any]:
    found = next(o for o in record["outcomes"] if o["check"]["name"] == name)
    evidence: dict[str, Any] = found["evidence"][0]
    return evidence


def test_a_passing_slo_draws_its_window_under_the_threshold() -> None:
    page = render_scorecard(record_with(slo_outcome("p95-latency", PASSING)))
    (svg,) = sparks(page)
    drawn = points(svg)
    assert len(drawn) == 60 and circles(svg, "br") == []
    # The threshold is above every value (smaller y), on the same scale as the values.
    assert threshold_y(svg) < min(y for _, y in drawn)
    assert (
        "p95-latency over 10m (10s at time scale 60), 60/60 steps, worst 210 ms vs &lt; 300 ms"
        in page
    )
    label = svg.get("aria-label", "")
    assert label == svg.findtext(f"{SVG}title")
    assert "60 steps, 60 with data" in label and "limit < 300 ms, never broken" in label
    assert "values from 150 ms to 210 ms" in label
    assert sparks(render_executive(record_with(slo_outcome("p95-latency", PASSING)))) == []


def test_the_threshold_line_sits_at_the_limit_on_the_value_scale() -> None:
    page = render_scorecard(record_with(slo_outcome("p95-latency", BREACHING)))
    (svg,) = sparks(page)
    drawn = points(svg)
    # y is linear in the value: from two steps of known value, where 300 ms must be.
    (_, y0), (_, y1) = drawn[0], drawn[30]  # 120 ms and 412 ms
    slope = (y1 - y0) / (412.0 - 120.0)
    assert slope < 0  # higher values are drawn higher
    assert threshold_y(svg) == pytest.approx(y0 + slope * (300.0 - 120.0), abs=0.2)
    for (_, y), value in zip(drawn, BREACHING, strict=True):
        assert y == pytest.approx(y0 + slope * (value - 120.0), abs=0.2)
    # The y range holds both the values and the threshold inside the plot.
    plot = next(e for e in svg.iter(f"{SVG}rect") if e.get("class") == "plot")
    top = float(plot.get("y", "0"))
    bottom = top + float(plot.get("height", "0"))
    assert all(top <= y <= bottom for _, y in drawn) and top <= threshold_y(svg) <= bottom


def test_breaches_are_red_dots_one_per_breaching_step() -> None:
    page = render_scorecard(record_with(slo_outcome("p95-latency", BREACHING)))
    (svg,) = sparks(page)
    dots = circles(svg, "br")
    assert len(dots) == 3  # 412, 380 and 350 ms break < 300 ms
    limit_y = threshold_y(svg)
    assert all(float(d.get("cy", "0")) < limit_y for d in dots)  # above the line
    assert [d.findtext(f"{SVG}title") for d in dots] == [
        "step 30: 412 ms breaks < 300 ms",
        "step 31: 380 ms breaks < 300 ms",
        "step 32: 350 ms breaks < 300 ms",
    ]
    assert "worst 412 ms vs &lt; 300 ms, breached at 3 steps" in page
    assert "limit < 300 ms, broken at 3 steps" in svg.get("aria-label", "")


def test_missing_steps_are_gaps_not_zeros() -> None:
    page = render_scorecard(record_with(slo_outcome("p95-latency", MISSING)))
    (svg,) = sparks(page)
    lines = list(svg.iter(f"{SVG}polyline"))
    assert len(lines) == 3  # the line breaks at each run of missing steps
    gaps = [e for e in svg.iter(f"{SVG}rect") if e.get("class") == "gap"]
    assert len(gaps) == 2  # steps 20-24, step 35
    drawn = points(svg)
    assert len(drawn) == 54
    for gap in gaps:
        left = float(gap.get("x", "0"))
        right = left + float(gap.get("width", "0"))
        assert not any(left < x < right for x, _ in drawn)
    # Every value is 130-150 ms: nothing is drawn as far below as a zero would be.
    ys = {y for _, y in drawn}
    assert max(ys) - min(ys) < 50
    assert "54/60 steps" in page and "6 missing" in svg.get("aria-label", "")


def test_several_series_draw_small_and_the_rest_are_counted() -> None:
    series = {f"/r{i}": [0.2 + 0.01 * i] * 12 for i in range(8)}
    series["/r3"] = [0.2] * 10 + [2.5, 0.3]
    page = render_scorecard(record_with(slo_each_outcome("error-rate-by-route", series)))
    drawn = sparks(page)
    assert len(drawn) == 6
    assert all(s.get("viewBox") == "0 0 240.0 44.0" for s in drawn)
    assert "and 2 more series in the evidence" in page
    # Worst first: the failing route leads, labelled by its series.
    assert drawn[0].get("aria-label", "").startswith('{route="/r3"} over 10m')
    assert len(circles(drawn[0], "br")) == 1
    assert 'class="sl many"' in page
    summary = render_summary(record_with(slo_each_outcome("error-rate-by-route", series)))
    line = next(x for x in summary.splitlines() if x.startswith("- **error-rate-by-route**"))
    assert "(worst of 8 series)" in line and "breached at 1 step" in line


def test_the_executive_report_draws_only_the_worst_failed_slo() -> None:
    outcomes = healthy_outcomes()
    outcomes.append(slo_outcome("p95-latency", BREACHING))
    outcomes.append(slo_outcome("p99-latency", BREACHING, "< 900ms", Severity.MINOR))
    outcomes.append(slo_outcome("p50-latency", PASSING, "< 250ms"))
    page = render_executive(make_record(outcomes))
    (svg,) = sparks(page)
    assert svg.get("aria-label", "").startswith("p95-latency over 10m")
    blocker = re.search(r"<li><b>p95-latency</b>.*?</li>", page, flags=re.S)
    assert blocker and 'class="spark' in blocker.group(0)  # beside its blocker line
    healthy = render_executive(record_with(slo_outcome("p95-latency", PASSING)))
    assert sparks(healthy) == []


def test_a_failed_slo_that_is_not_a_listed_blocker_still_shows() -> None:
    outcomes = nogo_outcomes()
    for i in range(6):
        outcomes.append(outcome(f"crit-{i}", "health", Severity.CRITICAL, Status.FAILED, "down"))
    outcomes.append(slo_outcome("p95-latency", BREACHING, severity=Severity.MINOR))
    page = render_executive(make_record(outcomes))
    assert len(sparks(page)) == 1 and 'id="worst-slo"' in page


def test_the_summary_has_one_unicode_line_per_slo() -> None:
    record = record_with(
        slo_outcome("p95-latency", BREACHING),
        slo_outcome("gaps", MISSING, "< 200ms"),
        slo_outcome("fine", PASSING, severity=Severity.MAJOR),
    )
    text = render_summary(record)
    assert "**SLO windows (3)**" in text
    lines = [x for x in text.splitlines() if x.startswith("- **") and "`" in x]
    assert [x.split("**")[1] for x in lines] == ["p95-latency", "gaps", "fine"]
    spark = re.compile(rf"`([{BLOCKS}{NO_DATA}]+)`")
    for line in lines:
        match = spark.search(line)
        assert match and len(match.group(1)) == 40
    assert "breached at 3 steps" in lines[0] and "worst 412 ms vs &lt; 300 ms" in lines[0]
    assert NO_DATA in spark.search(lines[1]).group(1)  # type: ignore[union-attr]
    assert "breached" not in lines[2]
    assert "SLO windows" not in render_summary(make_record(healthy_outcomes()))


def test_text_sparkline_marks_gaps_and_scales_with_the_limit() -> None:
    trace = Trace(
        label="x",
        status="failed",
        steps=(Step(0, 0.0, False), Step(1, None, False), Step(2, 10.0, True), Step(3, 5.0, False)),
        total=4,
        with_data=3,
        breach_count=1,
        worst=10.0,
        op="<",
        limit=5.0,
        unit="ms",
        over="",
    )
    assert text_sparkline(trace) == "▁·█▅"
    flat = Trace("y", "passed", (Step(0, 1.0, False), Step(1, 1.0, False)), 2, 2, 0, 1.0,
                 None, None, "", "")  # fmt: skip
    assert text_sparkline(flat) == "▅▅"


def test_logs_instants_and_other_evidence_draw_nothing() -> None:
    log = Evidence(
        "log app.log over 10m",
        {"bad": 0, "concerning": 2, "good": 90, "other": 1, "lines": 93},
        "bad <= 0",
        "2 concerning",
        {"file": "app.log", "window": {"duration_s": 600}, "examples": {"bad": []}},
    )
    instant = slo_outcome("instant", [150.0])  # one step: nothing to draw a line through
    steps_as_text = Evidence("checkout flow", None, None, "ok", {"steps": ["login", "pay"]})
    record = record_with(
        outcome("logs", "logs", Severity.MAJOR, Status.PASSED, "ok", (log,), kind="slo"),
        instant,
        outcome("flow", "functionality", Severity.MAJOR, Status.PASSED, "ok", (steps_as_text,)),
    )
    assert sparks(render_scorecard(record)) == []
    assert "SLO windows" not in render_summary(record)
    assert all(not r.sparklines for r in build_view(record).checks)


def hostile_record() -> dict[str, Any]:
    record = record_with(slo_outcome("p95-latency", BREACHING))
    item = evidence_of(record, "p95-latency")
    details = item["details"]
    payload = "<script>alert(1)</script>"
    item["measured"] = payload
    details["subject"] = f"p95 {payload}"
    details["unit"] = payload
    details["window"] = {"duration_s": "<b>10m</b>", "time_scale": 1e308}
    item["limits"] = [{"subject": payload, "op": "<", "value": "300", "unit": payload}]
    details["condition"] = "< 300ms"
    steps = details["steps"]
    steps[1][2] = "412"  # a string where a number belongs: a gap
    steps[2][2] = math.nan
    steps[3][2] = math.inf
    steps[4][2] = True
    steps[5][2] = 10**400
    steps[6] = ["7", 0, 130.0, True]  # an index that is not a number: skipped
    steps[7] = {"index": 7}
    steps[8] = [8]
    steps[9][3] = payload  # not a boolean: judged against the limit instead
    return record


def test_hostile_evidence_is_validated_and_escaped() -> None:
    record = hostile_record()
    page = render_scorecard(record)
    (svg,) = sparks(page)
    assert "<script" not in page and "&lt;script&gt;" in page
    label = svg.get("aria-label", "")
    assert "<script>" in label  # shown as text (the parser decoded the escape)
    gaps = [e for e in svg.iter(f"{SVG}rect") if e.get("class") == "gap"]
    assert len(gaps) == 1  # steps 1-5 (text, NaN, Inf, a boolean, a huge integer): one run
    drawn = points(svg)  # steps 9-59; step 0 stands alone before the gap, as a dot
    assert len(drawn) == 60 - 5 - 3 - 1 and len(circles(svg, "pt")) == 1
    # The limit came from the condition (the limits entry's value is text): still 300 ms.
    slope = (drawn[-1][1] - drawn[0][1]) / (200.0 - 129.0)
    assert threshold_y(svg) == pytest.approx(drawn[0][1] + slope * (300.0 - 129.0), abs=0.2)
    for report in (render_executive(record), render_summary(record)):
        assert "<script" not in report and "<b>10m" not in report


def test_ten_thousand_steps_are_thinned_to_the_drawn_cap_keeping_breaches() -> None:
    record = record_with(slo_outcome("p95-latency", BREACHING))
    details = evidence_of(record, "p95-latency")["details"]
    steps = [[i, float(i), 100.0 + (i % 50), True] for i in range(10_000)]
    for i in (1234, 7777):
        steps[i] = [i, float(i), 999.0, False]
    details["steps"] = steps
    details["total_steps"] = 10_000
    details["breach_count"] = "lots"  # not a count: the drawn breaches are counted instead
    page = render_scorecard(record)
    (svg,) = sparks(page)
    drawn = points(svg) + [(0.0, 0.0)] * len(circles(svg, "pt"))
    assert len(drawn) <= MAX_DRAWN
    assert len(circles(svg, "br")) == 2
    assert f"{MAX_DRAWN} of 10000 recorded steps drawn" in svg.get("aria-label", "")
    assert "breached at 2 steps" in page


@pytest.mark.parametrize(
    "details",
    [
        None,
        "steps",
        {"steps": "0,1,2"},
        {"steps": [[0, 0, 1.0, True]]},
        {"steps": [["a", 0, 1.0], [None, 1, 2.0]]},
        {"steps": [[-1, 0, 1.0], [2_000_000, 0, 1.0]]},
        {"steps": [[0, 0, 1.0], [0, 1, 2.0]]},  # one step, twice
    ],
)
def test_malformed_steps_draw_nothing_and_break_nothing(details: Any) -> None:
    assert read_trace({"details": details}) is None
    record = record_with(slo_outcome("p95-latency", PASSING))
    evidence_of(record, "p95-latency")["details"] = details
    render_scorecard(copy.deepcopy(record))
    render_summary(record)


def test_limits_that_are_not_objects_are_no_comparison() -> None:
    assert comparison("x", [{"limits": ["<= 1", 7], "value": {"worst": 3.0}}]) is None
    record = record_with(slo_outcome("p95-latency", BREACHING))
    evidence_of(record, "p95-latency")["limits"] = ["<= 1", 7]
    assert "UNVERIFIED RECORD" in render_scorecard(record)  # an unreadable record, no crash


def test_limits_that_are_not_limits_fall_back_to_the_condition() -> None:
    steps = [[0, 0, 100.0, True], [1, 0, 500.0, None]]
    limits = [{"op": ["<"], "value": 1, "field": "worst"}, {"op": "<", "value": "x"}, "<= 1", 7]
    item = {"limits": limits, "details": {"steps": steps, "condition": "< 300ms", "unit": "ms"}}
    trace = read_trace(item)
    assert trace is not None and (trace.op, trace.limit, trace.unit) == ("<", 300.0, "ms")
    assert [s.breach for s in trace.steps] == [False, True]  # no ``ok``: held to the limit
    item["details"]["condition"] = "<= lots"
    trace = read_trace(item)
    assert trace is not None and trace.limit is None and draw(trace).threshold_y is None


def test_values_without_any_limit_or_data_still_draw() -> None:
    only_gaps = read_trace({"details": {"steps": [[0, 0, None], [1, 0, None]]}})
    assert only_gaps is not None
    spark = draw(only_gaps)
    assert spark.lines == () and spark.threshold_y is None and len(spark.gaps) == 1
    assert spark.text == NO_DATA * 2
    unlimited = read_trace({"details": {"steps": [[0, 0, 1.0], [1, 0, 3.0]]}})
    assert unlimited is not None and draw(unlimited).threshold_y is None
    huge = read_trace({"details": {"steps": [[0, 0, -1e308], [1, 0, 1e308]], "condition": "< 0"}})
    assert huge is not None
    ys = [float(p.split(",")[1]) for p in draw(huge).lines[0].split()]
    assert all(math.isfinite(y) for y in ys) and ys[0] > ys[1]


def test_the_evidence_text_names_the_steps_instead_of_listing_them() -> None:
    rv = build_view(record_with(slo_outcome("p95-latency", BREACHING)))
    row = next(r for r in rv.checks if r.name == "p95-latency")
    details = next(s.text for s in row.evidence[0].sections if s.label == "details")
    assert '"steps": "60 recorded, drawn in the sparkline; all in decision.json"' in details
    assert '"breach_steps"' in details


def test_reports_without_slo_evidence_are_unchanged() -> None:
    record = make_record(nogo_outcomes())
    assert 'class="spark' not in render_scorecard(record)
    assert 'class="spark' not in render_executive(record)
    assert all(r.sparklines == () for r in build_view(record).checks)


# ------------------------------------------------------------------------------ in Chromium


def test_in_chromium_the_sparkline_reads_and_the_executive_stays_one_page(
    browser: Any,  # noqa: F811  (the fixture of test_report_browser)
    tmp_path: Path,
) -> None:
    outcomes = nogo_outcomes()
    outcomes.append(slo_outcome("p95-latency", BREACHING[:20] + [None] * 3 + BREACHING[23:]))
    series = {f"/api/r{i}": [0.2 + 0.05 * i] * 30 for i in range(7)}
    series["/api/r2"] = [0.3] * 24 + [1.6, 2.1, 1.2, 0.4, None, 0.3]
    outcomes.append(slo_each_outcome("error-rate-by-route", series))
    outcomes.append(slo_outcome("p50-latency", PASSING, "< 250ms", Severity.MAJOR))
    record = make_record(outcomes)
    folder = tmp_path / "demo-shop" / "t24h"
    write_reports(record, folder)
    opened = open_page(browser, folder / "scorecard.html")
    page = opened.page
    row = page.locator("#checks .r", has_text="p95-latency").first
    box = row.locator("svg.spark").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 30  # drawn at a readable size
    assert page.locator("#checks svg.spark").count() == 2 + 6
    row.screenshot(path=str(tmp_path / "row.png"))
    shoot(opened, "scorecard-slo.png")
    assert opened.errors == []
    executive = open_page(browser, folder / "executive.html")
    assert executive.page.locator("svg.spark").count() == 1
    pdf = executive.page.pdf(format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    shoot(executive, "executive-slo.png")
