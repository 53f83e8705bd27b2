"""Payment events as they are published, for the ledger's watch streams
(PaymentService.WatchPayment, CheckoutLedgerService.WatchCheckout). JetStream also
delivers what it stores to plain core-NATS subscribers.

One core-NATS subscription per merchant, shared by every watcher of that merchant's
payments: each event crosses the connection and is decoded once, then handed to
the watchers it concerns (all of the merchant's, or those of its one payment). With
a subscription per watcher, 1,000 checkout pages of one merchant made NATS send each
event 1,000 times, and the server cut the ledger's connection as a slow consumer
(bench/bench_checkout.py). An undecodable event, or one beyond a watcher's full
queue (10,000), is dropped for it: every event carries the whole payment, so the
next one brings the watcher up to date."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from paymesh.events.v1 import payment_events_pb2 as evpb

from services.common.errors import Unavailable


class EventSubscription:
    """Payment events for one watcher: a merchant's, or one payment's of it."""

    def __init__(self, hub: PaymentEventSubscriber | None = None, key: tuple[str, str] = ("", "")) -> None:
        self.queue: asyncio.Queue[evpb.PaymentEvent] = asyncio.Queue(maxsize=10_000)
        self._hub = hub
        self._key = key

    async def next(self) -> evpb.PaymentEvent:
        return await self.queue.get()

    async def close(self) -> None:
        if self._hub is not None:
            hub, self._hub = self._hub, None
            await hub._leave(self, self._key)


@dataclass
class _MerchantFeed:
    subscription: object | None = None  # the NATS subscription
    watchers: dict[str, set[EventSubscription]] = field(default_factory=dict)  # payment id ("": all) -> watchers


class PaymentEventSubscriber:
    """Opens EventSubscriptions on the ledger's NATS connection, one NATS
    subscription per merchant however many watch."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._feeds: dict[str, _MerchantFeed] = {}
        self._lock = asyncio.Lock()

    async def subscribe(self, merchant_id: str, payment_id: str = "") -> EventSubscription:
        """Events of the merchant's payments (of `payment_id` alone, when given)."""
        subscription = EventSubscription(self, (merchant_id, payment_id))
        async with self._lock:
            feed = self._feeds.get(merchant_id)
            if feed is None:
                fresh = _MerchantFeed()

                async def on_msg(msg: Msg) -> None:
                    self._deliver(fresh, msg)

                # Registered only once subscribed: a failed subscribe leaves no feed without events.
                fresh.subscription = await self._nc.subscribe(f"paymesh.payments.{merchant_id}.>", cb=on_msg)
                # The server has the subscription once a PING after it is answered: the
                # watchers read the payment after subscribing, so no event between is missed.
                try:
                    await self._nc.flush(timeout=5)
                except Exception as err:  # noqa: BLE001 - any NATS failure: the watch cannot start safely
                    with contextlib.suppress(Exception):
                        await fresh.subscription.unsubscribe()
                    raise Unavailable(f"payment events are not reachable right now ({err!r}); retry") from None
                feed = self._feeds[merchant_id] = fresh
            feed.watchers.setdefault(payment_id, set()).add(subscription)
        return subscription

    @staticmethod
    def _deliver(feed: _MerchantFeed, msg: Msg) -> None:
        try:
            event = evpb.PaymentEvent.FromString(msg.data)
        except DecodeError:
            return
        for key in ("", event.payment.payment_id):
            for watcher in feed.watchers.get(key, ()):
                with contextlib.suppress(asyncio.QueueFull):
                    watcher.queue.put_nowait(event)

    async def _leave(self, subscription: EventSubscription, key: tuple[str, str]) -> None:
        merchant_id, payment_id = key
        async with self._lock:
            feed = self._feeds.get(merchant_id)
            if feed is None:
                return
            watchers = feed.watchers.get(payment_id)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del feed.watchers[payment_id]
            if not feed.watchers:
                del self._feeds[merchant_id]
                with contextlib.suppress(Exception):
                    await feed.subscription.unsubscribe()  # type: ignore[attr-defined]
