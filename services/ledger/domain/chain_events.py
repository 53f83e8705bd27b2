"""The chain events the ledger applies, as plain values: what a listener saw on a
chain (a transfer into a deposit address, a new head, a reorg). inbound/ decodes
them from the CHAIN stream and checks them (hashes lower-case 0x + 64 hex digits,
addresses in EIP-55 form, amounts non-negative integers); chain_events.py applies
them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TransferEvent:
    chain_id: int
    block_number: int
    block_hash: str
    block_timestamp: datetime
    tx_hash: str
    log_index: int
    from_address: str
    to_address: str
    token_address: str | None
    amount: int


@dataclass(frozen=True)
class HeadEvent:
    chain_id: int
    number: int
    hash: str


@dataclass(frozen=True)
class ReorgEvent:
    chain_id: int
    orphaned_block_hashes: tuple[str, ...]
    new_head_number: int
    new_head_hash: str


ChainEvent = TransferEvent | HeadEvent | ReorgEvent
