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
        f"{path}:3: target.base_url: environment variable TARGET_URL is not set."
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
            "checks:\n  - {name: a, type: liveness, phases: [t24h], verify_tls: false,"
            " timeout_s: 3, severty: major}\n",
            [
                "checks[0].verify_tls: unknown key 'verify_tls'. It is not a key here",
                "checks[0].timeout_s: unknown key 'timeout_s'. Did you mean 'timeout'?",
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


# A loader that cannot be crashed: whatever the bytes, one SpecError that says where and why.

HTTP = (
    "checks:\n  - {{name: a, type: http, phases: [t24h], request: {request}, expect: {expect}}}\n"
)


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "releasegate.yaml"
    path.write_bytes(data)
    return path


def spec_error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(SpecError) as err:
        load_spec(path, env={} if env is None else env)
    return str(err.value)


def test_a_spec_over_the_size_limit_is_refused_naming_its_size(tmp_path: Path) -> None:
    from releasegate.loader import MAX_SPEC_BYTES

    path = write_bytes(tmp_path, MINIMAL.encode() + b"#" * MAX_SPEC_BYTES)
    size = path.stat().st_size
    assert f"the gate spec is {size} bytes; the limit is {MAX_SPEC_BYTES}" in spec_error(path)


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"\xff\xfe" + "version: 1\n".encode("utf-16-le"), 0),
        (MINIMAL.encode() + b"x: \x80\n", len(MINIMAL) + 3),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 0),
    ],
)
def test_a_spec_that_is_not_utf8_names_the_byte_offset(
    tmp_path: Path, data: bytes, offset: int
) -> None:
    text = spec_error(write_bytes(tmp_path, data))
    assert "is not UTF-8 text" in text
    assert f"at offset {offset}" in text
    assert "Fix: save the file as UTF-8" in text


def test_a_utf8_bom_is_dropped(tmp_path: Path) -> None:
    spec = load_spec(write_bytes(tmp_path, b"\xef\xbb\xbf" + MINIMAL.encode()), env={}).spec
    assert spec.deployment.name == "shop"


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    text = spec_error(write(tmp_path, MINIMAL + "description: &a [*a]\n"))
    assert ":4:" in text
    assert "the alias *a is inside the node &a it refers to" in text


def test_an_alias_expansion_bomb_is_refused_quickly(tmp_path: Path) -> None:
    import time

    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = write(tmp_path, MINIMAL + "\n".join(lines) + "\n")
    started = time.monotonic()
    text = spec_error(path)
    assert time.monotonic() - started < 2
    assert "with its aliases expanded, the spec has more than 100000 values" in text


def test_too_many_aliases_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n")
    assert "more than 100 aliases" in spec_error(path)


@pytest.mark.parametrize(
    "nested",
    [
        "x:\n" + "".join("  " * i + "-\n" for i in range(1, 60)),
        "a: &a " + "[" * 30 + "]" * 30 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
        "x: " + "[" * 5000 + "]" * 5000 + "\n",
    ],
)
def test_deep_nesting_is_refused(tmp_path: Path, nested: str) -> None:
    text = spec_error(write(tmp_path, MINIMAL + nested))
    assert "nest" in text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9" * 5000, "scoring.go: the integer 99999"),
        ("123456789012345678901", "scoring.go: the integer 123456789012345678901 has 21 digits"),
        ("0x" + "f" * 40, "has 40 digits; at most 18"),
        (".inf", "scoring.go: .inf is not a finite number"),
        ("-.inf", "scoring.go: -.inf is not a finite number"),
        (".nan", "scoring.go: .nan is not a finite number"),
        ("1.0e+999", "scoring.go: 1.0e+999 is not a finite number"),
    ],
)
def test_huge_and_non_finite_numbers_are_refused_with_the_key_path(
    tmp_path: Path, value: str, message: str
) -> None:
    text = spec_error(write(tmp_path, MINIMAL + f"scoring: {{go: {value}}}\n"))
    assert f"{tmp_path / 'releasegate.yaml'}:4:" in text
    assert message in text


def test_an_impossible_date_is_a_spec_error(tmp_path: Path) -> None:
    text = spec_error(write(tmp_path, MINIMAL.replace("name: shop", "name: 2024-13-45")))
    assert "deployment.name: 2024-13-45 is not a valid date" in text


def test_a_control_character_is_a_spec_error_with_its_line(tmp_path: Path) -> None:
    text = spec_error(write_bytes(tmp_path, MINIMAL.encode() + b"x: \x00\n"))
    assert "releasegate.yaml:4: not valid YAML" in text


@pytest.mark.parametrize("reference", ["${MY VAR}", "${}", "${TARGET-URL}", "${UNCLOSED"])
def test_a_malformed_variable_reference_is_an_error_not_literal_text(
    tmp_path: Path, reference: str
) -> None:
    path = write(tmp_path, MINIMAL.replace("http://127.0.0.1:8080", reference))
    text = spec_error(path, env={"MY VAR": "http://x", "MY": "http://x"})
    assert f"{path}:3: target.base_url: {reference!r} is not a variable reference" in text


def test_an_unset_variable_names_the_variable_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + "checks:\n  - {name: a, type: liveness, phases: [t24h],\n"
        "     description: '${WHO_KNOWS}'}\n",
    )
    text = spec_error(path)
    assert f"{path}:6: checks[0].description: environment variable WHO_KNOWS is not set" in text


@pytest.mark.parametrize(
    ("request_", "expect", "message"),
    [
        ("{path: /}", "{body_regex: '([a-'}", "'([a-' is not a valid regular expression:"),
        ("{path: /}", "{jsonpath: {'$..[': 1}}", "'$..[' is not a valid JSONPath"),
        ("{path: /}", "{jsonpath: {'$.a b': 1}}", "'$.a b' is not a valid JSONPath"),
        ("{path: /}", "{status: 99999}", "99999 is not an HTTP status code: use 100-599"),
        ("{path: /}", "{status: [200, 99]}", "99 is not an HTTP status code: use 100-599"),
        (
            "{path: /, json: {a: 1}, body: x}",
            "{}",
            "checks[0].request: json and body are both given",
        ),
    ],
)
def test_expectations_are_validated_at_load_time(
    tmp_path: Path, request_: str, expect: str, message: str
) -> None:
    path = write(tmp_path, MINIMAL + HTTP.format(request=request_, expect=expect))
    text = spec_error(path)
    assert text.startswith(f"{path}: the gate spec is not valid")
    assert ":5: checks[0]" in text
    assert message in text


def test_valid_expectations_still_load(tmp_path: Path) -> None:
    expect = "{status: [200, 204], body_regex: '^ok$', jsonpath: {'$.items[?(@.n > 1)].n': 2}}"
    spec = load_spec(write(tmp_path, MINIMAL + HTTP.format(request="{path: /}", expect=expect)))
    assert spec.spec.checks[0].expect.status == [200, 204]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\ntarget: {base_url: 'http://127.0.0.1:8080'}\n",
            "deployment: required key is missing. Fix: add it, e.g. deployment: {name: ",
        ),
        (
            "version: 1\ndeployment: {name: shop}\n",
            "target: required key is missing. Fix: add it, e.g. target: {base_url: ",
        ),
        (MINIMAL + "checks:\n  - {name: a, type: liveness}\n", "checks[0].phases: required key"),
    ],
)
def test_a_missing_key_is_named_with_an_example(tmp_path: Path, text: str, message: str) -> None:
    assert message in spec_error(write(tmp_path, text))


def test_an_empty_spec_shows_a_minimal_one(tmp_path: Path) -> None:
    text = spec_error(write(tmp_path, "# nothing yet\n"))
    assert "the gate spec is empty" in text
    assert "deployment: {name: my-service}" in text


def run_validate(spec: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "releasegate.cli", "validate", str(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_validate_does_not_print_the_target_password(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("127.0.0.1:8080", "gate:s3cr3t-pw@127.0.0.1:8080"))
    done = run_validate(path)
    assert done.returncode == 0, done.stderr
    assert "target http://gate:***@127.0.0.1:8080" in done.stdout
    assert "s3cr3t-pw" not in done.stdout + done.stderr


def test_validate_into_a_closed_pipe_ends_quietly() -> None:
    """`releasegate validate | head -1`: the reader is gone before the output is written."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "releasegate.cli", "validate", str(ROOT / "releasegate.yaml")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
    assert done.returncode == 141, done.stderr
