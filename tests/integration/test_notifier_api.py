"""NotifierService as merchants and operators use it: scoping, filters, paging,
and clear statuses for bad input. Also: the intake is idempotent per event id
and a malformed message is dead-lettered without holding back the others."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import nats
import pytest
import pytest_asyncio
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.notifier.v1 import notifier_service_pb2 as npb

from tests.support.ledger import (
    ADMIN_TOKEN,
    bearer,
    create_merchant,
    eventually,
    fresh_xpub,
    timestamp,
)
from tests.support.webhooks import NotifierClient, WebhookReceiver, ok, running_notifier

pytestmark = pytest.mark.asyncio(loop_scope="session")

SUCCEEDED = npb.DELIVERY_STATE_SUCCEEDED


@pytest_asyncio.fixture(loop_scope="session")
async def notifier(postgres, nats_server, ledger) -> AsyncIterator:
    async with running_notifier(postgres, nats_server.url, ledger.port) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def channel(notifier) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{notifier.port}") as ch:
        yield ch


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(ok()) as r:
        yield r


async def new_merchant(ledger_channel, url: str):
    xpub, account = fresh_xpub()
    return await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'", webhook_url=url)


@pytest_asyncio.fixture(loop_scope="session")
async def two_merchants(notifier, ledger_channel, channel, receiver):
    """Merchant A with 5 delivered payments, merchant B with 1."""
    a = await new_merchant(ledger_channel, receiver.url)
    b = await new_merchant(ledger_channel, receiver.url)
    a_payments = [await a.create(amount=str(1000 + i)) for i in range(5)]
    b_payments = [await b.create()]
    client_a = NotifierClient(channel, a.api_key)
    client_b = NotifierClient(channel, b.api_key)

    async def all_done():
        la, lb = await client_a.list(state=SUCCEEDED), await client_b.list(state=SUCCEEDED)
        return len(la.deliveries) == 5 and len(lb.deliveries) == 1

    await eventually(all_done)
    return a, b, a_payments, b_payments, client_a, client_b


def expect(code: grpc.StatusCode, *words: str):
    class _Expect:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            assert exc is not None, f"expected {code.name}"
            assert isinstance(exc, grpc.aio.AioRpcError), exc
            assert exc.code() == code, (exc.code(), exc.details())
            for word in words:
                assert word in exc.details(), (word, exc.details())
            return True

    return _Expect()


async def test_merchants_see_only_their_own_deliveries(two_merchants, channel):
    a, b, a_payments, b_payments, client_a, client_b = two_merchants
    mine = (await client_a.list()).deliveries
    assert {d.payment_id for d in mine} == {p.payment_id for p in a_payments}
    assert all(d.merchant_id == a.merchant_id and not d.attempts for d in mine)
    # merchant_id in the request is ignored for merchant callers.
    assert {d.merchant_id for d in (await client_a.list(merchant_id=b.merchant_id)).deliveries} == {a.merchant_id}

    admin = NotifierClient(channel, ADMIN_TOKEN)
    assert len((await admin.list(merchant_id=a.merchant_id)).deliveries) == 5
    assert len((await admin.list(merchant_id=b.merchant_id)).deliveries) == 1
    every = {d.merchant_id for d in (await admin.list(page_size=500)).deliveries}
    assert {a.merchant_id, b.merchant_id} <= every

    theirs = (await client_b.list()).deliveries[0]
    with expect(grpc.StatusCode.NOT_FOUND, theirs.delivery_id):
        await client_a.get(theirs.delivery_id)
    with expect(grpc.StatusCode.NOT_FOUND):
        await client_a.redeliver(delivery_id=theirs.delivery_id)
    with expect(grpc.StatusCode.PERMISSION_DENIED, "only its own"):
        await client_a.redeliver(merchant_id=b.merchant_id)
    assert (await admin.get(theirs.delivery_id)).merchant_id == b.merchant_id


async def test_filters_and_pages(two_merchants):
    a, _, a_payments, _, client_a, _ = two_merchants
    seen: list[npb.Delivery] = []
    token = ""
    pages = 0
    while True:
        reply = await client_a.list(page_size=2, page_token=token)
        seen += reply.deliveries
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3 and len(seen) == 5 and len({d.delivery_id for d in seen}) == 5
    created = [d.created_at.ToDatetime() for d in seen]
    assert created == sorted(created, reverse=True)  # newest first

    one = a_payments[2]
    by_payment = (await client_a.list(payment_id=one.payment_id)).deliveries
    assert [d.payment_id for d in by_payment] == [one.payment_id]
    by_event = (await client_a.list(event_id=by_payment[0].event_id)).deliveries
    assert [d.delivery_id for d in by_event] == [by_payment[0].delivery_id]
    assert len((await client_a.list(state=SUCCEEDED)).deliveries) == 5
    assert (await client_a.list(state=npb.DELIVERY_STATE_DEAD_LETTERED)).deliveries == []
    assert (await client_a.list(event_id=str(uuid.uuid4()))).deliveries == []


async def test_bad_input_gets_clear_statuses(two_merchants):
    _, _, _, _, client_a, _ = two_merchants
    first = await client_a.list(page_size=2)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "different filters"):
        await client_a.list(page_size=2, page_token=first.next_page_token, state=SUCCEEDED)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "page_token"):
        await client_a.list(page_token="garbage!")
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "page_token"):
        await client_a.list(page_token="eyJ0IjoxfQ")  # valid base64, wrong content
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "page_size"):
        await client_a.list(page_size=501)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "state"):
        await client_a.list(state=99)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "event_id"):
        await client_a.list(event_id="not-a-uuid")
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "payment_id"):
        await client_a.list(payment_id="pay 1; drop table")
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "delivery_id is required"):
        await client_a.get("")
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "delivery_id must be a UUID"):
        await client_a.get("42")
    unknown = str(uuid.uuid4())
    with expect(grpc.StatusCode.NOT_FOUND, unknown):
        await client_a.get(unknown)
    with expect(grpc.StatusCode.NOT_FOUND):
        await client_a.redeliver(delivery_id=unknown)
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "delivery_id"):
        await client_a.redeliver(delivery_id="nope")
    with expect(grpc.StatusCode.INVALID_ARGUMENT, "delivery_id, merchant_id"):
        await client_a.redeliver()


async def test_credentials(two_merchants, channel, ledger_channel, receiver):
    stub = NotifierClient(channel, "x").stub
    request = npb.ListDeliveriesRequest()
    with expect(grpc.StatusCode.UNAUTHENTICATED, "missing credentials"):
        await stub.ListDeliveries(request)
    with expect(grpc.StatusCode.UNAUTHENTICATED, "Bearer"):
        await stub.ListDeliveries(request, metadata=(("authorization", "Basic abc"),))
    with expect(grpc.StatusCode.UNAUTHENTICATED, "API key not recognised"):
        await stub.ListDeliveries(request, metadata=bearer("pmk_wrong"))

    merchant = await new_merchant(ledger_channel, receiver.url)
    client = NotifierClient(channel, merchant.api_key)
    assert (await client.list()).deliveries == []
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    await admin.DisableMerchant(
        apb.DisableMerchantRequest(merchant_id=merchant.merchant_id), metadata=bearer(ADMIN_TOKEN)
    )

    async def refused():
        try:
            await client.list()
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.PERMISSION_DENIED and "disabled" in err.details()
        return False

    await eventually(refused, timeout=5)


def payment_event(merchant_id: str, event_id: str | None = None) -> evpb.PaymentEvent:
    return evpb.PaymentEvent(
        event_id=event_id or str(uuid.uuid4()),
        type=evpb.PAYMENT_EVENT_TYPE_CONFIRMED,
        merchant_id=merchant_id,
        payment=pb.Payment(
            payment_id="pay_" + uuid.uuid4().hex,
            merchant_id=merchant_id,
            amount_due="5",
            amount_confirmed="5",
            status=pb.PAYMENT_STATUS_CONFIRMED,
        ),
        created_at=timestamp(datetime.now(UTC)),
        previous_status=pb.PAYMENT_STATUS_DETECTED,
    )


async def test_same_event_twice_is_delivered_once_and_garbage_is_dead_lettered(
    notifier, channel, ledger_channel, nats_server
):
    async with WebhookReceiver(ok()) as receiver:
        merchant = await new_merchant(ledger_channel, receiver.url)
        client = NotifierClient(channel, merchant.api_key)
        event = payment_event(merchant.merchant_id)
        subject = f"paymesh.payments.{merchant.merchant_id}.confirmed"
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            # Twice with different message ids: JetStream keeps both; the notifier's
            # unique event id makes the second a no-op.
            await js.publish(subject, event.SerializeToString(), headers={"Nats-Msg-Id": "a-" + event.event_id})
            await js.publish(subject, b"\xff\x00 not a protobuf", headers={"Nats-Msg-Id": uuid.uuid4().hex})
            await js.publish(subject, event.SerializeToString(), headers={"Nats-Msg-Id": "b-" + event.event_id})
            after = payment_event(merchant.merchant_id)
            await js.publish(subject, after.SerializeToString())

            await receiver.wait_for(lambda: receiver.event_ids(answered_ok=True) == {event.event_id, after.event_id})
            delivered = await client.wait_state(event.event_id, SUCCEEDED)
            assert delivered.event_type == "confirmed" and delivered.attempt_count == 1
            body = receiver.for_event(event.event_id)[0].json()
            assert body["type"] == "payment.confirmed"
            assert body["data"]["previous_status"] == "PAYMENT_STATUS_DETECTED"
            assert body["data"]["payment"]["amount_confirmed"] == "5"
            assert len(receiver.for_event(event.event_id)) == 1
            assert len((await client.list()).deliveries) == 2

            dlq = await js.pull_subscribe(f"paymesh.dlq.{notifier.settings.notifier_durable}", stream="DLQ")
            msgs = await dlq.fetch(1, timeout=5)
            assert msgs[0].data == b"\xff\x00 not a protobuf"
            assert "PaymentEvent" in msgs[0].headers["Paymesh-Error"]
            await msgs[0].ack()
        finally:
            await nc.drain()
