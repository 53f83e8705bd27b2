"""Merchant-facing payment use cases: create, read, list, cancel. The caller
(api/payment_service.py) has authenticated the merchant (authentication.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.chains import Chains
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.ledger.adapters import repository as repo
from services.ledger.adapters.create_batch import CreatePaymentBatcher
from services.ledger.chain_events import HeadCache
from services.ledger.domain import keys
from services.ledger.domain.records import PaymentEventRecord, PaymentRecord
from services.ledger.domain.status import EventType, PaymentStatus
from services.ledger.domain.validation import NewPayment, utcnow, validate_new_payment
from services.ledger.index_allocation import IndexAllocator
from services.ledger.metrics import PAYMENT_EVENTS, PAYMENTS_CREATED
from services.ledger.payment_state import refresh_payment


def fingerprint(new: NewPayment) -> str:
    return hashlib.sha256(json.dumps(new.fingerprint(), default=str).encode()).hexdigest()


@dataclass
class ListFilter:
    statuses: list[PaymentStatus]
    chain_id: int
    merchant_order_id: str
    created_after: datetime | None
    created_before: datetime | None


class PaymentsService:
    def __init__(
        self,
        engine: AsyncEngine,
        inserter: CreatePaymentBatcher,
        chains: Chains,
        allocator: IndexAllocator,
        heads: HeadCache,
        on_outbox: Callable[[], None],
        tokens: PageTokens,
    ) -> None:
        self._engine = engine
        self._tokens = tokens
        self._inserter = inserter
        self._chains = chains
        self._allocator = allocator
        self._heads = heads
        self._on_outbox = on_outbox
        self.address_added = asyncio.Event()

    async def create(
        self,
        merchant_id: str,
        *,
        chain_id: int,
        asset: str,
        amount: str,
        expires_in: timedelta | None,
        expires_at: datetime | None,
        merchant_order_id: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> tuple[PaymentRecord, bool]:
        now = utcnow()
        new = validate_new_payment(
            self._chains,
            chain_id=chain_id,
            asset=asset,
            amount=amount,
            expires_in=expires_in,
            expires_at=expires_at,
            merchant_order_id=merchant_order_id,
            metadata=metadata,
            idempotency_key=idempotency_key,
            now=now,
        )
        print_ = fingerprint(new)
        # No read before the write: the insert's ON CONFLICT detects a retry. A
        # retry costs one unused derivation index, which is harmless (the sweeper
        # derives keys by the stored index, not by scanning).
        index, address, path = await self._allocator.next(merchant_id)
        payment_id = keys.new_payment_id()
        record = PaymentRecord(
            id=payment_id,
            merchant_id=merchant_id,
            chain_id=new.chain_id,
            asset=new.asset.symbol,
            token_address=new.asset.token_address,
            decimals=new.asset.decimals,
            amount_due=new.amount_due,
            amount_received=0,
            amount_confirmed=0,
            amount_swept=0,
            status=PaymentStatus.PENDING,
            late=False,
            merchant_order_id=new.merchant_order_id,
            metadata=new.metadata,
            deposit_address=address,
            derivation_index=index,
            derivation_path=path,
            confirmations_required=new.confirmations_required,
            version=1,
            created_at=now,
            updated_at=now,
            expires_at=new.expires_at,
            expired_at=None,
            cancelled_at=None,
            sweep_tx_hash="",
        )
        event = PaymentEventRecord(
            event_id=str(uuid.uuid4()),
            event_type=EventType.CREATED.value,
            payment=record,
            previous_status=None,
            created_at=now,
        )
        row = repo.payments.creation_row(
            record,
            event,
            idempotency_key=new.idempotency_key,
            request_fingerprint=print_,
            from_block=self._heads.get(new.chain_id),
        )
        if await self._inserter.insert(row):
            PAYMENTS_CREATED.labels(str(new.chain_id), new.asset.symbol).inc()
            PAYMENT_EVENTS.labels(EventType.CREATED.value).inc()
            self._on_outbox()
            self.address_added.set()
            return record, True
        # An earlier (or concurrent) request with the same idempotency key won.
        async with self._engine.connect() as conn:
            existing = await repo.payments.payment_by_idempotency_key(conn, merchant_id, new.idempotency_key or "")
            if existing is None:
                raise FailedPrecondition("payment could not be created; retry the request")
            existing.transfers = await repo.transfers.transfers_of(conn, existing.id)
        return self._same_request(existing, print_), False

    @staticmethod
    def _same_request(existing: PaymentRecord, print_: str) -> PaymentRecord:
        if existing.request_fingerprint != print_:
            raise AlreadyExists(
                f"idempotency_key was already used for payment {existing.id} with different "
                "parameters; use a new key for a new payment"
            )
        return existing

    async def get(self, merchant_id: str | None, payment_id: str) -> PaymentRecord:
        if not payment_id:
            raise InvalidArgument("payment_id is required")
        if len(payment_id) > 64:
            raise InvalidArgument("payment_id is not a payment id (too long)")
        async with self._engine.connect() as conn:
            payment = await repo.payments.get_payment(conn, payment_id, merchant_id=merchant_id)
            if payment is None:
                # The same answer whether it does not exist or belongs to someone
                # else, so ids of other merchants cannot be probed.
                raise NotFound(f"payment {payment_id} not found")
            payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
        return payment

    async def list(
        self, merchant_id: str, flt: ListFilter, requested_size: int, token: str
    ) -> tuple[list[PaymentRecord], str]:
        size = page_size(requested_size)
        scope = f"ListPayments|{merchant_id}"
        filters = filter_fingerprint(
            sorted(s.value for s in flt.statuses),
            flt.chain_id,
            flt.merchant_order_id,
            flt.created_after,
            flt.created_before,
        )
        after = self._tokens.read(scope, token, str, filters)
        async with self._engine.connect() as conn:
            rows = await repo.payments.list_payments(
                conn,
                merchant_id,
                statuses=[s.value for s in flt.statuses],
                chain_id=flt.chain_id,
                merchant_order_id=flt.merchant_order_id,
                created_after=flt.created_after,
                created_before=flt.created_before,
                after=after,  # type: ignore[arg-type]
                limit=size + 1,
            )
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            next_token = self._tokens.issue(scope, rows[-1].created_at, rows[-1].id, filters)
        return rows, next_token

    async def cancel(self, merchant_id: str, payment_id: str, reason: str) -> PaymentRecord:
        """Cancel a PENDING payment (nothing received), under its row lock. Once this
        commits the cancel stands: chain_events records every later transfer for the
        payment as late (it takes the same lock), so it can end PAID_AFTER_EXPIRY but
        never CONFIRMED, whatever the block's timestamp says."""
        if not payment_id:
            raise InvalidArgument("payment_id is required")
        if len(reason) > 256:
            raise InvalidArgument("reason is longer than 256 characters")
        now = utcnow()
        async with self._engine.begin() as conn:
            payment = await repo.payments.get_payment(conn, payment_id, merchant_id=merchant_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if payment.status is PaymentStatus.CANCELLED:
                payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
                return payment  # cancelling twice is harmless
            if payment.status is not PaymentStatus.PENDING:
                raise FailedPrecondition(
                    f"payment {payment_id} is {payment.status.value}; only a pending payment "
                    "(nothing received) can be cancelled"
                )
            payment.cancelled_at = now
            await repo.payments.cancel_reason(conn, payment_id, reason)
            await refresh_payment(conn, payment, now)
        self._on_outbox()
        return payment
