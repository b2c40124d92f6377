"""The registry of check types: a spec model and the probe that runs it, by the spec's ``type``.

The spec's ``checks:`` union, its JSON Schema, ``releasegate validate`` and the probe dispatch
are all built from this registry, so adding a check type is one module (its model and probe)
and one ``register`` call. Probes are named, not imported: a probe module is imported on first
use (the fuzz probe imports hypothesis, a second that a run without bad-input checks should not
pay).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class CheckType:
    """One ``type:`` of spec check."""

    name: str
    model: type[BaseModel]
    #: ``module:function`` in ``releasegate.probes``
    probe: str


REGISTRY: dict[str, CheckType] = {}


def register(model: type[BaseModel], probe: str) -> CheckType:
    """Register ``model`` (whose ``type`` field is a one-value ``Literal``) run by ``probe``."""
    annotation = model.model_fields["type"].annotation
    names = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or len(names) != 1:
        raise TypeError(f"{model.__name__}.type must be a Literal of one check type name")
    name = str(names[0])
    if name in REGISTRY and REGISTRY[name].model is not model:
        raise ValueError(f"check type {name!r} is registered twice")
    module, sep, function = probe.partition(":")
    if not sep or not module or not function:
        raise ValueError(f"probe {probe!r}: expected 'module:function' in releasegate.probes")
    entry = CheckType(name, model, probe)
    REGISTRY[name] = entry
    return entry


def union() -> Any:
    """The registered models as one pydantic discriminated union (for ``Spec.checks``)."""
    from pydantic import Field

    models = tuple(entry.model for entry in REGISTRY.values())
    return typing.Annotated[typing.Union[models], Field(discriminator="type")]  # noqa: UP007
