"""The events API (EventService.ListEvents) on real Postgres and NATS: a merchant
reads back its payment events in commit order, the same events and ids as on NATS,
a page at a time or from an event id it already has, filtered by type or payment,
and polling with the last token returns exactly what committed since."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from paymesh.events.v1 import event_service_pb2 as epb
from paymesh.events.v1 import event_service_pb2_grpc as egrpc
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from tests.support.ledger import eventually, next_block, publish_chain, publish_head, transfer_event

pytestmark = pytest.mark.asyncio(loop_scope="session")
E = evpb.PaymentEventType


async def all_events(stub, merchant, **fields) -> tuple[list[evpb.PaymentEvent], str]:
    events, token = [], ""
    for _ in range(100):  # bounded
        reply = await stub.ListEvents(epb.ListEventsRequest(page_token=token, **fields), metadata=merchant.auth)
        events += reply.events
        token = reply.next_page_token
        fields.pop("after_event_id", None)  # the token carries the cursor from here on
        if not reply.events:
            return events, token
    raise AssertionError("too many pages")


async def settled(stub, merchant, count: int) -> list[evpb.PaymentEvent]:
    async def check():
        events, _ = await all_events(stub, merchant)
        return events if len(events) >= count else None

    return await eventually(check)


async def test_events_read_back_in_commit_order_as_on_nats(ledger_channel, merchant, other_merchant, js):
    stub = egrpc.EventServiceStub(ledger_channel)
    seen: list[str] = []
    sub = await js.subscribe(f"paymesh.payments.{merchant.merchant_id}.>", ordered_consumer=True)
    paid = await merchant.create(amount="1000")
    cancelled = await merchant.create(amount="1000")
    await merchant.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=cancelled.payment_id), metadata=merchant.auth
    )
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(paid.deposit_address, 1000, block=block))
    await publish_head(js, block + 1)
    events = await settled(stub, merchant, 5)  # created x2, cancelled, detected-or-confirmed...
    for _ in range(len(events)):
        seen.append(evpb.PaymentEvent.FromString((await sub.next_msg(timeout=10)).data).event_id)
    await sub.unsubscribe()
    assert [e.event_id for e in events] == seen  # the same events, in the order NATS got them
    per_payment = {}
    for e in events:
        per_payment.setdefault(e.payment.payment_id, []).append(e.payment.version)
    assert all(v == sorted(v) for v in per_payment.values())  # each payment's changes in order
    assert [e.type for e in events if e.payment.payment_id == cancelled.payment_id] == [
        E.PAYMENT_EVENT_TYPE_CREATED,
        E.PAYMENT_EVENT_TYPE_CANCELLED,
    ]

    # Pages of two give the same sequence; filters by type and by payment.
    paged, _ = await all_events(stub, merchant, page_size=2)
    assert [e.event_id for e in paged] == [e.event_id for e in events]
    created, _ = await all_events(stub, merchant, types=[E.PAYMENT_EVENT_TYPE_CREATED])
    assert [e.payment.payment_id for e in created] == [paid.payment_id, cancelled.payment_id]
    only_paid, _ = await all_events(stub, merchant, payment_id=paid.payment_id)
    assert {e.payment.payment_id for e in only_paid} == {paid.payment_id}

    # Resume after an event the merchant already processed.
    rest, token = await all_events(stub, merchant, after_event_id=events[1].event_id)
    assert [e.event_id for e in rest] == [e.event_id for e in events[2:]]

    # Poll with the last token: exactly what commits later.
    late = await merchant.create(amount="7")

    async def new_ones():
        reply = await stub.ListEvents(epb.ListEventsRequest(page_token=token), metadata=merchant.auth)
        return reply.events or None

    (new,) = await eventually(new_ones)
    assert (new.payment.payment_id, new.type) == (late.payment_id, E.PAYMENT_EVENT_TYPE_CREATED)

    # Another merchant sees none of them and cannot resume from them.
    theirs, _ = await all_events(stub, other_merchant)
    assert not {e.event_id for e in theirs} & {e.event_id for e in events}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListEvents(epb.ListEventsRequest(after_event_id=events[0].event_id), metadata=other_merchant.auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(after_event_id="not-a-uuid"), "after_event_id is not an event id"),
        (dict(after_event_id="7d1bd5e4-2b61-4a3c-9d8f-0e5b1c2a3f40", page_token="x.y"), "not both"),
        (dict(page_token="bm90LWEtdG9rZW4.c2ln"), "page_token"),
        (dict(payment_id="p" * 65), "payment_id"),
    ],
)
async def test_bad_event_queries_are_refused(ledger_channel, merchant, fields, message):
    stub = egrpc.EventServiceStub(ledger_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListEvents(epb.ListEventsRequest(**fields), metadata=merchant.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert message in err.value.details()


async def test_a_token_for_other_filters_is_refused(ledger_channel, merchant):
    stub = egrpc.EventServiceStub(ledger_channel)
    await merchant.create(amount="1")
    reply = await stub.ListEvents(epb.ListEventsRequest(page_size=1), metadata=merchant.auth)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListEvents(
            epb.ListEventsRequest(page_token=reply.next_page_token, types=[E.PAYMENT_EVENT_TYPE_SWEPT]),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await asyncio.sleep(0)
