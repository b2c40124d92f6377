"""The spec loader: interpolation, validation errors that tell the fix, the published schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from releasegate.errors import SpecError
from releasegate.loader import interpolate, json_schema, load_spec
from releasegate.model import Mode
from releasegate.phases import Phase

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = "version: 1\ndeployment: {name: shop}\ntarget: {base_url: 'http://127.0.0.1:8080'}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "releasegate.yaml"
    path.write_text(text)
    return path


def test_minimal_spec_has_sensible_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL)).spec
    assert spec.scoring.go == 9.0
    assert spec.scoring.conditional == 7.5
    assert spec.mode_for(Phase.T0H) is Mode.DARK
    assert spec.mode_for(Phase.T24H) is Mode.ENFORCE
    assert spec.checks == []


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${HOST}", {"HOST": "a"}, "a"),
        ("${HOST:-b}", {}, "b"),
        ("${HOST:-b}", {"HOST": ""}, "b"),
        ("x-${A}-${B:-2}", {"A": "1"}, "x-1-2"),
        ("$${NOT}", {}, "${NOT}"),
        ("plain", {}, "plain"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env, "k", Path("s.yaml")) == expected


def test_missing_variable_names_the_key_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("http://127.0.0.1:8080", "${TARGET_URL}"))
    with pytest.raises(SpecError) as err:
        load_spec(path, env={})
    assert str(err.value) == (
        f"{path}: target.base_url: environment variable TARGET_URL is not set."
        " Fix: export TARGET_URL=... or write ${TARGET_URL:-default}"
    )


def test_secret_variables_are_registered_for_redaction(tmp_path: Path) -> None:
    from releasegate.redact import redact_text

    path = write(
        tmp_path,
        MINIMAL + "hooks:\n  - {name: h, argv: [echo, '${DEPLOY_TOKEN}']}\n",
    )
    load_spec(path, env={"DEPLOY_TOKEN": "tok-123456789"})
    assert redact_text("sent tok-123456789 to x") == "sent *** to x"


@pytest.mark.parametrize(
    ("extra", "messages"),
    [
        (
            "checks:\n  - {name: a, type: http, phases: [t24h], request: {path: /},"
            " expect: {staus: 200}}\n",
            [":5: checks[0].expect.staus: unknown key 'staus'. Did you mean 'status'?"],
        ),
        (
            # A key that exists elsewhere in the spec is not suggested as its own fix.
            "checks: []\nscoring: {go: 9, phases: [t24h]}\n",
            [
                "scoring.phases: unknown key 'phases'. It is not a key here (keys here:"
                " conditional, go)"
            ],
        ),
        (
            # Suggestions come from the keys of this check type, not the whole spec.
            "checks:\n  - {name: a, type: liveness, phases: [t24h], timeout_s: 3,"
            " severty: major}\n",
            [
                "checks[0].timeout_s: unknown key 'timeout_s'. It is not a key here",
                "checks[0].severty: unknown key 'severty'. Did you mean 'severity'?",
            ],
        ),
        (
            "databases:\n  main: {url: 'sqlite:///x.db', shema: public}\n",
            ["databases.main.shema: unknown key 'shema'. Did you mean 'schema'?"],
        ),
        (
            "checks:\n  - {name: a, type: htp, phases: [t24h]}\n",
            [":5: checks[0].type: 'htp' is not a check type. Did you mean 'http'?"],
        ),
        (
            "checks:\n  - {name: a, type: liveness, phases: [t25h]}\n",
            ["checks[0].phases[0]: Input should be 't0h', 't8h', 't16h', 't24h', 't48h' or 't72h'"],
        ),
        (
            "checks:\n  - {name: a, type: liveness, phases: [t24h]}\n"
            "  - {name: a, type: liveness, phases: [t24h]}\n",
            ["checks[1].name 'a' is used twice"],
        ),
        (
            "checks:\n  - {name: a, type: liveness, phases: [t24h], severity: critcal}\n",
            [
                "checks[0].severity: Input should be 'critical', 'major' or 'minor'",
                "(got \"critcal\"). Did you mean 'critical'?",
            ],
        ),
        ("scoring: {go: 7, conditional: 8}\n", ["conditional (8.0) must not be above go (7.0)"]),
        ("hooks:\n  - {name: h, argv: []}\n", ["hooks[0].argv: List should have at least 1 item"]),
        ("checks:\n  - {name: a, phases: [t24h]}\n", ["every check needs a 'type'"]),
    ],
)
def test_validation_errors_name_file_line_key_and_fix(
    tmp_path: Path, extra: str, messages: list[str]
) -> None:
    path = write(tmp_path, MINIMAL + extra)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert text.startswith(f"{path}: the gate spec is not valid")
    for message in messages:
        assert message in text


def test_yaml_syntax_error_points_at_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "checks: [\n  {name: a\n")
    with pytest.raises(SpecError, match=r"releasegate.yaml:\d+:\d+: not valid YAML"):
        load_spec(path)


def test_spec_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write(tmp_path, "- a\n- b\n"))


def test_hook_key_on_is_not_read_as_a_boolean(tmp_path: Path) -> None:
    spec = load_spec(
        write(tmp_path, MINIMAL + "hooks:\n  - name: h\n    argv: [x]\n    on: [NO-GO]\n")
    ).spec
    assert spec.hooks[0].on == ["NO-GO"]


def test_the_demo_suite_spec_is_valid() -> None:
    spec = load_spec(ROOT / "releasegate.yaml", env={}).spec
    assert spec.target.is_demo
    assert {c.type for c in spec.checks} >= {
        "liveness",
        "readiness",
        "version",
        "http",
        "bad_input",
    }


def test_published_json_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "spec.schema.json").read_text())
    assert published == json_schema(), "run: releasegate schema -o docs/spec.schema.json"


def test_validate_command_prints_checks_per_phase() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "releasegate.cli", "validate", str(ROOT / "releasegate.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "releasegate.yaml: valid. deployment demo-shop" in done.stdout
    assert "t0h (dark merge" in done.stdout
    assert "  - deployed-version: version, critical, release" in done.stdout
    # The Python checks of checks/ too, per phase, found by collecting (not running) them.
    assert "t24h (feature flag activation: canary enforcement) - mode enforce," in done.stdout
    assert (
        "  - test_health_answers_json: python (checks/test_storefront.py::test_health_answers_json)"
        in done.stdout
    )


def test_validate_says_when_python_checks_cannot_be_collected(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    (tmp_path / "test_broken.py").write_text("import nonexistent_module_xyz\n")
    done = subprocess.run(
        [sys.executable, "-m", "releasegate.cli", "validate", str(tmp_path / "releasegate.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "the Python checks could not all be collected" in done.stdout
    assert "nonexistent_module_xyz" in done.stdout


def test_validate_command_reports_a_bad_spec_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "scoring: {goo: 9}\n")
    done = subprocess.run(
        [sys.executable, "-m", "releasegate.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "scoring.goo: unknown key 'goo'. Did you mean 'go'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "target: {base_url: 'http://127.0.0.1:9'}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}:4:1:" in str(info.value)
    assert "key 'target' is given twice (first on line 3)" in str(info.value)
