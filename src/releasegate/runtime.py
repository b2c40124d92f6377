"""Opening the target a run checks: a URL from the spec, or the embedded demo target."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from .spec import Spec
from .target import TargetClient


@contextmanager
def open_target(
    spec: Spec, faults: Sequence[str] = (), extras: MutableMapping[str, Any] | None = None
) -> Iterator[TargetClient]:
    """Yield a client for the spec's target; ``demo://`` starts the demo target for the run.

    ``extras`` gets ``demo_db_path`` (the demo's SQLite file, for ``databases: url: demo://``).
    """
    base_url = spec.target.base_url
    demo = None
    if spec.target.is_demo:
        from .demo import DemoTarget
        from .demo.faults import parse_fault

        demo = DemoTarget(faults=dict(parse_fault(f) for f in faults))
        demo.start()
        base_url = demo.url
        if extras is not None:
            extras["demo_db_path"] = demo.db_path
    try:
        client = TargetClient(
            base_url=base_url,
            timeout_s=spec.target.timeout_s,
            verify_tls=spec.target.verify_tls,
            headers=dict(spec.target.headers),
            baseline_url=spec.target.baseline_url,
        )
        try:
            yield client
        finally:
            client.close()
    finally:
        if demo is not None:
            demo.stop()
