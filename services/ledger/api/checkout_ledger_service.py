"""CheckoutLedgerService, the public checkout's view of payments
(PAYMESH_CHECKOUT_LEDGER_TOKEN): by checkout token, customer-facing fields only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import checkout_ledger_service_pb2_grpc as cgrpc

from services.ledger.adapters.payment_event_subscriber import EventSubscription
from services.ledger.api.caller_check import CallerCheck
from services.ledger.api.convert import checkout_view_to_pb, link_view_to_pb, refund_claim_to_pb
from services.ledger.checkout import CheckoutService
from services.ledger.domain.status import FINAL_STATUSES
from services.ledger.domain.validation import utcnow
from services.ledger.payment_links import PaymentLinksService
from services.ledger.payouts import PayoutsService

# How often a watched payment with funds waiting for their depth is re-read for its
# confirmations (new heads emit no payment event).
CONFIRMATIONS_POLL_SECONDS = 1.0


class CheckoutLedgerServicer(cgrpc.CheckoutLedgerServiceServicer, CallerCheck):
    """The checkout's view of payments (PAYMESH_CHECKOUT_LEDGER_TOKEN)."""

    def __init__(
        self,
        checkout: CheckoutService,
        links: PaymentLinksService,
        token: str,
        subscribe: Callable[[str, str], Awaitable[EventSubscription]],
        payouts: PayoutsService,
    ) -> None:
        CallerCheck.__init__(self, token, "checkout ledger", lambda _: True)
        self._checkout = checkout
        self._links = links
        self._subscribe = subscribe
        self._payouts = payouts

    async def GetRefundClaim(self, request: cpb.GetRefundClaimRequest, context) -> cpb.GetRefundClaimResponse:
        self._check(context)
        return cpb.GetRefundClaimResponse(
            claim=refund_claim_to_pb(*await self._payouts.claim_view(request.claim_token))
        )

    async def SubmitRefundClaim(self, request: cpb.SubmitRefundClaimRequest, context) -> cpb.SubmitRefundClaimResponse:
        self._check(context)
        found = await self._payouts.submit_claim(request.claim_token, request.destination, request.destination_again)
        return cpb.SubmitRefundClaimResponse(claim=refund_claim_to_pb(*found))

    async def GetLink(self, request: cpb.GetLinkRequest, context) -> cpb.GetLinkResponse:
        self._check(context)
        link, merchant = await self._links.by_token(request.link_token)
        return cpb.GetLinkResponse(link=link_view_to_pb(link, merchant.name, self._links.is_open(link, utcnow())))

    async def OpenLink(self, request: cpb.OpenLinkRequest, context) -> cpb.OpenLinkResponse:
        self._check(context)
        payment, created = await self._links.open(request.link_token, request.visitor_id, request.amount)
        return cpb.OpenLinkResponse(checkout_token=payment.checkout_token, created=created)

    async def GetCheckout(self, request: cpb.GetCheckoutRequest, context) -> cpb.GetCheckoutResponse:
        self._check(context)
        found = await self._checkout.get(request.checkout_token)
        return cpb.GetCheckoutResponse(checkout=checkout_view_to_pb(found, self._checkout.heads))

    async def RequoteCheckout(self, request: cpb.RequoteCheckoutRequest, context) -> cpb.RequoteCheckoutResponse:
        self._check(context)
        found, requoted = await self._checkout.requote(request.checkout_token)
        return cpb.RequoteCheckoutResponse(checkout=checkout_view_to_pb(found, self._checkout.heads), requoted=requoted)

    async def WatchCheckout(
        self, request: cpb.WatchCheckoutRequest, context
    ) -> AsyncIterator[cpb.WatchCheckoutResponse]:
        self._check(context)
        found = await self._checkout.get(request.checkout_token)
        # Subscribe, then read again: no change between the first read and the subscription is missed.
        subscription = await self._subscribe(found.payment.merchant_id, found.payment.id)
        try:
            found = await self._checkout.get(request.checkout_token)
            view = checkout_view_to_pb(found, self._checkout.heads)
            yield cpb.WatchCheckoutResponse(checkout=view)
            while found.payment.status not in FINAL_STATUSES:
                try:
                    event = await asyncio.wait_for(subscription.next(), timeout=CONFIRMATIONS_POLL_SECONDS)
                except TimeoutError:
                    event = None
                if event is not None:
                    if event.payment.version <= view.version:  # the subscription is this payment's alone
                        continue
                    found = await self._checkout.get(request.checkout_token)
                # A new view on a change, or when a waiting transfer gained a confirmation.
                fresh = checkout_view_to_pb(found, self._checkout.heads)
                if fresh != view:
                    view = fresh
                    yield cpb.WatchCheckoutResponse(checkout=view)
        finally:
            await subscription.close()
