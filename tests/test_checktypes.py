"""The check-type registry: every type has a model, a probe that imports, and a schema entry."""

from __future__ import annotations

from typing import Literal

import pytest

from releasegate import checktypes
from releasegate.loader import json_schema
from releasegate.probes.base import probe_for
from releasegate.spec import CheckBase


@pytest.mark.parametrize("name", sorted(checktypes.REGISTRY))
def test_every_registered_type_has_a_probe_and_a_schema_entry(name: str) -> None:
    assert callable(probe_for(name))
    schema = json_schema()
    titles = {d.get("title") for d in schema.get("$defs", {}).values()}
    assert checktypes.REGISTRY[name].model.__name__ in titles


def test_a_new_type_is_one_model_and_one_registration() -> None:
    class PingCheck(CheckBase):
        type: Literal["ping_test_only"]

    try:
        entry = checktypes.register(PingCheck, "http:probe_liveness")
        assert entry.name == "ping_test_only"
        assert probe_for("ping_test_only") is probe_for("liveness")
    finally:
        checktypes.REGISTRY.pop("ping_test_only", None)
        probe_for.cache_clear()


def test_registration_refuses_what_it_cannot_dispatch() -> None:
    class Untyped(CheckBase):
        type: str

    with pytest.raises(TypeError, match="Literal"):
        checktypes.register(Untyped, "http:probe_http")

    class Other(CheckBase):
        type: Literal["http"]

    with pytest.raises(ValueError, match="registered twice"):
        checktypes.register(Other, "http:probe_http")
    with pytest.raises(ValueError, match="module:function"):
        checktypes.register(checktypes.REGISTRY["http"].model, "probe_http")
