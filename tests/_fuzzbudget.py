"""The fuzzers' example budget and their tally of what was tried (see bench/fuzz_long.py)."""

from __future__ import annotations

import json
import os

# The fuzzers' budget: CI runs each with its own bounded number of examples; the long mode
# (bench/fuzz_long.py) multiplies them by RELEASEGATE_FUZZ_SCALE and reads what was tried
# from RELEASEGATE_FUZZ_REPORT (one JSON line per test process, written at its exit).
FUZZ_SCALE = max(float(os.environ.get("RELEASEGATE_FUZZ_SCALE", "1") or 1), 0.01)
_TRIED: dict[str, int] = {}


def examples(n: int) -> int:
    """``n`` examples, scaled for the long mode."""
    return max(1, round(n * FUZZ_SCALE))


def tried(what: str, count: int = 1) -> None:
    """Count one input a fuzzer tried (``specs``, ``urls``, ``sql``, ...) for the long mode."""
    if not _TRIED:
        import atexit

        atexit.register(_write_tally)
    _TRIED[what] = _TRIED.get(what, 0) + count


def _write_tally() -> None:
    path = os.environ.get("RELEASEGATE_FUZZ_REPORT")
    if path and _TRIED:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_TRIED) + "\n")
