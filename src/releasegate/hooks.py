"""releasegate's own pytest hooks, so a conftest can react to a decision or an action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .actions import ActionResult
    from .decision import Decision
    from .record import DecisionRecord


@pytest.hookspec(firstresult=True)
def pytest_releasegate_decision(config: pytest.Config, decision: Decision) -> Decision | None:
    """Called on the controller once the gate has decided, before the record is written and
    before any action runs (also in a partial run, which records nothing).

    Return a ``Decision`` to replace it (for example to apply an organisation's own policy),
    or ``None`` to keep it. A replaced decision is recorded as returned, but the record's
    outcomes still give the engine's verdict: ``releasegate report`` and the run's own reports
    show such a record as INCONSISTENT, so that a replacement is never silent.
    """


def pytest_releasegate_action(config: pytest.Config, result: ActionResult) -> None:
    """Called after each hook action ran (or, in dark mode, would have run); the record was
    written before it ran."""


def pytest_releasegate_record(config: pytest.Config, record: DecisionRecord, path: Any) -> None:
    """Called after the decision record was written to ``path`` (and rewritten with what the
    hooks did); never for a partial run or a run whose record could not be written."""
