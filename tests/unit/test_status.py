"""The payment status rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain.status import (
    Amounts,
    EventType,
    OptionFacts,
    OptionStatus,
    PaymentStatus,
    TransferFacts,
    derive_status,
    event_for_change,
    funds_accounted,
    is_late,
    is_sweepable,
    outcome,
    settle,
    sum_transfers,
)

S = PaymentStatus


def status(due=100, received=0, confirmed=0, late=False, swept=0, expired=False, cancelled=False):
    return derive_status(
        amount_due=due,
        amounts=Amounts(received, confirmed, late),
        amount_accounted=swept,
        expired=expired,
        cancelled=cancelled,
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(), S.PENDING),
        (dict(expired=True), S.EXPIRED),
        (dict(cancelled=True), S.CANCELLED),
        (dict(received=100), S.DETECTED),
        (dict(received=150, confirmed=100), S.DETECTED),
        (dict(received=100, confirmed=100), S.CONFIRMED),
        (dict(received=60, confirmed=60), S.UNDERPAID),
        (dict(received=60, confirmed=60, expired=True), S.UNDERPAID),
        (dict(received=160, confirmed=160), S.OVERPAID),
        (dict(received=100, confirmed=100, late=True), S.PAID_AFTER_EXPIRY),
        (dict(received=100, confirmed=100, late=True, cancelled=True), S.PAID_AFTER_EXPIRY),
        (dict(received=100, confirmed=100, swept=100), S.SWEPT),
        (dict(received=130, confirmed=130, swept=100), S.OVERPAID),  # more arrived after the sweep
    ],
)
def test_derive_status(kwargs, expected):
    assert status(**kwargs) is expected


def test_sum_ignores_orphaned_and_uncredited():
    amounts = sum_transfers(
        [
            TransferFacts(100, "confirmed", True, False),
            TransferFacts(50, "seen", True, False),
            TransferFacts(1000, "orphaned", True, False),
            TransferFacts(7, "confirmed", False, False),
            TransferFacts(1, "confirmed", True, True),
        ]
    )
    assert amounts == Amounts(received=151, confirmed=101, late=True)


@given(
    due=st.integers(1, 2**256 - 1),
    parts=st.lists(
        st.tuples(
            st.integers(0, 2**255), st.sampled_from(["seen", "confirmed", "orphaned"]), st.booleans(), st.booleans()
        ),
        max_size=8,
    ),
)
def test_amounts_are_exact_integers_and_never_negative(due, parts):
    facts = [TransferFacts(*p) for p in parts]
    amounts = sum_transfers(facts)
    assert isinstance(amounts.received, int) and isinstance(amounts.confirmed, int)
    assert 0 <= amounts.confirmed <= amounts.received
    expected = sum(a for a, state, credited, _ in parts if credited and state != "orphaned")
    assert amounts.received == expected
    result = derive_status(amount_due=due, amounts=amounts, amount_accounted=0, expired=False, cancelled=False)
    if amounts.received > amounts.confirmed:
        assert result is S.DETECTED


def test_sweepable_only_when_settled():
    assert is_sweepable(S.CONFIRMED, expired=False, confirmed=10, accounted=0)
    assert is_sweepable(S.OVERPAID, expired=False, confirmed=10, accounted=0)
    assert is_sweepable(S.PAID_AFTER_EXPIRY, expired=True, confirmed=10, accounted=0)
    assert not is_sweepable(S.UNDERPAID, expired=False, confirmed=10, accounted=0)  # the customer may top up
    assert is_sweepable(S.UNDERPAID, expired=True, confirmed=10, accounted=0)
    assert not is_sweepable(S.DETECTED, expired=False, confirmed=10, accounted=0)
    assert not is_sweepable(S.CONFIRMED, expired=False, confirmed=10, accounted=10)


def test_a_native_sweep_accounts_for_its_fee_and_dust():
    """1e16 wei confirmed: 9.916e15 reached the treasury, 8.4e13 went to the network,
    nothing was left. The payment is SWEPT and not sweepable again (its own gas is not
    swept a second time); with an unused L1 fee reserve left as dust, the same."""
    confirmed = 10**16
    for swept, fee, dust in [(9_916 * 10**12, 84 * 10**12, 0), (9_916 * 10**12, 83 * 10**12, 10**12)]:
        accounted = funds_accounted(native=True, swept=swept, fee=fee, dust=dust)
        assert accounted == confirmed
        assert status(due=confirmed, received=confirmed, confirmed=confirmed, swept=accounted) is S.SWEPT
        assert not is_sweepable(S.SWEPT, expired=False, confirmed=confirmed, accounted=accounted)
    # What reached the treasury alone is not all of it: counted that way, the payment
    # would stay CONFIRMED and be claimed again for the 8.4e13 wei the network took.
    assert status(due=confirmed, received=confirmed, confirmed=confirmed, swept=9_916 * 10**12) is S.CONFIRMED


def test_a_token_sweeps_fee_is_not_the_payments_funds():
    # The fee is native coin from the gas top-up: the tokens moved are what counts.
    assert funds_accounted(native=False, swept=25_000_000, fee=3 * 10**14, dust=0) == 25_000_000
    assert status(due=25_000_000, received=25_000_000, confirmed=25_000_000, swept=25_000_000) is S.SWEPT


def test_events_follow_status_changes():
    assert event_for_change(S.PENDING, S.DETECTED) is EventType.DETECTED
    assert event_for_change(S.DETECTED, S.DETECTED) is None
    assert event_for_change(S.DETECTED, S.PENDING) is None  # a reorg emits REORGED itself
    assert event_for_change(S.CONFIRMED, S.SWEPT) is EventType.SWEPT


def test_lateness_uses_block_time():
    expires = datetime(2026, 1, 1, tzinfo=UTC)
    assert not is_late(expires - timedelta(seconds=1), expires_at=expires, cancelled_at=None, expired_at=None)
    assert is_late(expires + timedelta(seconds=1), expires_at=expires, cancelled_at=None, expired_at=None)
    assert is_late(
        expires - timedelta(hours=1), expires_at=expires, cancelled_at=expires - timedelta(hours=2), expired_at=None
    )


def test_recorded_after_the_cancel_or_expiry_committed_is_late_whatever_the_block_time():
    """Issue 12, item 3: the ledger's order (the payment row lock) decides, not clocks."""
    expires = datetime(2026, 1, 1, 12, tzinfo=UTC)
    cancelled = datetime(2026, 1, 1, 11, 0, 0, 700_000, tzinfo=UTC)  # microseconds, the ledger's clock
    same_second = datetime(2026, 1, 1, 11, 0, 0, tzinfo=UTC)  # a block timestamp: whole seconds
    # The cancel committed before the ledger recorded the transfer: late, although its
    # block's timestamp reads 0.7 s before the cancel (or an hour, from a lagging producer).
    assert is_late(same_second, expires_at=expires, cancelled_at=cancelled, expired_at=None)
    assert is_late(cancelled - timedelta(hours=1), expires_at=expires, cancelled_at=cancelled, expired_at=None)
    # The expiry job committed: late, although the block says it was mined before expires_at.
    assert is_late(expires - timedelta(minutes=5), expires_at=expires, cancelled_at=None, expired_at=expires)
    # Neither committed yet: only the chain's word counts, and it may already say too late.
    assert not is_late(expires, expires_at=expires, cancelled_at=None, expired_at=None)
    assert is_late(expires + timedelta(seconds=1), expires_at=expires, cancelled_at=None, expired_at=None)


# ---------------------------------------------------------------- several options

OS = OptionStatus


def confirmed(amount, option, *, late=False, state="confirmed"):
    return TransferFacts(amount, state, True, late, option)


def settle_of(transfers, options=((100, 100), (2000, 2000)), accounted=(), **flags):
    facts = [
        OptionFacts(due, minimum, accounted[i] if i < len(accounted) else 0) for i, (due, minimum) in enumerate(options)
    ]
    return settle(facts, transfers, expired=flags.get("expired", False), cancelled=flags.get("cancelled", False))


def test_nothing_received_shows_the_first_option():
    got = settle_of([])
    assert (got.status, got.selected, got.paid_by, got.statuses) == (S.PENDING, 0, None, (OS.AWAITING, OS.AWAITING))


def test_the_second_option_pays_and_is_selected():
    got = settle_of([confirmed(2000, 1)])
    assert (got.status, got.selected, got.paid_by, got.statuses) == (S.CONFIRMED, 1, 1, (OS.AWAITING, OS.PAID))
    assert got.amounts[1] == Amounts(2000, 2000, False) and got.amounts[0] == Amounts(0, 0, False)


def test_paid_on_two_options_the_first_recorded_pays_and_the_other_is_surplus():
    got = settle_of([confirmed(2000, 1), confirmed(100, 0)])
    assert (got.status, got.paid_by, got.statuses) == (S.OVERPAID, 1, (OS.SURPLUS, OS.PAID))
    got = settle_of([confirmed(100, 0), confirmed(2000, 1)])
    assert (got.status, got.paid_by, got.statuses) == (S.OVERPAID, 0, (OS.PAID, OS.SURPLUS))


def test_partials_on_two_options_never_add_up():
    got = settle_of([confirmed(60, 0), confirmed(1500, 1)])
    assert (got.status, got.paid_by, got.selected) == (S.UNDERPAID, None, 0)
    assert got.statuses == (OS.UNDERPAID, OS.UNDERPAID)


def test_a_partial_then_the_other_option_in_full_is_overpaid():
    got = settle_of([confirmed(60, 0), confirmed(2000, 1)])
    assert (got.status, got.paid_by, got.selected, got.statuses) == (S.OVERPAID, 1, 1, (OS.SURPLUS, OS.PAID))


def test_a_reorg_of_the_paying_transfer_hands_the_win_to_the_other_option():
    got = settle_of([confirmed(100, 0, state="orphaned"), confirmed(2000, 1)])
    assert (got.status, got.paid_by, got.statuses) == (S.CONFIRMED, 1, (OS.AWAITING, OS.PAID))


def test_unconfirmed_funds_on_any_option_keep_the_payment_detected():
    got = settle_of([confirmed(100, 0), confirmed(5, 1, state="seen")])
    assert (got.status, got.paid_by, got.statuses) == (S.DETECTED, 0, (OS.PAID, OS.DETECTED))


def test_swept_only_when_every_option_with_funds_is_accounted_for():
    paid = [confirmed(100, 0), confirmed(2000, 1)]
    assert settle_of(paid, accounted=(100,)).status is S.OVERPAID
    assert settle_of(paid, accounted=(100, 2000)).status is S.SWEPT
    assert (
        outcome([OptionFacts(100, 100, 100), OptionFacts(2000, 2000, 2000)], paid, expired=False, cancelled=False)
        is S.OVERPAID
    )


def test_a_late_transfer_on_any_option_is_paid_after_expiry():
    got = settle_of([confirmed(2000, 1, late=True)], cancelled=True)
    assert got.status is S.PAID_AFTER_EXPIRY


_FACT = st.tuples(
    st.integers(0, 10**24),
    st.sampled_from(["seen", "confirmed", "orphaned"]),
    st.booleans(),
    st.booleans(),
)


@given(
    due=st.integers(1, 10**24),
    minimum=st.integers(0, 10**24),
    accounted=st.integers(0, 10**24),
    parts=st.lists(_FACT, max_size=8),
    expired=st.booleans(),
    cancelled=st.booleans(),
)
def test_one_option_settles_as_derive_status(due, minimum, accounted, parts, expired, cancelled):
    minimum = min(minimum, due)
    facts = [TransferFacts(*p) for p in parts]
    got = settle([OptionFacts(due, minimum, accounted)], facts, expired=expired, cancelled=cancelled)
    expected = derive_status(
        amount_due=due,
        amount_minimum=minimum,
        amounts=sum_transfers(facts),
        amount_accounted=accounted,
        expired=expired,
        cancelled=cancelled,
    )
    assert got.status is expected
    assert got.amounts == (sum_transfers(facts),) and got.selected == 0


@given(
    parts=st.lists(st.tuples(_FACT, st.integers(0, 2)), max_size=10),
    dues=st.lists(st.integers(1, 10**6), min_size=3, max_size=3),
)
def test_several_options_amounts_never_mix(parts, dues):
    facts = [TransferFacts(*fact, option) for fact, option in parts]
    got = settle([OptionFacts(d, d) for d in dues], facts, expired=False, cancelled=False)
    assert sum(a.received for a in got.amounts) == sum_transfers(facts).received
    for i in range(3):
        assert got.amounts[i] == sum_transfers(facts, i)
    paid = [i for i, s in enumerate(got.statuses) if s is OS.PAID]
    assert paid == ([] if got.paid_by is None else [got.paid_by])
    if got.paid_by is not None:
        assert got.selected == got.paid_by and got.amounts[got.paid_by].confirmed >= dues[got.paid_by]
    if got.status is S.CONFIRMED:
        assert sum(1 for a in got.amounts if a.confirmed) == 1
