"""Recent block hashes and the walk back to the common ancestor after a reorg."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass


class BlockHistory:
    """Hashes of the last `depth` blocks up to the cursor, contiguous by number.

    Deeper than the deepest confirmation depth, so every block a transfer can
    still be unconfirmed in is remembered and can be reported as orphaned.
    """

    def __init__(self, depth: int, items: Iterable[tuple[int, str]] = ()) -> None:
        if depth < 1:
            raise ValueError("history depth must be at least 1")
        self.depth = depth
        self._hashes: dict[int, str] = {}
        for number, block_hash in sorted(items):
            self.append(number, block_hash)

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, number: object) -> bool:
        return number in self._hashes

    def get(self, number: int) -> str | None:
        return self._hashes.get(number)

    @property
    def lowest(self) -> int | None:
        return next(iter(self._hashes)) if self._hashes else None

    @property
    def highest(self) -> int | None:
        return next(reversed(self._hashes)) if self._hashes else None

    def append(self, number: int, block_hash: str) -> None:
        """Add the next block; a gap (or going backwards) starts a new history."""
        top = self.highest
        if top is not None and number != top + 1:
            self._hashes.clear()
        self._hashes[number] = block_hash
        while len(self._hashes) > self.depth:
            del self._hashes[next(iter(self._hashes))]

    def truncate_after(self, number: int) -> list[str]:
        """Forget blocks above `number`; return their hashes, lowest first."""
        dropped = [(n, h) for n, h in self._hashes.items() if n > number]
        for n, _ in dropped:
            del self._hashes[n]
        return [h for _, h in dropped]

    def items(self) -> list[tuple[int, str]]:
        return list(self._hashes.items())


@dataclass(frozen=True)
class Ancestor:
    """Where the stored branch and the canonical chain meet."""

    number: int
    hash: str
    # orphaned are the stored hashes above the ancestor that are no longer canonical, lowest first.
    orphaned: tuple[str, ...]
    # beyond_history is True when no stored block is canonical any more: the reorg
    # is deeper than the history kept, and `number` is only the best guess.
    beyond_history: bool = False


# Canonical hashes by number, for the numbers asked (a number missing from the
# answer: the chain is shorter than that).
FetchHashes = Callable[[list[int]], Awaitable[dict[int, str]]]


async def find_common_ancestor(history: BlockHistory, fetch: FetchHashes, chunk: int = 16) -> Ancestor:
    """Walk down from the history's top comparing stored hashes with canonical
    ones, `chunk` blocks per round trip, to the highest block both agree on.
    Stored blocks above it are orphaned (a number the chain no longer has, too)."""
    top = history.highest
    low = history.lowest
    if top is None or low is None:
        raise ValueError("no history to walk back")
    canonical: dict[int, str] = {}
    n = top
    while n >= low:
        numbers = list(range(n, max(low, n - chunk + 1) - 1, -1))
        canonical.update(await fetch(numbers))
        for m in numbers:
            if canonical.get(m) == history.get(m):
                orphaned = tuple(h for k, h in history.items() if k > m)
                return Ancestor(number=m, hash=history.get(m) or "", orphaned=orphaned)
        n = numbers[-1] - 1
    # Nothing stored is canonical: everything is orphaned; resume below the history.
    guess = max(low - 1, 0)
    below = (await fetch([guess])).get(guess, "")
    return Ancestor(number=guess, hash=below, orphaned=tuple(h for _, h in history.items()), beyond_history=True)
