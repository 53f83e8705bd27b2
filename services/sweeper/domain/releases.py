"""Why a payment goes back to the ledger unswept, and when it is tried again.

A release is the sweeper's answer to anything that prevents a sweep: the payment
is given back to the ledger (ReleaseSweep) with a reason a person can act on
(stored as payments.sweep_last_error, shown by GetStatus as last_error) and a
retry delay that fits the cause: hours for dust, minutes for configuration,
seconds for transient errors.

Pure data. The rules below are the rows of the release table; the table that
binds each exception type to its rule is services/sweeper/releases.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReleaseCategory(StrEnum):
    """The `category` label of paymesh_sweeper_payments_released_total (the values are fixed)."""

    DUST = "dust"  # not worth the fee (or below the operator's minimum): left in place
    CONFIG = "config"  # someone must fix a setting: treasury, chains.yaml, the seed
    GAS_WALLET = "gas_wallet"  # the gas wallet cannot pay a top-up: fund it
    FEES = "fees"  # the market fee is above the operator's cap
    ERROR = "error"  # transient: RPC, node, ledger, a transaction not confirmed in time
    STOPPING = "stopping"  # this replica stops signing; another replica or a restart resumes


class RetryAfter(StrEnum):
    """Which setting decides when a released payment is claimable again."""

    DUST = "dust"  # PAYMESH_SWEEPER_DUST_RETRY_SECONDS
    CONFIG = "config"  # PAYMESH_SWEEPER_CONFIG_RETRY_SECONDS
    GAS_WALLET = "gas_wallet"  # PAYMESH_SWEEPER_GAS_WALLET_RETRY_SECONDS
    ERROR = "error"  # PAYMESH_SWEEPER_ERROR_RETRY_SECONDS
    AT_ONCE = "at_once"  # 1 s: the next signer resumes it


@dataclass(frozen=True)
class RetryDelays:
    """The retry delays in seconds, from the settings."""

    dust: int
    config: int
    gas_wallet: int
    error: int

    def seconds(self, retry: RetryAfter) -> int:
        return {
            RetryAfter.DUST: self.dust,
            RetryAfter.CONFIG: self.config,
            RetryAfter.GAS_WALLET: self.gas_wallet,
            RetryAfter.ERROR: self.error,
            RetryAfter.AT_ONCE: 1,
        }[retry]


@dataclass(frozen=True)
class Release:
    """Give the payment back: `reason` is stored with it, retried after `retry_after` s.

    `hand_back` False: the ledger cannot be told (it is unreachable); the claim
    lapses by itself and this replica holds the payment back for `retry_after` s.
    `unexpected`: a bug, not a condition; its traceback is logged."""

    reason: str
    retry_after: int
    category: ReleaseCategory = ReleaseCategory.ERROR
    hand_back: bool = True
    unexpected: bool = False


@dataclass(frozen=True)
class ReleaseRule:
    """How one kind of failure ends a sweep. `reason` is a template: {error} is the
    failure's message, {chain_id} the payment's chain."""

    category: ReleaseCategory
    retry: RetryAfter
    reason: str
    hand_back: bool = True
    unexpected: bool = False

    def release(self, *, error: str, chain_id: int, delays: RetryDelays) -> Release:
        return Release(
            reason=self.reason.format(error=error, chain_id=chain_id),
            retry_after=delays.seconds(self.retry),
            category=self.category,
            hand_back=self.hand_back,
            unexpected=self.unexpected,
        )


# The rows of the release table (services/sweeper/releases.py binds them to exception types).
FEES_ABOVE_CAP = ReleaseRule(ReleaseCategory.FEES, RetryAfter.ERROR, "{error}")
L1_FEE_UNKNOWN = ReleaseRule(ReleaseCategory.CONFIG, RetryAfter.CONFIG, "{error}")
RPC_FAILED = ReleaseRule(ReleaseCategory.ERROR, RetryAfter.ERROR, "chain {chain_id} RPC failed, will retry: {error}")
NODE_ERROR = ReleaseRule(ReleaseCategory.ERROR, RetryAfter.ERROR, "chain {chain_id} node error, will retry: {error}")
LEDGER_UNAVAILABLE = ReleaseRule(ReleaseCategory.ERROR, RetryAfter.ERROR, "{error}", hand_back=False)
LEDGER_REFUSED = ReleaseRule(ReleaseCategory.ERROR, RetryAfter.ERROR, "{error}")
STOPPED = ReleaseRule(
    ReleaseCategory.STOPPING, RetryAfter.AT_ONCE, "the sweeper stopped; another replica or a restart resumes it"
)
INTERNAL_ERROR = ReleaseRule(
    ReleaseCategory.ERROR, RetryAfter.ERROR, "internal error in the sweeper; see its logs", unexpected=True
)


def delay_text(seconds: int) -> str:
    """A retry delay as a person reads it in a reason: "600 s", "6.0 h"."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds} s"
