"""Rendering: one cached Jinja environment, the view handed to templates, and the writers.

HTML templates are autoescaped; the Markdown template escapes every expression through the
environment's ``finalize`` (Markdown has no autoescape of its own, and a PR comment renders
inline HTML), so no template has to remember to escape.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from jinja2.nodes import EvalContext
from markupsafe import Markup

from ..errors import ReportError
from ..redact import redact_value
from . import assess, charts, history, view
from .verify import RecordCheck, shown_record, verify_record

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "releasegate"
OUTPUTS: dict[str, str] = {
    "scorecard.html.j2": "scorecard.html",
    "executive.html.j2": "executive.html",
    "summary.md.j2": "summary.md",
}

_SPACE = re.compile(r"\s+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


@dataclass(frozen=True, slots=True)
class ReportView:
    """Everything a template gets, besides the (redacted) record itself.

    ``record`` is the record as it may be shown (``verify.shown_record``): its ``decision`` is
    INCONSISTENT when the stored verdict disagrees with the outcomes; ``integrity`` then says
    why (the stored and the recomputed verdict), and is None for a consistent record.
    """

    record: dict[str, Any]
    check: RecordCheck
    integrity: view.Integrity | None
    notes: tuple[str, ...]
    verdict_css: str
    scoring: dict[str, float]
    categories: tuple[view.CategoryRow, ...]
    checks: tuple[view.CheckRow, ...]
    counts: dict[str, int]
    comparisons: tuple[view.Comparison, ...]
    category_chart: charts.BarChart
    threshold_chart: charts.BarChart
    timeline_chart: charts.LineChart
    phases: tuple[history.PhaseResult, ...]
    runs: tuple[history.RunEntry, ...]
    metrics: tuple[assess.Metric, ...]
    risks: tuple[assess.Risk, ...]
    recommendation: assess.Recommendation
    rollback: assess.RollbackPlan
    #: The failed SLO check whose sparkline the executive report shows, if any.
    worst_slo: view.SloFocus | None = None
    generated_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )


def md_escape(value: Any) -> str:
    """Text that Markdown (GitHub's included) shows as is: no markup, no HTML, no mentions."""
    text = _SPACE.sub(" ", str(value))  # a line break would end a table row
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("@", "&#64;")


@jinja2.pass_eval_context
def _finalize(ctx: EvalContext, value: Any) -> Any:
    if value is None:
        return ""
    if ctx.autoescape or isinstance(value, Markup):
        return value
    return md_escape(value)


def _when(value: Any, seconds: bool = True) -> str:
    """An ISO timestamp as UTC; without seconds where space is short."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M")


def _duration(value: Any) -> str:
    seconds = float(value or 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@functools.lru_cache(maxsize=8)
def environment(template_dirs: tuple[str, ...] = ()) -> jinja2.Environment:
    """The environment for these user template folders; built once per distinct tuple.

    The user's folders come first, so a template of the same name replaces ours; ours stay
    reachable as ``releasegate/<name>`` so that an override can extend the original.
    """
    ours = jinja2.FileSystemLoader(TEMPLATES)
    loader = jinja2.ChoiceLoader(
        [
            *(jinja2.FileSystemLoader(d) for d in template_dirs),
            ours,
            jinja2.PrefixLoader({PREFIX: ours}),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "svg", "html.j2", "svg.j2", "css.j2"),
            disabled_extensions=("md.j2", "md"),
            default_for_string=True,
            default=True,
        ),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Compiling the templates costs a fifth of a second per run; Jinja keeps the compiled
        # code in a per-user folder under the temp dir and checks it against the sources.
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
    )
    env.filters.update(
        num=lambda v: charts.num(float(v or 0.0)),
        when=_when,
        duration=_duration,
        label=assess.status_label,
        verdict_css=lambda v: view.VERDICT_CSS.get(str(v), "inc"),
        md=md_escape,
    )
    return env


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a report is built.

    Rendering allocates hundreds of thousands of short-lived containers next to a record that
    holds millions of objects, and each full collection walks that record again: a third of
    the time at 10,000 checks. Nothing built here needs collecting before the end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scoring(record: dict[str, Any]) -> dict[str, float]:
    raw = record.get("scoring")
    if not isinstance(raw, dict):
        return {}
    return {k: float(v) for k, v in raw.items() if k in ("go", "conditional") and _is_num(v)}


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _complete(data: dict[str, Any]) -> dict[str, Any]:
    """Fill what the templates read, so that a sparse or older record still renders."""
    given = data.get("summary")
    summary: dict[str, Any] = given if isinstance(given, dict) else {}
    data["summary"] = {
        "criteria_met": 0,
        "criteria_total": 0,
        "reasons": [],
        "blockers": [],
        "categories": [],
        **summary,
    }
    if not isinstance(data.get("versions"), dict):
        data["versions"] = {}
    for key in ("deployment", "phase", "phase_description", "mode", "decision", "target"):
        data.setdefault(key, "")
    data.setdefault("score", 0.0)
    return data


def build_view(
    record: dict[str, Any],
    history_dir: Path | None = None,
    *,
    redacted: bool = False,
    check: RecordCheck | None = None,
) -> ReportView:
    """Verify the record, redact it (again: defence in depth) and work out what the reports show.

    ``history_dir`` is the folder the record came from; in the standard layout its
    deployment folder holds the other phases' records and the run log. ``redacted`` says
    the caller built the record with ``DecisionRecord.to_dict`` (which redacts) a moment ago.
    ``check`` is ``verify_record(record)`` when the caller has it already.
    """
    with _collector_paused():
        return _build_view(record, history_dir, redacted, check or verify_record(record))


def _build_view(
    record: dict[str, Any], history_dir: Path | None, redacted: bool, check: RecordCheck
) -> ReportView:
    # The recomputed summary carries outcome text, so it is redacted with the rest.
    shown = shown_record(record, check)
    data: dict[str, Any] = _complete(shown if redacted else redact_value(shown))
    summary = data["summary"]
    outcomes = [o for o in data.get("outcomes") or () if isinstance(o, dict)]
    cat_ids = view.category_ids(summary, outcomes)
    rows = view.check_rows(outcomes, cat_ids)
    categories = view.category_rows(summary, rows, cat_ids)
    comparisons = tuple(r.comparison for r in rows if r.comparison is not None)
    scoring = _scoring(data)
    deployment = history.deployment_dir(data, history_dir) if history_dir else None
    phases = history.phase_results(data, deployment)
    runs = history.read_runs(deployment)
    counts = {status: 0 for status in view.STATUS_ORDER}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    integrity = view.integrity(check)
    return ReportView(
        record=data,
        check=check,
        integrity=integrity,
        notes=view.decision_notes(data),
        verdict_css=view.VERDICT_CSS.get(str(data.get("decision")), "inc"),
        scoring=scoring,
        categories=categories,
        checks=rows,
        counts=counts,
        comparisons=comparisons,
        category_chart=charts.category_chart(categories, scoring),
        threshold_chart=charts.threshold_chart(comparisons),
        timeline_chart=charts.timeline_chart(phases, runs, scoring),
        phases=phases,
        runs=runs,
        metrics=assess.key_metrics(data, rows, comparisons),
        risks=assess.risks(data, rows, integrity),
        recommendation=assess.recommendation(data, rows, integrity),
        rollback=assess.rollback_plan(data, rows),
        worst_slo=view.worst_slo(rows),
    )


def render_template(name: str, rv: ReportView, template_dirs: Sequence[Path] = ()) -> str:
    """Render template ``name`` (ours or the user's) for the view ``rv``."""
    env = environment(tuple(str(Path(d)) for d in template_dirs))
    try:
        with _collector_paused():
            return env.get_template(name).render(rg=rv, record=rv.record)
    except jinja2.TemplateError as err:
        where = (
            f" ({err.filename}:{err.lineno})" if isinstance(err, jinja2.TemplateSyntaxError) else ""
        )
        raise ReportError(f"cannot render {name}{where}: {err}") from err


def write_reports(
    record: dict[str, Any],
    out_dir: Path,
    template_dirs: Sequence[Path] = (),
    history_dir: Path | None = None,
    *,
    redacted: bool = False,
    check: RecordCheck | None = None,
) -> list[Path]:
    """Render the scorecard, the executive report and the Markdown summary into ``out_dir``.

    ``history_dir`` (default ``out_dir``) is where the record lives in the standard layout;
    this run is added to the deployment's run log there, with the verdict the reports show.
    ``redacted`` and ``check``: see ``build_view``. Returns the paths written.
    """
    for folder in template_dirs:
        if not Path(folder).is_dir():
            raise ReportError(
                f"template folder {folder} does not exist: create it or fix --rg-templates"
                " / releasegate_templates / --templates"
            )
    source = history_dir if history_dir is not None else out_dir
    if check is None:
        with _collector_paused():
            check = verify_record(record)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        history.log_run(shown_record(record, check), history.deployment_dir(record, source))
    except OSError as err:
        raise ReportError(f"cannot write reports to {out_dir}: {err}") from err
    rv = build_view(record, source, redacted=redacted, check=check)
    written: list[Path] = []
    for template, filename in OUTPUTS.items():
        text = render_template(template, rv, template_dirs)
        path = out_dir / filename
        tmp = path.with_name(f".{filename}.tmp{os.getpid()}")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            raise ReportError(f"cannot write {path}: {err}") from err
        written.append(path)
    return written
