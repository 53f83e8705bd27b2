"""The outbox relay: payment events -> JetStream.

Claim unpublished rows and mark them published in one statement (SKIP
LOCKED, so replicas share the work), publish them pipelined with Nats-Msg-Id =
event_id, and only then commit. A failed publish rolls the marks back; a crash
after publishing and before the commit republishes the same ids, which
JetStream drops as duplicates: each event reaches the stream once.

While writers are active the relay lingers a few milliseconds between partial
batches, so one round trip publishes and commits many events instead of one;
the first event after a quiet spell is published at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.failpoints import failpoint
from services.ledger.adapters import repository as repo
from services.ledger.domain.validation import utcnow
from services.ledger.metrics import OUTBOX_PUBLISHED

log = structlog.get_logger("ledger.outbox")

# (subject, payload, Nats-Msg-Id) of each event -> returns once JetStream acked them all.
Publisher = Callable[[list[tuple[str, bytes, str]]], Awaitable[object]]


class OutboxRelay:
    """Publishes the outbox in order, batch by batch; `poke()` wakes it when a
    transaction wrote events, else it polls every `idle` seconds."""

    def __init__(
        self,
        engine: AsyncEngine,
        pool: asyncpg.Pool,
        publish: Publisher,
        *,
        batch: int,
        idle: float,
        linger: float,
        retention: timedelta,
    ) -> None:
        self._engine = engine
        self._pool = pool
        self._publish = publish
        self._batch = batch
        self._idle = idle
        self._linger = linger
        self._retention = retention
        self.wakeup = asyncio.Event()

    def poke(self) -> None:
        self.wakeup.set()

    async def relay_once(self) -> int:
        """Publish one batch; returns the number of events published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await repo.outbox.claim_unpublished(conn, self._batch, utcnow())
            if not rows:
                return 0
            await self._publish([(r["subject"], r["payload"], r["event_id"]) for r in rows])
            failpoint("outbox.after_publish_before_commit")
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                published = await self.relay_once()
                if loop.time() - last_prune > 600:
                    async with self._engine.begin() as conn:
                        await repo.outbox.prune_published(conn, utcnow() - self._retention)
                    last_prune = loop.time()
            except Exception as exc:  # noqa: BLE001 - DB or NATS down: retry, nothing is lost
                log.warning("outbox relay failed; retrying", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            if published >= self._batch:
                continue  # a backlog: drain it without pausing
            if published:
                # Writers are active: let them add to the next batch (bounded extra
                # latency under load; an event after a quiet spell goes out at once).
                await asyncio.sleep(self._linger)
                continue
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=self._idle)
            except TimeoutError:
                pass
