"""Spec checks are real pytest tests: ids, selection, xdist, concise failures, evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from releasegate.demo import DemoTarget


@pytest.fixture(scope="module")
def target() -> Iterator[DemoTarget]:
    with DemoTarget() as demo:
        yield demo


def spec(url: str) -> str:
    return f"""\
version: 1
deployment: {{name: shop, version: "1.4.2"}}
target: {{base_url: "{url}"}}
checks:
  - {{name: liveness, type: liveness, phases: [t0h, t24h], severity: critical}}
  - {{name: version, type: version, phases: [t24h], severity: critical, category: release}}
  - name: product-one
    type: http
    phases: [t24h]
    category: functionality
    request: {{path: /api/products/1, headers: {{Authorization: "Bearer sk-live-0123456789"}}}}
    expect: {{status: 200, json: {{id: 1}}, jsonpath: {{"$.sku": "NOPE"}}}}
  - name: metrics
    type: http
    phases: [t48h]
    request: {{path: /metrics}}
    expect: {{body_regex: demo_http_requests_total}}
"""


def decision(pytester: pytest.Pytester, phase: str = "t24h") -> dict[str, Any]:
    path = pytester.path / "reports/out/shop" / phase / "decision.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_spec_checks_are_collected_with_their_names(
    pytester: pytest.Pytester, target: DemoTarget
) -> None:
    pytester.makefile(".yaml", releasegate=spec(target.url))
    result = pytester.runpytest("--collect-only", "-q", "-m", "gate_t24h")
    result.stdout.fnmatch_lines(
        [
            "releasegate.yaml::check[[]liveness[]]",
            "releasegate.yaml::check[[]version[]]",
            "releasegate.yaml::check[[]product-one[]]",
            "3/4 tests collected (1 deselected)*",
        ]
    )


def test_a_failing_spec_check_shows_its_reason_not_a_traceback(
    pytester: pytest.Pytester, target: DemoTarget
) -> None:
    pytester.makefile(".yaml", releasegate=spec(target.url))
    result = pytester.runpytest("-m", "gate_t24h")
    result.assert_outcomes(passed=2, failed=1, deselected=1)
    assert result.ret == 10  # 6 of 8 weight passed (the failed check is major): 7.5, CONDITIONAL GO
    result.stdout.fnmatch_lines(
        ["product-one: FAILED: GET /api/products/1: jsonpath $.sku is * expected 'NOPE'*"]
    )
    assert "spec_checks.py" not in result.stdout.str()
    record = decision(pytester)
    product = next(o for o in record["outcomes"] if o["check"]["name"] == "product-one")
    evidence = product["evidence"][0]
    assert evidence["measured"] == "GET /api/products/1"
    assert evidence["details"]["response"]["status"] == 200
    assert "sk-live-0123456789" not in json.dumps(record)


def test_kind_markers_and_k_select_spec_checks(
    pytester: pytest.Pytester, target: DemoTarget
) -> None:
    pytester.makefile(".yaml", releasegate=spec(target.url))
    result = pytester.runpytest("-m", "gate_t24h and smoke", "-k", "liveness or version")
    result.assert_outcomes(passed=2, deselected=2)
    # A real run that leaves checks of its phase out cannot decide GO.
    assert result.ret == 12
    statuses = {o["check"]["name"]: o["status"] for o in decision(pytester)["outcomes"]}
    assert statuses == {"liveness": "passed", "version": "passed", "product-one": "not_run"}
    # Asked for as a partial run: the decision on what ran, shown, never recorded.
    path = pytester.path / "reports/out/shop/t24h/decision.json"
    path.unlink()
    result = pytester.runpytest(
        "-m", "gate_t24h and smoke", "-k", "liveness or version", "--rg-partial"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*partial run*", "would decide: GO*", "*1 check(s) of the phase left out*"]
    )
    assert not path.exists()


def test_spec_checks_under_xdist(pytester: pytest.Pytester, target: DemoTarget) -> None:
    pytester.makefile(".yaml", releasegate=spec(target.url))
    result = pytester.runpytest_subprocess("-m", "gate_t24h", "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == 10
    record = decision(pytester)
    assert record["summary"]["expected_checks"] == 3
    assert len(record["outcomes"]) == 3


def test_retry_until_waits_for_eventual_consistency(
    pytester: pytest.Pytester, target: DemoTarget
) -> None:
    target.set_faults({"wrong_version": "1.4.1"})
    pytester.makefile(
        ".yaml",
        releasegate=f"""\
version: 1
deployment: {{name: shop, version: "1.4.2"}}
target: {{base_url: "{target.url}"}}
checks:
  - name: version-settles
    type: version
    phases: [t24h]
    retry: {{deadline_s: 1.0, backoff_s: 0.1}}
""",
    )
    try:
        result = pytester.runpytest("-m", "gate_t24h")
    finally:
        target.clear_faults()
    assert result.ret == 11
    evidence = decision(pytester)["outcomes"][0]["evidence"][0]
    assert evidence["value"]["attempts"] > 1
    assert "after" in evidence["reason"]
