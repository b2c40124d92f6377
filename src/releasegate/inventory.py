"""What a suite would run: its Python gate checks, found by a pytest collection.

``releasegate validate`` lists the spec's checks from the spec itself; the Python checks in
``checks/`` (and wherever the suite's ``testpaths`` point) need pytest to find them.
"""

from __future__ import annotations

import contextlib
import io
import os
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
