"""Files that must survive a crash: written whole or not at all, and a lock per phase.

``write_atomic`` writes a temporary file beside the target, fsyncs it, renames it over the
target and fsyncs the folder, so a reader (or a power cut) sees the old file or the new one,
never half of either. ``phase_lock`` keeps two gate runs of the same deployment and phase from
writing over each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically and durably; raises ``OSError`` on failure
    and leaves no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def archive(path: Path, stamp: str) -> Path | None:
    """Keep the current ``path`` as ``archive/<stem>-<stamp><suffix>`` beside it (a hard link,
    or a copy where links are not allowed) before it is replaced; None if there is none."""
    if not path.exists():
        return None
    folder = path.parent / "archive"
    folder.mkdir(exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in stamp)
    target = folder / f"{path.stem}-{safe}{path.suffix}"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{path.stem}-{safe}-{n}{path.suffix}"
    try:
        os.link(path, target)
    except OSError:
        write_atomic(target, path.read_text(encoding="utf-8"))
    return target


class PhaseLock:
    """One gate run at a time per deployment and phase: a file lock in the phase's folder.

    The lock is the operating system's (``filelock``): a run that dies releases it. The lock
    file says who holds it, for the message a second run prints.
    """

    def __init__(self, folder: Path, what: str) -> None:
        self.folder = folder
        self.what = what
        self.path = folder / ".lock"
        self._lock: object | None = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting at most ``wait_s``; raise ``UsageError`` naming the holder."""
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path) + ".flock", timeout=wait_s)
        try:
            lock.acquire(timeout=max(wait_s, 0.0), poll_interval=0.05)
        except Timeout:
            holder = self.holder()
            raise UsageError(
                f"another gate run of {self.what} is in progress ({holder}); waited {wait_s:g}s."
                " Two runs of one phase would overwrite each other's record: wait for it to"
                " finish, or pass --rg-lock-wait SECONDS to wait longer"
            ) from None
        self._lock = lock
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        with contextlib.suppress(OSError):
            self.path.write_text(json.dumps(info), encoding="utf-8")

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
            return f"pid {info['pid']} on {info['host']}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return "holder unknown"

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            lock.release()  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def held(self, wait_s: float = 0.0) -> Iterator[None]:
        self.acquire(wait_s)
        try:
            yield
        finally:
            self.release()
