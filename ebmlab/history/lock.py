"""One writer per run folder: a lock file created with ``O_CREAT | O_EXCL`` that holds the writer's pid.

A second process that finds the lock of a live pid is refused with ``RunLockedError`` naming the folder
and the pid; a lock left by a dead process (killed, crashed) is taken over. Taking over goes through a
second exclusive file (``<lock>.takeover``), so two processes that find the same stale lock at once
cannot both win.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

from .._process import pid_alive

LOCK_FILE = ".ebmlab.lock"


class RunLockedError(RuntimeError):
    """Another live process holds the lock of a run folder."""


def _holder(path: Path) -> int | None:
    """The pid written in the lock file at ``path``; None when it is gone or does not hold a pid."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _create(path: Path) -> bool:
    """Create ``path`` exclusively with this process's pid; False when it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


class RunLock:
    """``with RunLock(folder):`` holds ``folder/.ebmlab.lock`` for this process (the folder is created)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise ``RunLockedError`` when a live process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if _create(self.path):
                self.held = True
                return
            pid = _holder(self.path)
            if pid is None and self.path.exists():  # a writer between creating the file and writing its pid
                time.sleep(0.1)
                pid = _holder(self.path)
            if pid is not None and pid_alive(pid):  # this process too: one run per folder
                raise RunLockedError(
                    f"another training (pid {pid}) is writing to {self.folder} (lock file {self.path}); "
                    "wait for it to end or use another --out"
                )
            self._take_over(pid)
        raise RunLockedError(f"could not take the lock {self.path}: other processes keep replacing it")

    def _take_over(self, stale: int | None) -> None:
        """Remove the lock of dead pid ``stale``, under the exclusive ``.takeover`` file."""
        guard = self.path.with_name(self.path.name + ".takeover")
        if not _create(guard):
            holder = _holder(guard)
            if holder is None or not pid_alive(holder):
                guard.unlink(missing_ok=True)  # left by a process that died while taking over
            return
        try:
            if _holder(self.path) == stale:
                self.path.unlink(missing_ok=True)
        finally:
            guard.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file when this process holds it."""
        if self.held and _holder(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
