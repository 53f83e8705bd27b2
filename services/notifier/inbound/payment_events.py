"""NATS transport of the notifier: the durable pull consumer of the PAYMENTS
stream. Each event becomes one pending delivery row (unique event id, so a
replayed message is a no-op), committed before the message is acked; the
scheduler takes it from there."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_pb2 as pb
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.nats_helpers import PAYMENTS_STREAM, Handled, Outcome
from services.common.timestamps import from_timestamp
from services.notifier import metrics
from services.notifier import repository as repo
from services.notifier.domain.payload import build_body
from services.notifier.domain.records import NewDelivery

log = structlog.get_logger("notifier.intake")

SUBJECTS = "paymesh.payments.>"
_TYPE_PREFIX = "PAYMENT_EVENT_TYPE_"


class Malformed(ValueError):
    pass


def payment_json(payment: pb.Payment) -> dict:
    """The payment as the gRPC API shows it, in proto JSON (field names as in the proto)."""
    return MessageToDict(payment, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def decode(msg: Msg) -> NewDelivery:
    try:
        event = evpb.PaymentEvent.FromString(msg.data)
    except DecodeError as exc:
        raise Malformed(f"not a PaymentEvent protobuf: {exc}") from None
    try:
        event_id = str(uuid.UUID(event.event_id))
    except ValueError:
        raise Malformed(f"event_id is not a UUID: {event.event_id[:64]!r}") from None
    if event.type == evpb.PAYMENT_EVENT_TYPE_UNSPECIFIED:
        raise Malformed("event type is unspecified")
    try:
        event_type = evpb.PaymentEventType.Name(event.type)[len(_TYPE_PREFIX) :].lower()
    except ValueError:
        raise Malformed(f"unknown event type {event.type}") from None
    merchant_id = event.merchant_id or event.payment.merchant_id
    if not merchant_id:
        parts = msg.subject.split(".")
        merchant_id = parts[2] if len(parts) >= 4 else ""
    if not merchant_id:
        raise Malformed("event names no merchant")
    created = from_timestamp(event.created_at) if event.HasField("created_at") else None
    previous = pb.PaymentStatus.Name(event.previous_status) if event.previous_status else None
    body = build_body(
        event_id=event_id,
        event_type=event_type,
        created_at=(event.created_at.ToJsonString() if created else datetime.now(UTC).isoformat()),
        merchant_id=merchant_id,
        payment=payment_json(event.payment),
        previous_status=previous,
    )
    return NewDelivery(
        event_id=event_id,
        event_type=event_type,
        merchant_id=merchant_id,
        payment_id=event.payment.payment_id,
        body=body,
        event_created_at=created,
    )


async def ensure_consumer(js: JetStreamContext, durable: str, deliver_policy: str, ack_wait: float = 30.0) -> None:
    """Create the durable pull consumer (explicit acks) unless it exists."""
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.NEW if deliver_policy == "new" else DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=50,
        max_ack_pending=10_000,
        filter_subject=SUBJECTS,
    )
    try:
        await js.add_consumer(PAYMENTS_STREAM.name, config)
    except BadRequestError as exc:
        # Exists with another start policy (which cannot change): keep using it.
        log.warning("durable consumer exists with a different config; using it", durable=durable, error=str(exc))


class PaymentEventIntake:
    def __init__(self, engine: AsyncEngine, on_new: Callable[[], None]) -> None:
        self._engine = engine
        self._on_new = on_new

    async def handle(self, msgs: list[Msg]) -> list[Handled]:
        results: list[Handled] = []
        rows: list[NewDelivery] = []
        for msg in msgs:
            try:
                rows.append(decode(msg))
                results.append(Handled(Outcome.ACK))
            except Malformed as exc:
                log.error("malformed payment event", subject=msg.subject, error=str(exc))
                results.append(Handled(Outcome.DEAD, str(exc)))
        if rows:
            async with self._engine.begin() as conn:
                await repo.insert_deliveries(conn, rows, datetime.now(UTC))
            metrics.INTAKE.inc(len(rows))
            self._on_new()
        return results
