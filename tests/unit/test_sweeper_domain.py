"""Pure sweeping rules: fee math, dust policy, replacement bumps, send-error
classification, recovery decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_utils import is_checksum_address

from services.sweeper.domain import fees, policy, recovery, replacement
from services.sweeper.domain.model import RecordedTx, TxKind, TxState
from services.sweeper.domain.send_errors import SendOutcome, classify_send_error

GWEI = 10**9


def test_eip1559_quote_has_fee_cap_equal_to_tip():
    quote = fees.quote_eip1559(10 * GWEI, [1 * GWEI, 2 * GWEI, 3 * GWEI], base_fee_multiplier_percent=200)
    assert quote.max_fee_per_gas == quote.max_priority_fee_per_gas == 22 * GWEI
    assert not quote.legacy and quote.base_fee == 10 * GWEI
    # The effective price min(maxFee, base + tip) is maxFee whenever base > 0: the cost is exact.
    assert min(quote.max_fee_per_gas, quote.base_fee + quote.max_priority_fee_per_gas) == quote.max_fee_per_gas
    assert quote.cost(21_000) == 21_000 * 22 * GWEI


def test_eip1559_quote_ignores_zero_rewards_and_applies_minimum_tip():
    assert fees.quote_eip1559(100, [0, 0], min_priority_fee=7).max_fee_per_gas == 207
    assert fees.quote_eip1559(0, []).max_fee_per_gas == 1  # never a zero fee


def test_legacy_quote():
    quote = fees.quote_legacy(10 * GWEI, multiplier_percent=110)
    assert quote.legacy and quote.max_fee_per_gas == 11 * GWEI and quote.max_priority_fee_per_gas is None


@pytest.mark.parametrize("old", [1, 7, 8, 1_000_000_007, 123 * GWEI])
def test_bump_is_at_least_12_5_percent_and_at_least_market(old):
    market = fees.FeeQuote(1, 1, 1)
    new = fees.bump(old, market, 1250)
    assert new.max_fee_per_gas > old
    assert fees.is_bump_enough(old, new.max_fee_per_gas, 1250)
    assert new.max_fee_per_gas == new.max_priority_fee_per_gas
    high_market = fees.FeeQuote(old * 5, old * 5, old)
    assert fees.bump(old, high_market, 1250).max_fee_per_gas == old * 5


def test_bump_refuses_too_small_bumps():
    with pytest.raises(ValueError):
        fees.bump(100, fees.FeeQuote(1, 1), 500)


def test_native_value_and_replacement_keep_exact_zero():
    balance = 10**18 + 12345
    gas = 21_000
    first = fees.FeeQuote(30 * GWEI, 30 * GWEI)
    value = fees.native_sweep_value(balance, gas, first)
    assert value + first.cost(gas) == balance
    bumped = fees.bump(first.max_fee_per_gas, fees.FeeQuote(1, 1), 1250)
    # The replacement spends the same total: what the original would have spent.
    new_value = (value + first.cost(gas)) - bumped.cost(gas)
    assert new_value + bumped.cost(gas) == balance and new_value < value


def test_topup_and_spend_all():
    quote = fees.FeeQuote(10, 10)
    assert fees.topup_needed(0, 50_000, quote) == 500_000
    assert fees.topup_needed(600_000, 50_000, quote) == 0
    assert fees.spend_all_fee(500_000, 50_000, quote).max_fee_per_gas == 10
    assert fees.spend_all_fee(520_000, 50_000, quote).max_fee_per_gas == 10
    assert fees.spend_all_fee(10**18, 50_000, quote).max_fee_per_gas == 30  # capped at 3x the market
    assert fees.with_buffer(50_000, 10) == 55_000 and fees.with_buffer(3, 10) == 4


def test_an_l1_data_fee_reserve_is_left_aside_everywhere():
    """OP stack: the L1 data fee comes out of the sender's balance on top of gas."""
    quote = fees.FeeQuote(10, 10, 5, l1_fee=7_000)
    assert quote.gas_cost(21_000) == 210_000 and quote.cost(21_000) == 217_000
    balance = 10**18
    value = fees.native_sweep_value(balance, 21_000, quote)
    assert balance - value - quote.gas_cost(21_000) == 7_000  # the reserve stays on the deposit address
    assert fees.topup_needed(0, 50_000, quote) == 507_000  # a token sweep's gas and its L1 fee
    # Spending the balance on a higher fee per gas never spends the reserve.
    assert fees.spend_all_fee(507_000, 50_000, quote).max_fee_per_gas == 10
    assert fees.spend_all_fee(1_007_000, 50_000, quote).max_fee_per_gas == 20
    # Replacements and legacy re-pricing keep the reserve.
    bumped = fees.bump(10, quote, 1250)
    assert bumped.l1_fee == 7_000 and bumped.max_fee_per_gas == 12
    assert quote.with_price(11, legacy=True) == fees.FeeQuote(11, None, 5, 7_000)
    dust = policy.native_decision(
        amount=210_000 + 7_000, gas_limit=21_000, fee=quote, policy=policy.SweepPolicy(), chain_id=8453, symbol="ETH"
    )
    assert not dust.sweep and "7000 reserved for the L1 data fee" in dust.reason


def _native(amount, fee=10 * GWEI, gas=21_000, p=None):
    return policy.native_decision(
        amount=amount,
        gas_limit=gas,
        fee=fees.FeeQuote(fee, fee),
        policy=p or policy.SweepPolicy(),
        chain_id=31337,
        symbol="ETH",
    )


def test_native_dust_below_fee_is_left():
    decision = _native(21_000 * 10 * GWEI)  # exactly the fee: nothing would arrive
    assert not decision.sweep and "dust" in decision.reason and "not swept at a loss" in decision.reason
    assert not _native(1000).sweep


def test_native_fee_share_and_minimum():
    assert not _native(21_000 * 10 * GWEI * 3 // 2).sweep  # fee would be 2/3 of the amount
    ok = _native(10**18)
    assert ok.sweep and ok.value == 10**18 - 21_000 * 10 * GWEI
    p = policy.SweepPolicy(min_amounts={"eth": 2 * 10**18})
    assert not _native(10**18, p=p).sweep and "minimum" in _native(10**18, p=p).reason


def test_min_amount_lookup_prefers_chain_specific():
    p = policy.SweepPolicy(min_amounts={"TUSD": 5, "31337:tusd": 9})
    assert p.min_amount(31337, "TUSD") == 9
    assert p.min_amount(1, "tusd") == 5
    assert p.min_amount(1, "ETH") == 0
    assert not policy.token_decision(amount=8, policy=p, chain_id=31337, symbol="TUSD").sweep
    assert policy.token_decision(amount=9, policy=p, chain_id=31337, symbol="TUSD").sweep


DEPOSIT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize(
    ("treasury", "problem"),
    [
        ("", "no treasury"),
        ("0x0000000000000000000000000000000000000000", "zero address"),
        (DEPOSIT, "deposit address itself"),
        (TOKEN, "token contract"),
        ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "not a checksummed"),
        ("nonsense", "not a checksummed"),
    ],
)
def test_treasury_problems(treasury, problem):
    found = policy.treasury_problem(
        treasury, deposit_address=DEPOSIT, token_address=TOKEN, is_checksummed=is_checksum_address
    )
    assert problem in found


def test_good_treasury():
    assert (
        policy.treasury_problem(
            "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
            deposit_address=DEPOSIT,
            token_address="",
            is_checksummed=is_checksum_address,
        )
        == ""
    )


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("nonce too low", SendOutcome.NONCE_TOO_LOW),
        ("nonce too low: next nonce 5, tx nonce 3", SendOutcome.NONCE_TOO_LOW),
        ("OldNonce", SendOutcome.NONCE_TOO_LOW),
        ("already known", SendOutcome.ALREADY_KNOWN),
        ("transaction already imported", SendOutcome.ALREADY_KNOWN),
        ("Known transaction (abc)", SendOutcome.ALREADY_KNOWN),
        ("insufficient funds for gas * price + value", SendOutcome.INSUFFICIENT_FUNDS),
        ("Insufficient funds for gas * price + value", SendOutcome.INSUFFICIENT_FUNDS),
        ("replacement transaction underpriced", SendOutcome.UNDERPRICED),
        ("max fee per gas less than block base fee", SendOutcome.UNDERPRICED),
        ("txpool is full", SendOutcome.REJECTED),
    ],
)
def test_send_errors_classified(message, outcome):
    assert classify_send_error(message) is outcome


def _tx(nonce, state, kind=TxKind.SWEEP, sender=DEPOSIT, n=0):
    return RecordedTx(
        payment_id="pay_1",
        chain_id=31337,
        kind=kind,
        state=state,
        tx_hash=f"0x{nonce:02x}{n:062x}",
        raw_tx=b"x",
        nonce=nonce,
        from_address=sender,
        to_address=TOKEN,
        amount=1,
        token_address="",
        gas_limit=21_000,
        max_fee_per_gas=10,
        max_priority_fee_per_gas=10,
        updated_at=datetime.now(UTC),
    )


def test_groups_and_open_state():
    original = _tx(0, TxState.REPLACED)
    replacement = _tx(0, TxState.BROADCAST, n=1)
    done = _tx(1, TxState.CONFIRMED)
    topup = _tx(7, TxState.SIGNED, kind=TxKind.GAS_TOPUP, sender="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    groups = recovery.group_transactions([original, done, replacement, topup], TxKind.SWEEP)
    assert [(g.nonce, len(g.members)) for g in groups] == [(0, 2), (1, 1)]
    assert groups[0].is_open and groups[0].latest is replacement and groups[0].replacements == 1
    assert groups[0].candidates() == [replacement, original]  # a replaced tx can still be the one mined
    assert not groups[1].is_open
    assert [g.nonce for g in recovery.open_groups([original, replacement, done, topup], TxKind.GAS_TOPUP)] == [7]


def test_failed_groups_are_closed():
    assert not recovery.open_groups([_tx(0, TxState.FAILED), _tx(0, TxState.REPLACED, n=1)], TxKind.SWEEP)
    mined = _tx(0, TxState.MINED)
    assert recovery.open_groups([mined], TxKind.SWEEP)[0].latest is mined


def test_should_replace():
    kw = dict(stuck_after_seconds=60, replacements=0, max_replacements=3)
    assert not replacement.should_replace(current_fee=100, next_base_fee=50, age_seconds=10, **kw)
    assert replacement.should_replace(current_fee=100, next_base_fee=50, age_seconds=61, **kw)
    assert replacement.should_replace(current_fee=40, next_base_fee=50, age_seconds=1, **kw)  # below base fee
    assert not replacement.should_replace(
        current_fee=40, next_base_fee=50, age_seconds=100, stuck_after_seconds=60, replacements=3, max_replacements=3
    )
