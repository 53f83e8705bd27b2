"""Payment links: a merchant's reusable page that creates one payment per visitor
who chooses to pay (the checkout's /link/<token>), at a fixed price or an amount
the visitor enters within bounds.

One payment per visitor and amount at a time: the payment's idempotency key is
derived from (link, visitor session, amount), so a reload or a resubmitted form
returns the same payment; once that payment has ended unpaid (expired, cancelled)
the visitor gets a new one. A use is counted (atomically, against max_uses) before
the payment is created and given back if it is not (an error, or a concurrent
request of the same visitor that created it first), so the count is the number of
payments the link created, and never more than max_uses. One case is left open: a
ledger killed between counting the use and creating the payment keeps the use
counted without a payment, and so does a request cancelled while its payment is
being inserted (the error is on the safe side: one payment fewer, never one more
than the limit). A payment that expires with nothing paid gives its use back
(expiry.py, in the expiry's own transaction)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.chains import Chains
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.ledger.adapters import repository as repo
from services.ledger.domain import keys
from services.ledger.domain.pricing import Price, PricingError, parse_price
from services.ledger.domain.records import MerchantRecord, PaymentLinkRecord, PaymentRecord
from services.ledger.domain.status import PaymentStatus
from services.ledger.domain.validation import (
    MAX_DESCRIPTION,
    accepted_options,
    check_idempotency_key,
    utcnow,
    validate_return_url,
)
from services.ledger.expiry import LINK_METADATA
from services.ledger.payments import PaymentsService

MAX_USES = 1_000_000
MAX_GENERATIONS = 20  # unpaid payments one visitor may start of one link, per amount
_VISITOR = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TOKEN = re.compile(keys.CHECKOUT_TOKEN_PATTERN)
NOT_FOUND = "no such payment link"


def _price(field: str, value: tuple[str, str] | None) -> Price | None:
    if value is None:
        return None
    try:
        return parse_price(*value)
    except PricingError as err:
        raise InvalidArgument(f"{field}: {err}") from None


class PaymentLinksService:
    def __init__(
        self, engine: AsyncEngine, chains: Chains, payments: PaymentsService, *, allow_http_return_urls: bool = False
    ) -> None:
        self._engine = engine
        self._chains = chains
        self._payments = payments
        self._allow_http = allow_http_return_urls

    async def create(
        self,
        merchant_id: str,
        *,
        description: str,
        price: tuple[str, str] | None,
        min_price: tuple[str, str] | None,
        max_price: tuple[str, str] | None,
        options: list[tuple[int, str]],
        accept_all: bool,
        accept_chain_ids: list[int],
        expires_at: datetime | None,
        max_uses: int,
        return_url: str,
        idempotency_key: str,
    ) -> tuple[PaymentLinkRecord, bool]:
        now = utcnow()
        fixed, low, high = _price("price", price), _price("min_price", min_price), _price("max_price", max_price)
        if fixed is not None and (low is not None or high is not None):
            raise InvalidArgument(
                "give price (a fixed price) or min_price and max_price (an amount the customer enters), not both"
            )
        if fixed is None and (low is None or high is None):
            raise InvalidArgument(
                "give price (a fixed price), or both min_price and max_price (an amount the customer enters)"
            )
        if low is not None and high is not None:
            if low.currency != high.currency:
                raise InvalidArgument(
                    f"min_price is in {low.currency.code} and max_price in {high.currency.code}: use one currency"
                )
            if low.amount > high.amount:
                raise InvalidArgument(f"min_price {low} is above max_price {high}")
        currency = (fixed or low).currency.code  # type: ignore[union-attr]
        if not options and not accept_all:
            raise InvalidArgument(
                "say what the link's payments accept: options (chain_id and asset) or accept_all_assets"
            )
        accepted_options(
            self._chains,
            chain_id=0,
            asset="",
            options=options,
            accept_all=accept_all,
            accept_chain_ids=accept_chain_ids,
            priced=True,
        )
        if len(description) > MAX_DESCRIPTION:
            raise InvalidArgument(f"description is longer than {MAX_DESCRIPTION} characters")
        validate_return_url(return_url, allow_http=self._allow_http)
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument(f"expires_at {expires_at.isoformat()} is in the past")
        if not 0 <= max_uses <= MAX_USES:
            raise InvalidArgument(f"max_uses must be 0 (no limit) to {MAX_USES:,}")
        check_idempotency_key(idempotency_key)
        values = {
            "id": "lnk_" + uuid.uuid4().hex,
            "merchant_id": merchant_id,
            "token": keys.new_checkout_token(),
            "description": description,
            "currency": currency,
            "price_amount": None if fixed is None else fixed.amount,
            "min_amount": None if low is None else low.amount,
            "max_amount": None if high is None else high.amount,
            "options": [[c, a.strip()] for c, a in options],
            "accept_all": accept_all,
            "accept_chain_ids": list(accept_chain_ids),
            "expires_at": expires_at,
            "max_uses": max_uses,
            "return_url": return_url,
            "idempotency_key": idempotency_key or None,
            "created_at": now,
        }
        fingerprint_parts = {k: v for k, v in values.items() if k not in ("id", "token", "created_at", "merchant_id")}
        values["request_fingerprint"] = hashlib.sha256(
            json.dumps(fingerprint_parts, default=str, sort_keys=True).encode()
        ).hexdigest()
        async with self._engine.begin() as conn:
            if await repo.payment_links.insert_link(conn, values):
                link = await repo.payment_links.get_link(conn, values["id"])
                assert link is not None
                return link, True
            existing = await repo.payment_links.link_by_key(conn, merchant_id, idempotency_key)
        if existing is None:
            raise FailedPrecondition("payment link could not be created; retry the request")
        if existing.request_fingerprint != values["request_fingerprint"]:
            raise AlreadyExists(
                f"idempotency_key was already used for payment link {existing.id} with different parameters; "
                "use a new key for a new link"
            )
        return existing, False

    async def get(self, merchant_id: str, link_id: str) -> PaymentLinkRecord:
        if not link_id or len(link_id) > 64:
            raise InvalidArgument("link_id is required" if not link_id else "link_id is not a link id (too long)")
        async with self._engine.connect() as conn:
            link = await repo.payment_links.get_link(conn, link_id, merchant_id=merchant_id)
        if link is None:
            raise NotFound(f"payment link {link_id} not found")
        return link

    async def deactivate(self, merchant_id: str, link_id: str) -> PaymentLinkRecord:
        await self.get(merchant_id, link_id)
        async with self._engine.begin() as conn:
            await repo.payment_links.deactivate(conn, link_id, merchant_id)
        return await self.get(merchant_id, link_id)

    # ------------------------------------------------------------ the public page

    async def by_token(self, token: str) -> tuple[PaymentLinkRecord, MerchantRecord]:
        """The active link of this token and its (active) merchant; NotFound otherwise
        (unknown, malformed and deactivated alike)."""
        if not _TOKEN.fullmatch(token or ""):
            raise NotFound(NOT_FOUND)
        async with self._engine.connect() as conn:
            link = await repo.payment_links.link_by_token(conn, token)
            if link is None or not link.active:
                raise NotFound(NOT_FOUND)
            merchant = await repo.merchants.get_merchant(conn, link.merchant_id)
        if merchant is None or merchant.status != "active":
            raise NotFound(NOT_FOUND)  # a disabled merchant's links create nothing
        return link, merchant

    @staticmethod
    def is_open(link: PaymentLinkRecord, now: datetime) -> bool:
        expired = link.expires_at is not None and now >= link.expires_at
        used_up = link.max_uses > 0 and link.uses >= link.max_uses
        return not expired and not used_up

    async def open(self, token: str, visitor_id: str, amount: str) -> tuple[PaymentRecord, bool]:
        """The payment of this visitor (and amount) of the link: created now, or the one
        created before for them."""
        link, merchant = await self.by_token(token)
        if not _VISITOR.fullmatch(visitor_id or ""):
            raise InvalidArgument("visitor_id must be 16 to 64 of A-Z a-z 0-9 _ -")
        now = utcnow()
        if link.expires_at is not None and now >= link.expires_at:
            raise FailedPrecondition("this payment link has expired")
        price = link.price if link.price is not None else self._entered(link, amount)
        async with self._engine.connect() as conn:
            # The visitor's payment of this amount, unless it ended unpaid (expired or
            # cancelled): then the next one (a visitor who comes back later pays anew).
            for generation in range(MAX_GENERATIONS):
                key = (
                    "link:"
                    + hashlib.sha256(f"{link.id}|{visitor_id}|{price.amount}|{generation}".encode()).hexdigest()[:40]
                )
                existing = await repo.payments.payment_by_idempotency_key(conn, link.merchant_id, key)
                if existing is None:
                    break
                if existing.status not in (PaymentStatus.EXPIRED, PaymentStatus.CANCELLED):
                    return existing, False
            else:
                raise FailedPrecondition("this visitor has started too many payments of this link")
        async with self._engine.begin() as conn:
            if not await repo.payment_links.take_use(conn, link.id):
                raise FailedPrecondition("this payment link has been used up")
        try:
            creation = await self._payments.create(
                link.merchant_id,
                chain_id=0,
                asset="",
                amount="",
                expires_in=None,
                expires_at=None,
                merchant_order_id="",
                metadata={LINK_METADATA: link.id},
                idempotency_key=key,
                price=(price.currency.code, str(price.amount)),
                merchant_policy=merchant.payment_policy,
                options=link.options,
                accept_all=link.accept_all,
                accept_chain_ids=link.accept_chain_ids,
                description=link.description,
                return_url=link.return_url,
            )
        except asyncio.CancelledError:
            # The insert may still be under way (group commit): keep the use counted,
            # so the count never lets more payments through than max_uses.
            raise
        except Exception:
            async with self._engine.begin() as conn:
                await repo.payment_links.give_back_use(conn, link.id)
            raise
        if not creation.created:  # a concurrent request of the same visitor created it first
            async with self._engine.begin() as conn:
                await repo.payment_links.give_back_use(conn, link.id)
        return creation.payment, creation.created

    @staticmethod
    def _entered(link: PaymentLinkRecord, amount: str) -> Price:
        assert link.min_price is not None and link.max_price is not None
        try:
            price = parse_price(link.currency, amount)
        except PricingError as err:
            raise InvalidArgument(f"amount: {err}") from None
        if not link.min_price.amount <= price.amount <= link.max_price.amount:
            raise InvalidArgument(f"amount must be between {link.min_price} and {link.max_price}; got {price}")
        return price
