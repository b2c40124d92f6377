"""The load part of the gate spec: the fields of the ``load`` check type (docs/load.md).

A load check runs a locustfile (a plain one, runnable with ``locust -f``) as a child process
against the guarded target, and holds the run to k6-style thresholds judged on exact
percentiles (``releasegate.load.thresholds``). Like ``spec_canary``, this module holds field
sets only; the check class is declared in ``spec.py`` on top of ``CheckBase``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from .spec_text import StrictModel as _Strict
from .spec_text import duration_or_none as _duration
from .spec_text import http_url_or_none

if TYPE_CHECKING:
    from .load.thresholds import Threshold

MAX_USERS = 5_000
MAX_WORKERS = 64
MAX_DURATION_S = 7 * 86400.0
#: Time a load check needs beyond its duration (locust starting and stopping): a ``timeout``
#: shorter than duration plus this cannot let the run end by itself.
STARTUP_SHUTDOWN_S = 30.0


class ThresholdSpec(_Strict):
    """One threshold with its options (a plain string is a threshold without options)."""

    threshold: str = Field(
        description="k6-style: 'p(95) < 300ms', 'p(99) < 800ms', 'error_rate < 0.5%',"
        " 'rps > 200', 'requests >= 1000', 'avg < 150ms', 'max < 2s', 'failures == 0'."
    )
    name: str | None = Field(
        None,
        min_length=1,
        description="One request name, as locust reports it with its method"
        " ('GET /api/products'); default: all requests.",
    )
    abort_on_fail: bool = Field(
        False,
        description="Watch it live and stop the run once it has been breached for 'grace'"
        " (the check FAILS with the breach in its evidence).",
    )
    grace: float = Field(
        0.0, description="abort_on_fail: how long the breach must last (e.g. 10s)."
    )
    window: float | None = Field(
        None,
        description="abort_on_fail: the trailing window judged live (default 5s; reaches"
        " further back, up to 60s, for enough samples).",
    )
    min_samples: int | None = Field(
        None,
        ge=1,
        le=100_000_000,
        description="Override the minimum-sample rule (p(q): 10 / (1 - q) samples).",
    )

    _durations = field_validator("grace", "window", mode="before")(_duration)

    @model_validator(mode="after")
    def _parses(self) -> ThresholdSpec:
        self.parsed()
        return self

    def parsed(self) -> Threshold:
        from .load.thresholds import parse_threshold

        return parse_threshold(
            self.threshold,
            name=self.name,
            abort_on_fail=self.abort_on_fail,
            grace_s=self.grace,
            window_s=self.window,
            min_samples=self.min_samples,
        )


class RemoteWorkers(_Strict):
    """Remote workers: the master listens here and waits for them (docs/load.md)."""

    expect: int = Field(ge=1, le=1000, description="Workers the run waits for.")
    bind_host: str = Field(
        "127.0.0.1",
        description="Where the master listens for workers ('0.0.0.0' for other machines).",
    )
    port: int = Field(5557, ge=1, le=65535, description="The master's port.")


class LoadFields(_Strict):
    """A locust run held to thresholds (kind load)."""

    type: Literal["load"]
    locustfile: str = Field(
        min_length=1, description="The locustfile, relative to the spec's folder."
    )
    users: int = Field(10, ge=1, le=MAX_USERS, description="Concurrent users at full load.")
    spawn_rate: float = Field(
        10.0, gt=0, le=10_000, description="Users started per second until all run."
    )
    duration: float = Field(description="How long locust runs (e.g. 30s, 5m).")
    workers: int = Field(
        0,
        ge=0,
        le=MAX_WORKERS,
        description="Local worker processes under one master (0: a single process).",
    )
    remote_workers: RemoteWorkers | None = Field(
        None, description="Run a master that waits for remote workers instead of local ones."
    )
    host: str | None = Field(
        None,
        description="Base URL the users hit (default: the target's base_url); loopback or"
        " allowed_hosts only.",
    )
    thresholds: list[str | ThresholdSpec] = Field(
        min_length=1, description="Every one must hold for the check to pass."
    )
    tags: list[str] = Field(
        default_factory=list, description="Run only the locustfile's tasks with these tags."
    )
    interval: float = Field(1.0, description="The live statistics' interval (seconds; 0.25 to 60).")
    kind: str = "load"
    category: str = "performance"

    _durations = field_validator("duration", "interval", mode="before")(_duration)

    _url = field_validator("host")(http_url_or_none)

    @field_validator("thresholds")
    @classmethod
    def _threshold_texts(cls, value: list[str | ThresholdSpec]) -> list[str | ThresholdSpec]:
        from .load.thresholds import parse_threshold

        for item in value:
            if isinstance(item, str):
                parse_threshold(item)
        return value

    @field_validator("locustfile")
    @classmethod
    def _python_file(cls, value: str) -> str:
        if not value.endswith(".py"):
            raise ValueError(f"{value!r}: a locustfile is a .py file (e.g. loadtests/shop.py)")
        return value

    @model_validator(mode="after")
    def _fits(self) -> LoadFields:
        if not 0 < self.duration <= MAX_DURATION_S:
            raise ValueError(f"duration: between 1s and 7d, not {self.duration:g}s")
        if not 0.25 <= self.interval <= 60:
            raise ValueError(f"interval: between 0.25s and 60s, not {self.interval:g}s")
        if self.workers and self.remote_workers is not None:
            raise ValueError("give workers (local) or remote_workers, not both")
        timeout = getattr(self, "timeout", None)
        if timeout is not None and timeout < self.duration + STARTUP_SHUTDOWN_S:
            raise ValueError(
                f"timeout {timeout:g}s leaves no time for a {self.duration:g}s run: give at"
                f" least {self.duration + STARTUP_SHUTDOWN_S:g}s (duration + 30s)"
            )
        return self

    def parsed_thresholds(self) -> list[Threshold]:
        return [
            (ThresholdSpec(threshold=item) if isinstance(item, str) else item).parsed()
            for item in self.thresholds
        ]
