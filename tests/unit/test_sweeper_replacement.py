"""Replacing a stuck transaction: when (should_replace), at what fee (bumped >= 12.5 %,
at least the market, a legacy transaction stays legacy), and what the strategies
sign (a native sweep keeps value + gas + L1 reserve to the wei; a top-up keeps its
value; a transaction from a key the sweeper does not derive is refused)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from services.sweeper.domain.fees import FeeQuote
from services.sweeper.domain.model import RecordedTx, TxKind, TxState
from services.sweeper.domain.releases import ReleaseCategory
from services.sweeper.domain.replacement import native_replacement, replacement_fee, should_replace
from services.sweeper.releases import ReleasePayment
from tests.unit.sweeper_fakes import ETHER, GAS_WALLET_PATH, TREASURY, decode, harness, keys

pytestmark = pytest.mark.unit

GWEI = 10**9
KW = dict(stuck_after_seconds=60, replacements=0, max_replacements=3)


def stuck(
    *, fee: int = 20 * GWEI, legacy: bool = False, amount: int = ETHER - 21_000 * 20 * GWEI, reserve: int = 0, **kw
) -> RecordedTx:
    values = dict(
        payment_id="pay_unit",
        chain_id=31337,
        kind=TxKind.SWEEP,
        state=TxState.BROADCAST,
        tx_hash="0x" + "ab" * 32,
        raw_tx=b"",
        nonce=4,
        from_address=keys().derive("m/44'/60'/5'/0/1").address,
        to_address=TREASURY,
        amount=amount,
        token_address="",
        gas_limit=21_000,
        max_fee_per_gas=fee,
        max_priority_fee_per_gas=None if legacy else fee,
        l1_fee_reserve=reserve,
        updated_at=datetime.now(UTC),
    )
    values.update(kw)
    return RecordedTx(**values)


def test_should_replace_when_stuck_or_below_the_base_fee_within_a_bound():
    assert not should_replace(current_fee=100, next_base_fee=50, age_seconds=59.9, **KW)
    assert should_replace(current_fee=100, next_base_fee=50, age_seconds=60, **KW)  # exactly the stuck time
    assert should_replace(current_fee=49, next_base_fee=50, age_seconds=0, **KW)  # cannot be included now
    assert not should_replace(current_fee=50, next_base_fee=50, age_seconds=0, **KW)  # just includable
    assert not should_replace(current_fee=1, next_base_fee=0, age_seconds=1, **KW)  # legacy chain: age only
    bounded = dict(KW, replacements=3)
    assert not should_replace(current_fee=1, next_base_fee=50, age_seconds=1e9, **bounded)


@pytest.mark.parametrize("old", [7, 8, 20 * GWEI, 123 * GWEI + 1])
def test_replacement_fee_is_bumped_and_at_least_the_market(old):
    quiet = FeeQuote(1, 1, base_fee=1)
    fee = replacement_fee(stuck(fee=old), quiet, 1250)
    assert fee.max_fee_per_gas * 10_000 >= old * 11_250 and fee.max_fee_per_gas > old
    assert fee.max_priority_fee_per_gas == fee.max_fee_per_gas  # type 2, maxFee == tip: the cost stays exact
    busy = FeeQuote(old * 3, old * 3, base_fee=old)
    assert replacement_fee(stuck(fee=old), busy, 1250).max_fee_per_gas == old * 3


def test_a_legacy_transaction_stays_legacy():
    market = FeeQuote(25 * GWEI, 25 * GWEI, base_fee=10 * GWEI)  # the chain quotes type 2 now
    fee = replacement_fee(stuck(fee=20 * GWEI, legacy=True), market, 1250)
    assert fee.legacy and fee.max_fee_per_gas == 25 * GWEI and fee.max_priority_fee_per_gas is None
    assert fee.base_fee == market.base_fee


def test_native_replacement_keeps_value_plus_fee_plus_l1_reserve():
    reserve = 7_777
    original = stuck(fee=20 * GWEI, amount=ETHER - 21_000 * 20 * GWEI - reserve, reserve=reserve)
    market_with_another_reserve = FeeQuote(1, 1, base_fee=1, l1_fee=99_999)
    fee, value = native_replacement(original, replacement_fee(original, market_with_another_reserve, 1250))
    assert fee.l1_fee == reserve  # the original's reserve, not today's quote
    assert value + fee.gas_cost(21_000) + fee.l1_fee == original.amount + original.fee_cost + reserve == ETHER
    assert value < original.amount  # the higher fee comes out of the value


def test_native_replacement_with_nothing_left_to_send():
    original = stuck(fee=20 * GWEI, amount=1)
    _fee, value = native_replacement(original, replacement_fee(original, FeeQuote(1, 1), 1250))
    assert value <= 0


async def test_the_native_strategy_signs_the_same_transfer_at_the_new_fee():
    h = harness()
    original = stuck(fee=20 * GWEI, reserve=5)
    fee = replacement_fee(original, FeeQuote(1, 1), 1250)
    signed = await h.native().replacement(original, fee)
    assert (signed.nonce, signed.to_address, signed.replaces_tx_hash) == (4, TREASURY, original.tx_hash)
    assert (
        signed.amount + 21_000 * signed.max_fee_per_gas + signed.l1_fee_reserve
        == original.amount + original.fee_cost + 5
    )
    on_chain = decode(signed.raw_tx)  # what the node gets says the same
    assert (on_chain.nonce, on_chain.to, on_chain.value) == (4, TREASURY, signed.amount)
    assert on_chain.gas_price == signed.max_fee_per_gas == fee.max_fee_per_gas
    assert signed.raw_tx[0] == 0x02  # still type 2


async def test_the_native_strategy_keeps_a_legacy_sweep_legacy():
    h = harness()
    original = stuck(fee=20 * GWEI, legacy=True)
    signed = await h.native().replacement(original, replacement_fee(original, FeeQuote(30 * GWEI, 30 * GWEI), 1250))
    assert signed.raw_tx[0] >= 0xC0 and signed.max_priority_fee_per_gas is None  # an EIP-155 legacy transaction
    assert decode(signed.raw_tx).gas_price == 30 * GWEI


async def test_the_native_strategy_gives_up_when_nothing_would_be_left():
    h = harness()
    original = stuck(fee=20 * GWEI, amount=1)
    assert await h.native().replacement(original, replacement_fee(original, FeeQuote(1, 1), 1250)) is None


async def test_a_transaction_from_a_key_the_sweeper_does_not_derive_is_refused():
    h = harness()
    foreign = stuck(from_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    with pytest.raises(ReleasePayment) as raised:
        await h.native().replacement(foreign, replacement_fee(foreign, FeeQuote(1, 1), 1250))
    release = raised.value.release
    assert release.category is ReleaseCategory.CONFIG and release.retry_after == 600
    assert "which this sweeper has no key for" in release.reason and "resolve it by hand" in release.reason


async def test_a_top_up_replacement_keeps_its_value_and_recipient():
    h = harness()
    gas_wallet = keys().derive(GAS_WALLET_PATH).address
    topup = stuck(kind=TxKind.GAS_TOPUP, from_address=gas_wallet, to_address=h.deposit, amount=1_650_000 * GWEI)
    fee = replacement_fee(topup, FeeQuote(1, 1), 1250)
    signed = await h.gas_wallet.replacement(topup, fee)
    assert (signed.kind, signed.amount, signed.to_address, signed.nonce) == (
        TxKind.GAS_TOPUP,
        topup.amount,
        h.deposit,
        4,
    )
    assert decode(signed.raw_tx).value == topup.amount and decode(signed.raw_tx).sender == gas_wallet
    with pytest.raises(ReleasePayment):
        await h.gas_wallet.replacement(dataclasses.replace(topup, from_address=h.deposit), fee)
