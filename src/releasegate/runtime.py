"""Opening the target a run checks: a URL from the spec, or the embedded demo target."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db.state import DbState
from .netguard import Policy
from .spec import Spec
from .target import TargetClient


@dataclass
class DemoServices:
    """What the embedded demo gives a run besides its URL: the probes read it (``demo://``
    in ``slo.prometheus.url`` and a log check's ``file``), the record keeps the fault seed."""

    fault_seed: int | None = None
    faults: dict[str, str] | None = None
    log_file: Path | None = None
    prometheus_url: str | None = None
    #: ``time.time()`` when the demo's Prometheus scraped first (its data starts there)
    prometheus_since: float | None = None
    prometheus_missing: str = ""
    #: the canary's baseline the demo runs beside it (``target.baseline_url: demo://``)
    baseline_url: str | None = None
    baseline_fault_seed: int | None = None
    baseline_faults: dict[str, str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DemoServices:
        """What ``releasegate demo`` passes to the gate it runs (the demo runs in the CLI)."""
        services = cls()
        seed = env.get("RELEASEGATE_DEMO_FAULT_SEED", "").strip()
        if seed.isdigit():
            services.fault_seed = int(seed)
        faults = env.get("RELEASEGATE_DEMO_FAULTS", "").strip()
        if faults:
            services.faults = dict(f.split("=", 1) for f in faults.split(",") if "=" in f)
        log_file = env.get("RELEASEGATE_DEMO_LOG_FILE", "").strip()
        if log_file:
            services.log_file = Path(log_file)
        seed = env.get("RELEASEGATE_DEMO_BASELINE_FAULT_SEED", "").strip()
        if seed.isdigit():
            services.baseline_fault_seed = int(seed)
            faults = env.get("RELEASEGATE_DEMO_BASELINE_FAULTS", "").strip()
            services.baseline_faults = dict(f.split("=", 1) for f in faults.split(",") if "=" in f)
        since = env.get("RELEASEGATE_DEMO_PROMETHEUS_SINCE", "").strip()
        try:
            services.prometheus_since = float(since) if since else None
        except ValueError:
            services.prometheus_since = None
        return services

    def record(self) -> dict[str, Any]:
        """What the decision record keeps of the demo: its faults and their seed."""
        if self.fault_seed is None:
            return {}
        demo: dict[str, Any] = {"fault_seed": self.fault_seed, "faults": dict(self.faults or {})}
        if self.baseline_fault_seed is not None:
            demo["baseline"] = {
                "fault_seed": self.baseline_fault_seed,
                "faults": dict(self.baseline_faults or {}),
            }
        return {"demo": demo}


@contextmanager
def open_target(
    spec: Spec,
    faults: Sequence[str] = (),
    db: DbState | None = None,
    services: DemoServices | None = None,
) -> Iterator[TargetClient]:
    """Yield a client for the spec's target; ``demo://`` starts the demo target for the run
    (and, when ``baseline_url`` is ``demo://`` too, a second one serving the previous version
    as the canary's baseline; ``faults`` apply to both).

    ``db`` gets the demo's SQLite file, which ``databases: url: demo://`` means; ``services``
    gets the demo's fault seed and log file, and the URL of a Prometheus scraping the demo when
    the spec asks for one (``slo.prometheus.url: demo://``) and one is installed.
    """
    base_url = spec.target.base_url
    baseline_url = spec.target.baseline_url
    policy = Policy.from_hosts(spec.allowed_hosts)
    if db is not None:
        db.policy = policy
    stack = ExitStack()
    try:
        if spec.target.is_demo:
            from .demo import BASELINE_VERSION, DemoTarget
            from .demo.faults import parse_fault

            parsed = dict(parse_fault(f) for f in faults)
            demo = stack.enter_context(DemoTarget(faults=parsed))
            base_url = demo.url
            if db is not None:
                db.demo_db_path = demo.db_path
            if services is not None:
                services.fault_seed = demo.fault_seed
                services.faults = {k: str(v) for k, v in parsed.items()}
                services.log_file = demo.log_path
            # Prometheus scrapes the target only: the suite's SLO queries are the deployment's.
            scraped = [demo.url]
            if baseline_url == "demo://":
                baseline = stack.enter_context(DemoTarget(faults=parsed, version=BASELINE_VERSION))
                baseline_url = baseline.url
                if services is not None:
                    services.baseline_url = baseline.url
                    services.baseline_fault_seed = baseline.fault_seed
                    services.baseline_faults = dict(services.faults or {})
            if services is not None:
                _start_prometheus(spec, scraped, services, stack)
        elif baseline_url == "demo://":
            baseline_url = None  # the demo's baseline runs beside the demo target only
        client = TargetClient(
            base_url=base_url,
            timeout_s=spec.target.timeout_s,
            verify_tls=spec.target.verify_tls,
            headers=dict(spec.target.headers),
            baseline_url=baseline_url,
            max_body_bytes=spec.target.max_body_bytes,
            policy=policy,
        )
        try:
            yield client
        finally:
            client.close()
    finally:
        stack.close()


#: Why the demo's Prometheus checks are skipped on a machine without Prometheus.
PROMETHEUS_MISSING = (
    "the demo's Prometheus is not installed (Debian: apt-get install prometheus);"
    " the scraped /metrics checks measure the same SLOs"
)


def _launch_prometheus(spec: Spec, urls: list[str], stack: ExitStack) -> tuple[str, float] | None:
    """The demo's own Prometheus, scraping ``urls``, when the spec asks (``slo.prometheus.url:
    demo://``) and it is installed: its URL and the time its data starts; stopped by ``stack``.
    None when the spec does not ask; ``("", 0.0)`` when it asks and Prometheus is missing."""
    source = spec.slo.prometheus
    if source is None or source.url != "demo://":
        return None
    from .demo.prometheus import Prometheus, prometheus_binary

    binary = prometheus_binary()
    if binary is None:
        return "", 0.0
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rg-prometheus-")))
    server = Prometheus(urls, workdir, binary)
    server.start()
    stack.callback(server.stop)
    # Prometheus hands targets to its scraper on a 5 s tick: its data starts about then.
    return server.url, time.time() + 5.0


def _start_prometheus(
    spec: Spec, urls: list[str], services: DemoServices, stack: ExitStack
) -> None:
    """The demo's Prometheus for an in-process demo run, noted in ``services``."""
    started = _launch_prometheus(spec, urls, stack)
    if started is None:
        return
    url, since = started
    if not url:
        services.prometheus_missing = PROMETHEUS_MISSING
        return
    services.prometheus_url, services.prometheus_since = url, since


def demo_prometheus_env(
    spec: Spec, urls: list[str], stack: ExitStack, who: str = "releasegate demo"
) -> dict[str, str]:
    """The demo's Prometheus for ``releasegate demo`` and ``soak --demo``: the environment
    that points the gate at it, said on stdout. ``who`` begins the lines it prints."""
    started = _launch_prometheus(spec, urls, stack)
    if started is None:
        return {}
    url, since = started
    if not url:
        print(
            f"{who}: Prometheus is not installed; its checks are skipped and the"
            " scraped /metrics checks measure the same SLOs",
            flush=True,
        )
        return {}
    print(f"{who}: Prometheus {url} scraping the target", flush=True)
    return {"RELEASEGATE_PROMETHEUS_URL": url, "RELEASEGATE_DEMO_PROMETHEUS_SINCE": f"{since:.3f}"}
