"""Benchmark the reports: render a record of N checks, then open the scorecard in Chromium.

    .venv/bin/python bench/bench_report.py [--checks 10000] [--runs 3]

Prints a Markdown table: render time (median of the runs, write_reports: redaction, view,
three templates, files), file sizes, and the scorecard's time to the ``load`` event in headless
Chromium (Debian's ``chromium``; median of the runs, each in a fresh page), plus the time a
status filter takes to apply. The record is the tests' synthetic one: every check carries an
HTTP request and response excerpt as evidence, about 1.5% fail and 0.5% error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the record builder the report tests use

from _report_records import make_record, many_outcomes  # noqa: E402
from releasegate.report import write_reports  # noqa: E402
from releasegate.report.render import build_view, render_template  # noqa: E402


def timed(fn: Any, runs: int) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of ``runs`` calls (CPU time is steadier on a busy machine)."""
    walls, cpus, result = [], [], None
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def browser_times(path: Path, runs: int, executable: str) -> tuple[float, float, float]:
    from playwright.sync_api import sync_playwright

    loads, parsed, filters = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(path.as_uri(), wait_until="load")
            nav = json.loads(
                page.evaluate(
                    "JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())"
                )
            )
            loads.append(nav["loadEventEnd"] / 1000)
            parsed.append(nav["domInteractive"] / 1000)
            started = time.perf_counter()
            page.click("label[for=fs-failed]")
            page.evaluate("document.body.getBoundingClientRect().height")  # force the restyle
            filters.append(time.perf_counter() - started)
            page.close()
        browser.close()
    return statistics.median(loads), statistics.median(parsed), statistics.median(filters)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "report")
    args = parser.parse_args()
    args.out = args.out.resolve()

    record = make_record(many_outcomes(args.checks))
    shutil.rmtree(args.out, ignore_errors=True)
    total, total_cpu, paths = timed(lambda: write_reports(record, args.out), args.runs)
    _, view_cpu, rv = timed(lambda: build_view(record), args.runs)
    _, template_cpu, _ = timed(lambda: render_template("scorecard.html.j2", rv), args.runs)

    rows = [
        ("checks", f"{args.checks:,}"),
        ("render all three reports (write_reports), wall", f"{total:.2f} s"),
        ("render all three reports (write_reports), CPU", f"{total_cpu:.2f} s"),
        ("  of which redaction + view, CPU", f"{view_cpu:.2f} s"),
        ("  of which scorecard template, CPU", f"{template_cpu:.2f} s"),
    ]
    rows += [(f"{p.name} size", f"{p.stat().st_size / 1e6:.2f} MB") for p in paths]
    chromium = shutil.which("chromium")
    if chromium:
        load, parsed, filtered = browser_times(args.out / "scorecard.html", args.runs, chromium)
        rows += [
            ("scorecard: navigation to load event (Chromium)", f"{load:.2f} s"),
            ("  of which parsing (domInteractive)", f"{parsed:.2f} s"),
            ("scorecard: apply the 'failed' filter", f"{filtered:.2f} s"),
        ]
    else:
        rows.append(("Chromium", "not installed: browser figures skipped"))
    print(f"| measure (median of {args.runs}) | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
