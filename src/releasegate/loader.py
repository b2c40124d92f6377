"""Reading a gate spec: YAML, ``${VAR}`` interpolation, validation, and errors that tell the fix."""

from __future__ import annotations

import codecs
import difflib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import redact, spec_db
from .errors import SpecError
from .spec import Spec

# ``$$``, a reference ``${NAME}`` / ``${NAME:-default}``, or any other ``${`` (an error: a name
# with a space or a dash, ``${}``, a missing ``}``), which would otherwise stay silently literal.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}\n]{0,60}\}?")
_SECRET_NAME = re.compile(r"(?i)(pass(word)?|secret|token|api[_-]?key|credential|auth)")


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster

# Limits that keep a hostile or broken spec from crashing or hanging the loader: whatever the
# bytes, ``load_spec`` returns or raises one ``SpecError``, quickly and in bounded memory.
MAX_SPEC_BYTES = 1024 * 1024  # the file
MAX_ALIASES = 100  # ``*name`` references in the file
MAX_NODES = 100_000  # values once every alias is expanded ("billion laughs")
MAX_DEPTH = 50  # nested mappings and lists, aliases expanded
MAX_INT_DIGITS = 18  # an int64 holds 18 digits whatever they are


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

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        digits = text.replace("_", "").lstrip("+-")
        if digits[:2].lower() in ("0x", "0o", "0b"):
            digits = digits[2:]
        if len(digits) > MAX_INT_DIGITS:
            raise _NumberError(
                f"the integer {_shorten(text)} has {len(digits)} digits; at most"
                f" {MAX_INT_DIGITS} are allowed. Fix: use a smaller number",
                node,
            )
        try:
            value: int = super().construct_yaml_int(node)
        except ValueError as err:
            raise _NumberError(f"{_shorten(text)} is not an integer ({err})", node) from None
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if not math.isfinite(value):
            text = str(self.construct_scalar(node))
            raise _NumberError(
                f"{_shorten(text)} is not a finite number. Fix: write a finite number", node
            )
        return value

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as err:  # 2024-13-45 looks like a date and is not
            text = str(self.construct_scalar(node))
            raise _NumberError(
                f"{_shorten(text)} is not a valid date ({err}). Fix: quote it to keep it text",
                node,
            ) from None


class _NumberError(yaml.constructor.ConstructorError):
    """A scalar that looks like a number (or a date) the spec refuses; knows its node."""

    def __init__(self, problem: str, node: yaml.Node) -> None:
        super().__init__(None, None, problem, node.start_mark)
        self.node = node
        self.root: yaml.Node | None = None


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
_SpecLoader.add_constructor("tag:yaml.org,2002:float", _SpecLoader.construct_yaml_float)
_SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", _SpecLoader.construct_yaml_timestamp)


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


def interpolate(
    value: str, env: Mapping[str, str], where: str, path: Path, line: int | None = None
) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``value``; ``$$`` is a literal ``$``.

    A variable that is unset (or empty) without a default, and a ``${`` that is not a
    reference (``${MY VAR}``, ``${}``, no closing brace), are errors naming the key and line.
    """
    at = f"{path}:{line}" if line is not None else f"{path}"

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:
            text = match.group(0)
            raise SpecError(
                f"{at}: {where}: {text!r} is not a variable reference: a name is letters, digits"
                " and _, as in ${NAME} or ${NAME:-default}. Fix: correct the name, or write $${"
                " for a literal ${"
            )
        if name in env and env[name] != "":
            resolved = env[name]
        elif default is not None:
            resolved = default
        else:
            raise SpecError(
                f"{at}: {where}: environment variable {name} is not set."
                f" Fix: export {name}=... or write ${{{name}:-default}}"
            )
        if _SECRET_NAME.search(name):
            redact.register_secret(resolved)
        return resolved

    return _VAR.sub(replace, value)


def _walk(
    node: Any, env: Mapping[str, str], loc: tuple[int | str, ...], path: Path, root: yaml.Node
) -> Any:
    if isinstance(node, str):
        if "$" not in node:
            return node
        return interpolate(node, env, _loc_text(loc), path, _line_of(root, loc))
    if isinstance(node, list):
        return [_walk(v, env, (*loc, i), path, root) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _walk(v, env, (*loc, str(k)), path, root) for k, v in node.items()}
    return node


def _read_text(spec_path: Path) -> str:
    """The spec's text: at most ``MAX_SPEC_BYTES``, strictly UTF-8 (a BOM is dropped)."""
    try:
        with spec_path.open("rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(
            f"{spec_path}: no such gate spec. Fix: create it (see `releasegate validate --help`)"
            " or point --rg-spec / the releasegate_spec ini key at your spec."
        ) from None
    except OSError as err:
        raise SpecError(f"{spec_path}: cannot read the gate spec: {err.strerror}") from err
    if len(data) > MAX_SPEC_BYTES:
        try:
            size = f"{spec_path.stat().st_size} bytes"
        except OSError:
            size = f"more than {MAX_SPEC_BYTES} bytes"
        raise SpecError(
            f"{spec_path}: the gate spec is {size}; the limit is {MAX_SPEC_BYTES} bytes (1 MiB)."
            " Fix: point at the right file, or remove what the gate does not need."
        )
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skipped:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = skipped + err.start
        line = data.count(b"\n", 0, offset) + 1
        utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:64]
        hint = " (it looks like UTF-16)" if utf16 else ""
        raise SpecError(
            f"{spec_path}:{line}: the gate spec is not UTF-8 text{hint}: byte"
            f" 0x{data[offset]:02x} at offset {offset} ({err.reason})."
            " Fix: save the file as UTF-8."
        ) from None


def _structure_error(path: Path, event: yaml.Event, problem: str, fix: str) -> SpecError:
    mark = event.start_mark
    at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return SpecError(f"{at}: {problem}. Fix: {fix}.")


def _check_structure(text: str, path: Path) -> None:
    """Refuse, before anything is built, YAML that would grow without bound once built.

    One pass over the parser's events (no recursion): the aliases, their expanded size and the
    nesting depth with aliases expanded, and aliases to the node they are in (``&a [*a]``).
    """
    loader = _SpecLoader(text)
    try:
        stack: list[
            list[Any]
        ] = []  # per open mapping/list: [anchor, tallest child, total at start]
        sizes: dict[str, int] = {}  # anchor -> values in it once expanded
        heights: dict[str, int] = {}  # anchor -> nesting levels in it
        total = aliases = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) + 1 > MAX_DEPTH:
                    raise _structure_error(
                        path,
                        event,
                        f"mappings and lists are nested more than {MAX_DEPTH} deep",
                        "flatten the spec",
                    )
                stack.append([event.anchor, 0, total])
                total += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, tallest, start = stack.pop()
                height = tallest + 1
                if anchor is not None:
                    sizes[anchor], heights[anchor] = total - start, height
                if stack:
                    stack[-1][1] = max(stack[-1][1], height)
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                size, height = 1, 0
                if isinstance(event, yaml.AliasEvent):
                    aliases += 1
                    name = event.anchor
                    if aliases > MAX_ALIASES:
                        raise _structure_error(
                            path,
                            event,
                            f"more than {MAX_ALIASES} aliases (*name)",
                            "write the values out, or use fewer anchors",
                        )
                    if any(entry[0] == name for entry in stack):
                        raise _structure_error(
                            path,
                            event,
                            f"the alias *{name} is inside the node &{name} it refers to"
                            " (a recursive value)",
                            f"refer to &{name} only after it ends",
                        )
                    if name not in sizes:
                        continue  # an undefined alias: composing says so, with its line
                    size, height = sizes[name], heights[name]
                elif event.anchor is not None:
                    sizes[event.anchor], heights[event.anchor] = 1, 0
                total += size
                if len(stack) + height > MAX_DEPTH:
                    raise _structure_error(
                        path,
                        event,
                        f"with its aliases expanded, the spec nests more than {MAX_DEPTH} deep",
                        "flatten the spec",
                    )
                if stack:
                    stack[-1][1] = max(stack[-1][1], height)
            if total > MAX_NODES:
                raise _structure_error(
                    path,
                    event,
                    f"{'with its aliases expanded, ' if aliases else ''}the spec has more"
                    f" than {MAX_NODES} values",
                    "write a smaller spec, or expand fewer aliases",
                )
    finally:
        loader.dispose()


def _compose(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data built from it."""
    loader = _SpecLoader(text)
    try:
        root: yaml.Node | None = loader.get_single_node()
        try:
            raw = loader.construct_document(root) if root is not None else None
        except _NumberError as err:
            err.root = root  # to name the key path of the number
            raise
    finally:
        loader.dispose()
    return root, raw


def _loc_of(root: yaml.Node | None, target: yaml.Node) -> tuple[int | str, ...] | None:
    """The key path of ``target`` in the tree at ``root`` (iterative; aliases seen once)."""
    pending: list[tuple[yaml.Node, tuple[int | str, ...]]] = [(root, ())] if root else []
    seen: set[int] = set()
    while pending:
        node, loc = pending.pop()
        if node is target:
            return loc
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key is target:
                    return loc
                pending.append((value, (*loc, str(key.value))))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((value, (*loc, i)) for i, value in enumerate(node.value))
    return None


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
            if node.get("type") == part:  # the check's own type tag: its validator spoke
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
            raw_loc = tuple(problem["loc"])
            last = raw_loc[-1] if raw_loc else ""
            if isinstance(last, str) and last and (not loc or loc[-1] != last):
                loc = (*loc, last)  # a key missing at the top is not a union tag: keep it
                where, line = _loc_text(loc), _line_of(root, loc[:-1])
                at = f"{path}:{line}: " if line else ""
            fix = _missing_key_fix(str(loc[-1])) if loc else "add it"
            lines.append(f"  {at}{where}: required key is missing. Fix: {fix}.")
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
            message = str(problem["msg"])
            if kind == "value_error":
                message = message.removeprefix("Value error, ")
            if isinstance(value, dict) and kind == "value_error":
                # The line points at the mapping; its contents would only repeat the spec.
                lines.append(f"  {at}{where}: {message}.{hint}")
            else:
                lines.append(f"  {at}{where}: {message} (got {shown}).{hint}")
    return "\n".join(lines)


_EXAMPLES = {
    "deployment": "deployment: {name: my-service}",
    "target": "target: {base_url: 'https://my-service.example.com'}",
    "name": "name: my-check",
    "phases": "phases: [t24h]",
    "base_url": "base_url: 'https://my-service.example.com'",
    "request": "request: {method: GET, path: /}",
    "path": "path: /",
    "endpoints": "endpoints: [{method: POST, path: /api/items, example: {}}]",
    "argv": "argv: [./rollback.sh]",
    "url": "url: 'sqlite:///app.db'",
    "table": "table: orders",
    "reason": "reason: why it does not apply",
    "condition": "condition: ${SKIP:-false}",
}


def _missing_key_fix(key: str) -> str:
    example = _EXAMPLES.get(key)
    return f"add it, e.g. {example}" if example else f"add it ({key}: ...)"


def load_spec(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedSpec:
    """Read, interpolate and validate the spec at ``path``; raise ``SpecError`` if unusable.

    Whatever the file holds, the only exception is ``SpecError``: the size, the encoding, the
    YAML (aliases, depth, numbers), the ``${VAR}`` references and every key are checked here.
    """
    spec_path = Path(path)
    env = os.environ if env is None else env
    try:
        return _load(spec_path, env)
    except SpecError:
        raise
    except (RecursionError, MemoryError) as err:
        raise SpecError(
            f"{spec_path}: the gate spec is too large or too deeply nested to read"
            f" ({type(err).__name__}). Fix: write a smaller spec."
        ) from None
    except Exception as err:  # a last net: bytes in, one error out, never a traceback
        problem = redact.redact_text(_shorten(str(err), 200))
        raise SpecError(
            f"{spec_path}: the gate spec cannot be read ({type(err).__name__}: {problem})."
        ) from err


def _load(spec_path: Path, env: Mapping[str, str]) -> LoadedSpec:
    text = _read_text(spec_path)
    try:
        _check_structure(text, spec_path)
        root, raw = _compose(text)
    except _NumberError as err:
        mark = err.node.start_mark
        loc = _loc_of(err.root, err.node)
        where = f"{_loc_text(loc)}: " if loc else ""
        at = f"{spec_path}:{mark.line + 1}:{mark.column + 1}"
        raise SpecError(f"{at}: {where}{err.problem}.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{spec_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(spec_path)
        problem = getattr(err, "problem", None) or str(err)
        if isinstance(err, yaml.reader.ReaderError):  # a control character: say where
            where = f"{spec_path}:{text.count(chr(10), 0, err.position) + 1}"
            problem = f"character {err.character!r} at offset {err.position}: {err.reason}"
        raise SpecError(f"{where}: not valid YAML: {problem}. Fix the syntax there.") from None
    if root is None:
        raise SpecError(
            f"{spec_path}: the gate spec is empty. Fix: start from\n"
            f"  version: 1\n  {_EXAMPLES['deployment']}\n  {_EXAMPLES['target']}"
        )
    if not isinstance(raw, dict):
        raise SpecError(
            f"{spec_path}: the gate spec must be a mapping with deployment, target and checks"
            f" (got {type(raw).__name__}). Fix: start from\n"
            f"  version: 1\n  {_EXAMPLES['deployment']}\n  {_EXAMPLES['target']}"
        )
    resolved = _walk(raw, env, (), spec_path, root)
    try:
        backends = spec_db.backends_of(resolved.get("databases"))
        spec = Spec.model_validate(resolved, context={spec_db.DB_BACKENDS: backends})
    except ValidationError as err:
        try:
            message = format_validation_error(err, spec_path, raw, root)
        except Exception:  # the formatting must never hide the problem itself
            message = f"{spec_path}: the gate spec is not valid:\n{redact.redact_text(str(err))}"
        raise SpecError(message) from None
    return LoadedSpec(spec=spec, path=spec_path)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec, for editors."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "releasegate gate spec"
    return schema
