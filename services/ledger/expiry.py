"""The expiry job: marks payments past their expiry, every `interval` seconds, in
batches (SKIP LOCKED, so replicas share the work)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.adapters import repository as repo
from services.ledger.domain.status import PaymentStatus
from services.ledger.domain.validation import utcnow
from services.ledger.payment_state import refresh_payment

# The metadata key that names the payment link a payment was created from (payment_links.py).
LINK_METADATA = "payment_link_id"
# The logger the job had when it lived in outbox.py: log queries keep matching.
log = structlog.get_logger("ledger.outbox")


class Expirer:
    """Marks payments past their expiry. A payment with nothing received becomes
    EXPIRED (and gives its payment link, if any, its use back); a partly paid one
    stays UNDERPAID but becomes sweepable. Either way,
    once `expired_at` commits, every transfer recorded for the payment afterwards
    is late (chain_events locks the same row), whatever its block's timestamp."""

    def __init__(
        self, engine: AsyncEngine, on_outbox: Callable[[], None], *, interval: float, batch: int = 500
    ) -> None:
        self._engine = engine
        self._on_outbox = on_outbox
        self._interval = interval
        self._batch = batch

    async def expire_once(self) -> int:
        now = utcnow()
        async with self._engine.begin() as conn:
            due = await repo.payments.payments_to_expire(conn, now, self._batch)
            for payment in due:
                payment.expired_at = now
                await refresh_payment(conn, payment, now, touched=True)
                link_id = payment.metadata.get(LINK_METADATA)
                if link_id and payment.status is PaymentStatus.EXPIRED:
                    # Nothing was paid: the payment link gets its use back, in the same
                    # transaction as the expiry (which happens once per payment).
                    await repo.payment_links.give_back_use(conn, link_id)
        if due:
            self._on_outbox()
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while await self.expire_once() >= self._batch:
                    pass
            except Exception as exc:  # noqa: BLE001
                log.warning("expiry job failed; retrying", error=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                pass
