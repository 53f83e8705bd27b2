"""The ledger's shared payment-event feed (adapters/payment_event_subscriber.py) on a
real NATS server: one core subscription per merchant however many watch, each event
handed only to the watchers of its payment (and to merchant-wide ones), and the
subscription gone when the last watcher leaves."""

from __future__ import annotations

import asyncio

import nats
import pytest
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_pb2 as pb

from services.ledger.adapters.payment_event_subscriber import PaymentEventSubscriber

pytestmark = pytest.mark.asyncio(loop_scope="session")


def event(merchant: str, payment: str, version: int) -> bytes:
    return evpb.PaymentEvent(
        event_id=f"e-{payment}-{version}",
        merchant_id=merchant,
        payment=pb.Payment(payment_id=payment, merchant_id=merchant, version=version),
    ).SerializeToString()


async def test_one_subscription_per_merchant_routes_each_event_to_its_watchers(nats_server):
    ledger = await nats.connect(nats_server.url)
    publisher = await nats.connect(nats_server.url)
    try:
        hub = PaymentEventSubscriber(ledger)
        before = len(ledger._subs)
        watch_a = [await hub.subscribe("m1", "pay_a") for _ in range(50)]
        watch_b = await hub.subscribe("m1", "pay_b")
        everything = await hub.subscribe("m1")
        other = await hub.subscribe("m2", "pay_a")  # another merchant's feed
        assert len(ledger._subs) == before + 2  # one NATS subscription per merchant
        for version in (1, 2):
            await publisher.publish("paymesh.payments.m1.detected", event("m1", "pay_a", version))
        await publisher.publish("paymesh.payments.m1.created", event("m1", "pay_b", 1))
        await publisher.publish("paymesh.payments.m1.created", b"not a protobuf \xff")  # dropped, nothing breaks
        await publisher.flush()

        async def take(sub, count: int) -> list[tuple[str, int]]:
            return [
                (e.payment.payment_id, e.payment.version)
                for e in [await asyncio.wait_for(sub.next(), timeout=5) for _ in range(count)]
            ]

        for sub in watch_a:
            assert await take(sub, 2) == [("pay_a", 1), ("pay_a", 2)]
        assert await take(watch_b, 1) == [("pay_b", 1)]
        assert await take(everything, 3) == [("pay_a", 1), ("pay_a", 2), ("pay_b", 1)]
        assert other.queue.empty() and all(s.queue.empty() for s in watch_a)  # nothing else reached anyone
        for sub in [*watch_a, watch_b, everything]:
            await sub.close()
        await other.close()
        await other.close()  # closing twice is harmless
        assert len(ledger._subs) == before  # the last watcher gone: no subscription left
    finally:
        await publisher.drain()
        await ledger.drain()
