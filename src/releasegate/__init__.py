"""releasegate: pytest-based deployment verification with phased go/no-go gates."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
