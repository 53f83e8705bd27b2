"""PaymentService, the merchants' API (an API key per merchant): create, get, list,
cancel and watch payments. Checks the key, converts, calls payments.py, converts
back; errors are domain exceptions that the shared interceptor maps to gRPC
statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from paymesh.events.v1 import payment_events_pb2 as ev
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc

from services.common.errors import InvalidArgument
from services.common.grpc_server import bearer_token
from services.ledger.api.convert import PB_TO_RESOLUTION, PB_TO_STATUS, from_ts, payment_to_pb, policy_from_pb
from services.ledger.authentication import Authenticator
from services.ledger.domain.status import FINAL_STATUSES
from services.ledger.payments import ListFilter, PaymentsService

# Subscribes to one payment's events (adapters/payment_event_subscriber.py).
EventSubscriber = Callable[[str, str], Awaitable[Any]]


class PaymentServicer(sgrpc.PaymentServiceServicer):
    def __init__(self, payments: PaymentsService, auth: Authenticator, subscribe: EventSubscriber) -> None:
        self._payments = payments
        self._auth = auth
        self._subscribe = subscribe

    async def _merchant(self, context: grpc.aio.ServicerContext) -> str:
        return await self._auth.merchant_for(bearer_token(context))

    async def CreatePayment(self, request: spb.CreatePaymentRequest, context) -> spb.CreatePaymentResponse:
        caller = await self._auth.active_merchant(bearer_token(context))
        which = request.WhichOneof("expiry")
        expires_in = request.expires_in.ToTimedelta() if which == "expires_in" else None
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidArgument("expires_in must be positive")
        creation = await self._payments.create(
            caller.merchant_id,
            chain_id=request.chain_id,
            asset=request.asset,
            amount=request.amount,
            expires_in=expires_in,
            expires_at=from_ts(request.expires_at) if which == "expires_at" else None,
            merchant_order_id=request.merchant_order_id,
            metadata=dict(request.metadata),
            idempotency_key=request.idempotency_key,
            price=(request.price.currency, request.price.amount) if request.HasField("price") else None,
            policy=policy_from_pb(request.policy, "policy") if request.HasField("policy") else None,
            merchant_policy=caller.payment_policy,
            options=[(o.chain_id, o.asset) for o in request.options],
            accept_all=request.accept_all_assets,
            accept_chain_ids=list(request.accept_chain_ids),
            description=request.description,
            return_url=request.return_url,
        )
        if creation.event_payload is None:
            return spb.CreatePaymentResponse(payment=payment_to_pb(creation.payment), created=creation.created)
        # A new payment: the reply carries the Payment its `created` event carries, decoded
        # from the event's bytes (~14 us with the copy) rather than built from the record a
        # second time (~90 us with three options; docs/BENCHMARKS.md, issue 14).
        event = ev.PaymentEvent.FromString(creation.event_payload)
        return spb.CreatePaymentResponse(payment=event.payment, created=True)

    async def GetPayment(self, request: spb.GetPaymentRequest, context) -> spb.GetPaymentResponse:
        merchant_id = await self._merchant(context)
        payment = await self._payments.get(merchant_id, request.payment_id)
        return spb.GetPaymentResponse(payment=payment_to_pb(payment))

    async def ListPayments(self, request: spb.ListPaymentsRequest, context) -> spb.ListPaymentsResponse:
        merchant_id = await self._merchant(context)
        statuses = []
        for i, value in enumerate(request.statuses):  # numbers the enum lacks were refused where requests enter
            if value not in PB_TO_STATUS:
                raise InvalidArgument(
                    f"statuses[{i}] is PAYMENT_STATUS_UNSPECIFIED; name a status, or leave statuses empty for all"
                )
            statuses.append(PB_TO_STATUS[value])
        flt = ListFilter(
            statuses=statuses,
            chain_id=request.chain_id,
            merchant_order_id=request.merchant_order_id,
            created_after=from_ts(request.created_after) if request.HasField("created_after") else None,
            created_before=from_ts(request.created_before) if request.HasField("created_before") else None,
        )
        rows, token = await self._payments.list(merchant_id, flt, request.page_size, request.page_token)
        return spb.ListPaymentsResponse(
            payments=[payment_to_pb(p, with_transfers=False) for p in rows], next_page_token=token
        )

    async def CancelPayment(self, request: spb.CancelPaymentRequest, context) -> spb.CancelPaymentResponse:
        merchant_id = await self._merchant(context)
        payment = await self._payments.cancel(merchant_id, request.payment_id, request.reason)
        return spb.CancelPaymentResponse(payment=payment_to_pb(payment))

    async def RequotePayment(self, request: spb.RequotePaymentRequest, context) -> spb.RequotePaymentResponse:
        merchant_id = await self._merchant(context)
        payment, requoted = await self._payments.requote(merchant_id, request.payment_id)
        return spb.RequotePaymentResponse(payment=payment_to_pb(payment), requoted=requoted)

    async def ResolvePayment(self, request: spb.ResolvePaymentRequest, context) -> spb.ResolvePaymentResponse:
        merchant_id = await self._merchant(context)
        resolution = PB_TO_RESOLUTION.get(request.resolution)  # numbers the enum lacks were refused on entry
        payment = await self._payments.resolve(merchant_id, request.payment_id, resolution, request.note)
        return spb.ResolvePaymentResponse(payment=payment_to_pb(payment))

    async def WatchPayment(self, request: spb.WatchPaymentRequest, context) -> AsyncIterator[spb.WatchPaymentResponse]:
        api_key = bearer_token(context)
        merchant_id = await self._auth.merchant_for(api_key)
        # Subscribe before reading, so no change between the two is missed.
        subscription = await self._subscribe(merchant_id, request.payment_id)
        try:
            payment = await self._payments.get(merchant_id, request.payment_id)
            version = payment.version
            yield spb.WatchPaymentResponse(payment=payment_to_pb(payment))
            if payment.status in FINAL_STATUSES:
                return
            while True:
                # The key is checked again at least once per key-cache period, so a
                # merchant disabled (PERMISSION_DENIED) or a key rotated away
                # (UNAUTHENTICATED) while the stream is open loses it within that time.
                try:
                    event = await asyncio.wait_for(subscription.next(), timeout=max(self._auth.ttl, 0.25))
                except TimeoutError:
                    event = None
                await self._auth.merchant_for(api_key)
                if event is None:
                    continue
                if event.payment.version <= version:  # the subscription is this payment's alone
                    continue
                version = event.payment.version
                yield spb.WatchPaymentResponse(payment=event.payment)
                if PB_TO_STATUS[event.payment.status] in FINAL_STATUSES:
                    return
        finally:
            await subscription.close()
