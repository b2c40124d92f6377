"""Reports rendered from a decision record: the readiness scorecard (HTML, for engineers), the
executive decision report (HTML, one printed page) and a Markdown summary (CI job summary or
pull-request comment). Templates are Jinja, overridable from a user's folder; charts are
inline SVG; no report needs JavaScript or the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ReportError
from .render import (
    OUTPUTS,
    ReportView,
    build_view,
    environment,
    render_template,
    write_reports,
)

__all__ = [
    "OUTPUTS",
    "ReportError",
    "ReportView",
    "build_view",
    "environment",
    "render_executive",
    "render_scorecard",
    "render_summary",
    "render_template",
    "write_reports",
]


def render_scorecard(
    record: dict[str, Any], template_dirs: Sequence[Path] = (), history_dir: Path | None = None
) -> str:
    """The readiness scorecard (HTML) of ``record``."""
    return render_template("scorecard.html.j2", build_view(record, history_dir), template_dirs)


def render_executive(
    record: dict[str, Any], template_dirs: Sequence[Path] = (), history_dir: Path | None = None
) -> str:
    """The one-page executive decision report (HTML) of ``record``."""
    return render_template("executive.html.j2", build_view(record, history_dir), template_dirs)


def render_summary(
    record: dict[str, Any], template_dirs: Sequence[Path] = (), history_dir: Path | None = None
) -> str:
    """The Markdown summary of ``record``, for a CI job summary or a pull-request comment."""
    return render_template("summary.md.j2", build_view(record, history_dir), template_dirs)
