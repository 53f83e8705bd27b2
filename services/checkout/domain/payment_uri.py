"""EIP-681 payment request URIs, which wallets read from a QR code. Pure.

    native coin: ethereum:<deposit>@<chain_id>?value=<wei>
    ERC-20:      ethereum:<token>@<chain_id>/transfer?address=<deposit>&uint256=<units>

Amounts are integers in base units, written in plain digits (no exponent form, which
some wallets misread); addresses as given (checksummed by the ledger). The chain id
is always written, so a wallet on another network asks to switch instead of sending
there.
"""

from __future__ import annotations

import re

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def payment_uri(*, chain_id: int, deposit_address: str, amount: int, token_address: str | None) -> str:
    """The EIP-681 URI asking to pay `amount` base units to `deposit_address` on `chain_id`."""
    if not _ADDRESS.fullmatch(deposit_address):
        raise ValueError(f"not an EVM address: {deposit_address!r}")
    if chain_id <= 0 or amount < 0:
        raise ValueError("chain id must be positive and the amount not negative")
    if token_address is None:
        return f"ethereum:{deposit_address}@{chain_id}?value={amount}"
    if not _ADDRESS.fullmatch(token_address):
        raise ValueError(f"not an EVM address: {token_address!r}")
    return f"ethereum:{token_address}@{chain_id}/transfer?address={deposit_address}&uint256={amount}"
