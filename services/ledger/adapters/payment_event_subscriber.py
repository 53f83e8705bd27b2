"""The core-NATS subscription to one merchant's payment events, for WatchPayment
(JetStream also delivers what it stores to plain subscribers). Events arrive as
`paymesh.events.v1.PaymentEvent` messages. An undecodable one, or one beyond a full
queue (10,000), is dropped: WatchPayment goes on with the next, and every event
carries the whole payment."""

from __future__ import annotations

import asyncio
import contextlib

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from paymesh.events.v1 import payment_events_pb2 as evpb


class EventSubscription:
    """One merchant's payment events as they are published."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[evpb.PaymentEvent] = asyncio.Queue(maxsize=10_000)
        self._sub = None

    async def next(self) -> evpb.PaymentEvent:
        return await self.queue.get()

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None


class PaymentEventSubscriber:
    """Opens EventSubscriptions on the ledger's NATS connection."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc

    async def subscribe(self, merchant_id: str) -> EventSubscription:
        subscription = EventSubscription()

        async def on_msg(msg: Msg) -> None:
            with contextlib.suppress(DecodeError, asyncio.QueueFull):
                subscription.queue.put_nowait(evpb.PaymentEvent.FromString(msg.data))

        subscription._sub = await self._nc.subscribe(f"paymesh.payments.{merchant_id}.>", cb=on_msg)
        return subscription
