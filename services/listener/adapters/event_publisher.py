"""The listener's chain events -> protobuf (paymesh.events.v1) on the JetStream
stream CHAIN, in order, with their dedup ids (domain/events.py). The only place
the listener's events become protobuf."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.events.v1 import chain_events_pb2 as cpb

from services.common import nats_helpers
from services.listener.domain.events import ChainEvent, Head, Reorg, Transfer, subject


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def encode(event: ChainEvent) -> bytes:
    if isinstance(event, Transfer):
        message = cpb.TransferObserved(
            chain_id=event.chain_id,
            block_number=event.block_number,
            block_hash=event.block_hash,
            block_timestamp=_ts(event.block_timestamp),
            tx_hash=event.tx_hash,
            log_index=event.log_index,
            from_address=event.from_address,
            to_address=event.to_address,
            token_address=event.token_address,
            amount=str(event.amount),
        )
    elif isinstance(event, Head):
        message = cpb.HeadObserved(
            chain_id=event.chain_id,
            number=event.number,
            hash=event.hash,
            parent_hash=event.parent_hash,
            timestamp=_ts(event.timestamp),
        )
    elif isinstance(event, Reorg):
        message = cpb.ReorgObserved(
            chain_id=event.chain_id,
            common_ancestor_number=event.common_ancestor_number,
            common_ancestor_hash=event.common_ancestor_hash,
            orphaned_block_hashes=list(event.orphaned_block_hashes),
            new_head_number=event.new_head_number,
            new_head_hash=event.new_head_hash,
        )
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a chain event: {event!r}")
    return message.SerializeToString()


class ChainEventPublisher:
    """Publishes pipelined, in order (one connection, one stream: JetStream
    stores them in the order sent), and returns when all are acknowledged."""

    def __init__(self, jetstream: nats_helpers.JetStreamPublisher, chunk: int = 1000) -> None:
        self._jetstream = jetstream
        self._chunk = chunk

    async def publish(self, events: Sequence[ChainEvent]) -> int:
        """Returns how many were new to JetStream (not duplicates of earlier publishes)."""
        fresh = 0
        for start in range(0, len(events), self._chunk):
            part = events[start : start + self._chunk]
            items = [(subject(e.chain_id, e.kind), encode(e), e.msg_id) for e in part]
            duplicates = await self._jetstream.publish_many(nats_helpers.CHAIN_STREAM.name, items)
            fresh += sum(1 for d in duplicates if not d)
        return fresh
