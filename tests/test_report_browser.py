"""The reports in a real browser: headless Chromium (Debian's) driven by Playwright.

Screenshots land in reports/out/screenshots/ (ignored by git) for a person to look at. Without
Chromium or Playwright the tests skip, unless RELEASEGATE_REQUIRE_SERVICES=1 (CI) says fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from _report_records import (
    healthy_outcomes,
    make_record,
    many_outcomes,
    nogo_outcomes,
    rollback_action,
)
from releasegate.model import Mode
from releasegate.phases import Phase
from releasegate.report import write_reports
from test_report_render import PAYLOADS, xss_record

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "reports" / "out" / "screenshots"


def _missing(what: str, how: str) -> None:
    message = f"{what} is not available ({how})"
    if os.environ.get("RELEASEGATE_REQUIRE_SERVICES", "") not in ("", "0"):
        pytest.fail(f"{message}; RELEASEGATE_REQUIRE_SERVICES=1: a missing service fails")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python", "pip install -e '.[test]'")
    executable = os.environ.get("RELEASEGATE_CHROMIUM") or shutil.which("chromium")
    if not executable:
        _missing("Chromium", "apt-get install chromium, or set RELEASEGATE_CHROMIUM")
    with sync_playwright() as playwright:
        # Debian's chromium, never a downloaded build: `playwright install` is not needed.
        browser = playwright.chromium.launch(executable_path=executable)
        yield browser
        browser.close()


@dataclass
class Opened:
    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    load_s: float = 0.0


def open_page(browser: Any, path: Path, width: int = 1280) -> Opened:
    page = browser.new_page(viewport={"width": width, "height": 900})
    opened = Opened(page)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        opened.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    started = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    opened.load_s = time.perf_counter() - started
    return opened


def shoot(opened: Opened, name: str, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    opened.page.screenshot(path=str(path), full_page=full_page)
    return path


def visible_rows(page: Any) -> list[str]:
    names: list[str] = page.eval_on_selector_all(
        "#checks .r",
        "rows => rows.filter(r => getComputedStyle(r).display !== 'none')"
        ".map(r => r.querySelector('span b').textContent)",
    )
    return names


def deployment(tmp_path: Path, *records: dict[str, Any]) -> Path:
    """Write each record and its reports in the standard layout; return the last folder."""
    folder = tmp_path
    for record in records:
        folder = tmp_path / record["deployment"] / record["phase"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "decision.json").write_text(json.dumps(record), encoding="utf-8")
        write_reports(record, folder)
    return folder


def test_scorecard_no_go(browser: Any, tmp_path: Path) -> None:
    folder = deployment(tmp_path, make_record(nogo_outcomes(), actions=(rollback_action(),)))
    opened = open_page(browser, folder / "scorecard.html")
    page = opened.page
    assert page.inner_text("#decision") == "NO-GO"
    assert page.inner_text("#score") == "6.84/10"
    categories = page.eval_on_selector_all(
        "#categories tbody tr", "rs => rs.map(r => r.cells[0].textContent)"
    )
    assert categories == ["functionality", "health", "observability", "performance", "release"]
    rows = visible_rows(page)
    assert rows[:3] == ["catalog-latency", "order-accepted", "metrics-exposed"]
    assert page.is_visible("#chart-categories svg") and page.is_visible("#chart-thresholds svg")
    page.click("#checks .r >> nth=0 >> summary")
    assert "GET http://127.0.0.1:8765/api/products" in page.inner_text("#checks .r >> nth=0 >> pre")
    shoot(opened, "scorecard-nogo.png")
    assert opened.errors == [] and opened.dialogs == []


def test_scorecard_filters_work_without_script(browser: Any, tmp_path: Path) -> None:
    folder = deployment(tmp_path, make_record(nogo_outcomes()))
    opened = open_page(browser, folder / "scorecard.html")
    page = opened.page
    page.click("label[for=fs-failed]")
    assert visible_rows(page) == ["catalog-latency", "order-accepted"]
    page.click("label[for=fs-passed]")
    assert len(visible_rows(page)) == 5
    performance = page.get_attribute("#checks .r.s-failed >> nth=0", "class").split()[-1]
    page.click(f"label[for=fc-{performance}]")
    assert visible_rows(page) == ["error-rate"]  # passed AND performance
    page.click("label[for=fs-all]")
    assert visible_rows(page) == ["catalog-latency", "error-rate"]
    shoot(opened, "scorecard-filtered.png", full_page=False)
    assert opened.errors == []


def test_scorecard_healthy(browser: Any, tmp_path: Path) -> None:
    folder = deployment(tmp_path, make_record(healthy_outcomes()))
    opened = open_page(browser, folder / "scorecard.html")
    assert opened.page.inner_text("#decision") == "GO"
    assert opened.page.inner_text("#score") == "10/10"
    assert opened.page.locator("#reasons").count() == 0  # nothing to explain
    shoot(opened, "scorecard-go.png")
    assert opened.errors == []


def test_executive_report_is_one_printed_page(browser: Any, tmp_path: Path) -> None:
    folder = deployment(
        tmp_path,
        make_record(healthy_outcomes(), Phase.T0H, Mode.DARK),
        make_record(healthy_outcomes(), Phase.T8H),
        make_record(nogo_outcomes()[:5] + healthy_outcomes()[5:], Phase.T16H),
        make_record(nogo_outcomes(), actions=(rollback_action(),)),
    )
    opened = open_page(browser, folder / "executive.html")
    page = opened.page
    assert "DO NOT PROCEED" in page.inner_text("#recommendation")
    assert page.locator("#risk .tile").count() == 3
    assert "Rollback complexity" in page.inner_text("#risk")
    phases = page.inner_text("#phases")
    assert "CONDITIONAL GO" in phases and "upcoming" in phases
    assert page.locator("#chart-timeline circle").count() >= 4
    shoot(opened, "executive-nogo.png")
    pdf = page.pdf(format="A4", print_background=True)
    (SHOTS / "executive-nogo.pdf").write_bytes(pdf)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    assert opened.errors == []


def test_executive_report_stays_one_page_with_10000_checks(browser: Any, tmp_path: Path) -> None:
    folder = deployment(tmp_path, make_record(many_outcomes(10_000), Phase.T72H))
    opened = open_page(browser, folder / "executive.html")
    pdf = opened.page.pdf(format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    shoot(opened, "executive-10000.png")


def test_scorecard_with_10000_checks_opens_fast(browser: Any, tmp_path: Path) -> None:
    folder = deployment(tmp_path, make_record(many_outcomes(10_000)))
    opened = open_page(browser, folder / "scorecard.html")
    # The benchmark (bench/bench_report.py) holds the real figure; this only catches a
    # regression by an order of magnitude on a busy CI machine.
    assert opened.load_s < 10, f"10,000 checks took {opened.load_s:.1f} s to load"
    opened.page.click("label[for=fs-failed]")
    assert len(visible_rows(opened.page)) == 103
    shoot(opened, "scorecard-10000.png", full_page=False)
    assert opened.errors == []


def test_payloads_neither_run_nor_inject(browser: Any, tmp_path: Path) -> None:
    folder = tmp_path / "xss"
    write_reports(xss_record(), folder)
    for name in ("scorecard.html", "executive.html"):
        page = open_uninjected(browser, folder / name, f"xss-{name.replace('.html', '')}.png")
        assert page.locator("#checks .r, #blockers li").count() > 0
        text = page.inner_text("body")
        assert PAYLOADS[0] in text or name == "executive.html"  # shown as text, not run


def open_uninjected(browser: Any, path: Path, screenshot: str) -> Any:
    """Open a report with every evidence block expanded; assert nothing was injected or ran."""
    opened = open_page(browser, path)
    page = opened.page
    page.eval_on_selector_all("details", "ds => ds.forEach(d => d.open = true)")
    injected = page.locator(
        "script, img, iframe, textarea, [onerror], [onload], [onclick], a[href^=javascript]"
    )
    assert injected.count() == 0, path.name
    page.wait_for_timeout(100)
    assert opened.dialogs == [], f"{path.name}: a dialog fired: {opened.dialogs}"
    assert opened.errors == []
    shoot(opened, screenshot, full_page=False)
    return page


def test_payloads_from_a_real_target_neither_run_nor_inject(
    browser: Any, pytester: pytest.Pytester
) -> None:
    """The target itself answers with the payloads (body and header); a gate run reports it."""
    from werkzeug.wrappers import Response

    from _httpserver import LocalServer

    with LocalServer() as server:
        checks = []
        for i, payload in enumerate(PAYLOADS):
            server.route(
                f"/p{i}",
                lambda request, p=payload: Response(p, status=500, headers={"X-Evil": p}),
            )
            checks.append(
                f"  - {{name: p{i}, type: http, phases: [t24h], request: {{path: /p{i}}},"
                " expect: {status: 200}}"
            )
        pytester.makefile(
            ".yaml",
            releasegate="version: 1\ndeployment: {name: shop}\n"
            f"target: {{base_url: '{server.url}'}}\nchecks:\n" + "\n".join(checks) + "\n",
        )
        result = pytester.runpytest_subprocess("-m", "gate_t24h", "-p", "no:cacheprovider")
    assert result.ret == 11, result.stdout.str()
    folder = pytester.path / "reports/out/shop/t24h"
    for name in ("scorecard.html", "executive.html"):
        shot = f"xss-target-{name.replace('.html', '')}.png"
        page = open_uninjected(browser, folder / name, shot)
        if name == "scorecard.html":
            text = page.inner_text("body")
            assert PAYLOADS[0] in text  # the response body, shown as text
            assert "X-Evil" in text
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    assert "<script>" not in summary
