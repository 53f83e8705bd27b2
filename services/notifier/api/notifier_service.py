"""The servicer of paymesh.notifier.v1.NotifierService: each RPC resolves the
caller (api/callers.py), calls the delivery use case (deliveries.py) and converts
the records back (api/convert.py). No SQL and no rules here. Errors are domain
exceptions, mapped to statuses by the shared interceptor.
"""

from __future__ import annotations

from paymesh.notifier.v1 import notifier_service_pb2 as npb
from paymesh.notifier.v1 import notifier_service_pb2_grpc as ngrpc

from services.notifier.api.callers import CallerResolver
from services.notifier.api.convert import PB_TO_STATE, delivery_to_pb
from services.notifier.deliveries import Deliveries


class NotifierServicer(ngrpc.NotifierServiceServicer):
    def __init__(self, deliveries: Deliveries, callers: CallerResolver) -> None:
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
            endpoint_id=request.endpoint_id,
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
            endpoint_id=request.endpoint_id if which == "endpoint_id" else None,
        )
        return npb.RedeliverResponse(deliveries_queued=count)

    async def SendTestEvent(self, request: npb.SendTestEventRequest, context) -> npb.SendTestEventResponse:
        caller = await self._callers.resolve(context)
        found = await self._deliveries.send_test_event(caller, request.merchant_id, request.endpoint_id)
        return npb.SendTestEventResponse(delivery=delivery_to_pb(found, with_attempts=True))
