"""The command hook with real processes: bounded output, stdin, timeouts, and process trees
that try to outlive the hook (setsid, double forks, daemons holding the pipes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from releasegate.actions import ActionResult
from releasegate.actions.command import HEAD_BYTES, TAIL_BYTES, run_command
from releasegate.proctree import OutputCapture
from releasegate.spec import CommandHook

linux_only = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="process trees are tracked through /proc"
)


def hook(tmp_path: Path, code: str, *, timeout_s: float = 20.0, **kw: object) -> CommandHook:
    script = tmp_path / "hook.py"
    script.write_text(textwrap.dedent(code))
    return CommandHook(name="h", argv=[sys.executable, str(script)], timeout_s=timeout_s, **kw)


def run(h: CommandHook, tmp_path: Path, payload: dict[str, object] | None = None) -> ActionResult:
    return run_command(h, payload or {"decision": "NO-GO"}, {}, base_dir=tmp_path)


def alive(pid: int) -> bool:
    """Running (a zombie has ended: only its parent has not collected it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def wait_for_pids(path: Path, count: int = 1, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {count} pid(s)")


def assert_all_dead(pids: list[int]) -> None:
    # A SIGKILLed process needs a moment to become a zombie.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.02)
    assert [pid for pid in pids if alive(pid)] == []


# -- output ----------------------------------------------------------------------------------


def test_capture_keeps_head_and_tail_and_counts_the_rest() -> None:
    capture = OutputCapture(head_max=10, tail_max=10)
    for _ in range(1000):
        capture.feed(b"0123456789abc\n")
    assert capture.total == 14000
    assert len(capture.head) == 10 and len(capture.tail) == 10
    text, dropped = capture.render()
    # One long line each side: kept as the bytes are, the marker on a line of its own.
    assert (text, dropped) == ("0123456789\n[... 13980 bytes dropped ...]\n456789abc\n", 13980)


def test_capture_whole_when_it_fits() -> None:
    capture = OutputCapture(head_max=10, tail_max=10)
    capture.feed(b"0123456789")
    capture.feed(b"abcdefghij")
    assert capture.render() == ("0123456789abcdefghij", 0)


def test_capture_cuts_at_line_ends() -> None:
    capture = OutputCapture(head_max=12, tail_max=12)
    capture.feed(b"first line\nsecond line\n" + b"x" * 100 + b"\nlast\n")
    text, dropped = capture.render()
    assert text.startswith("first line\n[... ")
    assert text.endswith(" bytes dropped ...]\nlast\n")
    assert dropped == capture.total - len("first line\n") - len("last\n")


def test_capture_one_long_line_is_kept_as_bytes() -> None:
    capture = OutputCapture(head_max=4, tail_max=4)
    capture.feed(b"a" * 4 + b"b" * 100 + b"c" * 4)
    assert capture.render() == ("aaaa\n[... 100 bytes dropped ...]\ncccc", 100)


def test_huge_output_costs_bounded_memory_and_keeps_head_and_tail(tmp_path: Path) -> None:
    """200 MB on stdout: the gate's peak RSS barely moves and the record keeps both ends."""
    (tmp_path / "hook.py").write_text(
        textwrap.dedent(
            """
            import sys
            out = sys.stdout.buffer
            out.write(b"HEAD-OF-OUTPUT\\n")
            block = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmn\\n" * 16384
            for _ in range(200 * 1024 * 1024 // len(block)):
                out.write(block)
            out.write(b"TAIL-OF-OUTPUT\\n")
            sys.stderr.write("password=hunter2 and some noise\\n")
            """
        )
    )
    driver = textwrap.dedent(
        f"""
        import json, resource, sys
        from pathlib import Path
        from releasegate.actions.command import run_command
        from releasegate.spec import CommandHook
        hook = CommandHook(name="big", argv=[sys.executable, "hook.py"], timeout_s=60)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = run_command(hook, {{}}, {{}}, base_dir=Path({str(tmp_path)!r}))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"growth_kib": after - before, "result": result.to_dict()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", driver],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout)
    result = report["result"]
    assert result["ok"] is True, result
    assert report["growth_kib"] < 30 * 1024  # communicate() would have held 200 MB
    stdout = result["stdout"]
    assert stdout.startswith("HEAD-OF-OUTPUT\n")
    assert stdout.endswith("TAIL-OF-OUTPUT\n")
    assert "bytes dropped ...]" in stdout
    assert len(stdout) <= HEAD_BYTES + TAIL_BYTES + 100
    assert result["stdout_dropped"] > 199 * 1024 * 1024
    assert f"[... {result['stdout_dropped']} bytes dropped ...]" in stdout
    assert "hunter2" not in result["stderr"]  # what is kept is redacted
    assert result["stderr_dropped"] == 0


def test_stderr_is_bounded_too(tmp_path: Path) -> None:
    h = hook(
        tmp_path,
        """
        import sys
        for i in range(20000):
            sys.stderr.write(f"err line {i}\\n")
        sys.exit(3)
        """,
    )
    result = run(h, tmp_path)
    assert not result.ok and result.returncode == 3 and result.error == "exit status 3"
    assert result.stderr.startswith("err line 0\n")
    assert result.stderr.endswith("err line 19999\n")
    assert result.stderr_dropped > 0
    assert len(result.stderr) <= HEAD_BYTES + TAIL_BYTES + 100


# -- stdin -----------------------------------------------------------------------------------


def test_hook_gets_the_payload_on_stdin(tmp_path: Path) -> None:
    h = hook(tmp_path, "import json, sys; print(json.load(sys.stdin)['decision'])")
    result = run(h, tmp_path)
    assert result.ok and result.stdout == "NO-GO\n"
    assert result.to_dict()["killed"] == 0


def test_hook_that_never_reads_stdin_completes(tmp_path: Path) -> None:
    """Even with a payload far larger than a pipe buffer."""
    h = hook(tmp_path, "import time; time.sleep(0.2); print('done')", timeout_s=20)
    started = time.monotonic()
    result = run(h, tmp_path, {"blob": "x" * 4_000_000})
    assert result.ok, result
    assert result.stdout == "done\n"
    assert time.monotonic() - started < 5


def test_hook_closing_stdin_early_is_fine(tmp_path: Path) -> None:
    h = hook(tmp_path, "import os, time; os.close(0); time.sleep(0.1)")
    assert run(h, tmp_path, {"blob": "x" * 1_000_000}).ok


def test_missing_command_is_an_error_not_a_crash(tmp_path: Path) -> None:
    h = CommandHook(name="h", argv=[str(tmp_path / "nope")])
    result = run(h, tmp_path)
    assert result.fired and not result.ok and "cannot run" in result.error


# -- timeouts and process trees --------------------------------------------------------------


@linux_only
def test_sleeping_forever_is_killed_at_its_timeout(tmp_path: Path) -> None:
    h = hook(
        tmp_path,
        f"""
        import os, time
        open({str(tmp_path / "pids")!r}, "w").write(str(os.getpid()))
        print("started", flush=True)
        time.sleep(300)
        """,
        timeout_s=1,
    )
    started = time.monotonic()
    result = run(h, tmp_path)
    elapsed = time.monotonic() - started
    assert result.timed_out and not result.ok
    assert 0.9 < elapsed < 5
    assert result.killed >= 1
    assert result.stdout == "started\n"
    assert "no exit within 1s" in result.error
    assert_all_dead(wait_for_pids(tmp_path / "pids"))


DAEMON = """
import os, sys, time
pids = {pids!r}

def daemon():
    # The classic: fork, setsid, fork again; the middle one exits, the last is reparented.
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    {prepare}
    with open(pids, "a") as handle:
        handle.write(f"{{os.getpid()}}\\n")
    time.sleep(300)
    os._exit(0)

daemon()
{after}
"""


def daemon_hook(
    tmp_path: Path, *, prepare: str = "pass", after: str = "", timeout_s: float = 20
) -> tuple[CommandHook, Path]:
    pids = tmp_path / "pids"
    code = DAEMON.format(
        pids=str(pids), prepare=prepare, after=after or WAIT_FOR_PID.format(pids=str(pids))
    )
    return hook(tmp_path, code, timeout_s=timeout_s), pids


WAIT_FOR_PID = """
while not (os.path.exists({pids!r}) and open({pids!r}).read().endswith("\\n")):
    time.sleep(0.01)
print("hook done", flush=True)
"""


@linux_only
def test_daemon_holding_stdout_does_not_hang_the_gate(tmp_path: Path) -> None:
    """The hook exits 0 at once; its daemon keeps stdout open: killed after a short grace."""
    h, pids = daemon_hook(tmp_path, timeout_s=30)
    started = time.monotonic()
    result = run(h, tmp_path)
    assert time.monotonic() - started < 5
    assert result.ok and not result.timed_out, result
    assert result.stdout == "hook done\n"
    assert result.killed == 1
    assert_all_dead(wait_for_pids(pids))


@linux_only
def test_daemon_with_no_pipes_is_found_by_its_environment(tmp_path: Path) -> None:
    """setsid + double fork + output to /dev/null: neither group nor pipes lead to it."""
    prepare = "fd = os.open(os.devnull, os.O_RDWR)\n    for n in (0, 1, 2): os.dup2(fd, n)"
    h, pids = daemon_hook(tmp_path, prepare=prepare)
    result = run(h, tmp_path)
    assert result.ok and result.killed == 1
    assert_all_dead(wait_for_pids(pids))


@linux_only
def test_daemon_with_a_clean_environment_is_found_by_the_pipe_it_holds(tmp_path: Path) -> None:
    prepare = (
        "os.execve('/bin/sh', ['sh', '-c', "
        f"'echo $$ >> {tmp_path / 'pids'}; exec sleep 300'], {{}})"
    )
    h, pids = daemon_hook(tmp_path, prepare=prepare)
    result = run(h, tmp_path)
    assert result.ok and result.killed == 1
    assert_all_dead(wait_for_pids(pids))


@linux_only
def test_setsid_grandchild_of_a_shell_hook_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = tmp_path / "hook.sh"
    script.write_text(
        "sh -c \"setsid sh -c 'echo \\$\\$ >> " + str(pids) + "; exec sleep 300' &\"\n"
        f"while [ ! -s {pids} ]; do sleep 0.01; done\n"
        "echo started\n"
    )
    h = CommandHook(name="h", argv=["sh", str(script)], timeout_s=20)
    result = run(h, tmp_path)
    assert result.ok, result
    assert result.killed >= 1
    assert_all_dead(wait_for_pids(pids))


@linux_only
def test_timeout_kills_the_whole_tree_including_escapees(tmp_path: Path) -> None:
    """The hook hangs; its daemon (own session, reparented to init) is killed with it."""
    h, pids = daemon_hook(
        tmp_path,
        after=WAIT_FOR_PID.format(pids=str(tmp_path / "pids"))
        + f"open({str(tmp_path / 'pids')!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "time.sleep(300)\n",
        timeout_s=1.5,
    )
    result = run(h, tmp_path)
    assert result.timed_out and result.killed == 2
    assert_all_dead(wait_for_pids(pids, 2))


@linux_only
def test_a_chain_forking_while_it_is_killed_is_killed_entirely(tmp_path: Path) -> None:
    """Each process starts its own session and forks the next: a race with the killer."""
    pids = tmp_path / "pids"
    h = hook(
        tmp_path,
        f"""
        import os, time
        for depth in range(300):
            with open({str(pids)!r}, "a") as handle:
                handle.write(f"{{os.getpid()}}\\n")
            if os.fork():
                time.sleep(300)
                os._exit(0)
            os.setsid()
            time.sleep(0.005)
        time.sleep(300)
        """,
        timeout_s=1,
    )
    result = run(h, tmp_path)
    assert result.timed_out
    found = wait_for_pids(pids)
    assert len(found) > 10
    assert result.killed >= len(set(found)) - 1  # the last may not have written its pid yet
    time.sleep(0.2)  # nothing may come back
    assert_all_dead(wait_for_pids(pids))


def test_dark_mode_results_keep_their_keys(tmp_path: Path) -> None:
    unfired = ActionResult(name="h", type="command", fired=False, ok=True).to_dict()
    assert "killed" not in unfired and "stdout_dropped" not in unfired
    fired = run(hook(tmp_path, "pass"), tmp_path).to_dict()
    assert fired["killed"] == 0 and fired["stdout_dropped"] == fired["stderr_dropped"] == 0
