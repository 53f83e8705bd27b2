"""Routing: each event taken in becomes one pending delivery per endpoint of its
merchant that wants it (domain/routing.py says which).

The routing loop reads events not yet routed, asks the ledger for each merchant's
endpoints (cached briefly: adapters/ledger_client.py), and in one commit inserts the
deliveries and marks the events routed. Routing is idempotent: a delivery is unique
per (event, endpoint), so an event routed twice (a crash between the lookup and the
commit, two replicas at once) gets no second delivery. While the ledger cannot say
where a merchant's webhooks go, that merchant's events are held back and tried again
LEDGER_RETRY_SECONDS later: the intake never waits for the ledger, and nothing is
lost meanwhile. The endpoints that count are those of the moment the event is
routed, within a second of its arrival (plus the cache's seconds)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import NotFound
from services.notifier.adapters import repository as repo
from services.notifier.adapters.ledger_client import TargetSource
from services.notifier.domain.records import MerchantEndpoints
from services.notifier.domain.routing import plan

log = structlog.get_logger("notifier.routing")

LEDGER_RETRY_SECONDS = 5.0
_UNKNOWN = object()  # the ledger could not be asked


class EventRouter:
    def __init__(
        self,
        engine: AsyncEngine,
        targets: TargetSource,
        on_routed: Callable[[], None],
        *,
        batch: int = 500,
        poll_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._targets = targets
        self._on_routed = on_routed
        self._batch = batch
        self._poll = poll_interval
        self.wakeup = asyncio.Event()

    def poke(self) -> None:
        """Events were taken in."""
        self.wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wakeup.clear()
            try:
                if await self.route_due() == self._batch:
                    continue  # probably more waiting
            except Exception as exc:  # noqa: BLE001 - DB trouble: nothing is lost, retry
                log.warning("routing events failed; retrying", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self._poll)

    async def _lookup(self, merchant_id: str) -> MerchantEndpoints | None | object:
        try:
            return await self._targets.endpoints(merchant_id)
        except NotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - the ledger is unusable for now: hold back
            log.warning(
                "cannot route events; will retry", merchant_id=merchant_id, error=getattr(exc, "message", str(exc))
            )
            return _UNKNOWN

    async def route_due(self) -> int:
        """Route up to one batch of events; how many were looked at."""
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            events = await repo.unrouted_events(conn, now, self._batch)
        if not events:
            return 0
        merchants = sorted({m for _, _, m in events})
        found = dict(zip(merchants, await asyncio.gather(*(self._lookup(m) for m in merchants)), strict=True))
        todo = plan(events, {m: e for m, e in found.items() if e is not _UNKNOWN})
        async with self._engine.begin() as conn:
            await repo.route_events(
                conn, todo.routes, todo.routed, todo.held, now, now + timedelta(seconds=LEDGER_RETRY_SECONDS)
            )
        if todo.routes:
            self._on_routed()
        return len(events)
