"""Load checks with real locust runs against the real demo target (loopback, a few seconds,
a few users): thresholds passing and failing, the live abort, NO_DATA on an empty run, a
master with two workers merging exact percentiles, locust's crash, the connection guard, and
no process left behind after a timeout or an abort. Locust runs as a child process only: the
last test checks that neither it nor gevent ever entered this process."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require_service
from releasegate import deadlines, proctree
from releasegate.demo import DemoTarget
from releasegate.load.runner import LocustRun, child_env, free_port
from releasegate.model import Status
from releasegate.phases import Phase
from releasegate.probes.base import ProbeContext, ProbeResult, run_check
from releasegate.probes.load import probe_load
from releasegate.spec import Spec
from releasegate.target import TargetClient

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "loadtests" / "shop.py"

IDLE = """
import json, os, sys
from pathlib import Path

from locust import User, constant, task

# What the child process is made of, for the test to read.
Path(__file__).with_name("child.json").write_text(json.dumps({
    "pytest": sorted(m for m in sys.modules if "pytest" in m),
    "env": sorted(k for k in os.environ if k.startswith("PYTEST")),
    "gevent": "gevent" in sys.modules,
}))

class Idle(User):
    wait_time = constant(0.5)

    @task
    def nothing(self):
        pass
"""

ELSEWHERE = """
from locust import FastHttpUser, constant, task

class Wanderer(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def away(self):
        self.client.get("http://192.0.2.10/", name="away")
"""

BROKEN = "from locust import FastHttpUser\nthis is not python\n"


@pytest.fixture(scope="module", autouse=True)
def _locust_installed() -> None:
    if importlib.util.find_spec("locust") is None:
        require_service("locust", "the locust package is not installed (pip install locust)")


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoTarget]:
    with DemoTarget(traffic_rps=0, fault_seed=5) as target:
        yield target


@pytest.fixture
def healthy(demo: DemoTarget) -> Iterator[DemoTarget]:
    demo.clear_faults()
    yield demo
    demo.clear_faults()


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """An environment mark every child of this test inherits: how its processes are found."""
    mark = f"rg-load-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("RG_LOAD_TEST_MARK", mark)
    return mark


def wait_marked(mark: str, count: int, within_s: float = 10.0) -> list[int]:
    """The marked processes once there are ``count`` (locust forks its workers after loading
    the locustfile), or as many as there are at the end of ``within_s``."""
    until = time.monotonic() + within_s
    found = marked(mark)
    while len(found) < count and time.monotonic() < until:
        time.sleep(0.1)
        found = marked(mark)
    return found


def marked(mark: str) -> list[int]:
    """Live processes carrying ``mark`` in their environment."""
    needle = f"RG_LOAD_TEST_MARK={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        stat = proctree.read_stat(int(name))
        if stat is None or stat.dead:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def probe(url: str, check: dict[str, Any], spec_dir: Path = REPO) -> ProbeResult:
    spec = Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": {"base_url": url},
            "checks": [{"name": "load", "phases": ["t48h"], "type": "load", **check}],
        }
    )
    ctx = ProbeContext(
        spec=spec,
        target=TargetClient(base_url=url, timeout_s=3),
        phase=Phase.T48H,
        spec_dir=spec_dir,
    )
    return run_check(spec.checks[0], ctx)


SHORT = {"locustfile": "loadtests/shop.py", "users": 8, "spawn_rate": 8, "duration": "3s"}


def table(result: ProbeResult) -> dict[str, Any]:
    run = next(e for e in result.evidence if e.measured.startswith("locust:"))
    value: dict[str, Any] = run.value
    return value


def test_healthy_target_passes_with_exact_and_locust_percentiles(
    healthy: DemoTarget, marker: str
) -> None:
    result = probe(
        healthy.url,
        {**SHORT, "duration": "5s", "thresholds": ["p(95) < 300ms", "error_rate < 5%"]},
    )
    assert result.status is Status.PASSED, result.reason
    assert "all 2 thresholds held" in result.reason
    total = table(result)["Total"]
    assert total["requests"] >= 60
    assert total["p95_ms"] is not None and total["p95_ms"] < 300
    assert total["locust"]["requests"] == total["requests"]  # locust's own count beside ours
    assert "GET /api/products" in table(result)
    assert marked(marker) == []
    assert "locust" not in sys.modules and "gevent" not in sys.modules


def test_latency_fault_fails_the_percentile(healthy: DemoTarget) -> None:
    healthy.set_faults({"latency_ms": 400})
    result = probe(healthy.url, {**SHORT, "thresholds": ["p(95) < 300ms"]})
    assert result.status is Status.FAILED, result.reason
    assert result.reason.startswith("p(95) < 300 ms: p(95) 4")
    verdict = result.evidence[0]
    assert verdict.value is not None and verdict.value >= 400
    assert verdict.limits[0].value == 300 and verdict.limits[0].unit == "ms"


def test_abort_on_fail_with_grace_stops_the_run_early(healthy: DemoTarget, marker: str) -> None:
    healthy.set_faults({"latency_ms": 400})
    started = time.monotonic()
    result = probe(
        healthy.url,
        {
            **SHORT,
            "duration": "30s",
            "thresholds": [
                {"threshold": "p(95) < 300ms", "abort_on_fail": True, "grace": "1s"},
            ],
        },
    )
    took = time.monotonic() - started
    assert result.status is Status.FAILED, result.reason
    assert result.reason.startswith("aborted after")
    assert "breached for" in result.reason
    breach = result.evidence[0].value
    assert breach["breached_for_s"] >= 1.0
    assert took < 15, f"a 30 s run aborted only after {took:.1f}s"
    assert marked(marker) == []


def test_tasks_that_send_nothing_are_no_data(healthy: DemoTarget, tmp_path: Path) -> None:
    (tmp_path / "idle.py").write_text(IDLE)
    result = probe(
        healthy.url,
        {**SHORT, "locustfile": "idle.py", "duration": "2s", "thresholds": ["p(95) < 300ms"]},
        spec_dir=tmp_path,
    )
    assert result.status is Status.NO_DATA, result.reason
    assert result.reason.startswith("no request measured")
    child = json.loads((tmp_path / "child.json").read_text())
    assert child == {"pytest": [], "env": [], "gevent": True}  # pytest-free, gevent in there


def test_too_few_samples_is_no_data_with_how_many(healthy: DemoTarget) -> None:
    result = probe(
        healthy.url, {**SHORT, "users": 2, "duration": "2s", "thresholds": ["p(99.9) < 1s"]}
    )
    assert result.status is Status.NO_DATA, result.reason
    assert "needs at least 10000" in result.reason


def test_a_broken_locustfile_is_an_error(healthy: DemoTarget, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    result = probe(
        healthy.url,
        {**SHORT, "locustfile": "broken.py", "thresholds": ["p(95) < 300ms"]},
        spec_dir=tmp_path,
    )
    assert result.status is Status.ERROR, result.reason
    assert "locust exited with status" in result.reason
    missing = probe(healthy.url, {**SHORT, "locustfile": "nope.py", "thresholds": ["rps > 1"]})
    assert missing.status is Status.ERROR and "not found" in missing.reason


def test_traffic_outside_loopback_is_refused_in_the_child(
    healthy: DemoTarget, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere.py").write_text(ELSEWHERE)
    result = probe(
        healthy.url,
        {**SHORT, "locustfile": "elsewhere.py", "duration": "2s", "thresholds": ["rps > 1"]},
        spec_dir=tmp_path,
    )
    assert result.status is Status.ERROR, result.reason
    assert "outside the allowed hosts" in result.reason
    assert "192.0.2.10" in result.reason


def test_master_and_two_workers_merge_exact_percentiles(
    healthy: DemoTarget, tmp_path: Path, marker: str
) -> None:
    with LocustRun(
        locustfile=SHOP,
        host=healthy.url,
        users=6,
        spawn_rate=6,
        run_time_s=3,
        workers=2,
        workdir=tmp_path / "run",
    ) as run:
        run.start()
        assert len(wait_marked(marker, 3)) >= 3  # the master and its two workers
        intervals = []
        while run.running:
            intervals += run.poll()
            time.sleep(0.1)
        result = run.wait()
    assert result.final and result.exit_code == 0, result.output_tail
    assert result.locust is not None
    # Every worker's requests reached the master: our total is locust's (summed from workers).
    assert result.totals.requests == result.locust["total"]["requests"] > 0
    assert result.locust["foreign_reports"] == 0
    # The whole run's histogram is the merge of every interval's (nothing lost, nothing twice).
    assert sum(i.total().requests for i in intervals) <= result.totals.requests
    p95 = result.totals.percentile_ms(95)
    theirs = result.locust["total"]["p95_ms"]
    assert p95 is not None and theirs is not None
    # Locust rounds to two significant digits: ours lies within its rounding of it.
    assert abs(p95 - theirs) <= max(1.0, 0.1 * theirs)
    assert marked(marker) == []


def test_process_tree_gone_after_the_deadline(
    healthy: DemoTarget, tmp_path: Path, marker: str
) -> None:
    run = LocustRun(
        locustfile=SHOP,
        host=healthy.url,
        users=4,
        spawn_rate=4,
        run_time_s=60,
        workers=2,
        workdir=tmp_path / "run",
        deadline_s=4,
    )
    started = time.monotonic()
    with run:
        run.start()
        assert len(wait_marked(marker, 3)) >= 3
        result = run.wait()
    assert time.monotonic() - started < 12
    assert result.stopped_reason == "the run's deadline was reached"
    assert marked(marker) == []


def test_check_deadline_stops_the_probe_as_error(healthy: DemoTarget, marker: str) -> None:
    spec = Spec.model_validate(
        {
            "deployment": {"name": "shop"},
            "target": {"base_url": healthy.url},
            "checks": [
                {
                    "name": "load",
                    "phases": ["t48h"],
                    "type": "load",
                    **SHORT,
                    "duration": "60s",
                    "thresholds": ["p(95) < 300ms"],
                }
            ],
        }
    )
    ctx = ProbeContext(spec=spec, target=TargetClient(base_url=healthy.url), spec_dir=REPO)
    started = time.monotonic()
    with deadlines.within(6.0):
        result = probe_load(spec.checks[0], ctx)
    assert time.monotonic() - started < 8
    assert result.status is Status.ERROR, result.reason
    assert "did not end by itself" in result.reason
    assert marked(marker) == []


def test_process_tree_gone_after_an_abort(healthy: DemoTarget, tmp_path: Path, marker: str) -> None:
    run = LocustRun(
        locustfile=SHOP,
        host=healthy.url,
        users=4,
        spawn_rate=4,
        run_time_s=60,
        workers=2,
        workdir=tmp_path / "run",
    )
    with pytest.raises(KeyboardInterrupt), run:
        run.start()
        assert len(wait_marked(marker, 3)) >= 3
        raise KeyboardInterrupt
    assert run.stopped_reason == "aborted: KeyboardInterrupt"
    assert marked(marker) == []


@pytest.mark.parametrize(
    ("entry", "status"),
    [("releasegate.load.locust_main", Status.PASSED), ("locust", Status.ERROR)],
    ids=["our-worker", "plain-locust-worker"],
)
def test_remote_workers_join_the_master(
    healthy: DemoTarget, marker: str, entry: str, status: Status
) -> None:
    """A worker started apart (as on another machine) joins the check's master; one running
    plain locust has no recorder, and the check says so instead of judging part of the load."""
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", entry, "-f", str(SHOP), "--worker", "--master-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
        start_new_session=True,
    )
    try:
        result = probe(
            healthy.url,
            {
                **SHORT,
                "duration": "4s",
                "remote_workers": {"expect": 1, "port": port},
                "thresholds": ["p(90) < 300ms"],
            },
        )
        worker.wait(timeout=15)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert result.status is status, result.reason
    if status is Status.ERROR:
        assert "without releasegate's recorder" in result.reason
    else:
        assert table(result)["Total"]["requests"] > 0
    assert marked(marker) == []
