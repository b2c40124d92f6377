"""The exceptions releasegate raises.

    ReleasegateError                 base of everything below
    ├── SpecError                    the gate spec is malformed (file, key path, fix)
    ├── UsageError                   the command line or selection is ambiguous or wrong
    ├── TargetRefused                a target outside loopback where only loopback is allowed
    ├── ProbeError                   a probe could not measure: timeout, refused, malformed reply
    │   └── NoData                   a probe measured nothing: no row, no sample, NULL
    ├── ActionError                  a decision action (rollback hook) could not run
    └── ReportError                  a report could not be rendered or written
    GateFailure (AssertionError)     a check measured and the value breaks its threshold
    CheckDeadline (BaseException)    a check ran past its deadline and was stopped

A ``ProbeError`` becomes an ERROR outcome (the check could not say), ``NoData`` a NO_DATA one,
a ``GateFailure`` a FAILED one. ``GateFailure`` subclasses ``AssertionError`` so that pytest
shows it as a plain failure. ``CheckDeadline`` is raised into a check that is still running at
its deadline (see ``deadlines.Alarm``) and becomes an ERROR outcome; it is a ``BaseException``
so that the ``except Exception`` of a check or a library does not take it for an ordinary error
and carry on.
"""

from __future__ import annotations


class ReleasegateError(Exception):
    """Base class of all releasegate errors."""


class SpecError(ReleasegateError):
    """The gate spec cannot be used; the message names the file, the key path and the fix."""


class UsageError(ReleasegateError):
    """The run is ambiguous or its options contradict each other."""


class TargetRefused(ReleasegateError):
    """A target address is not on loopback where only loopback is allowed."""


class ProbeError(ReleasegateError):
    """A probe could not measure (timeout, refused connection, malformed response)."""


class NoData(ProbeError):
    """A probe ran but found nothing to measure (an empty table, ``AVG`` over no rows)."""


class ActionError(ReleasegateError):
    """A decision action could not be carried out."""


class ReportError(ReleasegateError):
    """A report could not be rendered or written (template error, unwritable folder)."""


class GateFailure(AssertionError):
    """A check measured a value that breaks its threshold."""


class CheckDeadline(BaseException):
    """A check was still running at its deadline: stopped, it is an ERROR (it could not say).

    ``returned``: the check had returned (past its deadline) when it was raised.
    """

    def __init__(self, message: str, *, returned: bool = False) -> None:
        super().__init__(message)
        self.returned = returned
