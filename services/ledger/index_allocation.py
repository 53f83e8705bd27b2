"""Derivation indexes for new deposit addresses: each CreatePayment gets an index
never used before for its merchant, and the address and path of that index."""

from __future__ import annotations

import asyncio

import asyncpg

from services.common.errors import NotFound
from services.ledger.adapters import repository as repo
from services.ledger.domain import hd


class IndexAllocator:
    """Hands out derivation indexes, reserving them in small blocks so CreatePayment
    does not serialise on the merchant row. A crash leaves at most one block
    unused, which stays within the BIP-44 gap limit of 20."""

    def __init__(self, pool: asyncpg.Pool, block: int) -> None:
        self._pool = pool
        self._block = block
        self._free: dict[str, tuple[list[int], str, str]] = {}
        self._derivers: dict[str, hd.AddressDeriver] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def next(self, merchant_id: str) -> tuple[int, str, str]:
        """(index, address, full derivation path) of a never-used deposit address."""
        lock = self._locks.setdefault(merchant_id, asyncio.Lock())
        async with lock:
            entry = self._free.get(merchant_id)
            if entry is None or not entry[0]:
                reserved = await repo.merchants.reserve_indexes(self._pool, merchant_id, self._block)
                if reserved is None:
                    raise NotFound("merchant not found")
                start, xpub, path = reserved
                entry = (list(range(start, start + self._block)), xpub, path)
                self._free[merchant_id] = entry
            indexes, xpub, path = entry
            index = indexes.pop(0)
        deriver = self._derivers.get(xpub)
        if deriver is None:
            deriver = self._derivers[xpub] = hd.AddressDeriver(xpub)
        return index, deriver.address(index), hd.address_path(path, index)

    def forget(self, merchant_id: str) -> None:
        """Drop reserved indexes (after the merchant's xpub changed)."""
        self._free.pop(merchant_id, None)
