"""What a node's answer to eth_sendRawTransaction means (messages differ per client:
geth, erigon, nethermind, besu, reth, anvil)."""

from __future__ import annotations

from enum import Enum


class SendOutcome(Enum):
    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"  # the node has it already: as good as accepted
    NONCE_TOO_LOW = "nonce_too_low"  # the nonce is used: mined (ours) or taken by another tx
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNDERPRICED = "underpriced"  # fee below the base fee, or a replacement bump too small
    REJECTED = "rejected"  # anything else: the node will not take it


_PATTERNS: tuple[tuple[SendOutcome, tuple[str, ...]], ...] = (
    (
        SendOutcome.ALREADY_KNOWN,
        (
            "already known",
            "known transaction",
            "already imported",
            "alreadyknown",
            "already exists",
            "already in the pool",
            "already in pool",
        ),
    ),
    (
        SendOutcome.NONCE_TOO_LOW,
        ("nonce too low", "noncetoolow", "oldnonce", "old nonce", "nonce has already been used", "invalid nonce"),
    ),
    (SendOutcome.INSUFFICIENT_FUNDS, ("insufficient funds", "insufficientfunds", "insufficient balance")),
    (
        SendOutcome.UNDERPRICED,
        (
            "underpriced",
            "fee too low",
            "feetoolow",
            "less than block base fee",
            "fee cap less than",
            "max fee per gas less than",
            "gas price too low",
            "below base fee",
            "tip too low",
        ),
    ),
)


def classify_send_error(message: str) -> SendOutcome:
    text = message.lower()
    for outcome, needles in _PATTERNS:
        if any(n in text for n in needles):
            return outcome
    return SendOutcome.REJECTED
