"""The checkout's view of the ledger (CheckoutLedgerService, with
PAYMESH_CHECKOUT_LEDGER_TOKEN): the only state the checkout reads, by checkout token.
The checkout keeps nothing itself; every page and every live update comes from here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import checkout_ledger_service_pb2_grpc as cgrpc

from services.common.grpc_client import ServiceClient


class CheckoutLedger:
    def __init__(self, channel: grpc.aio.Channel, *, token: str, timeout: float) -> None:
        self._ledger = ServiceClient(
            cgrpc.CheckoutLedgerServiceStub(channel),
            peer="ledger",
            token=token,
            timeout=timeout,
            token_variable="PAYMESH_CHECKOUT_LEDGER_TOKEN",
        )

    async def get(self, token: str) -> cpb.CheckoutView:
        """NotFound for an unknown token; Unavailable when the ledger cannot answer."""
        reply = await self._ledger.call(
            "reading a checkout", "GetCheckout", cpb.GetCheckoutRequest(checkout_token=token)
        )
        return reply.checkout

    async def requote(self, token: str) -> tuple[cpb.CheckoutView, bool]:
        reply = await self._ledger.call(
            "re-quoting a checkout", "RequoteCheckout", cpb.RequoteCheckoutRequest(checkout_token=token)
        )
        return reply.checkout, reply.requoted

    async def watch(self, token: str) -> AsyncIterator[cpb.CheckoutView]:
        async for reply in self._ledger.stream(
            "watching a checkout", "WatchCheckout", cpb.WatchCheckoutRequest(checkout_token=token)
        ):
            yield reply.checkout

    async def link(self, token: str) -> cpb.LinkView:
        reply = await self._ledger.call("reading a payment link", "GetLink", cpb.GetLinkRequest(link_token=token))
        return reply.link

    async def open_link(self, token: str, visitor_id: str, amount: str) -> str:
        """The checkout token of this visitor's payment of the link (created once)."""
        request = cpb.OpenLinkRequest(link_token=token, visitor_id=visitor_id, amount=amount)
        reply = await self._ledger.call("opening a payment link", "OpenLink", request)
        return reply.checkout_token

    async def refund_claim(self, token: str) -> cpb.RefundClaimView:
        reply = await self._ledger.call(
            "reading a refund claim", "GetRefundClaim", cpb.GetRefundClaimRequest(claim_token=token)
        )
        return reply.claim

    async def submit_refund_claim(self, token: str, destination: str, again: str) -> cpb.RefundClaimView:
        request = cpb.SubmitRefundClaimRequest(claim_token=token, destination=destination, destination_again=again)
        reply = await self._ledger.call("claiming a refund", "SubmitRefundClaim", request)
        return reply.claim
