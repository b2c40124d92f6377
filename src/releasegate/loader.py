"""Reading a gate spec: YAML, ``${VAR}`` interpolation, validation, and errors that tell the fix."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import redact
from .errors import SpecError
from .spec import Spec

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")
_SECRET_NAME = re.compile(r"(?i)(pass(word)?|secret|token|api[_-]?key|credential|auth)")


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster


class _SpecLoader(_Base):  # type: ignore[misc]
    """YAML 1.2 booleans: only true/false. YAML 1.1 would read the hook key ``on`` as True.

    A key given twice in one mapping is an error: YAML would silently keep the last one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[str, int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                if key.value in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key.value!r} is given twice (first on line {first[key.value]}):"
                        " keep one",
                        key.start_mark,
                    )
                first[key.value] = key.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    spec: Spec
    path: Path


def interpolate(value: str, env: Mapping[str, str], where: str, path: Path) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``value``; ``$$`` is a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            resolved = env[name]
        elif default is not None:
            resolved = default
        else:
            raise SpecError(
                f"{path}: {where}: environment variable {name} is not set."
                f" Fix: export {name}=... or write ${{{name}:-default}}"
            )
        if _SECRET_NAME.search(name):
            redact.register_secret(resolved)
        return resolved

    return _VAR.sub(replace, value)


def _walk(node: Any, env: Mapping[str, str], where: str, path: Path) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where or "(top)", path)
    if isinstance(node, list):
        return [_walk(v, env, f"{where}[{i}]", path) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: _walk(v, env, f"{where}.{k}" if where else str(k), path) for k, v in node.items()
        }
    return node


def _field_vocabulary() -> set[str]:
    names: set[str] = set()
    pending: list[type[BaseModel]] = [Spec]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
            for arg in _model_types(info.annotation):
                pending.append(arg)
    return names


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_model_types(arg))
    for arg in getattr(annotation, "__metadata__", ()) or ():
        found.extend(_model_types(arg))
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        found.extend(_model_types(origin))
    return found


def _keys_at(loc: tuple[int | str, ...], raw: Any) -> set[str] | None:
    """The keys the spec allows in the mapping at ``loc``; None when that cannot be told."""
    models: list[type[BaseModel]] = [Spec]
    node, free_key = raw, False
    for part in loc:
        _, node = _child(node, part)
        if isinstance(part, int) or free_key:
            free_key = False
        else:
            fields = [f for m in models for n, f in m.model_fields.items() if part in (n, f.alias)]
            models = [t for f in fields for t in _model_types(f.annotation)]
            free_key = any(_is_mapping(f.annotation) for f in fields)
        if isinstance(node, dict) and len(models) > 1:  # a check: its ``type`` tells which
            tagged = [m for m in models if node.get("type") in _literal_values(m, "type")]
            models = tagged or models
        if not models:
            return None
    return {f.alias or n for m in models for n, f in m.model_fields.items()}


def _is_mapping(annotation: Any) -> bool:
    if getattr(annotation, "__origin__", None) is dict:
        return True
    return any(_is_mapping(arg) for arg in getattr(annotation, "__args__", ()) or ())


def _literal_values(model: type[BaseModel], name: str) -> tuple[Any, ...]:
    info = model.model_fields.get(name)
    return getattr(info.annotation, "__args__", ()) if info is not None else ()


def _unknown_key_hint(key: str, allowed: set[str] | None, vocabulary: set[str]) -> str:
    names = sorted((allowed if allowed is not None else vocabulary) - {key})
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f" Did you mean {close[0]!r}?"
    shown = ", ".join(sorted(allowed or ()))
    here = f" (keys here: {shown})" if shown and len(shown) <= 200 else ""
    if allowed is not None and key in vocabulary:
        return f" It is not a key here{here}: remove it or move it where it belongs."
    return f" Remove it{here}."


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _child(node: Any, part: int | str) -> tuple[bool, Any]:
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _clean_loc(loc: tuple[int | str, ...], raw: Any) -> tuple[int | str, ...]:
    """Drop the union tags pydantic inserts (``checks.2.http.request``) from a location."""
    clean: list[int | str] = []
    node = raw
    for part in loc:
        found, child = _child(node, part)
        if found:
            clean.append(part)
            node = child
        elif isinstance(node, dict) and isinstance(part, str) and part not in node:
            # a tag (discriminator value or model name), or a key that is missing
            if part in ("function-after", "function-before") or not clean or part != loc[-1]:
                continue
            clean.append(part)
        else:
            clean.append(part)
    return tuple(clean)


def format_validation_error(
    err: ValidationError, path: Path, raw: Any, root: yaml.Node | None
) -> str:
    vocabulary = _field_vocabulary()
    lines = [f"{path}: the gate spec is not valid ({err.error_count()} problem(s)):"]
    for problem in err.errors():
        loc = _clean_loc(tuple(problem["loc"]), raw)
        where = _loc_text(loc)
        line = _line_of(root, loc)
        at = f"{path}:{line}: " if line else ""
        kind = problem["type"]
        value = problem.get("input")
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            hint = _unknown_key_hint(key, _keys_at(loc[:-1], raw), vocabulary)
            lines.append(f"  {at}{where}: unknown key {key!r}.{hint}")
        elif kind == "missing":
            lines.append(f"  {at}{where}: required key is missing. Fix: add it.")
        elif kind == "union_tag_invalid":
            ctx = problem.get("ctx", {})
            tag, allowed = str(ctx.get("tag", "")), str(ctx.get("expected_tags", ""))
            names = [t.strip(" '") for t in allowed.split(",")]
            close = difflib.get_close_matches(tag, names, n=1, cutoff=0.5)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            lines.append(
                f"  {at}{where}.type: {tag!r} is not a check type. {hint}Use one of {allowed}."
            )
        elif kind == "union_tag_not_found":
            lines.append(f"  {at}{where}: every check needs a 'type' (http, liveness, ...).")
        else:
            shown = json.dumps(redact.redact_value(value), default=str)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            hint = ""
            if kind in ("enum", "literal_error") and isinstance(value, str):
                names = re.findall(r"'([^']*)'", str(problem.get("ctx", {}).get("expected", "")))
                close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
            lines.append(f"  {at}{where}: {problem['msg']} (got {shown}).{hint}")
    return "\n".join(lines)


def load_spec(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedSpec:
    """Read, interpolate and validate the spec at ``path``; raise ``SpecError`` if unusable."""
    spec_path = Path(path)
    env = os.environ if env is None else env
    try:
        text = spec_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{spec_path}: no such gate spec. Fix: create it (see `releasegate validate --help`)"
            " or point --rg-spec / the releasegate_spec ini key at your spec."
        ) from None
    except OSError as err:
        raise SpecError(f"{spec_path}: cannot read the gate spec: {err.strerror}") from err
    try:
        raw = yaml.load(text, Loader=_SpecLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{spec_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(spec_path)
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(f"{where}: not valid YAML: {problem}. Fix the syntax there.") from err
    if not isinstance(raw, dict):
        raise SpecError(
            f"{spec_path}: the gate spec must be a mapping with deployment, target and checks"
            f" (got {type(raw).__name__})."
        )
    resolved = _walk(raw, env, "", spec_path)
    try:
        spec = Spec.model_validate(resolved)
    except ValidationError as err:
        # Composing again keeps the line numbers, only needed for the error message.
        root = yaml.compose(text, Loader=_SpecLoader)
        raise SpecError(format_validation_error(err, spec_path, raw, root)) from None
    return LoadedSpec(spec=spec, path=spec_path)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec, for editors."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "releasegate gate spec"
    return schema
