"""SLO definitions from OpenSLO v1 and Sloth documents, into one neutral ``SloDefinition``.

Read (``load_slo_definitions`` for YAML text, ``slo_definitions_from`` for parsed documents):

- **OpenSLO v1** (``apiVersion: openslo/v1``, ``kind: SLO``): ``spec.objectives[].target``
  (or ``targetPercent``), ``spec.timeWindow[0].duration`` (the period; default 30d when
  absent), and an SLI, inline (``spec.indicator``) or by name (``spec.indicatorRef``, an ``SLI``
  document in the same input), whose ``ratioMetric`` gives ``good``/``total`` or ``bad``/
  ``total`` queries as ``metricSource.spec.query`` of ``metricSource.type: Prometheus`` (or of a
  ``metricSourceRef`` naming a ``DataSource`` of that type in the same input). One definition
  per objective. ``budgetingMethod`` must be ``Occurrences`` (or absent).
- **Sloth** (``version: prometheus/v1``, and the same spec as the ``PrometheusServiceLevel``
  Kubernetes resource of ``apiVersion: sloth.slok.dev/v1``): ``service``, ``slos[].objective``
  in percent, ``slos[].sli.events.error_query``/``total_query`` (``errorQuery``/``totalQuery``
  too) with the ``{{.window}}`` placeholder. Sloth specs carry no period: ``default_period_s``
  (Sloth's own default is 30 days).

Refused with a message that says why and what would work: OpenSLO ``thresholdMetric`` and
``raw`` ratios, sources other than Prometheus, Timeslices budgeting, other apiVersions; Sloth
``raw`` and ``plugin`` SLIs. OpenSLO durations: ``m``, ``h``, ``d``, ``w``, and ``M``, ``Q``,
``Y`` read as 30, 90 and 365 days (the spec leaves their length to implementations).

Input size is bounded by the caller; YAML is read with ``yaml.safe_load_all``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from .units import prometheus_duration

DAY = 86400.0
DEFAULT_PERIOD_S = 30 * DAY
OPENSLO_V1 = "openslo/v1"
SLOTH_V1 = "prometheus/v1"
SLOTH_K8S = "sloth.slok.dev/v1"
_WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")
_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_SHORTHAND_S = {
    "m": 60.0,
    "h": 3600.0,
    "d": DAY,
    "w": 7 * DAY,
    "M": 30 * DAY,
    "Q": 90 * DAY,
    "Y": 365 * DAY,
}


@dataclass(frozen=True, slots=True)
class SloDefinition:
    """A ratio SLO: ``objective`` (a fraction, 0.999) of events good over ``period_s``.

    Exactly one of ``good_query`` and ``bad_query`` is set; queries are PromQL and may hold the
    ``{{.window}}`` placeholder (``query``). ``counter`` is OpenSLO's ``ratioMetric.counter``
    (None when the format does not say: Sloth's queries are already rates over the window).
    """

    name: str
    objective: float
    period_s: float
    total_query: str
    source_format: str
    good_query: str | None = None
    bad_query: str | None = None
    service: str = ""
    description: str = ""
    counter: bool | None = None

    def __post_init__(self) -> None:
        if (self.good_query is None) == (self.bad_query is None):
            raise ValueError(f"SLO {self.name!r}: give exactly one of a good and a bad query")
        if not 0 < self.objective < 1:
            raise ValueError(f"SLO {self.name!r}: objective {self.objective!r} outside (0, 1)")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"SLO {self.name!r}: period {self.period_s!r} must be positive")

    def query(self, which: str, window_s: float) -> str:
        """The ``good``, ``bad`` or ``total`` query with ``{{.window}}`` set to ``window_s``
        (as a PromQL duration: ``5m``, ``1h``)."""
        text = {"good": self.good_query, "bad": self.bad_query, "total": self.total_query}.get(
            which
        )
        if text is None:
            raise ValueError(f"SLO {self.name!r} has no {which!r} query")
        return render_window(text, window_s)


def render_window(query: str, window_s: float) -> str:
    """``query`` with every ``{{.window}}`` replaced by ``window_s`` as a PromQL duration."""
    return _WINDOW.sub(prometheus_duration(window_s), query)


def load_slo_definitions(
    text: str, default_period_s: float = DEFAULT_PERIOD_S
) -> tuple[SloDefinition, ...]:
    """Every SLO of a YAML text of OpenSLO and/or Sloth documents (``---`` separated)."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise ValueError(f"the SLO file is not valid YAML: {err}") from None
    return slo_definitions_from(documents, default_period_s)


def slo_definitions_from(
    documents: Iterable[Any], default_period_s: float = DEFAULT_PERIOD_S
) -> tuple[SloDefinition, ...]:
    """Every SLO of parsed documents; SLI and DataSource documents are looked up by name."""
    docs = [d for d in documents if d is not None]
    slis: dict[str, Mapping[str, Any]] = {}
    sources: dict[str, Mapping[str, Any]] = {}
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("apiVersion") == OPENSLO_V1:
            name = str(_get(doc, "metadata", "name") or "")
            if doc.get("kind") == "SLI":
                slis[name] = doc
            elif doc.get("kind") == "DataSource":
                sources[name] = doc
    found: list[SloDefinition] = []
    for index, doc in enumerate(docs, 1):
        where = f"document {index}"
        if not isinstance(doc, Mapping):
            raise ValueError(f"{where} is a {type(doc).__name__}, not a mapping: not an SLO")
        api = doc.get("apiVersion")
        if doc.get("version") == SLOTH_V1:
            found += _sloth(doc, where, default_period_s, SLOTH_V1)
        elif api == SLOTH_K8S and doc.get("kind") == "PrometheusServiceLevel":
            spec = doc.get("spec")
            if not isinstance(spec, Mapping):
                raise ValueError(f"{where}: PrometheusServiceLevel without a spec")
            found += _sloth(spec, where, default_period_s, SLOTH_K8S)
        elif api == OPENSLO_V1:
            if doc.get("kind") == "SLO":
                found += _openslo(doc, where, default_period_s, slis, sources)
        elif isinstance(api, str) and api.startswith("openslo/"):
            raise ValueError(
                f"{where}: apiVersion {api!r} is not supported: releasegate reads {OPENSLO_V1}"
            )
        else:
            raise ValueError(
                f"{where} is neither an OpenSLO document (apiVersion: {OPENSLO_V1}) nor a Sloth "
                f"spec (version: {SLOTH_V1})"
            )
    if not found:
        raise ValueError("no SLO found: expected an OpenSLO 'kind: SLO' document or a Sloth spec")
    return tuple(found)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _openslo(
    doc: Mapping[str, Any],
    where: str,
    default_period_s: float,
    slis: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, Mapping[str, Any]],
) -> list[SloDefinition]:
    name = str(_get(doc, "metadata", "name") or "")
    if not name:
        raise ValueError(f"{where}: OpenSLO SLO without metadata.name")
    here = f"OpenSLO SLO {name!r} ({where})"
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{here}: no spec")
    method = spec.get("budgetingMethod", "Occurrences")
    if method != "Occurrences":
        raise ValueError(
            f"{here}: budgetingMethod {method!r} is not supported: releasegate counts events "
            f"(Occurrences), not good time slices"
        )
    indicator = _indicator(spec, here, slis)
    ratio = _ratio_metric(indicator, here)
    good = _prometheus_query(ratio.get("good"), "good", here, sources)
    bad = _prometheus_query(ratio.get("bad"), "bad", here, sources)
    total = _prometheus_query(ratio.get("total"), "total", here, sources)
    if total is None or (good is None) == (bad is None):
        raise ValueError(f"{here}: ratioMetric needs 'total' and exactly one of 'good' and 'bad'")
    period = _openslo_period(spec.get("timeWindow"), here, default_period_s)
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise ValueError(f"{here}: spec.objectives must list at least one target")
    counter = ratio.get("counter")
    found = []
    for i, objective in enumerate(objectives):
        label = name
        if len(objectives) > 1:
            shown = _get(objective, "displayName") or str(i)
            label = f"{name}/{shown}"
        found.append(
            SloDefinition(
                name=label,
                objective=_openslo_target(objective, f"{here}: objectives[{i}]"),
                period_s=period,
                total_query=total,
                good_query=good,
                bad_query=bad,
                source_format=OPENSLO_V1,
                service=str(spec.get("service") or ""),
                description=str(spec.get("description") or ""),
                counter=counter if isinstance(counter, bool) else None,
            )
        )
    return found


def _indicator(
    spec: Mapping[str, Any], here: str, slis: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any]:
    indicator = spec.get("indicator")
    ref = spec.get("indicatorRef")
    if indicator is None and ref is not None:
        indicator = slis.get(str(ref))
        if indicator is None:
            raise ValueError(
                f"{here}: indicatorRef {ref!r} names no SLI document in this file: add the "
                f"'kind: SLI' document or inline it as spec.indicator"
            )
    if not isinstance(indicator, Mapping):
        raise ValueError(f"{here}: needs spec.indicator or spec.indicatorRef")
    body = indicator.get("spec")
    if not isinstance(body, Mapping):
        raise ValueError(f"{here}: the indicator has no spec")
    return body


def _ratio_metric(indicator: Mapping[str, Any], here: str) -> Mapping[str, Any]:
    if "thresholdMetric" in indicator:
        raise ValueError(
            f"{here}: a thresholdMetric SLI is not supported: releasegate evaluates ratioMetric "
            f"SLIs (good/total or bad/total); hold a threshold with a prometheus check instead"
        )
    ratio = indicator.get("ratioMetric")
    if not isinstance(ratio, Mapping):
        raise ValueError(f"{here}: the indicator needs a ratioMetric with good/bad and total")
    if "raw" in ratio:
        raise ValueError(
            f"{here}: a raw (precomputed) ratioMetric is not supported: give good/total or "
            f"bad/total queries so the events can be counted per window"
        )
    return ratio


def _prometheus_query(
    part: Any, which: str, here: str, sources: Mapping[str, Mapping[str, Any]]
) -> str | None:
    if part is None:
        return None
    source = _get(part, "metricSource")
    if not isinstance(source, Mapping):
        raise ValueError(f"{here}: ratioMetric.{which} needs a metricSource")
    kind = source.get("type")
    ref = source.get("metricSourceRef")
    if kind is None and ref is not None:
        kind = _get(sources.get(str(ref)), "spec", "type")
        if kind is None:
            raise ValueError(
                f"{here}: ratioMetric.{which}.metricSource.metricSourceRef {ref!r} names no "
                f"DataSource in this file: set metricSource.type: Prometheus"
            )
    if not isinstance(kind, str) or kind.lower() != "prometheus":
        raise ValueError(
            f"{here}: ratioMetric.{which} reads from {kind!r}: releasegate queries Prometheus "
            f"only (metricSource.type: Prometheus)"
        )
    query = _get(source, "spec", "query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{here}: ratioMetric.{which}.metricSource.spec.query is missing")
    return query.strip()


def _openslo_period(windows: Any, here: str, default_period_s: float) -> float:
    if windows is None:
        return default_period_s
    if not isinstance(windows, list) or len(windows) != 1:
        raise ValueError(f"{here}: spec.timeWindow must list exactly one window")
    duration = _get(windows[0], "duration")
    match = _SHORTHAND.match(str(duration)) if duration is not None else None
    if match is None or int(match[1]) == 0:
        raise ValueError(
            f"{here}: timeWindow duration {duration!r}: a positive number and one of "
            f"m, h, d, w, M, Q, Y (e.g. 28d, 4w, 1M)"
        )
    return int(match[1]) * _SHORTHAND_S[match[2]]


def _openslo_target(objective: Any, here: str) -> float:
    if not isinstance(objective, Mapping):
        raise ValueError(f"{here}: an objective is a mapping with target or targetPercent")
    target, percent = objective.get("target"), objective.get("targetPercent")
    if (target is None) == (percent is None):
        raise ValueError(f"{here}: give exactly one of target (0.999) and targetPercent (99.9)")
    if target is not None:
        return _fraction(target, Decimal(1), f"{here}: target")
    return _fraction(percent, Decimal(100), f"{here}: targetPercent")


def _fraction(value: Any, scale: Decimal, here: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{here} {value!r} is not a number")
    try:
        fraction = float(Decimal(str(value)) / scale)
    except InvalidOperation:
        raise ValueError(f"{here} {value!r} is not a number") from None
    if not 0 < fraction < 1:
        top = "1" if scale == 1 else "100"
        raise ValueError(
            f"{here} {value!r} must be above 0 and below {top}: an objective of {top} leaves "
            f"no error budget"
        )
    return fraction


def _sloth(
    spec: Mapping[str, Any], where: str, default_period_s: float, source_format: str
) -> list[SloDefinition]:
    service = str(spec.get("service") or "")
    if not service:
        raise ValueError(f"Sloth spec ({where}): 'service' is required")
    slos = spec.get("slos")
    if not isinstance(slos, list) or not slos:
        raise ValueError(f"Sloth spec {service!r} ({where}): 'slos' must list at least one SLO")
    found = []
    for i, slo in enumerate(slos):
        name = str(_get(slo, "name") or "")
        here = f"Sloth SLO {name or i!r} of {service!r} ({where})"
        if not name:
            raise ValueError(f"{here}: 'name' is required")
        sli = _get(slo, "sli")
        if not isinstance(sli, Mapping):
            raise ValueError(f"{here}: 'sli' is required")
        if "raw" in sli:
            raise ValueError(
                f"{here}: a raw SLI (error_ratio_query) is not supported: give events with "
                f"error_query and total_query so the events can be counted"
            )
        if "plugin" in sli:
            raise ValueError(f"{here}: SLI plugins are not supported: give sli.events")
        events = sli.get("events")
        if not isinstance(events, Mapping):
            raise ValueError(f"{here}: sli.events with error_query and total_query is required")
        error_query = _sloth_query(events, ("error_query", "errorQuery"), here)
        total_query = _sloth_query(events, ("total_query", "totalQuery"), here)
        found.append(
            SloDefinition(
                name=name,
                objective=_fraction(_get(slo, "objective"), Decimal(100), f"{here}: objective"),
                period_s=default_period_s,
                total_query=total_query,
                bad_query=error_query,
                source_format=source_format,
                service=service,
                description=str(_get(slo, "description") or ""),
            )
        )
    return found


def _sloth_query(events: Mapping[str, Any], keys: tuple[str, str], here: str) -> str:
    query = next((events[k] for k in keys if k in events), None)
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{here}: sli.events.{keys[0]} is required")
    if not _WINDOW.search(query):
        raise ValueError(
            f"{here}: sli.events.{keys[0]} must use the {{{{.window}}}} placeholder in its range "
            f"selector, e.g. rate(http_requests_total[{{{{.window}}}}])"
        )
    return query.strip()
