"""Publishes outbox events to the JetStream stream PAYMENTS, pipelined, each with
its Nats-Msg-Id (the event id), so a republished event is dropped as a duplicate."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from services.common import nats_helpers


class PaymentEventPublisher:
    def __init__(self, nc: NatsClient) -> None:
        self._publisher = nats_helpers.JetStreamPublisher(nc)

    async def publish(self, items: list[tuple[str, bytes, str]]) -> list[bool]:
        """(subject, payload, message id) each; returns once JetStream acked every one
        (which were duplicates), raises if any was not acked in time."""
        return await self._publisher.publish_many(nats_helpers.PAYMENTS_STREAM.name, items)
