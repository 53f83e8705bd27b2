"""A fixed-window limit per key (a client address): at most `limit` actions per
`window` seconds, and how long until the next is allowed. Pure: the caller gives the
time. Memory is bounded: at most `max_keys` keys are remembered (the oldest windows
are forgotten first), so a flood of addresses cannot grow it."""

from __future__ import annotations

import math
from collections import OrderedDict


class WindowLimit:
    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def take(self, key: str, now: float) -> int:
        """0 when the action is allowed (and counted); else the whole seconds to wait."""
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.limit:
            return max(1, math.ceil(start + self.window - now))
        self._windows[key] = (start, count + 1)
        self._windows.move_to_end(key)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        return 0
