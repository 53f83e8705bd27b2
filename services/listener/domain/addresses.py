"""Watched deposit addresses, kept compactly: packed 20-byte entries (WatchedSet).

A Python set of 1 M 20-byte `bytes` is ~83 MB; strings would be ~2x that; packed
they are 20 MB. Addresses
are parsed case-insensitively (the ledger sends checksummed ones, nodes send
either case) and formatted back with the EIP-55 checksum only for matches.
"""

from __future__ import annotations

from array import array
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
    """The deposit addresses of one chain, packed: 20 bytes each in one `bytes` blob,
    grouped in 4,096 buckets by their hash, plus a small set of the
    addresses added since the last repack.

    A Python set of 1 M 20-byte `bytes` is ~83 MB (an object and a hash slot each);
    the blob is 20 MB, the bucket offsets 16 KB, and the set of recent additions at
    most an eighth of the blob's count (bench_listener, "Memory"). A lookup is a set
    probe, then a C `bytes.find` inside one bucket (~250 entries at 1 M) checked for
    alignment; a repack costs one pass over the 4,096 buckets and one copy of the
    blob, and happens when the recent set reaches max(4,096, count / 8), so loading N
    addresses repacks O(log N) times. Addresses are only added, never removed (the
    ledger's feed says when to stop watching by restarting the stream)."""

    __slots__ = ("_blob", "_starts", "_recent", "_count")

    BUCKETS = 4096
    MIN_REPACK = 4096

    def __init__(self) -> None:
        self._blob = b""
        self._starts = array("I", bytes(4 * (self.BUCKETS + 1)))  # entry offsets of each bucket in the blob
        self._recent: set[bytes] = set()
        self._count = 0

    @classmethod
    def _bucket(cls, address: bytes) -> int:
        # By the address's hash, not its leading bits: uniform whatever the addresses
        # look like (the process's hash seed is fixed for its life; nothing is stored).
        return hash(address) % cls.BUCKETS

    def _packed(self, address: bytes) -> bool:
        b = self._bucket(address)
        start, end = self._starts[b] * 20, self._starts[b + 1] * 20
        pos = self._blob.find(address, start, end)
        while pos != -1:
            if (pos - start) % 20 == 0:
                return True
            pos = self._blob.find(address, pos + 1, end)
        return False

    def add(self, address: bytes) -> bool:
        """Add; True when the address was not watched before."""
        if len(address) != 20:
            raise BadAddress(f"an address has 20 bytes, got {len(address)}")
        address = bytes(address)
        if address in self._recent or self._packed(address):
            return False
        self._recent.add(address)
        self._count += 1
        if len(self._recent) >= max(self.MIN_REPACK, self._count // 8):
            self._repack()
        return True

    def _repack(self) -> None:
        """Move the recent additions into the blob, bucket by bucket."""
        by_bucket: dict[int, list[bytes]] = {}
        for address in self._recent:
            by_bucket.setdefault(self._bucket(address), []).append(address)
        view = memoryview(self._blob)
        starts = self._starts
        parts: list[bytes | memoryview] = []
        new_starts = array("I", bytes(4 * (self.BUCKETS + 1)))
        total = 0
        for b in range(self.BUCKETS):
            new_starts[b] = total
            old = view[starts[b] * 20 : starts[b + 1] * 20]
            parts.append(old)
            total += len(old) // 20
            added = by_bucket.get(b)
            if added:
                parts.extend(added)
                total += len(added)
        new_starts[self.BUCKETS] = total
        self._blob = b"".join(parts)
        view.release()
        self._starts = new_starts
        self._recent = set()

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, bytes) or len(address) != 20:
            return False
        return address in self._recent or self._packed(address)

    def __len__(self) -> int:
        return self._count

    def contains_hex(self, text: object) -> bool:
        """Fast path for raw JSON-RPC values: True when `text` is a watched address.
        Anything that is not a well-formed address is simply not watched."""
        if not isinstance(text, str) or len(text) != 42:
            return False
        try:
            address = bytes.fromhex(text[2:])
        except ValueError:
            return False
        return address in self._recent or self._packed(address)
