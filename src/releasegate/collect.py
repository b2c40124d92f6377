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


PROMETHEUS_TYPES = ("prometheus", "burn_rate")


def demo_prometheus_absent(spec: Spec) -> str | None:
    """Why the spec's Prometheus checks cannot run, when the spec asked for the demo's own
    Prometheus (``slo.prometheus.url: demo://``) and none is installed; None otherwise."""
    source = spec.slo.prometheus
    if source is None or source.url != "demo://":
        return None
    from .demo.prometheus import prometheus_binary

    if prometheus_binary() is not None:
        return None
    return (
        "slo.prometheus.url is demo:// and Prometheus is not installed (Debian: apt-get install"
        " prometheus); the scraped /metrics checks measure the same SLOs"
    )


def parametrize_spec_checks(metafunc: pytest.Metafunc, spec: Spec) -> None:
    params: list[Any] = []
    absent = demo_prometheus_absent(spec)
    for check in spec.checks:
        marks = [getattr(pytest.mark, phase.marker) for phase in check.phases]
        marks.append(getattr(pytest.mark, check.kind))
        if check.skip_if is not None and check.skip_if.condition:
            # A declared skip: pytest skips it by marker, and the outcome is SKIPPED.
            marks.append(pytest.mark.skip(reason=f"skip_if: {check.skip_if.reason}"))
        elif absent and getattr(check, "type", "") in PROMETHEUS_TYPES:
            # Declared by the spec too: demo:// is the demo's optional Prometheus.
            marks.append(pytest.mark.skip(reason=absent))
        params.append(pytest.param(check, id=check.name, marks=marks))
    metafunc.parametrize("releasegate_check", params)
