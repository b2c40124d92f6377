"""Choosing which hooks a decision fires, and running them (or, in dark mode, not).

Each hook type is one module with a runner ``(hook, payload, env, base_dir) -> ActionResult``,
registered in ``RUNNERS`` by type; modules are imported on first use. Adding a hook type is
one module, one spec model and one line here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..decision import Verdict
from .result import ActionResult


class HookSpec(Protocol):
    """What the round needs of a hook declared in the spec."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def on(self) -> Sequence[str]: ...


class Runner(Protocol):
    def __call__(
        self, hook: Any, payload: dict[str, Any], env: dict[str, str], *, base_dir: Path
    ) -> ActionResult: ...


#: hook type -> (module of this package, runner function)
RUNNERS: dict[str, tuple[str, str]] = {
    "command": ("command", "run_command"),
}


@functools.cache
def runner_for(hook_type: str) -> Runner:
    where = RUNNERS.get(hook_type)
    if where is None:
        raise KeyError(f"no runner for hook type {hook_type!r}; known: {', '.join(RUNNERS)}")
    module = importlib.import_module(f"{__package__}.{where[0]}")
    runner: Runner = getattr(module, where[1])
    return runner


def plan_actions(hooks: Sequence[HookSpec], verdict: Verdict) -> list[HookSpec]:
    """The hooks that this verdict selects, in spec order."""
    return [hook for hook in hooks if verdict.value in hook.on]


def run_actions(
    hooks: Sequence[HookSpec],
    payload: dict[str, Any],
    env: dict[str, str],
    *,
    dark: bool,
    base_dir: Path,
) -> list[ActionResult]:
    """Run each hook in turn; in dark mode report what would fire and run nothing."""
    results: list[ActionResult] = []
    for hook in hooks:
        if dark:
            results.append(ActionResult(name=hook.name, type=hook.type, fired=False, ok=True))
            continue
        try:
            runner = runner_for(hook.type)
        except KeyError as err:
            results.append(
                ActionResult(name=hook.name, type=hook.type, fired=False, ok=False, error=str(err))
            )
            continue
        results.append(runner(hook, payload, env, base_dir=base_dir))
    return results
