"""tools.pay --payment-id pays what is still due, nothing when nothing is, and
refuses payments that take no more money (pure decision, no ledger)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from paymesh.ledger.v1 import payment_pb2 as pb

from tools.pay import PaymentClosed, what_is_due

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def payment(status: int, due: int, received: int, expires_in: timedelta = timedelta(hours=1)) -> pb.Payment:
    p = pb.Payment(
        payment_id="pay_x",
        chain_id=31337,
        asset="ETH",
        deposit_address="0xabc",
        status=status,
        amount_due=str(due),
        amount_received=str(received),
    )
    p.expires_at.FromDatetime(NOW + expires_in)
    return p


def test_pending_pays_everything_and_partly_paid_only_the_remainder():
    assert what_is_due(payment(pb.PAYMENT_STATUS_PENDING, 1000, 0), NOW).amount == 1000
    for status in (pb.PAYMENT_STATUS_DETECTED, pb.PAYMENT_STATUS_UNDERPAID):
        due = what_is_due(payment(status, 1000, 400), NOW)
        assert due.amount == 600 and "remaining 600" in due.note


@pytest.mark.parametrize(
    "status,received",
    [
        (pb.PAYMENT_STATUS_DETECTED, 1000),
        (pb.PAYMENT_STATUS_CONFIRMED, 1000),
        (pb.PAYMENT_STATUS_OVERPAID, 1500),
        (pb.PAYMENT_STATUS_SWEPT, 1000),
        (pb.PAYMENT_STATUS_PAID_AFTER_EXPIRY, 1000),
    ],
)
def test_paid_in_full_pays_nothing(status, received):
    due = what_is_due(payment(status, 1000, received), NOW)
    assert due.amount == 0 and due.note.startswith("nothing to pay") and pb.PaymentStatus.Name(status) in due.note


@pytest.mark.parametrize(
    "status,received,expires_in",
    [
        (pb.PAYMENT_STATUS_CANCELLED, 0, timedelta(hours=1)),
        (pb.PAYMENT_STATUS_EXPIRED, 0, -timedelta(seconds=1)),
        (pb.PAYMENT_STATUS_PENDING, 0, -timedelta(seconds=1)),  # past expiry, not yet marked
        (pb.PAYMENT_STATUS_UNDERPAID, 400, -timedelta(seconds=1)),
        (pb.PAYMENT_STATUS_PAID_AFTER_EXPIRY, 400, -timedelta(seconds=1)),
    ],
)
def test_closed_payments_are_refused(status, received, expires_in):
    with pytest.raises(PaymentClosed) as err:
        what_is_due(payment(status, 1000, received, expires_in), NOW)
    assert "takes no more money" in str(err.value) and "--amount" in str(err.value)
