"""Rate limiting for live views: a drawing runs at most once per ``interval`` seconds.

A training loop calls ``ready()`` on every batch; it is True only when ``interval`` seconds have
passed since the last accepted call, so the cost of drawing stays a bounded fraction of the
training time (cost / interval) however fast the loop runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """``ready()`` answers True at most once per ``interval`` seconds (the first call always)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
            raise ValueError(f"interval must be a number of seconds ≥ 0, got {interval!r}")
        self.interval = float(interval)
        self.clock = clock
        self._last: float | None = None
        self.accepted = 0

    def ready(self) -> bool:
        """True when a drawing may run now; the call that answers True starts a new interval."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        self.accepted += 1
        return True

    def reset(self) -> None:
        """Forget the last accepted call, so the next ``ready()`` is True."""
        self._last = None
