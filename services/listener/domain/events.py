"""The events the listener publishes, as plain values, with their NATS subjects
and deterministic message ids (the contract in protos/paymesh/events/v1/chain_events.proto):

    transfer:<chain_id>:<tx_hash>:<log_index>:<block_hash>
    head:<chain_id>:<number>:<hash>
    reorg:<chain_id>:<common_ancestor_hash>:<new_head_hash>

Hashes are lower-case, so a republish after a crash carries the same id and
JetStream drops it as a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass

NATIVE_LOG_INDEX = -1


def subject(chain_id: int, kind: str) -> str:
    return f"paymesh.chain.{chain_id}.{kind}"


@dataclass(frozen=True, slots=True)
class Transfer:
    chain_id: int
    block_number: int
    block_hash: str
    block_timestamp: int  # unix seconds
    tx_hash: str
    tx_index: int
    log_index: int  # NATIVE_LOG_INDEX for a transaction's own value, <= -2 for an internal transfer
    from_address: str  # checksummed
    to_address: str  # checksummed
    token_address: str  # checksummed, "" for the native coin
    amount: int  # base units

    kind = "transfer"

    @property
    def msg_id(self) -> str:
        return f"transfer:{self.chain_id}:{self.tx_hash}:{self.log_index}:{self.block_hash}"

    @property
    def order(self) -> tuple[int, int, int]:
        """Chain order: block, transaction, then within it the native value (the
        transaction's own, then its internal transfers in call order), then the logs."""
        if self.log_index < 0:
            return (self.block_number, self.tx_index, (-1 - self.log_index) - 2**62)
        return (self.block_number, self.tx_index, self.log_index)


@dataclass(frozen=True, slots=True)
class Head:
    chain_id: int
    number: int
    hash: str
    parent_hash: str
    timestamp: int

    kind = "head"

    @property
    def msg_id(self) -> str:
        return f"head:{self.chain_id}:{self.number}:{self.hash}"


@dataclass(frozen=True, slots=True)
class Reorg:
    chain_id: int
    common_ancestor_number: int
    common_ancestor_hash: str
    orphaned_block_hashes: tuple[str, ...]
    new_head_number: int
    new_head_hash: str

    kind = "reorg"

    @property
    def msg_id(self) -> str:
        return f"reorg:{self.chain_id}:{self.common_ancestor_hash}:{self.new_head_hash}"


ChainEvent = Transfer | Head | Reorg
