"""What a completed sweep does to a payment's figures (pure).

A sweep transaction the ledger recorded before it was broadcast (write-ahead)
accounts for a part of the payment's confirmed funds that is fixed when it is
signed:

- a token sweep: the tokens it transfers (`amount`); its fee is native coin the
  gas wallet's top-up brought, not the payment's funds;
- a native sweep: the most it can take from the deposit address,
  amount + gas_limit x max_fee_per_gas + l1_fee_reserve. The sweeper signs the
  value so that this is exactly the confirmed amount it was given to sweep.

When the sweep is confirmed the sweeper reports what reached the treasury (the
recorded amount) and the fee its receipt shows. For the native coin, what the fee
did not use of that allowance (an L1 data fee reserve the chain did not charge,
gas a contract treasury did not use) stayed at the deposit address: dust. So a
native payment's figures always satisfy

    amount_confirmed == amount_swept + sweep_fee + sweep_dust + not yet swept
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import InvalidArgument
from services.ledger.domain.status import funds_accounted


@dataclass(frozen=True)
class SweepFigures:
    """A payment's sweep figures, in base units: to the treasury, network fee (native
    coin), and native coin set aside for the fee but left at the deposit address."""

    swept: int = 0
    fee: int = 0
    dust: int = 0

    def accounted(self, *, native: bool) -> int:
        return funds_accounted(native=native, swept=self.swept, fee=self.fee, dust=self.dust)


def sweep_allowance(*, native: bool, amount: int, gas_limit: int, max_fee_per_gas: int, l1_fee_reserve: int) -> int:
    """The part of the payment's confirmed funds a recorded sweep transaction accounts for."""
    if not native:
        return amount
    return amount + gas_limit * max_fee_per_gas + l1_fee_reserve


def complete_sweep(
    before: SweepFigures,
    *,
    native: bool,
    confirmed: int,
    allowance: int,
    recorded_amount: int,
    amount: int,
    fee: int,
) -> SweepFigures:
    """The figures after a confirmed sweep that moved `amount` and paid `fee`, or
    InvalidArgument when the report does not fit the recorded transaction or the
    confirmed funds."""
    if amount != recorded_amount:
        raise InvalidArgument(
            f"amount {amount} is not what the recorded sweep transaction moves to the treasury ({recorded_amount}); "
            "for a native sweep it is the transaction's value, not the payment's amount"
        )
    if amount <= 0:
        raise InvalidArgument(f"amount must be greater than zero; got {amount}")
    if fee < 0:
        raise InvalidArgument(f"fee must not be negative; got {fee}")
    accounted = before.accounted(native=native)
    if accounted + allowance > confirmed:
        raise InvalidArgument(
            f"the sweep accounts for {allowance} base units, which do not fit: confirmed {confirmed}, "
            f"already accounted for {accounted} (swept {before.swept}, fee {before.fee}, dust {before.dust})"
        )
    if not native:
        return SweepFigures(before.swept + amount, before.fee + fee, before.dust)
    unused = allowance - amount - fee
    if before.dust + unused < 0:
        raise InvalidArgument(
            f"fee {fee} is more than the deposit address could pay: the sweep set aside {allowance - amount} "
            f"for it and earlier sweeps left {before.dust} there"
        )
    return SweepFigures(before.swept + amount, before.fee + fee, before.dust + unused)
