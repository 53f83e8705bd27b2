"""The public checkout's use cases: a payment found by its checkout token (never by
id), shown as its customer may see it, and re-quoted when the customer comes back
after the lock window. An unknown or malformed token is NotFound with the same
message either way, so tokens cannot be probed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import NotFound
from services.ledger.adapters import repository as repo
from services.ledger.chain_events import HeadCache
from services.ledger.domain.keys import CHECKOUT_TOKEN_PATTERN
from services.ledger.domain.records import PaymentRecord
from services.ledger.domain.status import SEEN
from services.ledger.payments import PaymentsService

_TOKEN = re.compile(CHECKOUT_TOKEN_PATTERN)
NOT_FOUND = "no such checkout"


@dataclass
class CheckoutRecord:
    payment: PaymentRecord  # with its transfers
    merchant_name: str

    def confirmations(self, heads: HeadCache) -> tuple[int, int]:
        """(confirmations, depth) of the least confirmed credited transfer still
        waiting for its depth; (0, 0) when none waits. The inclusion block is the first."""
        waiting = [t for t in self.payment.transfers if t.credited and t.state == SEEN]
        if not waiting:
            return 0, 0
        youngest = max(waiting, key=lambda t: t.block_number)
        seen = max(0, heads.get(youngest.chain_id) - youngest.block_number + 1)
        depth = self.payment.depth_on(youngest.chain_id)
        return min(seen, depth), depth


class CheckoutService:
    def __init__(self, engine: AsyncEngine, payments: PaymentsService, heads: HeadCache) -> None:
        self._engine = engine
        self._payments = payments
        self.heads = heads

    async def get(self, token: str) -> CheckoutRecord:
        if not _TOKEN.fullmatch(token or ""):
            raise NotFound(NOT_FOUND)
        async with self._engine.connect() as conn:
            found = await repo.payments.payment_by_checkout_token(conn, token)
            if found is None:
                raise NotFound(NOT_FOUND)
            payment, merchant_name = found
            payment.transfers = await repo.transfers.transfers_of(conn, payment.id)
        return CheckoutRecord(payment, merchant_name)

    async def requote(self, token: str) -> tuple[CheckoutRecord, bool]:
        found = await self.get(token)
        payment, requoted = await self._payments.requote(None, found.payment.id)
        return CheckoutRecord(payment, found.merchant_name), requoted
