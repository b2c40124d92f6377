"""Actions carried out on a decision: rollback and advance hooks. One module per kind."""

from __future__ import annotations

from .base import ActionResult, plan_actions, run_actions

__all__ = ["ActionResult", "plan_actions", "run_actions"]
