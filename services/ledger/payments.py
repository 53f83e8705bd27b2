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
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.chains import Asset, Chains
from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
    Unavailable,
)
from services.common.money import MAX_UINT256
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.ledger.adapters import repository as repo
from services.ledger.adapters.create_batch import CreatePaymentBatcher
from services.ledger.chain_events import HeadCache
from services.ledger.domain import keys
from services.ledger.domain import policy as policies
from services.ledger.domain.policy import Policy, PolicyError
from services.ledger.domain.pricing import Price, Rate, amount_due
from services.ledger.domain.records import PaymentEventRecord, PaymentOptionRecord, PaymentRecord, QuoteRecord
from services.ledger.domain.status import RESOLVABLE, EventType, PaymentStatus, Resolution, outcome
from services.ledger.domain.validation import NewPayment, utcnow, validate_new_payment
from services.ledger.index_allocation import IndexAllocator
from services.ledger.metrics import PAYMENT_EVENTS, PAYMENTS_CREATED
from services.ledger.payment_state import refresh_payment


def fingerprint(new: NewPayment, policy: Policy) -> str:
    """Every parameter of the request, the policy override included (the merchant's
    policy may change between a request and its retry; the request does not)."""
    parts = new.fingerprint() + ((policy.to_json(),) if not policy.is_empty() else ())
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


class RateBook(Protocol):
    """The rates a payment can be quoted at, from memory (rate_book.py keeps them fresh)."""

    lock_window: timedelta

    def rate(self, asset: str, currency: str, now: datetime) -> Rate:
        """The rate to quote now; raises Unavailable (no rate younger than its max age)
        or FailedPrecondition (not configured, or a stablecoin off its peg)."""
        ...


MAX_RESOLUTION_NOTE = 256


@dataclass(frozen=True)
class Creation:
    """What create() returns: the payment; whether this call created it (False: a
    retry found the one its idempotency key created); and, for a new payment, its
    `created` event as the outbox stores it (an encoded PaymentEvent), so the API's
    reply can reuse that encoding of the payment instead of making another."""

    payment: PaymentRecord
    created: bool
    event_payload: bytes | None = None


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
        *,
        rates: RateBook | None = None,
        default_watch: timedelta = timedelta(days=7),
        allow_http_return_urls: bool = False,
    ) -> None:
        self._engine = engine
        self._allow_http_return_urls = allow_http_return_urls
        self._rates = rates
        self._default_watch = default_watch
        self._chain_minimums = {c.chain_id: c.confirmations for c in chains}
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
        price: tuple[str, str] | None = None,
        policy: Policy | None = None,
        merchant_policy: Policy | None = None,
        options: list[tuple[int, str]] | None = None,
        accept_all: bool = False,
        accept_chain_ids: list[int] | None = None,
        description: str = "",
        return_url: str = "",
    ) -> Creation:
        """A new payment (or, for a retry with the same idempotency key, the one it
        created). `price` (currency, amount) instead of `amount` quotes the asset at
        the rate book's current rate; `options` (chain id, asset) or `accept_all`
        (on `accept_chain_ids`, or every chain) instead of one chain and asset let
        the customer pay any of them; `policy` overrides `merchant_policy` field by field."""
        now = utcnow()
        new = validate_new_payment(
            self._chains,
            chain_id=chain_id,
            asset=asset,
            amount=amount,
            price=price,
            expires_in=expires_in,
            expires_at=expires_at,
            merchant_order_id=merchant_order_id,
            metadata=metadata,
            idempotency_key=idempotency_key,
            now=now,
            options=options or (),
            accept_all=accept_all,
            accept_chain_ids=accept_chain_ids or (),
            description=description,
            return_url=return_url,
            allow_http_return_url=self._allow_http_return_urls,
        )
        override = self.checked_policy(policy or Policy(), "policy")
        merged = policies.merge(merchant_policy or Policy(), override)
        in_force = {
            o.chain_id: policies.in_force(
                merged,
                chain_id=o.chain_id,
                chain_minimum=o.chain_minimum,
                price=new.price,
                default_watch=self._default_watch,
            )
            for o in new.options
        }
        accepted = self._options(new, in_force, now)
        first = accepted[0]
        policy_in_force = in_force[first.chain_id]
        print_ = fingerprint(new, override)
        # No read before the write: the insert's ON CONFLICT detects a retry. A
        # retry costs one unused derivation index, which is harmless (the sweeper
        # derives keys by the stored index, not by scanning).
        index, address, path = await self._allocator.next(merchant_id)
        payment_id = keys.new_payment_id()
        record = PaymentRecord(
            id=payment_id,
            merchant_id=merchant_id,
            chain_id=first.chain_id,
            asset=first.asset,
            token_address=first.token_address,
            decimals=first.decimals,
            amount_due=first.amount_due,
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
            confirmations_required=first.confirmations_required,
            version=1,
            created_at=now,
            updated_at=now,
            expires_at=new.expires_at,
            expired_at=None,
            cancelled_at=None,
            sweep_tx_hash="",
            price=new.price,
            quote=first.quote,
            tolerance_bps=policy_in_force.tolerance_bps,
            watch_until=new.expires_at + policy_in_force.watch_after_expiry,
            options=accepted,
            checkout_token=keys.new_checkout_token(),
            description=new.description,
            return_url=new.return_url,
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
            from_blocks={o.chain_id: self._heads.get(o.chain_id) for o in accepted},
        )
        if await self._inserter.insert(row):
            PAYMENTS_CREATED.labels(str(first.chain_id), first.asset).inc()
            PAYMENT_EVENTS.labels(EventType.CREATED.value).inc()
            self._on_outbox()
            self.address_added.set()
            return Creation(record, True, row["payload"])
        # An earlier (or concurrent) request with the same idempotency key won.
        async with self._engine.connect() as conn:
            existing = await repo.payments.payment_by_idempotency_key(conn, merchant_id, new.idempotency_key or "")
            if existing is None:
                raise FailedPrecondition("payment could not be created; retry the request")
            existing.transfers = await repo.transfers.transfers_of(conn, existing.id)
        return Creation(self._same_request(existing, print_), False)

    def checked_policy(self, policy: Policy, where: str) -> Policy:
        """The policy, or InvalidArgument naming the field that cannot be applied."""
        try:
            return policies.check_policy(policy, self._chain_minimums, where=where)
        except PolicyError as err:
            raise InvalidArgument(str(err)) from None

    def _options(
        self, new: NewPayment, in_force: dict[int, policies.PolicyInForce], now: datetime
    ) -> list[PaymentOptionRecord]:
        """The new payment's options with their amounts due: the amount asked for, or
        each asset quoted from memory. With accept_all an asset that cannot be quoted
        now is left out; the request fails only when none can (with the first reason)."""
        options: list[PaymentOptionRecord] = []
        skipped: DomainError | None = None
        for accepted in new.options:
            quote: QuoteRecord | None = None
            if new.price is None:
                assert new.amount_due is not None  # validate_new_payment: amount or price
                due = new.amount_due
            else:
                try:
                    quote, due = self._quote(new.price, accepted.asset, now)
                except (Unavailable, FailedPrecondition) as err:
                    if not new.accept_all:
                        raise
                    skipped = skipped or err
                    continue
            options.append(
                PaymentOptionRecord(
                    position=len(options),
                    chain_id=accepted.chain_id,
                    asset=accepted.asset.symbol,
                    token_address=accepted.asset.token_address,
                    decimals=accepted.asset.decimals,
                    amount_due=due,
                    confirmations_required=in_force[accepted.chain_id].confirmations,
                    quote=quote,
                    selected=not options,
                )
            )
        if not options:
            assert skipped is not None
            raise type(skipped)(
                f"no configured asset can be quoted in {new.price} now: {skipped.message}", reason=skipped.reason
            ) from None
        return options

    def _quote(self, price: Price, asset: Asset, now: datetime) -> tuple[QuoteRecord, int]:
        """The quote a priced payment locks now, and the amount due it gives (from
        memory: the rate book never waits on the network)."""
        if self._rates is None:
            raise FailedPrecondition(
                "fiat prices need rate sources, and this ledger has none: the operator configures them "
                "in rates.yaml (PAYMESH_RATES_FILE); until then give amount in base units",
                reason=Reason.RATE_NOT_CONFIGURED,
            )
        rate = self._rates.rate(asset.symbol, price.currency.code, now)
        due = amount_due(price, rate.value, asset.decimals)
        if due > MAX_UINT256:
            raise InvalidArgument(f"price {price} is more {asset.symbol} than an EVM amount can hold")
        quote = QuoteRecord(
            asset=asset.symbol,
            currency=price.currency.code,
            rate=rate.value,
            source=rate.source,
            observed_at=rate.observed_at,
            quoted_at=now,
            expires_at=now + self._rates.lock_window,
        )
        return quote, due

    async def requote(self, merchant_id: str | None, payment_id: str) -> tuple[PaymentRecord, bool]:
        """Lock a fresh rate for a priced PENDING payment whose quote's window has
        ended; keep a quote still in its window (False). Never done without a call."""
        self._check_id(payment_id)
        now = utcnow()
        async with self._engine.begin() as conn:
            payment = await repo.payments.get_payment(conn, payment_id, merchant_id=merchant_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if payment.price is None or payment.quote is None:
                raise FailedPrecondition(
                    f"payment {payment_id} is priced in base units of {payment.asset}; it has no quote to renew"
                )
            if payment.status is not PaymentStatus.PENDING:
                raise FailedPrecondition(
                    f"payment {payment_id} is {payment.status.value}; only a pending payment (nothing received) "
                    "can be re-quoted"
                )
            if all(o.quote is not None and now < o.quote.expires_at for o in payment.options):
                payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
                return payment, False
            # Every option is renewed, or none (a rate missing now fails the whole call).
            for o in payment.options:
                chain = self._chains.get(o.chain_id)
                asset = chain.asset(o.asset) if chain is not None else None
                if asset is None:
                    raise FailedPrecondition(
                        f"{o.asset} on chain {o.chain_id} is no longer configured; the payment cannot be re-quoted"
                    )
                o.quote, o.amount_due = self._quote(payment.price, asset, now)
            await refresh_payment(conn, payment, now, extra_event=EventType.REQUOTED, touched=True)
        self._on_outbox()
        return payment, True

    async def resolve(
        self, merchant_id: str | None, payment_id: str, resolution: Resolution | None, note: str
    ) -> PaymentRecord:
        """Close an underpaid, overpaid or late payment as accepted or to be refunded."""
        self._check_id(payment_id)
        if resolution is None:
            raise InvalidArgument("resolution is required: RESOLUTION_ACCEPTED or RESOLUTION_REFUND")
        if len(note) > MAX_RESOLUTION_NOTE:
            raise InvalidArgument(f"note is longer than {MAX_RESOLUTION_NOTE} characters")
        now = utcnow()
        async with self._engine.begin() as conn:
            payment = await repo.payments.get_payment(conn, payment_id, merchant_id=merchant_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if payment.resolution is not None:
                if payment.resolution is not resolution:
                    raise FailedPrecondition(
                        f"payment {payment_id} was already resolved as {payment.resolution.value}; "
                        "a resolution cannot be changed"
                    )
                payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
                return payment  # resolving twice the same way is harmless
            payment.transfers = await repo.transfers.transfers_of(conn, payment_id)
            money = outcome(
                payment.option_facts(),
                payment.transfer_facts(),
                expired=payment.expired_at is not None,
                cancelled=payment.cancelled_at is not None,
            )
            if money.value not in RESOLVABLE:
                raise FailedPrecondition(
                    f"payment {payment_id} is {money.value}; only an underpaid, overpaid or paid-after-expiry "
                    "payment (all its funds confirmed) can be resolved"
                )
            payment.resolution, payment.resolution_note, payment.resolved_at = resolution, note, now
            await refresh_payment(conn, payment, now, extra_event=EventType.RESOLVED, touched=True)
        self._on_outbox()
        return payment

    @staticmethod
    def _check_id(payment_id: str) -> None:
        if not payment_id:
            raise InvalidArgument("payment_id is required")
        if len(payment_id) > 64:
            raise InvalidArgument("payment_id is not a payment id (too long)")

    @staticmethod
    def _same_request(existing: PaymentRecord, print_: str) -> PaymentRecord:
        if existing.request_fingerprint != print_:
            raise AlreadyExists(
                f"idempotency_key was already used for payment {existing.id} with different "
                "parameters; use a new key for a new payment"
            )
        return existing

    async def get(self, merchant_id: str | None, payment_id: str) -> PaymentRecord:
        self._check_id(payment_id)
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
