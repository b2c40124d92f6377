"""Exit codes of a gate run. pytest owns 0-6; a gate run ends with one of these instead.

| code | meaning                                                  |
|------|----------------------------------------------------------|
| 0    | GO (and every dark-mode run, whatever the decision)      |
| 10   | CONDITIONAL GO                                           |
| 11   | NO-GO                                                    |
| 12   | INCONCLUSIVE; also an interrupted run (SIGTERM, Ctrl-C,  |
|      | the deadline) and a run that could not write its record  |
| 13   | a rollback/advance hook failed (takes precedence)        |

pytest's own 3 (internal error) and 4 (usage error) are kept as they are; its 2 (interrupted)
becomes 12, since an interrupted gate run is recorded INCONCLUSIVE.
"""

from __future__ import annotations

from .decision import Verdict

HOOK_FAILED = 13

BY_VERDICT: dict[Verdict, int] = {
    Verdict.GO: 0,
    Verdict.CONDITIONAL_GO: 10,
    Verdict.NO_GO: 11,
    Verdict.INCONCLUSIVE: 12,
}

KEPT_PYTEST_CODES = frozenset({3, 4})


def describe(code: int) -> str:
    for verdict, value in BY_VERDICT.items():
        if value == code:
            return verdict.value
    if code == HOOK_FAILED:
        return "a hook failed"
    return "pytest"
