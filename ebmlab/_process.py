"""Whether another process is still alive (for stale lock and temporary files)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True when a process with id ``pid`` exists (signal 0 probes without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
