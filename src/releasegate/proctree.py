"""Every process a hook started, found and killed, including those that left its process group.

On Linux a process belongs to a hook's tree when any of these holds (read from ``/proc``):

* it is in the hook's process group or session (the hook leads its own session);
* its environment carries the hook's run token (``RELEASEGATE_HOOK_RUN``), which survives
  ``setsid`` and double forks: a daemon reparented to init is still found;
* it holds the hook's end of one of the hook's pipes (the write end of stdout/stderr, the read
  end of stdin), even with a cleared environment;
* its parent is in the tree.

Killing stops the tree first (SIGSTOP: a stopped process cannot fork), looking again for new
members until a pass finds none, then SIGKILLs every one and checks again until nothing of the
tree runs. Signals go through a pidfd opened after checking the process's start time, so a
recycled pid is never signalled. Without ``/proc`` only the process group is killed.

A child's output is kept in bounded memory by ``OutputCapture`` (its head and its tail,
redacted when rendered): hooks, locust runs and command log sources use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .redact import redact_text

#: The environment variable that marks every process of one hook run.
TOKEN_VAR = "RELEASEGATE_HOOK_RUN"

_PROC = "/proc"
#: How long killing one tree may take at most (a fork bomb is stopped, not outrun forever).
KILL_BUDGET_S = 5.0


@dataclass(frozen=True, slots=True)
class Proc:
    """One line of ``/proc/<pid>/stat``, the fields we need."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    state: str
    start: int  # clock ticks after boot: with the pid, who the process is

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X", "x")


@dataclass(slots=True)
class Tree:
    """How to recognise the processes of one hook run."""

    root: int
    token: str
    #: pipe inode -> the access mode (``os.O_RDONLY``/``os.O_WRONLY``) of the hook's end
    pipes: dict[int, int] = field(default_factory=dict)
    #: False once the root has been reaped: its pid (and group) may then belong to another
    root_owned: bool = True

    @property
    def marker(self) -> bytes:
        return f"{TOKEN_VAR}={self.token}".encode()


def proc_available() -> bool:
    return os.path.isdir(f"{_PROC}/self/fd")


def read_stat(pid: int) -> Proc | None:
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: the fields resume after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return Proc(
            pid=pid,
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
            state=fields[0].decode("ascii", "replace"),
            start=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def _all_procs() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    try:
        names = os.listdir(_PROC)
    except OSError:
        return procs
    for name in names:
        if name.isdigit():
            found = read_stat(int(name))
            if found is not None:
                procs[found.pid] = found
    return procs


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            return marker in handle.read().split(b"\0")
    except OSError:
        return False


def _holds_pipe(pid: int, pipes: dict[int, int]) -> bool:
    if not pipes:
        return False
    base = f"{_PROC}/{pid}"
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"{base}/fd/{fd}")
        except OSError:
            continue
        if not link.startswith("pipe:["):
            continue
        try:
            inode = int(link[6:-1])
        except ValueError:
            continue
        wanted = pipes.get(inode)
        if wanted is not None and _access_mode(base, fd) == wanted:
            return True
    return False


def _access_mode(base: str, fd: str) -> int | None:
    try:
        with open(f"{base}/fdinfo/{fd}", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE
    except (OSError, ValueError, IndexError):
        return None
    return None


def members(tree: Tree) -> dict[int, Proc]:
    """The live (not zombie) processes of the tree now, by pid; never this process or init."""
    procs = _all_procs()
    me = os.getpid()
    live = {pid: p for pid, p in procs.items() if not p.dead and pid not in (me, 1)}
    found: dict[int, Proc] = {}
    marker = tree.marker
    for pid, p in live.items():
        if (
            (tree.root_owned and (pid == tree.root or tree.root in (p.pgrp, p.session)))
            or _has_marker(pid, marker)
            or _holds_pipe(pid, tree.pipes)
        ):
            found[pid] = p
    # Descendants of any member, and of the root while it is ours (zombie or not).
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    queue = list(found)
    if tree.root_owned:
        queue.append(tree.root)
    while queue:
        for child in children.get(queue.pop(), ()):
            if child in live and child not in found:
                found[child] = live[child]
                queue.append(child)
    return found


def _signal(p: Proc, sig: int) -> bool:
    """Signal ``p`` if the pid still names the same process; False if it is gone."""
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open is None or send is None:
        now = read_stat(p.pid)
        if now is None or now.start != p.start:
            return False
        try:
            os.kill(p.pid, sig)
        except OSError:
            return False
        return True
    try:
        fd = pidfd_open(p.pid)
    except OSError:
        return False
    try:
        # The pidfd pins the process: checked after opening it, the start time proves that it
        # is the process we found and not a new one that took a recycled pid.
        now = read_stat(p.pid)
        if now is None or now.start != p.start:
            return False
        send(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _killpg(root: int, sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(root, sig)


def kill_tree(tree: Tree, *, budget_s: float = KILL_BUDGET_S) -> int:
    """SIGKILL every process of the tree; return how many processes were signalled."""
    if not proc_available():
        if tree.root_owned:
            _killpg(tree.root, signal.SIGKILL)
        return 0
    deadline = time.monotonic() + budget_s
    hit: dict[tuple[int, int], Proc] = {}
    # Freeze: stop each member, then look again for children forked in the meantime.
    while time.monotonic() < deadline:
        new = [p for p in members(tree).values() if (p.pid, p.start) not in hit]
        if not new:
            break
        for p in new:
            if _signal(p, signal.SIGSTOP):
                hit[(p.pid, p.start)] = p
    _kill(hit.values())
    if tree.root_owned:
        _killpg(tree.root, signal.SIGKILL)
    # Until nothing of the tree runs: whatever a process forked as it died is killed too.
    while time.monotonic() < deadline:
        left = list(members(tree).values())
        if not left:
            break
        for p in left:
            hit.setdefault((p.pid, p.start), p)
        _kill(left)
        time.sleep(0.005)
    return len(hit)


def _kill(procs: Iterable[Proc]) -> None:
    for p in procs:
        _signal(p, signal.SIGKILL)


class OutputCapture:
    """The head and tail of one stream, in bounded memory whatever the stream's size."""

    __slots__ = ("_head_max", "_tail_max", "head", "tail", "total")

    def __init__(self, head_max: int, tail_max: int) -> None:
        self._head_max = head_max
        self._tail_max = tail_max
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_max - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk or self._tail_max <= 0:
            return
        if len(chunk) >= self._tail_max:
            self.tail[:] = chunk[-self._tail_max :]
            return
        self.tail += chunk
        excess = len(self.tail) - self._tail_max
        if excess > 0:
            del self.tail[:excess]

    def render(self) -> tuple[str, int]:
        """The redacted text kept, with a marker where bytes were dropped; and how many were."""
        head, tail = bytes(self.head), bytes(self.tail)
        if self.total == len(head) + len(tail):
            return redact_text((head + tail).decode("utf-8", "replace")), 0
        # Cut at line ends: a line broken by the cut could hide a secret from the redaction
        # patterns. One long line is kept as it is.
        cut = head.rfind(b"\n")
        if cut > 0:
            head = head[: cut + 1]
        cut = tail.find(b"\n")
        if 0 <= cut < len(tail) - 1:
            tail = tail[cut + 1 :]
        dropped = self.total - len(head) - len(tail)
        head_text = redact_text(head.decode("utf-8", "replace"))
        tail_text = redact_text(tail.decode("utf-8", "replace"))
        joint = "" if not head_text or head_text.endswith("\n") else "\n"
        return f"{head_text}{joint}[... {dropped} bytes dropped ...]\n{tail_text}", dropped
