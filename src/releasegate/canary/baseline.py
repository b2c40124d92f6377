"""Golden baselines: a healthy run's metrics stored in a file, for canaries without a live
baseline beside them.

The file (JSON, ``schema_version`` 1) holds the deployment, the version, ``captured_at`` (UTC,
ISO 8601) and, per metric, one of::

    {"kind": "rate", "events": 12, "total": 48000, "minutes": 30}
    {"kind": "samples", "values": [0.041, ...], "minutes": 30, "subsampled_from": 183000}
    {"kind": "histogram", "bounds": [0.05, 0.1, ..., "+Inf"], "cumulative": [...],
     "minutes": 30, "value_sum": 9120.5}

Samples are capped (``max_samples``, 10,000 by default) by a seeded random subsample, so the
same run always writes the same file. ``capture_baseline`` writes atomically (a temporary file
in the same directory, flushed and fsynced, then ``os.replace``): a reader sees the old file or
the new one, never half of one. ``load_baseline`` validates the file and measures its age
against ``now``; older than ``max_age_s`` (7 days by default) makes it stale, which every
comparison's reason then says.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .model import HistogramData, MetricData, RateData, SampleData
from .results import BaselineSource

SCHEMA_VERSION = 1
FORMAT = "releasegate.canary.baseline"
MAX_SAMPLES = 10_000
DEFAULT_MAX_AGE_S = 7 * 86400.0
#: A capture time this far in the future is a clock problem, not a fresh baseline.
_CLOCK_SKEW_S = 300.0


class BaselineError(ValueError):
    """A golden baseline file that cannot be used: unreadable, invalid or from the future."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """A loaded (or just captured) golden baseline: metrics by name, and how old it is."""

    path: str
    deployment: str
    version: str
    captured_at: str
    metrics: Mapping[str, MetricData]
    age_s: float
    max_age_s: float | None = DEFAULT_MAX_AGE_S

    @property
    def source(self) -> BaselineSource:
        return BaselineSource(
            path=self.path,
            deployment=self.deployment,
            version=self.version,
            captured_at=self.captured_at,
            age_s=self.age_s,
            max_age_s=self.max_age_s,
        )

    @property
    def stale(self) -> bool:
        return self.source.stale

    def metric(self, name: str) -> MetricData:
        """The stored data of ``name``; BaselineError naming the stored metrics otherwise."""
        try:
            return self.metrics[name]
        except KeyError:
            known = ", ".join(sorted(self.metrics)) or "none"
            raise BaselineError(
                f"the golden baseline {self.path} has no metric {name!r} (it has: {known})"
            ) from None


def _encode(data: MetricData, max_samples: int, rng: random.Random) -> dict[str, Any]:
    if isinstance(data, RateData):
        return {"kind": "rate", "events": data.events, "total": data.total, "minutes": data.minutes}
    if isinstance(data, SampleData):
        values = list(data.values)
        doc: dict[str, Any] = {"kind": "samples", "minutes": data.minutes}
        if len(values) > max_samples:
            doc["subsampled_from"] = len(values)
            values = rng.sample(values, max_samples)
        doc["values"] = values
        return doc
    bounds = ["+Inf" if math.isinf(b) else b for b in data.bounds]
    return {
        "kind": "histogram",
        "bounds": bounds,
        "cumulative": list(data.cumulative),
        "minutes": data.minutes,
        "value_sum": data.value_sum,
    }


def _decode(name: str, doc: Any) -> MetricData:
    if not isinstance(doc, dict):
        raise BaselineError(f"metric {name!r}: expected an object, found {type(doc).__name__}")
    kind = doc.get("kind")
    try:
        if kind == "rate":
            return RateData(doc["events"], doc["total"], doc.get("minutes"))
        if kind == "samples":
            return SampleData(list(doc["values"]), doc.get("minutes"))
        if kind == "histogram":
            bounds = [math.inf if b == "+Inf" else b for b in doc["bounds"]]
            return HistogramData(
                bounds, doc["cumulative"], doc.get("minutes"), doc.get("value_sum")
            )
    except KeyError as exc:
        raise BaselineError(f"metric {name!r} ({kind}): missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise BaselineError(f"metric {name!r} ({kind}): {exc}") from None
    raise BaselineError(f"metric {name!r}: unknown kind {kind!r} (rate, samples or histogram)")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise BaselineError("times must be timezone-aware (UTC)")
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat().replace("+00:00", "Z")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def capture_baseline(
    path: str | os.PathLike[str],
    metrics: Mapping[str, MetricData],
    *,
    deployment: str,
    version: str,
    captured_at: datetime | None = None,
    max_samples: int = MAX_SAMPLES,
    seed: int = 0,
    max_age_s: float | None = DEFAULT_MAX_AGE_S,
) -> Baseline:
    """Write a golden baseline of ``metrics`` from a healthy run to ``path`` (atomically) and
    return it as ``load_baseline`` would read it back (age 0)."""
    if not metrics:
        raise BaselineError("a golden baseline needs at least one metric")
    if max_samples < 1:
        raise BaselineError(f"max_samples must be at least 1: {max_samples!r}")
    moment = _iso(captured_at or datetime.now(timezone.utc))
    rng = random.Random(seed)
    encoded = {name: _encode(data, max_samples, rng) for name, data in sorted(metrics.items())}
    doc = {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "deployment": deployment,
        "version": version,
        "captured_at": moment,
        "metrics": encoded,
    }
    target = Path(path)
    _write_atomically(target, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    stored = {name: _decode(name, m) for name, m in encoded.items()}
    return Baseline(str(target), deployment, version, moment, stored, 0.0, max_age_s)


def load_baseline(
    path: str | os.PathLike[str],
    *,
    now: datetime | None = None,
    max_age_s: float | None = DEFAULT_MAX_AGE_S,
) -> Baseline:
    """Read and validate a golden baseline; ``age_s`` is measured against ``now`` (UTC; the
    clock when None). BaselineError says what is wrong with the file."""
    target = Path(path)
    try:
        doc = json.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"cannot read the golden baseline {target}: {exc.strerror}") from None
    except ValueError as exc:
        raise BaselineError(f"the golden baseline {target} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BaselineError(f"the golden baseline {target} is not a JSON object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(
            f"the golden baseline {target} has schema_version {doc.get('schema_version')!r}; "
            f"this releasegate reads {SCHEMA_VERSION}"
        )
    for key in ("deployment", "version", "captured_at"):
        if not isinstance(doc.get(key), str):
            raise BaselineError(f"the golden baseline {target} has no {key} (a string)")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise BaselineError(f"the golden baseline {target} has no metrics")
    try:
        captured = datetime.fromisoformat(doc["captured_at"].replace("Z", "+00:00"))
    except ValueError:
        raise BaselineError(
            f"captured_at is not an ISO 8601 time: {doc['captured_at']!r}"
        ) from None
    age = (_utc(now or datetime.now(timezone.utc)) - _utc(captured)).total_seconds()
    if age < -_CLOCK_SKEW_S:
        raise BaselineError(
            f"the golden baseline {target} was captured in the future ({doc['captured_at']})"
        )
    stored = {str(name): _decode(str(name), m) for name, m in metrics.items()}
    return Baseline(
        str(target),
        doc["deployment"],
        doc["version"],
        doc["captured_at"],
        stored,
        max(age, 0.0),
        max_age_s,
    )
