"""What a run keeps about its databases between checks: the demo's file and the open engines.

It lives apart from ``connect.py`` so that building a probe context (every run with spec
checks) never imports SQLAlchemy: only a run with DB checks pays for it, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..netguard import LOOPBACK, Policy

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass(slots=True)
class DbState:
    """Mutable on purpose: the target records the demo's file, ``connect`` caches engines.

    ``demo_db_path`` is the embedded demo target's SQLite file (what ``databases: url:
    demo://`` means), ``None`` when no demo target runs. ``engines`` holds one engine per
    resolved URL, created on first use and closed by ``dispose_engines`` at the end.
    ``policy`` is where connections may go (the spec's ``allowed_hosts``; loopback only).
    """

    demo_db_path: Path | None = None
    engines: dict[str, Engine] = field(default_factory=dict)
    policy: Policy = LOOPBACK
