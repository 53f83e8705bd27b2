"""Confirmation depth: one meaning for the whole mesh (ledger, sweeper, docs).

The block that includes a transfer is its first confirmation: a transfer has N
confirmations when its block and N-1 blocks on top of it are in the canonical
chain; a payment counts a transfer once it has `confirmations` confirmations
(chains.yaml), so it survives any reorg that replaces fewer than `confirmations`
blocks (at most confirmations-1). `confirmations: 1` counts a transfer as soon
as it is mined (no reorg protection: only for chains with instant finality).

Pure functions of block numbers; the sweeper waits for its own transactions
with the same rule.
"""

from __future__ import annotations


def confirmations(head: int, block_number: int) -> int:
    """Confirmations at `head` of a transfer included in `block_number`: 1 when it is
    in the head block itself, 0 when its block is above the head (not canonical yet)."""
    return max(0, head - block_number + 1)


def is_confirmed(head: int, block_number: int, required: int) -> bool:
    """A transfer in `block_number` counts at `head` (it has `required` confirmations)."""
    return confirmations(head, block_number) >= required


def last_confirmed_block(head: int, required: int) -> int:
    """The highest block number whose transfers have `required` confirmations at
    `head`: every transfer at or below it counts, none above it does."""
    return head - required + 1
