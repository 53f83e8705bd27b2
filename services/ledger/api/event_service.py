"""EventService, the merchants' events API (an API key per merchant): their payment
events read back from the ledger in commit order (events.py)."""

from __future__ import annotations

from paymesh.events.v1 import event_service_pb2 as epb
from paymesh.events.v1 import event_service_pb2_grpc as egrpc
from paymesh.events.v1 import payment_events_pb2 as evpb

from services.common.errors import InvalidArgument
from services.common.grpc_server import bearer_token
from services.ledger.authentication import Authenticator
from services.ledger.events import EventsService

# PaymentEventType numbers -> the event types the outbox stores (payment events, and
# refund_* / payout_*); TEST events are never stored.
PB_TO_EVENT_TYPE = {
    number: name.removeprefix("PAYMENT_EVENT_TYPE_").lower()
    for name, number in evpb.PaymentEventType.items()
    if name not in ("PAYMENT_EVENT_TYPE_UNSPECIFIED", "PAYMENT_EVENT_TYPE_TEST")
}


class EventServicer(egrpc.EventServiceServicer):
    def __init__(self, events: EventsService, auth: Authenticator) -> None:
        self._events = events
        self._auth = auth

    async def ListEvents(self, request: epb.ListEventsRequest, context) -> epb.ListEventsResponse:
        merchant_id = await self._auth.merchant_for(bearer_token(context))
        types = []
        for i, value in enumerate(request.types):
            if value not in PB_TO_EVENT_TYPE:
                raise InvalidArgument(f"types[{i}] is {value}, which is not a PaymentEventType to list")
            types.append(PB_TO_EVENT_TYPE[value])
        payloads, token = await self._events.list(
            merchant_id,
            after_event_id=request.after_event_id,
            types=types,
            payment_id=request.payment_id,
            size=request.page_size,
            token=request.page_token,
        )
        return epb.ListEventsResponse(events=[evpb.PaymentEvent.FromString(p) for p in payloads], next_page_token=token)
