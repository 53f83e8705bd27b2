"""The ERC-20 calls and events the sweeper uses, as bytes: transfer(to, amount) and
balanceOf(owner) calldata, and the Transfer event's topic. Pure encoding."""

from __future__ import annotations

from eth_utils import keccak

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
_BALANCE_OF = bytes.fromhex("70a08231")
_TRANSFER = bytes.fromhex("a9059cbb")


def word_address(address: str) -> bytes:
    """An address as a 32-byte ABI word."""
    return bytes(12) + bytes.fromhex(address[2:])


def encode_transfer(to: str, amount: int) -> bytes:
    """Calldata of ERC-20 transfer(to, amount)."""
    return _TRANSFER + word_address(to) + amount.to_bytes(32, "big")


def encode_balance_of(owner: str) -> bytes:
    """Calldata of ERC-20 balanceOf(owner)."""
    return _BALANCE_OF + word_address(owner)
