"""Retention: succeeded and skipped deliveries (with their attempts) are deleted
once untouched for `retention_days`. Dead letters and pending deliveries are kept
whatever their age: they still wait for a Redeliver or an attempt."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.adapters import repository as repo

log = structlog.get_logger("notifier")  # the name these log lines always had

# How often finished deliveries are looked for; each round deletes at most
# repo.prune_finished's limit, so a backlog is worked off over several rounds.
PRUNE_EVERY_SECONDS = 300


class RetentionPruner:
    def __init__(self, engine: AsyncEngine, retention_days: float) -> None:
        self._engine = engine
        self._retention = timedelta(days=retention_days)

    async def run(self, stop: asyncio.Event) -> None:
        """Prune finished deliveries past the retention period, every few minutes."""
        while not stop.is_set():
            try:
                before = datetime.now(UTC) - self._retention
                async with self._engine.begin() as conn:
                    pruned = await repo.prune_finished(conn, before)
                if pruned:
                    log.info("pruned finished deliveries", count=pruned)
            except Exception as exc:  # noqa: BLE001 - database trouble: the next round tries again
                log.warning("pruning failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=PRUNE_EVERY_SECONDS)
