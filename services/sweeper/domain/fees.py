"""Fee math. All integers (wei); never a float near money.

EIP-1559 sweeps use maxFeePerGas == maxPriorityFeePerGas. The effective price
of a type-2 transaction is min(maxFee, baseFee + maxPriority), which is then
exactly maxFee (baseFee > 0), so the transaction costs exactly gas x maxFee: a
native sweep can send balance - gas x maxFee and leave the deposit address at
zero wei. The price for that certainty is overpaying the tip a little; the
operator sets how much headroom over the base fee (base_fee_multiplier_percent).

Rollups of the OP stack (OP Mainnet, Base, ...) also charge an L1 data fee, taken
from the sender's balance on top of gas and not known to the wei in advance (it
follows the L1 fee when the block is built). There a quote carries a reserve for
it (an upper bound with headroom); a native sweep leaves what the reserve did not
use on the deposit address.
"""

from __future__ import annotations

from dataclasses import dataclass

NATIVE_TRANSFER_GAS = 21_000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class FeeQuote:
    """What to pay per gas. `max_priority_fee_per_gas` is None for a legacy gasPrice."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    base_fee: int = 0  # the next block's base fee the quote was made for (0 for legacy)
    l1_fee: int = 0  # the reserve for a rollup's L1 data fee (0 on chains without one)

    @property
    def legacy(self) -> bool:
        return self.max_priority_fee_per_gas is None

    def gas_cost(self, gas_limit: int) -> int:
        """The exact (EIP-1559 with maxFee == tip, or legacy) cost of gas_limit gas."""
        return gas_limit * self.max_fee_per_gas

    def cost(self, gas_limit: int) -> int:
        """What a transaction of gas_limit gas may take from its sender: the gas, and
        the L1 data fee reserve where the chain charges one."""
        return self.gas_cost(gas_limit) + self.l1_fee

    def with_price(self, max_fee_per_gas: int, legacy: bool) -> FeeQuote:
        """The same quote (base fee, L1 reserve) at another price per gas."""
        return FeeQuote(max_fee_per_gas, None if legacy else max_fee_per_gas, self.base_fee, self.l1_fee)


def median(values: list[int]) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def quote_eip1559(
    next_base_fee: int,
    rewards: list[int],
    *,
    base_fee_multiplier_percent: int = 200,
    min_priority_fee: int = 0,
) -> FeeQuote:
    """maxFee == maxPriority == base x multiplier + the median recent tip (at least min_priority_fee)."""
    if next_base_fee < 0:
        raise ValueError("base fee cannot be negative")
    tip = max(min_priority_fee, median([r for r in rewards if r > 0]))
    fee = ceil_div(next_base_fee * base_fee_multiplier_percent, 100) + tip
    fee = max(fee, 1)
    return FeeQuote(max_fee_per_gas=fee, max_priority_fee_per_gas=fee, base_fee=next_base_fee)


def quote_legacy(gas_price: int, *, multiplier_percent: int = 110, min_gas_price: int = 0) -> FeeQuote:
    price = max(ceil_div(gas_price * multiplier_percent, 100), min_gas_price, 1)
    return FeeQuote(max_fee_per_gas=price, max_priority_fee_per_gas=None)


def bump(old_fee: int, market: FeeQuote, bump_bps: int) -> FeeQuote:
    """Fees for a replacement of a transaction that paid `old_fee` per gas: at least
    old x (1 + bump) (nodes want >= 10 %, we use >= 12.5 %), and at least the market."""
    if bump_bps < 1_000:
        raise ValueError("a replacement must bump fees by at least 10 % (1000 bps)")
    bumped = max(ceil_div(old_fee * (10_000 + bump_bps), 10_000), old_fee + 1, market.max_fee_per_gas)
    return market.with_price(bumped, market.legacy)


def is_bump_enough(old_fee: int, new_fee: int, bump_bps: int) -> bool:
    return new_fee * 10_000 >= old_fee * (10_000 + bump_bps)


def native_sweep_value(available: int, gas_limit: int, fee: FeeQuote) -> int:
    """What a native sweep sends so that `available` is spent to the last wei (<= 0: nothing to send)."""
    return available - fee.cost(gas_limit)


def topup_needed(native_balance: int, gas_limit: int, fee: FeeQuote) -> int:
    """Native coin a deposit address lacks to pay for gas_limit at `fee` (0: enough)."""
    return max(0, fee.cost(gas_limit) - native_balance)


def with_buffer(gas: int, percent: int) -> int:
    return ceil_div(gas * (100 + percent), 100)


def spend_all_fee(native_balance: int, gas_limit: int, market: FeeQuote, max_multiple: int = 3) -> FeeQuote:
    """For a token sweep after a top-up: pay at least the market, and up to
    max_multiple x the market when the balance allows, so little native dust stays
    behind on the deposit address."""
    best = max(0, native_balance - market.l1_fee) // gas_limit if gas_limit else 0  # the L1 reserve stays
    fee = max(market.max_fee_per_gas, min(best, market.max_fee_per_gas * max_multiple))
    return market.with_price(fee, market.legacy)
