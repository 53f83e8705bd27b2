"""Replacing a stuck transaction: when, at what fee, and (native sweeps) for what value.

A replacement is the same transaction again (same sender, nonce, recipient and
funds) with fees bumped, so that a node takes it in place of the original; at
most one of them is ever mined. Pure decisions; the settler (settler.py) acts on
them and the transfer strategies sign the result.
"""

from __future__ import annotations

import dataclasses

from services.sweeper.domain.fees import FeeQuote, bump
from services.sweeper.domain.model import RecordedTx


def should_replace(
    *,
    current_fee: int,
    next_base_fee: int,
    age_seconds: float,
    stuck_after_seconds: float,
    replacements: int,
    max_replacements: int,
) -> bool:
    """Replace a pending transaction when it waited too long, or when its fee cap is
    below the next block's base fee (it cannot be included now) — within a bound."""
    if replacements >= max_replacements:
        return False
    if next_base_fee and current_fee < next_base_fee:
        return True
    return age_seconds >= stuck_after_seconds


def replacement_fee(stuck: RecordedTx, market: FeeQuote, bump_bps: int) -> FeeQuote:
    """The fees of `stuck`'s replacement: bumped by at least `bump_bps` and at least
    the market (domain.fees.bump); a legacy transaction stays legacy, because a node
    compares a replacement's gasPrice with the original's."""
    fee = bump(stuck.max_fee_per_gas, market, bump_bps)
    if stuck.max_priority_fee_per_gas is None and not market.legacy:
        fee = fee.with_price(fee.max_fee_per_gas, legacy=True)  # keep a legacy tx legacy
    return fee


def native_replacement(stuck: RecordedTx, fee: FeeQuote) -> tuple[FeeQuote, int]:
    """The fees and value of a native sweep's replacement at `fee`: it spends what the
    original spends on value and gas, to the wei, and leaves the L1 data fee reserve
    the original left aside (recorded as such). A value <= 0: nothing would be left to
    send, the fee cannot be bumped further."""
    fee = dataclasses.replace(fee, l1_fee=stuck.l1_fee_reserve)
    spend = stuck.amount + stuck.fee_cost
    return fee, spend - fee.gas_cost(stuck.gas_limit)
