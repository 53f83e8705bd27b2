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

A payment may accept several **options** (chain, asset), each with its own amount
due; `settle` decides a payment of any number of options (one option gives exactly
the rules above):

- a transfer counts for the option of its chain and asset (TransferFacts.option);
  amounts are summed per option, never across options (different assets);
- the option that pays is the **first** whose running sum of confirmed funds, in
  the order the ledger recorded the transfers, reaches its minimum (at least one
  base unit); without one the payment is UNDERPAID (partials on several options do
  not add up);
- confirmed funds on any other option are **surplus**: kept, reported, swept, and
  they make the payment OVERPAID (as funds above the amount due do);
- the **selected** option, which the payment's headline fields show, is the one
  that paid, else the option of the first transfer received, else the first option.
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


class OptionStatus(str, Enum):
    """Where one option of a payment stands (see settle)."""

    AWAITING = "awaiting"
    DETECTED = "detected"
    UNDERPAID = "underpaid"
    PAID = "paid"
    SURPLUS = "surplus"


@dataclass(frozen=True)
class TransferFacts:
    """What the status needs to know about one recorded transfer."""

    amount: int
    state: str  # seen | confirmed | orphaned
    credited: bool  # the asset of one of the payment's options
    late: bool  # recorded after the cancel/expiry committed, or mined after expires_at
    option: int = 0  # the index of the option it counts for (when credited)


@dataclass(frozen=True)
class Amounts:
    received: int
    confirmed: int
    late: bool


def sum_transfers(transfers: list[TransferFacts], option: int | None = None) -> Amounts:
    """The sums of the credited transfers (of one option, when given)."""
    received = confirmed = 0
    late = False
    for t in transfers:
        if not t.credited or t.state == ORPHANED or (option is not None and t.option != option):
            continue
        received += t.amount
        if t.state == CONFIRMED:
            confirmed += t.amount
            late = late or t.late
    return Amounts(received=received, confirmed=confirmed, late=late)


@dataclass(frozen=True)
class OptionFacts:
    """What the status needs to know about one option of a payment."""

    amount_due: int
    amount_minimum: int
    accounted: int = 0  # funds_accounted(...) of the option's completed sweeps


@dataclass(frozen=True)
class Settlement:
    """A payment decided over its options (settle)."""

    status: PaymentStatus
    amounts: tuple[Amounts, ...]  # per option, in option order
    statuses: tuple[OptionStatus, ...]  # per option
    selected: int  # the option the headline shows
    paid_by: int | None  # the option that paid, if any


def settle(
    options: list[OptionFacts],
    transfers: list[TransferFacts],
    *,
    expired: bool,
    cancelled: bool,
    ignore_sweeps: bool = False,
) -> Settlement:
    """The payment's status over all its options (the module docstring gives the rules).
    `transfers` in the order the ledger recorded them. `ignore_sweeps`: the outcome
    the money alone gives, as if nothing were swept (what a merchant resolves)."""
    amounts = tuple(sum_transfers(transfers, i) for i in range(len(options)))
    # The option that paid: the first whose running confirmed sum reaches its minimum.
    running = [0] * len(options)
    paid_by: int | None = None
    first_received: int | None = None
    for t in transfers:
        if not t.credited or t.state == ORPHANED or not 0 <= t.option < len(options):
            continue
        if first_received is None:
            first_received = t.option
        if t.state != CONFIRMED or paid_by is not None:
            continue
        running[t.option] += t.amount
        if running[t.option] >= max(1, options[t.option].amount_minimum):
            paid_by = t.option
    selected = paid_by if paid_by is not None else (first_received or 0)
    statuses = tuple(_option_status(i, options[i], amounts[i], paid_by) for i in range(len(options)))
    received = sum(a.received for a in amounts)
    confirmed = sum(a.confirmed for a in amounts)
    status: PaymentStatus
    if received > confirmed:
        status = PaymentStatus.DETECTED
    elif confirmed == 0:
        if cancelled:
            status = PaymentStatus.CANCELLED
        else:
            status = PaymentStatus.EXPIRED if expired else PaymentStatus.PENDING
    elif not ignore_sweeps and all(o.accounted >= a.confirmed for o, a in zip(options, amounts, strict=True)):
        status = PaymentStatus.SWEPT
    elif any(a.late for a in amounts):
        status = PaymentStatus.PAID_AFTER_EXPIRY
    elif paid_by is None:
        status = PaymentStatus.UNDERPAID
    elif amounts[paid_by].confirmed > options[paid_by].amount_due or confirmed > amounts[paid_by].confirmed:
        status = PaymentStatus.OVERPAID
    else:
        status = PaymentStatus.CONFIRMED
    return Settlement(status=status, amounts=amounts, statuses=statuses, selected=selected, paid_by=paid_by)


def _option_status(index: int, option: OptionFacts, amounts: Amounts, paid_by: int | None) -> OptionStatus:
    if index == paid_by:
        return OptionStatus.PAID
    if amounts.received == 0:
        return OptionStatus.AWAITING
    if paid_by is not None and amounts.confirmed > 0:
        return OptionStatus.SURPLUS
    if amounts.received > amounts.confirmed:
        return OptionStatus.DETECTED
    return OptionStatus.UNDERPAID


def funds_accounted(*, native: bool, swept: int, fee: int, dust: int, refunded: int = 0, refund_fee: int = 0) -> int:
    """The confirmed funds the payment's completed sweeps and refunds from its deposit
    address have dealt with: they left the deposit address (to the treasury, to the
    customer, or to the network as fee) or stay there as dust. A payment whose
    confirmed funds are all dealt with is SWEPT.

    A token sweep moves the tokens themselves: `swept` (its fee is native coin from
    the gas wallet's top-up, not the payment's funds). A native sweep spends the
    payment's own coin: what reached the treasury (`swept`), what the network took
    as fee (`fee`), and what it set aside for the fee without using (`dust`, left at
    the deposit address). So after a native sweep
    confirmed == swept + fee + dust + what is not swept yet.
    A refund from the deposit address takes its value (`refunded`) and, for the
    native coin, its fee (`refund_fee`; a token refund's gas comes from a top-up)."""
    return swept + fee + dust + refunded + refund_fee if native else swept + refunded


def derive_status(
    *,
    amount_due: int,
    amounts: Amounts,
    amount_accounted: int,
    expired: bool,
    cancelled: bool,
    amount_minimum: int | None = None,
) -> PaymentStatus:
    """The status of a payment with one option (settle gives the same answer for
    it). `amount_accounted` is funds_accounted(...) of the payment's sweeps;
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


def outcome(
    options: list[OptionFacts], transfers: list[TransferFacts], *, expired: bool, cancelled: bool
) -> PaymentStatus:
    """The status the money alone gives, as if nothing were swept: what a merchant
    resolves (an UNDERPAID payment stays underpaid after its sweep)."""
    return settle(options, transfers, expired=expired, cancelled=cancelled, ignore_sweeps=True).status


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
