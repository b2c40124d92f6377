"""Opening the target a run checks: a URL from the spec, or the embedded demo target."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .db.state import DbState
from .spec import Spec
from .target import TargetClient


@contextmanager
def open_target(
    spec: Spec, faults: Sequence[str] = (), db: DbState | None = None
) -> Iterator[TargetClient]:
    """Yield a client for the spec's target; ``demo://`` starts the demo target for the run.

    ``db`` gets the demo's SQLite file, which ``databases: url: demo://`` means.
    """
    base_url = spec.target.base_url
    demo = None
    if spec.target.is_demo:
        from .demo import DemoTarget
        from .demo.faults import parse_fault

        demo = DemoTarget(faults=dict(parse_fault(f) for f in faults))
        demo.start()
        base_url = demo.url
        if db is not None:
            db.demo_db_path = demo.db_path
    try:
        client = TargetClient(
            base_url=base_url,
            timeout_s=spec.target.timeout_s,
            verify_tls=spec.target.verify_tls,
            headers=dict(spec.target.headers),
            baseline_url=spec.target.baseline_url,
            max_body_bytes=spec.target.max_body_bytes,
        )
        try:
            yield client
        finally:
            client.close()
    finally:
        if demo is not None:
            demo.stop()
