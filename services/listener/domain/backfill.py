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

from array import array


class LateAddresses:
    """Addresses whose coverage is not proven yet, and the backfills in flight.

    Only two numbers per address are kept, in flat arrays (16 bytes each), with
    running minimums: a first start without saved state may learn a million
    addresses at once."""

    def __init__(self, margin_seconds: float) -> None:
        self.margin_seconds = margin_seconds
        self._from = array("q")
        self._created = array("d")
        self._min_from: int | None = None
        self._min_created: float | None = None
        self._in_flight: dict[int, float] = {}  # backfill id -> oldest created_at it covers
        self._next_id = 0
        self.newest_created_at = 0.0

    def __len__(self) -> int:
        return len(self._from)

    def add(self, from_block: int, created_at: float, covered_mark: float | None) -> None:
        """A newly watched address; kept unless the saved mark proves it covered."""
        self.newest_created_at = max(self.newest_created_at, created_at)
        if covered_mark is not None and created_at <= covered_mark - self.margin_seconds:
            return
        from_block = max(from_block, 0)
        self._from.append(from_block)
        self._created.append(created_at)
        self._min_from = from_block if self._min_from is None else min(self._min_from, from_block)
        self._min_created = created_at if self._min_created is None else min(self._min_created, created_at)

    def forget_covered(self, covered_mark: float) -> None:
        """Another replica saved this mark: drop what it proves covered."""
        cutoff = covered_mark - self.margin_seconds
        if self._min_created is None or self._min_created > cutoff:
            return
        keep = [i for i, c in enumerate(self._created) if c > cutoff]
        self._from = array("q", (self._from[i] for i in keep))
        self._created = array("d", (self._created[i] for i in keep))
        self._min_from = min(self._from) if keep else None
        self._min_created = min(self._created) if keep else None

    def take(self, scanned_through: int) -> tuple[int, int, float] | None:
        """Hand over what is pending, given that blocks up to `scanned_through`
        were scanned: (backfill id, first block to scan again, oldest created_at),
        or None when no from_block is at or below `scanned_through`.
        Call `done(id)` when that backfill has been scanned."""
        lowest, oldest = self._min_from, self._min_created
        self._from, self._created = array("q"), array("d")
        self._min_from = self._min_created = None
        if lowest is None or oldest is None or lowest > scanned_through:
            return None
        self._next_id += 1
        self._in_flight[self._next_id] = oldest
        return self._next_id, lowest, oldest

    def done(self, backfill_id: int) -> None:
        self._in_flight.pop(backfill_id, None)

    def high_water(self) -> float:
        """The mark to save with the cursor: just before the oldest address not
        proven covered yet (pending or being backfilled), else the newest seen."""
        open_ = list(self._in_flight.values())
        if self._min_created is not None:
            open_.append(self._min_created)
        if open_:
            return min(open_) - 1e-3
        return self.newest_created_at
