"""What a suite would run: its Python gate checks, found by a pytest collection.

``releasegate validate`` lists the spec's checks from the spec itself; the Python checks in
``checks/`` (and wherever the suite's ``testpaths`` point) need pytest to find them.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .outcomes import check_info, is_gate_item, is_spec_check, item_phases
from .phases import Phase


@dataclass(frozen=True, slots=True)
class PythonCheck:
    nodeid: str
    name: str
    severity: str
    category: str
    phases: tuple[Phase, ...]


class _Inventory:
    def __init__(self) -> None:
        self.checks: list[PythonCheck] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            if is_gate_item(item) and not is_spec_check(item):
                info = check_info(item)
                self.checks.append(
                    PythonCheck(
                        item.nodeid,
                        info.name,
                        info.severity.value,
                        info.category,
                        item_phases(item),
                    )
                )


def python_checks(spec: Path) -> tuple[list[PythonCheck], str]:
    """Collect (never run) the suite next to ``spec``; returns its Python gate checks and,
    when the collection failed, the last lines pytest printed."""
    inventory = _Inventory()
    output = io.StringIO()
    previous = Path.cwd()
    args = [
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rg-spec",
        str(spec.resolve()),
    ]
    try:
        os.chdir(spec.resolve().parent)  # the suite's pytest.ini and testpaths apply
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = pytest.main(args, plugins=[inventory])
    finally:
        os.chdir(previous)
    problem = ""
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        lines = output.getvalue().strip().splitlines()
        errors = [ln for ln in lines if ln.startswith(("ERROR", "E   "))][:10]
        problem = "\n".join([*errors, lines[-1]] if lines else errors)
    return inventory.checks, problem


WORKER_OUTPUT_KEY = "releasegate_inventory"


class InventoryTracker:
    """What a gate run's phase expects of the Python checks, seen before pytest selects.

    Registered in every process that collects (the only process, or each xdist worker). Its
    ``pytest_collection_modifyitems`` wraps everyone else's (it is the outermost wrapper): it
    notes every gate check of the phase before ``-k``/``-m``/``--deselect``, ``--lf`` or a
    conftest drop any, and afterwards which ones went without ``pytest_deselected`` (dropped
    silently). ``pytest_deselected`` notes why one was deselected. On a worker all of it goes
    to the controller in ``workeroutput``.
    """

    def __init__(self, config: pytest.Config, phase: Phase) -> None:
        self.config = config
        self.phase = phase
        self.expected: dict[str, dict[str, object]] = {}
        self.deselected: dict[str, str] = {}
        self.dropped: dict[str, str] = {}

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Iterator[None]:
        before = {}
        for item in items:
            if self.phase in item_phases(item):
                before[item.nodeid] = item
                if not is_spec_check(item):
                    self.expected[item.nodeid] = check_info(item).to_dict()
        self._publish()
        yield
        kept = {item.nodeid for item in items}
        for nodeid, item in before.items():
            key = check_info(item).key
            if nodeid not in kept and key not in self.deselected:
                self.dropped[key] = (
                    "not run: dropped from the run without being deselected (a plugin or"
                    " conftest pytest_collection_modifyitems removed it)"
                )
        self._publish()

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            if self.phase in item_phases(item):
                key = check_info(item).key
                self.deselected[key] = (
                    "not run: deselected by this run's selection (-k, -m, --deselect, --lf);"
                    " a partial run says so with --rg-partial"
                )
        self._publish()

    def _publish(self) -> None:
        output = getattr(self.config, "workeroutput", None)
        if output is not None:
            output[WORKER_OUTPUT_KEY] = {
                "expected": self.expected,
                "deselected": self.deselected,
                "dropped": self.dropped,
            }
