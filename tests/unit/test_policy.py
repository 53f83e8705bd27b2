"""The payment policy (domain/policy.py) and how the status uses it (domain/status.py):
tolerance, confirmations by chain and by price, the watch window, resolutions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain.policy import ConfirmationTier, Policy, PolicyError, check_policy, in_force, merge
from services.ledger.domain.pricing import minimum_accepted, parse_price
from services.ledger.domain.status import (
    Amounts,
    OptionFacts,
    PaymentStatus,
    TransferFacts,
    derive_status,
    is_sweepable,
    outcome,
)

CHAINS = {31337: 2, 8453: 10}
WEEK = timedelta(days=7)


def usd(amount: str):
    return parse_price("USD", amount)


def test_the_payment_overrides_the_merchant_field_by_field():
    merchant = Policy(
        tolerance_bps=50,
        confirmations={31337: 3, 8453: 12},
        tiers=(ConfirmationTier(usd("1000"), 20),),
        watch_after_expiry=timedelta(days=1),
    )
    payment = Policy(confirmations={31337: 5}, watch_after_expiry=timedelta(0))
    merged = merge(merchant, payment)
    assert merged.tolerance_bps == 50  # not set on the payment: the merchant's
    assert merged.confirmations == {31337: 5, 8453: 12}  # per chain
    assert merged.tiers == merchant.tiers  # an empty list keeps the merchant's
    assert merged.watch_after_expiry == timedelta(0)  # 0 is a value, not "unset"
    assert merge(merchant, Policy(tolerance_bps=0)).tolerance_bps == 0


def test_in_force_takes_the_deepest_of_chain_minimum_override_and_tier():
    policy = Policy(
        confirmations={31337: 4}, tiers=(ConfirmationTier(usd("1000"), 12), ConfirmationTier(usd("100"), 6))
    )

    def depth(price, chain_id=31337, minimum=2):
        return in_force(policy, chain_id=chain_id, chain_minimum=minimum, price=price, default_watch=WEEK).confirmations

    assert depth(None) == 4  # base units: no tier applies
    assert depth(usd("99.99")) == 4
    assert depth(usd("100")) == 6
    assert depth(usd("999.99")) == 6
    assert depth(usd("1000")) == 12  # >= 1,000 USD waits 12 blocks
    assert depth(parse_price("EUR", "5000")) == 4  # tiers compare the same currency only
    assert depth(None, chain_id=8453, minimum=10) == 10  # no override: the chain's minimum
    assert depth(None, minimum=9) == 9  # an override never goes below the chain (checked on entry, kept here)
    fixed = in_force(Policy(), chain_id=31337, chain_minimum=2, price=None, default_watch=WEEK)
    assert (fixed.tolerance_bps, fixed.confirmations, fixed.watch_after_expiry) == (0, 2, WEEK)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy(tolerance_bps=10_001), "0 to 10000 (100 %)"),
        (Policy(confirmations={1: 5}), "chain 1 is not configured"),
        (Policy(confirmations={31337: 1}), "below the chain's minimum of 2"),
        (Policy(confirmations={31337: 10_001}), "more than 10000"),
        (Policy(tiers=(ConfirmationTier(usd("1"), 0),)), "confirmation_tiers[0].confirmations must be 1"),
        (Policy(watch_after_expiry=timedelta(days=91)), "watch_after_expiry must be 0 to 90 days"),
        (Policy(watch_after_expiry=timedelta(seconds=-1)), "watch_after_expiry must be 0 to 90 days"),
    ],
)
def test_policies_that_cannot_apply_say_why(policy, message):
    with pytest.raises(PolicyError) as err:
        check_policy(policy, CHAINS)
    assert message in str(err.value)


def test_json_round_trip_is_exact():
    policy = Policy(
        tolerance_bps=50,
        confirmations={31337: 3},
        tiers=(ConfirmationTier(usd("1000.50"), 12),),
        watch_after_expiry=timedelta(hours=2),
    )
    assert Policy.from_json(policy.to_json()) == policy
    assert Policy.from_json({}) == Policy() and Policy().to_json() == {}


def status(confirmed: int, due: int = 1_000_000, minimum: int | None = None, **flags) -> PaymentStatus:
    return derive_status(
        amount_due=due,
        amount_minimum=minimum,
        amounts=Amounts(received=confirmed, confirmed=confirmed, late=flags.get("late", False)),
        amount_accounted=0,
        expired=flags.get("expired", False),
        cancelled=False,
    )


def test_tolerance_makes_a_short_payment_confirmed():
    due = 1_000_000
    minimum = minimum_accepted(due, 50)  # 0.5 %
    assert minimum == 995_000
    assert status(997_000, due, minimum) is PaymentStatus.CONFIRMED  # 0.3 % short
    assert status(994_000, due, minimum) is PaymentStatus.UNDERPAID  # 0.6 % short
    assert status(994_000, due) is PaymentStatus.UNDERPAID
    assert status(999_999, due) is PaymentStatus.UNDERPAID  # no tolerance: one unit short is short
    assert status(due + 1, due, minimum) is PaymentStatus.OVERPAID


@given(st.integers(1, 10**30), st.integers(0, 10_000), st.integers(0, 10**31))
def test_status_and_tolerance_agree(due, bps, confirmed):
    """CONFIRMED exactly between the minimum and the amount due, whatever the numbers."""
    minimum = minimum_accepted(due, bps)
    got = status(confirmed, due, minimum)
    if confirmed == 0:
        assert got is PaymentStatus.PENDING
    elif confirmed < minimum:
        assert got is PaymentStatus.UNDERPAID
    elif confirmed <= due:
        assert got is PaymentStatus.CONFIRMED
    else:
        assert got is PaymentStatus.OVERPAID


def test_outcome_ignores_sweeps_so_a_swept_underpayment_stays_resolvable():
    amounts = Amounts(received=500, confirmed=500, late=False)
    swept = derive_status(amount_due=1000, amounts=amounts, amount_accounted=500, expired=True, cancelled=False)
    assert swept is PaymentStatus.SWEPT
    paid = [TransferFacts(500, "confirmed", True, False)]
    got = outcome([OptionFacts(1000, 1000, accounted=500)], paid, expired=True, cancelled=False)
    assert got is PaymentStatus.UNDERPAID


def test_an_accepted_underpayment_is_swept_before_expiry():
    kwargs = {"expired": False, "confirmed": 500, "accounted": 0}
    assert not is_sweepable(PaymentStatus.UNDERPAID, **kwargs)
    assert is_sweepable(PaymentStatus.UNDERPAID, **kwargs, accepted=True)
