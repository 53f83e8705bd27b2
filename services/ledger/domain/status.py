"""Payment status, derived from the money seen, never set by hand.

The status is a pure function of the payment's amounts and flags, so replays,
reorgs and late events always land on the same answer:

    swept              all confirmed funds accounted for by sweeps (see funds_accounted)
    detected           some transfer is seen but not yet confirmed
    pending/expired/cancelled   nothing confirmed (by expiry or cancel flags)
    paid_after_expiry  confirmed funds include a late transfer (is_late: recorded after the
                       cancel or expiry committed, or mined after expires_at)
    underpaid          confirmed < minimum
    confirmed          minimum <= confirmed <= due
    overpaid           confirmed > due

where `minimum` is the amount due less the payment's underpayment tolerance
(pricing.minimum_accepted; equal to the amount due without a tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class PaymentStatus(str, Enum):
    PENDING = "pending"
    DETECTED = "detected"
    CONFIRMED = "confirmed"
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PAID_AFTER_EXPIRY = "paid_after_expiry"
    SWEPT = "swept"


class EventType(str, Enum):
    """Payment event types; the value is the NATS subject's last token."""

    CREATED = "created"
    DETECTED = "detected"
    CONFIRMED = "confirmed"
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PAID_AFTER_EXPIRY = "paid_after_expiry"
    SWEPT = "swept"
    REORGED = "reorged"
    RESOLVED = "resolved"
    REQUOTED = "requoted"


class Resolution(str, Enum):
    """How the merchant closed a payment that did not end exactly paid."""

    ACCEPTED = "accepted"
    REFUND = "refund"


# The outcomes a merchant may resolve (outcome(), which ignores sweeps).
RESOLVABLE = frozenset({"underpaid", "overpaid", "paid_after_expiry"})


# A stream of changes (WatchPayment) ends at these.
FINAL_STATUSES = frozenset({PaymentStatus.SWEPT, PaymentStatus.EXPIRED, PaymentStatus.CANCELLED})

SEEN, CONFIRMED, ORPHANED = "seen", "confirmed", "orphaned"


@dataclass(frozen=True)
class TransferFacts:
    """What the status needs to know about one recorded transfer."""

    amount: int
    state: str  # seen | confirmed | orphaned
    credited: bool  # right asset for this payment
    late: bool  # recorded after the cancel/expiry committed, or mined after expires_at


@dataclass(frozen=True)
class Amounts:
    received: int
    confirmed: int
    late: bool


def sum_transfers(transfers: list[TransferFacts]) -> Amounts:
    received = confirmed = 0
    late = False
    for t in transfers:
        if not t.credited or t.state == ORPHANED:
            continue
        received += t.amount
        if t.state == CONFIRMED:
            confirmed += t.amount
            late = late or t.late
    return Amounts(received=received, confirmed=confirmed, late=late)


def funds_accounted(*, native: bool, swept: int, fee: int, dust: int) -> int:
    """The confirmed funds the payment's completed sweeps have dealt with.

    A token sweep moves the tokens themselves: `swept` (its fee is native coin from
    the gas wallet's top-up, not the payment's funds). A native sweep spends the
    payment's own coin: what reached the treasury (`swept`), what the network took
    as fee (`fee`), and what it set aside for the fee without using (`dust`, left at
    the deposit address). So after a native sweep
    confirmed == swept + fee + dust + what is not swept yet."""
    return swept + fee + dust if native else swept


def derive_status(
    *,
    amount_due: int,
    amounts: Amounts,
    amount_accounted: int,
    expired: bool,
    cancelled: bool,
    amount_minimum: int | None = None,
) -> PaymentStatus:
    """`amount_accounted` is funds_accounted(...) of the payment's sweeps;
    `amount_minimum` the least confirmed amount accepted (default: amount_due)."""
    if amounts.received > amounts.confirmed:
        return PaymentStatus.DETECTED
    confirmed = amounts.confirmed
    if confirmed == 0:
        if cancelled:
            return PaymentStatus.CANCELLED
        return PaymentStatus.EXPIRED if expired else PaymentStatus.PENDING
    if amount_accounted >= confirmed:
        return PaymentStatus.SWEPT
    if amounts.late:
        return PaymentStatus.PAID_AFTER_EXPIRY
    if confirmed < (amount_due if amount_minimum is None else amount_minimum):
        return PaymentStatus.UNDERPAID
    if confirmed <= amount_due:
        return PaymentStatus.CONFIRMED
    return PaymentStatus.OVERPAID


def outcome(*, amount_due: int, amount_minimum: int, amounts: Amounts, expired: bool, cancelled: bool) -> PaymentStatus:
    """The status the money alone gives, as if nothing were swept: what a merchant
    resolves (an UNDERPAID payment stays underpaid after its sweep)."""
    return derive_status(
        amount_due=amount_due,
        amount_minimum=amount_minimum,
        amounts=amounts,
        amount_accounted=0,
        expired=expired,
        cancelled=cancelled,
    )


def is_sweepable(
    status: PaymentStatus, *, expired: bool, confirmed: int, accounted: int, accepted: bool = False
) -> bool:
    """Confirmed funds that will not change any more and that no sweep has accounted
    for yet (`accounted`: funds_accounted(...)). A native payment whose sweep paid a
    fee or left dust is done: that coin is accounted for, not to be swept again.
    `accepted`: the merchant resolved the payment as accepted."""
    if confirmed <= accounted:
        return False
    if status in (PaymentStatus.CONFIRMED, PaymentStatus.OVERPAID, PaymentStatus.PAID_AFTER_EXPIRY):
        return True
    # An underpaid payment may still be completed by the customer until it expires,
    # unless the merchant accepted it as it is.
    return status is PaymentStatus.UNDERPAID and (expired or accepted)


def event_for_change(old: PaymentStatus | None, new: PaymentStatus) -> EventType | None:
    """The event to emit when the status moves from old to new (None: no event)."""
    if old == new:
        return None
    return EventType(new.value) if new is not PaymentStatus.PENDING else None


def is_late(
    block_time: datetime, *, expires_at: datetime, cancelled_at: datetime | None, expired_at: datetime | None
) -> bool:
    """Whether a transfer the ledger is recording now, for a payment it holds
    locked, is late (the payment then ends PAID_AFTER_EXPIRY, never CONFIRMED).

    Once the payment's cancel or expiry has committed (`cancelled_at` or
    `expired_at` set on the locked row), every transfer recorded afterwards is
    late, whatever its block's timestamp says: the order is the ledger's row
    lock, not clocks (a block timestamp is whole seconds, set by the block
    producer). Before that, a transfer whose block timestamp is after
    `expires_at` is late too: the chain says it came too late, even if the
    expiry job has not run yet. A transfer recorded before the cancel or expiry
    keeps the flag it was recorded with."""
    if cancelled_at is not None or expired_at is not None:
        return True
    return block_time > expires_at
