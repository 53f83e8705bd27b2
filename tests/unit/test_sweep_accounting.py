"""What a completed sweep does to a payment's figures (pure), and the fee a receipt shows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.common.evm_rpc import MalformedResponse
from services.ledger.domain.accounting import SweepFigures, complete_sweep, sweep_allowance
from services.sweeper.domain.receipts import fee_paid

GWEI = 10**9


def native_sweep(
    before: SweepFigures,
    *,
    confirmed: int,
    value: int,
    gas_limit: int,
    max_fee: int,
    reserve: int = 0,
    fee: int | None = None,
) -> SweepFigures:
    allowance = sweep_allowance(
        native=True, amount=value, gas_limit=gas_limit, max_fee_per_gas=max_fee, l1_fee_reserve=reserve
    )
    return complete_sweep(
        before,
        native=True,
        confirmed=confirmed,
        allowance=allowance,
        recorded_amount=value,
        amount=value,
        fee=gas_limit * max_fee if fee is None else fee,
    )


def test_native_sweep_to_an_address_pays_exactly_the_gas():
    # 1e16 wei confirmed; 21,000 gas at 4 gwei: 8.4e13 to the network, the rest to the treasury.
    value = 10**16 - 21_000 * 4 * GWEI
    after = native_sweep(SweepFigures(), confirmed=10**16, value=value, gas_limit=21_000, max_fee=4 * GWEI)
    assert after == SweepFigures(swept=value, fee=21_000 * 4 * GWEI, dust=0)
    assert after.accounted(native=True) == 10**16


def test_unused_l1_reserve_and_gas_become_dust():
    confirmed, gas_limit, max_fee, reserve = 10**18, 30_000, 2 * GWEI, 185_185_184
    value = confirmed - gas_limit * max_fee - reserve
    paid = 25_000 * max_fee + 123_456_789  # less gas than the limit (a contract treasury), and an L1 fee
    after = native_sweep(
        SweepFigures(),
        confirmed=confirmed,
        value=value,
        gas_limit=gas_limit,
        max_fee=max_fee,
        reserve=reserve,
        fee=paid,
    )
    assert after.swept == value and after.fee == paid
    assert after.dust == 5_000 * max_fee + reserve - 123_456_789
    assert after.swept + after.fee + after.dust == confirmed


def test_an_l1_fee_above_the_reserve_may_use_earlier_dust_but_no_more():
    before = SweepFigures(swept=900, fee=50, dust=50)  # a first sweep of 1000 left 50
    # Second deposit of 1000: value 900, gas 21 x 2 = 42, reserve 58; the L1 fee was 80.
    after = native_sweep(before, confirmed=2000, value=900, gas_limit=21, max_fee=2, reserve=58, fee=42 + 80)
    assert after == SweepFigures(swept=1800, fee=172, dust=28)
    assert after.accounted(native=True) == 2000
    with pytest.raises(InvalidArgument, match="more than the deposit address could pay"):
        native_sweep(before, confirmed=2000, value=900, gas_limit=21, max_fee=2, reserve=58, fee=42 + 58 + 51)


def test_token_sweep_counts_the_tokens_and_keeps_the_fee_apart():
    after = complete_sweep(
        SweepFigures(),
        native=False,
        confirmed=25_000_000,
        allowance=25_000_000,
        recorded_amount=25_000_000,
        amount=25_000_000,
        fee=3 * 10**14,
    )
    assert after == SweepFigures(swept=25_000_000, fee=3 * 10**14, dust=0)
    assert after.accounted(native=False) == 25_000_000


@pytest.mark.parametrize(
    ("amount", "fee", "confirmed", "message"),
    [
        (10**16, 21_000, 10**16, "not what the recorded sweep transaction moves"),  # the gross amount: the old bug
        (10**16 - 21_000, -1, 10**16, "must not be negative"),
        (10**16 - 21_000, 21_000, 10**16 - 1, "do not fit"),  # a reorg took funds after signing
    ],
)
def test_reports_that_do_not_fit_are_refused(amount, fee, confirmed, message):
    allowance = sweep_allowance(
        native=True, amount=10**16 - 21_000, gas_limit=21_000, max_fee_per_gas=1, l1_fee_reserve=0
    )
    with pytest.raises(InvalidArgument, match=message):
        complete_sweep(
            SweepFigures(),
            native=True,
            confirmed=confirmed,
            allowance=allowance,
            recorded_amount=10**16 - 21_000,
            amount=amount,
            fee=fee,
        )


@given(
    deposits=st.lists(st.integers(10**6, 10**24), min_size=1, max_size=5),
    gas_limit=st.integers(21_000, 100_000),
    max_fee=st.integers(1, 10**4),
    reserve=st.integers(0, 10**5),
    used=st.floats(0.5, 1.0),
)
def test_native_books_balance_to_the_wei(deposits, gas_limit, max_fee, reserve, used):
    """Whatever the fees: confirmed == swept + fee + dust after every sweep, in integers."""
    figures, confirmed = SweepFigures(), 0
    for amount in deposits:
        confirmed += amount
        unswept = confirmed - figures.accounted(native=True)  # what ClaimSweeps gives the sweeper
        value = unswept - gas_limit * max_fee - reserve
        if value <= 0:
            continue  # dust: left for a later sweep
        paid = int(gas_limit * used) * max_fee  # gas the node used, never more than the limit
        figures = native_sweep(
            figures, confirmed=confirmed, value=value, gas_limit=gas_limit, max_fee=max_fee, reserve=reserve, fee=paid
        )
        assert figures.swept + figures.fee + figures.dust == figures.accounted(native=True) == confirmed
        assert figures.dust >= 0
        assert all(isinstance(x, int) for x in (figures.swept, figures.fee, figures.dust))


def test_fee_paid_reads_the_receipt():
    receipt = {"gasUsed": hex(21_000), "effectiveGasPrice": hex(3 * GWEI)}
    assert fee_paid(receipt, 5 * GWEI) == 21_000 * 3 * GWEI
    # OP stack: the L1 data fee is on top of gas, in the receipt's l1Fee.
    assert fee_paid({**receipt, "l1Fee": hex(123_456_789)}, 5 * GWEI) == 21_000 * 3 * GWEI + 123_456_789
    # A node that leaves effectiveGasPrice out: the transaction's own price.
    assert fee_paid({"gasUsed": hex(21_000)}, 5 * GWEI) == 21_000 * 5 * GWEI
    with pytest.raises(MalformedResponse):
        fee_paid({"effectiveGasPrice": "0x1"}, 1)
