"""Watched deposit addresses, kept compactly: a set of 20-byte `bytes`.

A Python set of 1 M such keys is ~83 MB; strings would be ~2x that. Addresses
are parsed case-insensitively (the ledger sends checksummed ones, nodes send
either case) and formatted back with the EIP-55 checksum only for matches.
"""

from __future__ import annotations

from functools import lru_cache

from eth_hash.auto import keccak

_HEX = frozenset("0123456789abcdefABCDEF")


class BadAddress(ValueError):
    """Not a 0x-prefixed 20-byte hex address."""


def address_bytes(text: str) -> bytes:
    """`0x` + 40 hex digits (any case) -> 20 bytes; BadAddress otherwise."""
    if not isinstance(text, str) or len(text) != 42 or text[:2] not in ("0x", "0X"):
        raise BadAddress(f"not a 0x-prefixed 20-byte address: {str(text)[:50]!r}")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise BadAddress(f"not a hex address: {text!r}") from None


@lru_cache(maxsize=65_536)
def checksum(address: bytes) -> str:
    """20 bytes -> EIP-55 checksummed `0x...` string (cached: senders repeat)."""
    text = address.hex()
    digest = keccak(text.encode()).hex()
    return "0x" + "".join(c.upper() if d in "89abcdef" else c for c, d in zip(text, digest[:40], strict=True))


class WatchedSet:
    """The deposit addresses of one chain. Membership is a set lookup."""

    __slots__ = ("_members",)

    def __init__(self) -> None:
        self._members: set[bytes] = set()

    def add(self, address: bytes) -> bool:
        """Add; True when the address was not watched before."""
        if len(address) != 20:
            raise BadAddress(f"an address has 20 bytes, got {len(address)}")
        before = len(self._members)
        self._members.add(address)
        return len(self._members) != before

    def __contains__(self, address: object) -> bool:
        return address in self._members

    def __len__(self) -> int:
        return len(self._members)

    def contains_hex(self, text: object) -> bool:
        """Fast path for raw JSON-RPC values: True when `text` is a watched address.
        Anything that is not a well-formed address is simply not watched."""
        if not isinstance(text, str) or len(text) != 42:
            return False
        try:
            return bytes.fromhex(text[2:]) in self._members
        except ValueError:
            return False
