"""The settings of one pytest run, resolved once in ``pytest_configure`` and kept in the stash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .errors import SpecError, UsageError
from .loader import LoadedSpec, load_spec
from .model import Mode
from .phases import Phase, parse_phase, phases_in_markexpr, selects_only
from .spec import Spec

DEFAULT_SPEC = "releasegate.yaml"
DEFAULT_REPORT_DIR = "reports/out"


@dataclass(frozen=True, slots=True)
class RunSettings:
    loaded: LoadedSpec | None
    phase: Phase | None
    mode_override: Mode | None
    report_dir: Path
    faults: tuple[str, ...] = ()
    templates: tuple[Path, ...] = ()

    def require_spec(self) -> Spec:
        if self.loaded is None:
            raise UsageError(
                f"no gate spec: create {DEFAULT_SPEC} in the rootdir or pass --rg-spec PATH"
            )
        return self.loaded.spec

    def mode(self) -> Mode:
        if self.mode_override is not None:
            return self.mode_override
        if self.loaded is not None and self.phase is not None:
            return self.loaded.spec.mode_for(self.phase)
        return Mode.ENFORCE


def _option(config: pytest.Config, name: str, ini: str) -> str | None:
    value = config.getoption(name)
    if value is None:
        raw = config.getini(ini)
        value = raw if raw else None
    return str(value) if value is not None else None


def resolve(config: pytest.Config) -> RunSettings:
    """Read options and ini keys, load the spec and work out the phase; raise on contradictions."""
    root = config.rootpath
    spec_opt = _option(config, "rg_spec", "releasegate_spec")
    spec_path = Path(spec_opt) if spec_opt else root / DEFAULT_SPEC
    if not spec_path.is_absolute():
        base = config.invocation_params.dir if config.getoption("rg_spec") else root
        spec_path = (base / spec_path).resolve()
    loaded: LoadedSpec | None = None
    if spec_opt or spec_path.exists():
        try:
            loaded = load_spec(spec_path)
        except SpecError as err:
            raise pytest.UsageError(str(err)) from None
        register_spec_secrets(loaded.spec)

    phase_opt = _option(config, "rg_phase", "releasegate_phase")
    from_markexpr = phases_in_markexpr(config.getoption("markexpr") or "")
    if len(from_markexpr) > 1:
        raise pytest.UsageError(
            f"-m {config.getoption('markexpr')!r} selects phases {', '.join(from_markexpr)}:"
            " a gate run decides for exactly one phase. Run one phase at a time,"
            " e.g. -m gate_t24h"
        )
    phase: Phase | None = None
    try:
        if phase_opt:
            phase = parse_phase(phase_opt)
        if from_markexpr:
            marked = parse_phase(from_markexpr[0])
            expr = config.getoption("markexpr") or ""
            if selects_only(expr, marked.marker) is False:
                raise pytest.UsageError(
                    f"-m {expr!r} selects checks outside phase {marked.value} (or none of"
                    f" it), and a gate run decides for exactly one phase. Select the phase"
                    f" itself: -m {marked.marker}, narrowed with 'and' if needed"
                    f" (-m '{marked.marker} and smoke')."
                )
            if phase is not None and marked is not phase:
                raise pytest.UsageError(
                    f"--rg-phase {phase.value} contradicts -m selecting {marked.marker}:"
                    " drop one of them"
                )
            phase = marked
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None

    mode_opt = _option(config, "rg_mode", "releasegate_mode")
    try:
        mode = Mode(mode_opt) if mode_opt else None
    except ValueError:
        raise pytest.UsageError(f"--rg-mode {mode_opt!r}: expected 'enforce' or 'dark'") from None
    report_opt = _option(config, "rg_report_dir", "releasegate_report_dir") or DEFAULT_REPORT_DIR
    report_dir = Path(report_opt)
    if not report_dir.is_absolute():
        report_dir = root / report_dir
    faults = tuple(config.getoption("rg_fault") or ())
    if faults and loaded is not None and not loaded.spec.target.is_demo:
        raise pytest.UsageError(
            "--rg-fault only applies to the embedded demo target (target.base_url: demo://)"
        )
    templates_opt = _option(config, "rg_templates", "releasegate_templates")
    templates: tuple[Path, ...] = ()
    if templates_opt:
        folder = Path(templates_opt)
        if not folder.is_absolute():
            explicit = config.getoption("rg_templates") is not None
            folder = (config.invocation_params.dir if explicit else root) / folder
        if not folder.is_dir():
            raise pytest.UsageError(
                f"report templates {templates_opt!r}: {folder} is not a folder;"
                " create it or fix --rg-templates / releasegate_templates"
            )
        templates = (folder,)
    return RunSettings(
        loaded=loaded,
        phase=phase,
        mode_override=mode,
        report_dir=report_dir,
        faults=faults,
        templates=templates,
    )


def register_spec_secrets(spec: Spec) -> None:
    """Register the secrets a spec holds, so that they are masked wherever they show up again
    (a target that echoes a header or a cookie back, a driver's error with the URL in it):
    values of secret-named headers, and passwords of the target's and databases' URLs, as the
    URL parser that connects reads them (percent-decoded)."""
    from urllib.parse import unquote, urlsplit

    from .redact import is_secret_key, register_secret

    headers = dict(spec.target.headers)
    for check in spec.checks:
        request = getattr(check, "request", None)
        headers.update(getattr(request, "headers", None) or {})
    for name, value in headers.items():
        if is_secret_key(name):
            register_secret(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in ("bearer", "basic", "token"):
                register_secret(credential)
    urls = [spec.target.base_url, spec.target.baseline_url]
    urls += [db.url for db in spec.databases.values()]
    for url in urls:
        if not url or "@" not in url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password is None:
            # Not a URL urlsplit reads (a raw @ or / in the password): take what lies between
            # the scheme's user: and the last @ before the host.
            rest = url.split("://", 1)[-1]
            userinfo = rest.rsplit("@", 1)[0]
            password = userinfo.split(":", 1)[1] if ":" in userinfo else None
        if password:
            register_secret(password)
            register_secret(unquote(password))
