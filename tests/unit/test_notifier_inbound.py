"""The notifier's intake of PAYMENTS messages (inbound/payment_events.py): a
PaymentEvent is decoded once into the delivery it becomes (the webhook body
built from the payment in proto JSON), a message that cannot be decoded is
dead-lettered without holding back the others, and a batch reaches the intake
use case in one call."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_pb2 as pb

from services.common.nats_helpers import Outcome
from services.common.timestamps import to_timestamp
from services.notifier.domain.records import NewEvent
from services.notifier.inbound.payment_events import (
    Malformed,
    PaymentEventConsumer,
    decode,
    payment_json,
    sample_payment_json,
)

pytestmark = pytest.mark.unit

CREATED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@dataclass
class FakeMsg:
    """The two attributes of a nats Msg the decoder reads."""

    data: bytes
    subject: str = "paymesh.payments.mch_a.confirmed"


def event(**fields) -> evpb.PaymentEvent:
    values = dict(
        event_id=str(uuid.uuid4()),
        type=evpb.PAYMENT_EVENT_TYPE_CONFIRMED,
        merchant_id="mch_a",
        payment=pb.Payment(
            payment_id="pay_1",
            merchant_id="mch_a",
            chain_id=31337,
            amount_due="123456789012345678901234567890",
            amount_confirmed="123456789012345678901234567890",
            status=pb.PAYMENT_STATUS_CONFIRMED,
        ),
        created_at=to_timestamp(CREATED),
        previous_status=pb.PAYMENT_STATUS_DETECTED,
    )
    values.update(fields)
    return evpb.PaymentEvent(**values)


def test_an_event_becomes_its_delivery_with_the_webhook_body():
    ev = event()
    new = decode(FakeMsg(ev.SerializeToString()))
    assert (new.event_id, new.event_type, new.merchant_id, new.payment_id) == (
        ev.event_id,
        "confirmed",
        "mch_a",
        "pay_1",
    )
    assert new.event_created_at == CREATED
    body = json.loads(new.body)
    assert body == {
        "id": ev.event_id,
        "type": "payment.confirmed",
        "created_at": "2026-01-02T03:04:05.678Z",
        "merchant_id": "mch_a",
        "data": {"payment": payment_json(ev.payment), "previous_status": "PAYMENT_STATUS_DETECTED"},
    }
    sent = body["data"]["payment"]
    assert sent["amount_due"] == "123456789012345678901234567890" and sent["chain_id"] == "31337"
    assert sent["status"] == "PAYMENT_STATUS_CONFIRMED" and sent["amount_swept"] == ""  # every field present


def test_the_event_id_is_normalised_and_the_merchant_can_come_from_the_subject():
    raw = uuid.uuid4()
    ev = event(event_id=str(raw).upper(), merchant_id="", payment=pb.Payment(payment_id="pay_2"))
    new = decode(FakeMsg(ev.SerializeToString(), subject="paymesh.payments.mch_b.created"))
    assert new.event_id == str(raw) and new.merchant_id == "mch_b"


@pytest.mark.parametrize(
    ("data", "subject", "words"),
    [
        (b"\xff\x00 not a protobuf", "paymesh.payments.mch_a.x", "not a PaymentEvent"),
        (event(event_id="42").SerializeToString(), "paymesh.payments.mch_a.x", "not a UUID"),
        (
            event(type=evpb.PAYMENT_EVENT_TYPE_UNSPECIFIED).SerializeToString(),
            "paymesh.payments.mch_a.x",
            "unspecified",
        ),
        (event(type=99).SerializeToString(), "paymesh.payments.mch_a.x", "unknown event type 99"),
        (event(merchant_id="", payment=pb.Payment()).SerializeToString(), "paymesh.payments", "names no merchant"),
    ],
)
def test_an_unusable_message_is_malformed(data, subject, words):
    with pytest.raises(Malformed, match=words):
        decode(FakeMsg(data, subject))


def test_the_test_events_payment_has_the_shape_of_a_real_one():
    sample = sample_payment_json("mch_t")
    assert sample.keys() == payment_json(event().payment).keys()
    assert sample["merchant_id"] == "mch_t" and sample["status"] == "PAYMENT_STATUS_PENDING"
    assert sample["payment_id"] == "" and sample["amount_due"] == ""


class FakeIntake:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[NewEvent]] = []
        self.fail = fail

    async def take_in(self, events) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.batches.append(list(events))


async def test_a_batch_is_taken_in_once_and_a_bad_message_is_dead_lettered_alone():
    intake = FakeIntake()
    first, second = event(), event()
    msgs = [FakeMsg(first.SerializeToString()), FakeMsg(b"garbage\xff"), FakeMsg(second.SerializeToString())]
    results = await PaymentEventConsumer(intake).handle(msgs)  # type: ignore[arg-type]
    assert [r.outcome for r in results] == [Outcome.ACK, Outcome.DEAD, Outcome.ACK]
    assert "PaymentEvent" in results[1].reason
    assert [[d.event_id for d in batch] for batch in intake.batches] == [[first.event_id, second.event_id]]


async def test_nothing_is_taken_in_for_a_batch_of_garbage():
    intake = FakeIntake()
    results = await PaymentEventConsumer(intake).handle([FakeMsg(b"\xff")])  # type: ignore[arg-type]
    assert [r.outcome for r in results] == [Outcome.DEAD] and intake.batches == []


async def test_a_failed_intake_acks_nothing():
    # The exception reaches the consumer loop, which naks the whole batch: it is redelivered.
    with pytest.raises(ConnectionError):
        await PaymentEventConsumer(FakeIntake(fail=True)).handle([FakeMsg(event().SerializeToString())])  # type: ignore[arg-type]
