"""What is worth sweeping, and where funds may go."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.sweeper.domain.fees import FeeQuote, native_sweep_value

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class SweepPolicy:
    """Operator policy. `min_amounts` maps "SYMBOL" or "CHAIN_ID:SYMBOL" (case-insensitive
    symbol) to the smallest amount in base units worth sweeping."""

    min_amounts: dict[str, int] = field(default_factory=dict)
    max_fee_share_percent: int = 50  # a native sweep whose fee exceeds this share of the amount waits

    def min_amount(self, chain_id: int, symbol: str) -> int:
        wanted = symbol.upper()
        for key, value in self.min_amounts.items():
            if key.upper() == f"{chain_id}:{wanted}":
                return value
        for key, value in self.min_amounts.items():
            if key.upper() == wanted:
                return value
        return 0


@dataclass(frozen=True)
class Decision:
    """Sweep (value > 0) or leave it, with the reason a person reads."""

    sweep: bool
    value: int = 0
    reason: str = ""


def native_decision(
    *, amount: int, gas_limit: int, fee: FeeQuote, policy: SweepPolicy, chain_id: int, symbol: str
) -> Decision:
    cost = fee.cost(gas_limit)
    minimum = policy.min_amount(chain_id, symbol)
    value = native_sweep_value(amount, gas_limit, fee)
    if value <= 0:
        return Decision(
            False,
            reason=(
                f"dust: {amount} base units of {symbol} are below the sweep fee of {cost} "
                f"({gas_limit} gas x {fee.max_fee_per_gas} per gas{_l1(fee)}); left in place, not swept at a loss"
            ),
        )
    if amount < minimum:
        return Decision(
            False,
            reason=(
                f"dust: {amount} base units of {symbol} are below the minimum worth sweeping ({minimum}); left in place"
            ),
        )
    if cost * 100 > amount * policy.max_fee_share_percent:
        return Decision(
            False,
            reason=(
                f"dust: the sweep fee of {cost} would be more than {policy.max_fee_share_percent} % of the "
                f"{amount} base units of {symbol}; left in place until fees drop or more funds arrive"
            ),
        )
    return Decision(True, value=value)


def _l1(fee: FeeQuote) -> str:
    return f" + {fee.l1_fee} reserved for the L1 data fee" if fee.l1_fee else ""


def token_decision(*, amount: int, policy: SweepPolicy, chain_id: int, symbol: str) -> Decision:
    minimum = policy.min_amount(chain_id, symbol)
    if amount <= 0:
        return Decision(False, reason=f"nothing to sweep: amount is {amount}")
    if amount < minimum:
        return Decision(
            False,
            reason=(
                f"dust: {amount} base units of {symbol} are below the minimum worth sweeping ({minimum}); left in place"
            ),
        )
    return Decision(True, value=amount)


def treasury_problem(treasury: str, *, deposit_address: str, token_address: str, is_checksummed) -> str:
    """Why funds must not be sent to `treasury`, or "" when it is acceptable.
    `is_checksummed` is injected (eth_utils) to keep this module dependency-free."""
    if not treasury:
        return "has no treasury address"
    if not is_checksummed(treasury):
        return f"has a treasury that is not a checksummed EVM address ({treasury[:64]!r})"
    lowered = treasury.lower()
    if lowered == ZERO_ADDRESS:
        return "has the zero address as treasury (funds sent there are burned)"
    if lowered == deposit_address.lower():
        return "has the deposit address itself as treasury"
    if token_address and lowered == token_address.lower():
        return "has the token contract as treasury (tokens sent there are usually lost)"
    return ""


def destination_problem(destination: str, *, source: str, token_address: str) -> str:
    """Why a refund or payout must not go to `destination` ("" when it may): the ledger
    refused these already; checked again here, before anything is signed."""
    lowered = destination.lower()
    if not destination or lowered == ZERO_ADDRESS:
        return "the destination is empty or the zero address (funds sent there are burned)"
    if lowered == source.lower():
        return f"the destination {destination} is the address the money leaves from"
    if token_address and lowered == token_address.lower():
        return f"the destination {destination} is the token contract itself"
    return ""
