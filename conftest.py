"""Wiring for the demo suite. Everything it checks runs on this machine: refuse other targets."""

from __future__ import annotations

import os

os.environ.setdefault("RELEASEGATE_LOOPBACK_ONLY", "1")
