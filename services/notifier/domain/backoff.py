"""The retry schedule: how long to wait after the n-th failed attempt.

The schedule is a list of delays, written for operators as
`PAYMESH_RETRY_SCHEDULE="5s,30s,2m,10m,30m,1h,2h,4h,8h,8h"` (about a day in
total, roughly doubling, capped at 8 hours). After the first attempt fails the
first delay applies, and so on; when the list is used up the delivery is
dead-lettered. Each delay is spread by +/- `jitter` (a fraction) so that many
deliveries failing together (a merchant outage) do not come back in lockstep.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from services.notifier.domain.records import DeliveryState

DEFAULT_SCHEDULE = "5s,30s,2m,10m,30m,1h,2h,4h,8h,8h"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
_ITEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*$")


def parse_schedule(text: str) -> tuple[float, ...]:
    """'5s,30s,2m' -> (5.0, 30.0, 120.0); ValueError naming the bad item.

    An empty string means "never retry" (one attempt, then dead letter)."""
    if not text.strip():
        return ()
    delays = []
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(f"retry schedule item {item.strip()!r} is not a duration like 500ms, 5s, 2m, 1h or 1d")
        value = float(match.group(1)) * _UNITS[match.group(2)]
        if value <= 0:
            raise ValueError(f"retry schedule item {item.strip()!r} must be positive")
        delays.append(value)
    return tuple(delays)


def total_span(schedule: Sequence[float]) -> float:
    return float(sum(schedule))


def retry_delay(
    failed_attempts: int,
    schedule: Sequence[float],
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait after `failed_attempts` consecutive failures (>= 1) of the
    current cycle, or None when the schedule is exhausted (dead letter)."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts from 1")
    if failed_attempts > len(schedule):
        return None
    delay = schedule[failed_attempts - 1]
    if jitter > 0:
        r = (rng or random).uniform(-jitter, jitter)
        delay = delay * (1.0 + r)
    return max(0.0, delay)


def max_attempts(schedule: Sequence[float]) -> int:
    """Attempts in one cycle: the first one plus one per scheduled retry."""
    return len(schedule) + 1


def after_attempt(
    succeeded: bool,
    cycle_attempts: int,
    schedule: Sequence[float],
    now: datetime,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> tuple[DeliveryState, datetime | None]:
    """Where a delivery goes after an attempt: succeeded, pending until the next
    attempt, or dead-lettered once the schedule is used up."""
    if succeeded:
        return DeliveryState.SUCCEEDED, None
    delay = retry_delay(cycle_attempts, schedule, jitter, rng)
    if delay is None:
        return DeliveryState.DEAD_LETTERED, None
    return DeliveryState.PENDING, now + timedelta(seconds=delay)
