"""Spec checks as real pytest test functions, parametrized from the spec.

The spec file itself is collected as a module whose one test function, ``check``, is
parametrized with the spec's checks (the pytest-testinfra pattern), so ``-k``, ``-m``, ``-n``,
reruns and fixtures work on spec checks like on any test.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pytest

from .spec import Spec


class SpecFile(pytest.Module):
    """``releasegate.yaml`` seen as a test module: ``releasegate.yaml::check[<name>]``."""

    spec: Spec

    def _getobj(self) -> ModuleType:
        return importlib.import_module("releasegate.spec_checks")

    def istestfunction(self, obj: object, name: str) -> bool:
        return name == "check" and callable(obj)

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        # A spec without checks has nothing to collect (not an empty-parameter-set item).
        if not self.spec.checks:
            return []
        return super().collect()


def parametrize_spec_checks(metafunc: pytest.Metafunc, spec: Spec) -> None:
    params: list[Any] = []
    for check in spec.checks:
        marks = [getattr(pytest.mark, phase.marker) for phase in check.phases]
        marks.append(getattr(pytest.mark, check.kind))
        if check.skip_if is not None and check.skip_if.condition:
            # A declared skip: pytest skips it by marker, and the outcome is SKIPPED.
            marks.append(pytest.mark.skip(reason=f"skip_if: {check.skip_if.reason}"))
        params.append(pytest.param(check, id=check.name, marks=marks))
    metafunc.parametrize("releasegate_check", params)
