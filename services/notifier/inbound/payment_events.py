"""The notifier's durable pull consumer of the PAYMENTS stream (JetStream).

Each message is decoded here, once, into a NewEvent: the PaymentEvent
protobuf becomes the webhook's JSON body (the payment in proto JSON, exactly as
the gRPC API shows it), so nothing past this module sees protobuf. A batch of
decoded events goes to the intake use case (intake.py) in one call; the
messages are acked only after it has committed, and a message that cannot be
decoded is dead-lettered without holding back the others."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_pb2 as pb

from services.common.nats_helpers import PAYMENTS_STREAM, Handled, Outcome, retry_while_electing
from services.common.timestamps import from_timestamp
from services.notifier.domain.payload import build_body
from services.notifier.domain.records import NewEvent
from services.notifier.intake import EventIntake

log = structlog.get_logger("notifier.intake")

SUBJECTS = "paymesh.payments.>"
_TYPE_PREFIX = "PAYMENT_EVENT_TYPE_"


class Malformed(ValueError):
    """The message is not a usable PaymentEvent (it goes to the DLQ)."""


def payment_json(payment: pb.Payment) -> dict[str, Any]:
    """The payment as the gRPC API shows it, in proto JSON (field names as in the proto)."""
    return MessageToDict(payment, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def sample_payment_json(merchant_id: str) -> dict[str, Any]:
    """The payment a test event carries: an empty pending payment of the merchant,
    in the same JSON shape as a real event's (every field present)."""
    return payment_json(pb.Payment(merchant_id=merchant_id, status=pb.PAYMENT_STATUS_PENDING))


def decode(msg: Msg) -> NewEvent:
    """The message's PaymentEvent as the delivery it becomes; Malformed if unusable."""
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
        payment=payment_json(event.payment) if event.HasField("payment") else None,
        previous_status=previous,
        payout=payment_json(event.payout) if event.HasField("payout") else None,
        audit=payment_json(event.audit) if event.HasField("audit") else None,
    )
    return NewEvent(
        event_id=event_id,
        event_type=event_type,
        merchant_id=merchant_id,
        payment_id=event.payment.payment_id or event.payout.payout_id,
        body=body,
        event_created_at=created,
    )


@retry_while_electing
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


class PaymentEventConsumer:
    """The handler run_pull_consumer calls with each fetched batch."""

    def __init__(self, intake: EventIntake) -> None:
        self._intake = intake

    async def handle(self, msgs: list[Msg]) -> list[Handled]:
        """One outcome per message, in order: ACK once the batch is committed, DEAD if malformed."""
        results: list[Handled] = []
        rows: list[NewEvent] = []
        for msg in msgs:
            try:
                rows.append(decode(msg))
                results.append(Handled(Outcome.ACK))
            except Malformed as exc:
                log.error("malformed payment event", subject=msg.subject, error=str(exc))
                results.append(Handled(Outcome.DEAD, str(exc)))
        if rows:
            await self._intake.take_in(rows)
        return results
