"""Which blocks to scan again for addresses the listener learned late.

A deposit address is matched from the next block scanned after the listener
learns it. The ledger also says from which block the payment could be paid
(`from_block`: the head the ledger knew when the payment was created); the
blocks from there to the ones already scanned are scanned again (a backfill).

Across restarts the listener saves, with its cursor, a high-water mark: every
address created at or before it was being watched, its backfill done, when the
cursor was saved. On start, an address created well before that mark (more than
a safety margin, for transactions that commit out of order) was covered up to
the cursor and needs nothing; a newer one is backfilled from its from_block.
"""

from __future__ import annotations


class LateAddresses:
    """Addresses whose coverage is not proven yet, and the backfills in flight."""

    def __init__(self, margin_seconds: float) -> None:
        self.margin_seconds = margin_seconds
        self._pending: dict[bytes, tuple[int, float]] = {}  # address -> (from_block, created_at)
        self._in_flight: dict[int, float] = {}  # backfill id -> oldest created_at it covers
        self._next_id = 0
        self.newest_created_at = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, address: bytes, from_block: int, created_at: float, covered_mark: float | None) -> None:
        """A newly watched address; kept unless the saved mark proves it covered."""
        self.newest_created_at = max(self.newest_created_at, created_at)
        if covered_mark is not None and created_at <= covered_mark - self.margin_seconds:
            return
        known = self._pending.get(address)
        if known is None or from_block < known[0]:
            self._pending[address] = (from_block, created_at)

    def forget_covered(self, covered_mark: float) -> None:
        """Another replica saved this mark: drop what it proves covered."""
        cutoff = covered_mark - self.margin_seconds
        for address in [a for a, (_, c) in self._pending.items() if c <= cutoff]:
            del self._pending[address]

    def take(self, scanned_through: int) -> tuple[int, int, float] | None:
        """Hand over what is pending, given that blocks up to `scanned_through`
        were scanned: (backfill id, first block to scan again, oldest created_at),
        or None when no from_block is at or below `scanned_through`.
        Call `done(id)` when that backfill has been scanned."""
        if not self._pending:
            return None
        lowest = min(f for f, _ in self._pending.values())
        oldest = min(c for _, c in self._pending.values())
        self._pending.clear()
        if lowest > scanned_through:
            return None
        self._next_id += 1
        self._in_flight[self._next_id] = oldest
        return self._next_id, lowest, oldest

    def done(self, backfill_id: int) -> None:
        self._in_flight.pop(backfill_id, None)

    def high_water(self) -> float:
        """The mark to save with the cursor: just before the oldest address not
        proven covered yet (pending or being backfilled), else the newest seen."""
        open_ = [c for _, c in self._pending.values()] + list(self._in_flight.values())
        if open_:
            return min(open_) - 1e-3
        return self.newest_created_at
