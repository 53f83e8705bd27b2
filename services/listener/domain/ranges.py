"""Block ranges: adaptive eth_getLogs range sizing, provider range errors, and
merging backfill ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Providers word their limits differently; these fragments cover geth, erigon,
# Alchemy, Infura, QuickNode, Ankr, BlastAPI and anvil.
_RANGE_HINTS = (
    "too many",
    "more than",
    "block range",
    "range is too",
    "range too",
    "exceed",
    "limit",
    "response size",
    "query timeout",
    "too large",
    "max results",
    "10000 results",
    "returned more than",
)
# Alchemy / Infura suggest a range: "... Try with this block range [0x1, 0x2f]."
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")


def is_range_error(code: int | None, message: str) -> bool:
    """True when an eth_getLogs error says the range (or result) is too large."""
    text = message.lower()
    if code == -32005:  # "limit exceeded" (EIP-1474)
        return True
    return any(hint in text for hint in _RANGE_HINTS)


def suggested_range(message: str) -> tuple[int, int] | None:
    match = _SUGGESTED.search(message)
    if not match:
        return None
    a, b = int(match.group(1), 16), int(match.group(2), 16)
    return (a, b) if b >= a else None


@dataclass
class AdaptiveRange:
    """How many blocks one eth_getLogs call covers: halves (or takes the provider's
    suggestion) on a range error, doubles after calls that were cheap.

    A range error also sets a ceiling (the largest size known to work), so the
    size does not grow straight back into the provider's limit; after
    `probe_after` cheap calls at the ceiling, growth past it is tried again
    (result-count limits depend on how busy the blocks are)."""

    size: int
    minimum: int = 1
    maximum: int = 10_000
    cheap_results: int = 2_000
    cheap_seconds: float = 1.0
    probe_after: int = 100
    ceiling: int | None = None
    _at_ceiling: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.size = max(self.minimum, min(self.size, self.maximum))

    def shrink(self, message: str = "", asked: int | None = None) -> int:
        """After a range error for a call of `asked` blocks; returns the new size."""
        current = min(self.size, asked) if asked else self.size
        suggestion = suggested_range(message)
        if suggestion is not None:
            new = suggestion[1] - suggestion[0] + 1
            new = min(new, max(current // 2, 1)) if new >= current else new
        else:
            new = current // 2
        self.size = max(self.minimum, min(new, self.maximum))
        self.ceiling = self.size
        self._at_ceiling = 0
        return self.size

    def observe(self, blocks: int, results: int, seconds: float) -> int:
        """After a successful call: grow when it was cheap and used the full size."""
        if blocks < self.size or results >= self.cheap_results or seconds >= self.cheap_seconds:
            return self.size
        if self.ceiling is not None and self.size >= self.ceiling:
            self._at_ceiling += 1
            if self._at_ceiling < self.probe_after:
                return self.size
            self.ceiling = None  # probe beyond the old limit again
        self.size = min(self.maximum, self.size * 2)
        if self.ceiling is not None:
            self.size = min(self.size, self.ceiling)
        return self.size

    @property
    def at_minimum(self) -> bool:
        return self.size <= self.minimum


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping or adjacent inclusive ranges merged; empty ones dropped."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges if r[0] <= r[1]):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def split_range(a: int, b: int, size: int) -> list[tuple[int, int]]:
    """[a, b] in consecutive pieces of at most `size` blocks."""
    return [(s, min(s + size - 1, b)) for s in range(a, b + 1, max(size, 1))]
