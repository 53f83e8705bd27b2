"""The pure rules of refunds and payouts (services/ledger/domain/payouts.py)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import FailedPrecondition, InvalidArgument
from services.ledger.domain import hd
from services.ledger.domain.payouts import (
    ZERO_ADDRESS,
    AssetLimits,
    PayoutKind,
    PayoutPolicy,
    PayoutSource,
    PayoutState,
    RefundableFunds,
    RefundMode,
    check_daily_limit,
    check_policy_unique,
    choose_source,
    destination_problem,
    event_type,
    needs_approval,
    payout_wallet_path,
    refund_amount,
)
from services.ledger.domain.pricing import parse_price, units_worth
from services.notifier.domain.payload import build_body, webhook_type
from services.sweeper.domain.policy import destination_problem as sweeper_check
from tests.support.ledger import ANVIL_MNEMONIC, fresh_xpub

pytestmark = pytest.mark.unit

SOURCE = "0x" + "ab" * 20
TOKEN = "0x" + "cd" * 20


@given(
    confirmed=st.integers(0, 10**30),
    due=st.integers(1, 10**30),
    refunding=st.integers(0, 10**30),
    mode=st.sampled_from(list(RefundMode)),
    amount=st.integers(1, 10**30),
)
def test_a_refund_never_gives_back_more_than_was_received_and_not_yet_refunded(confirmed, due, refunding, mode, amount):
    funds = RefundableFunds(confirmed=confirmed, amount_due=due, refunding=refunding)
    try:
        value = refund_amount(mode, amount if mode is RefundMode.AMOUNT else None, funds)
    except (InvalidArgument, FailedPrecondition):
        return
    assert 0 < value <= confirmed - refunding
    if mode is RefundMode.EXCESS:
        assert value == confirmed - due - refunding
    if mode is RefundMode.ALL_RECEIVED:
        assert value == confirmed - refunding


def test_refund_amounts_say_why_not():
    funds = RefundableFunds(confirmed=100, amount_due=100, refunding=30)
    with pytest.raises(FailedPrecondition, match="no excess"):
        refund_amount(RefundMode.EXCESS, None, funds)
    with pytest.raises(InvalidArgument, match="at most 70"):
        refund_amount(RefundMode.AMOUNT, 71, funds)
    assert refund_amount(RefundMode.ALL_RECEIVED, None, funds) == 70
    with pytest.raises(FailedPrecondition, match="nothing left"):
        refund_amount(RefundMode.ALL_RECEIVED, None, RefundableFunds(100, 100, 100))


def test_the_deposit_address_pays_a_refund_only_when_its_funds_cover_it_and_no_sweep_is_in_flight():
    assert choose_source(at_deposit=100, amount=100, sweep_busy=False) is PayoutSource.DEPOSIT
    assert choose_source(at_deposit=99, amount=100, sweep_busy=False) is PayoutSource.PAYOUT_WALLET
    assert choose_source(at_deposit=100, amount=1, sweep_busy=True) is PayoutSource.PAYOUT_WALLET


@pytest.mark.parametrize(
    ("destination", "says"),
    [(ZERO_ADDRESS, "zero address"), (SOURCE.upper().replace("0X", "0x"), "leaves from"), (TOKEN, "token contract")],
)
def test_bad_destinations(destination, says):
    assert says in destination_problem(destination, source_address=SOURCE, token_address=TOKEN)


def test_a_good_destination():
    assert destination_problem("0x" + "12" * 20, source_address=SOURCE, token_address=TOKEN) == ""


def test_policy_round_trips_and_applies_per_asset():
    policy = PayoutPolicy((AssetLimits(1, "ETH", approval_above=10, daily_limit=100), AssetLimits(1, "USDC")))
    assert PayoutPolicy.from_json(policy.to_json()) == policy
    eth = policy.for_asset(1, "ETH")
    assert needs_approval(eth, 11) and not needs_approval(eth, 10)
    assert not needs_approval(policy.for_asset(2, "ETH"), 10**30)  # no rule: no approval
    check_daily_limit(eth, used=60, amount=40)
    with pytest.raises(FailedPrecondition, match="at most 40 more"):
        check_daily_limit(eth, used=60, amount=41)
    with pytest.raises(InvalidArgument, match="twice"):
        check_policy_unique([AssetLimits(1, "ETH"), AssetLimits(1, "ETH")])


def test_event_types_and_their_webhook_names():
    assert event_type(PayoutKind.REFUND, PayoutState.REQUESTED) == "refund_created"
    assert event_type(PayoutKind.PAYOUT, PayoutState.CONFIRMED) == "payout_confirmed"
    assert webhook_type("refund_confirmed") == "refund.confirmed"
    assert webhook_type("payout_failed") == "payout.failed"
    assert webhook_type("confirmed") == "payment.confirmed"
    assert webhook_type("config_changed") == "merchant.config_changed"
    body = build_body(
        event_id="e",
        event_type="refund_confirmed",
        created_at="t",
        merchant_id="m",
        payment={"payment_id": "p"},
        payout={"payout_id": "rf_1"},
    )
    assert b'"refund":{"payout_id":"rf_1"}' in body and b'"type":"refund.confirmed"' in body


def test_the_payout_wallet_is_the_accounts_internal_chain_index_0():
    """The ledger derives the address from the xpub, the sweeper the key from the seed
    at the same path: they must agree."""
    xpub, account = fresh_xpub()
    path = payout_wallet_path(f"m/44'/60'/{account}'")
    Account.enable_unaudited_hdwallet_features()
    assert Account.from_mnemonic(ANVIL_MNEMONIC, account_path=path).address == hd.payout_wallet_address(xpub)
    assert path.endswith("/1/0")


@given(
    cents=st.integers(1, 10**12),
    rate_cents=st.integers(1, 10**10),
    decimals=st.sampled_from([0, 6, 8, 18]),
)
def test_a_fiat_refund_never_gives_back_more_than_its_value(cents, rate_cents, decimals):
    """floor(value x 10^decimals / rate): worth at most the value, and one more base unit
    would be worth more than it (exact fractions, no float)."""
    value = parse_price("USD", f"{cents // 100}.{cents % 100:02d}")
    rate = Decimal(rate_cents) / 100
    units = units_worth(value, rate, decimals)
    worth = lambda n: Fraction(n) * Fraction(rate) / 10**decimals  # noqa: E731
    assert worth(units) <= Fraction(value.amount) < worth(units + 1)


def test_the_sweeper_checks_the_destination_again_before_signing():
    assert "zero address" in sweeper_check(ZERO_ADDRESS, source=SOURCE, token_address="")
    assert "leaves from" in sweeper_check(SOURCE, source=SOURCE, token_address="")
    assert "token contract" in sweeper_check(TOKEN, source=SOURCE, token_address=TOKEN)
    assert sweeper_check("0x" + "12" * 20, source=SOURCE, token_address=TOKEN) == ""
