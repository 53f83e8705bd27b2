"""gRPC servicer of the notifier: credentials, protobuf <-> use cases.

Credentials: `authorization: Bearer <token>` with the operator's admin token
(every merchant) or a merchant API key (checked by the ledger; that merchant's
deliveries only). Errors are domain exceptions mapped to statuses by the
shared interceptor.
"""

from __future__ import annotations

import hmac

import grpc
from paymesh.notifier.v1 import notifier_service_pb2 as npb
from paymesh.notifier.v1 import notifier_service_pb2_grpc as ngrpc

from services.common.errors import PermissionDenied
from services.common.grpc_server import bearer_token
from services.common.timestamps import to_timestamp
from services.notifier.domain.records import AttemptRecord, DeliveryRecord, DeliveryState
from services.notifier.ledger_client import ApiKeyAuthenticator
from services.notifier.service import Caller, DeliveryService

STATE_TO_PB = {
    DeliveryState.PENDING: npb.DELIVERY_STATE_PENDING,
    DeliveryState.SUCCEEDED: npb.DELIVERY_STATE_SUCCEEDED,
    DeliveryState.DEAD_LETTERED: npb.DELIVERY_STATE_DEAD_LETTERED,
    DeliveryState.SKIPPED: npb.DELIVERY_STATE_SKIPPED,
}
PB_TO_STATE = {v: k for k, v in STATE_TO_PB.items()}


def attempt_to_pb(a: AttemptRecord) -> npb.Attempt:
    return npb.Attempt(
        number=a.number,
        started_at=to_timestamp(a.started_at),
        duration_ms=max(0, a.duration_ms),
        status_code=a.status_code,
        error=a.error,
    )


def delivery_to_pb(d: DeliveryRecord, *, with_attempts: bool = False) -> npb.Delivery:
    return npb.Delivery(
        delivery_id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        merchant_id=d.merchant_id,
        payment_id=d.payment_id,
        state=STATE_TO_PB[d.state],
        url=d.url,
        attempt_count=d.attempt_count,
        next_attempt_at=to_timestamp(d.next_attempt_at),
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=to_timestamp(d.created_at),
        attempts=[attempt_to_pb(a) for a in d.attempts] if with_attempts else [],
    )


class CallerResolver:
    """Admin token -> operator; anything else is asked of the ledger as an API key."""

    def __init__(self, admin_token: str, keys: ApiKeyAuthenticator) -> None:
        self._admin = admin_token
        self._keys = keys

    async def resolve(self, context: grpc.aio.ServicerContext) -> Caller:
        token = bearer_token(context)
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return Caller(merchant_id=None)
        merchant_id, active = await self._keys.authenticate(token)
        if not active:
            raise PermissionDenied("this merchant is disabled; contact the operator")
        return Caller(merchant_id=merchant_id)


class NotifierServicer(ngrpc.NotifierServiceServicer):
    def __init__(self, deliveries: DeliveryService, callers: CallerResolver) -> None:
        self._deliveries = deliveries
        self._callers = callers

    async def ListDeliveries(self, request: npb.ListDeliveriesRequest, context) -> npb.ListDeliveriesResponse:
        caller = await self._callers.resolve(context)
        # UNSPECIFIED means any state; numbers the enum lacks were refused where requests enter.
        state = PB_TO_STATE.get(request.state)
        rows, token = await self._deliveries.list(
            caller,
            merchant_id=request.merchant_id,
            payment_id=request.payment_id,
            event_id=request.event_id,
            state=state,
            size=request.page_size,
            token=request.page_token,
        )
        return npb.ListDeliveriesResponse(deliveries=[delivery_to_pb(d) for d in rows], next_page_token=token)

    async def GetDelivery(self, request: npb.GetDeliveryRequest, context) -> npb.GetDeliveryResponse:
        caller = await self._callers.resolve(context)
        found = await self._deliveries.get(caller, request.delivery_id)
        return npb.GetDeliveryResponse(delivery=delivery_to_pb(found, with_attempts=True))

    async def Redeliver(self, request: npb.RedeliverRequest, context) -> npb.RedeliverResponse:
        caller = await self._callers.resolve(context)
        which = request.WhichOneof("target")
        count = await self._deliveries.redeliver(
            caller,
            delivery_id=request.delivery_id if which == "delivery_id" else None,
            merchant_id=request.merchant_id if which == "merchant_id" else None,
        )
        return npb.RedeliverResponse(deliveries_queued=count)

    async def SendTestEvent(self, request: npb.SendTestEventRequest, context) -> npb.SendTestEventResponse:
        caller = await self._callers.resolve(context)
        found = await self._deliveries.send_test_event(caller, request.merchant_id)
        return npb.SendTestEventResponse(delivery=delivery_to_pb(found, with_attempts=True))
