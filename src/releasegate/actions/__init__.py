"""Actions carried out on a decision: rollback and advance hooks. One module per kind."""

from __future__ import annotations

from .base import RUNNERS, plan_actions, run_actions
from .result import ActionResult

__all__ = ["RUNNERS", "ActionResult", "plan_actions", "run_actions"]
