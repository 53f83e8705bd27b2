"""The consumer of the JetStream stream CHAIN (durable `ledger-chain`): decodes each
message (TransferObserved, HeadObserved, ReorgObserved) into the domain's chain
events, has a fetched batch applied in one transaction (chain_events.py), and tells
the consumer loop (services/common/nats_helpers.run_pull_consumer) what to settle:
ack what was applied (after its commit), dead-letter what can never be applied,
retry the rest."""

from __future__ import annotations

import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from paymesh.events.v1 import chain_events_pb2 as cpb

from services.common.money import parse_amount
from services.common.nats_helpers import Handled, Outcome
from services.common.timestamps import from_timestamp
from services.ledger.chain_events import ChainEventApplier
from services.ledger.domain.chain_events import ChainEvent, HeadEvent, ReorgEvent, TransferEvent
from services.ledger.domain.validation import checksum_address

log = structlog.get_logger("ledger.consumer")

LEDGER_DURABLE = "ledger-chain"


class Malformed(ValueError):
    """A message that can never be applied (dead-lettered, not retried)."""


def _hash(value: str, field: str) -> str:
    if not (value.startswith("0x") and len(value) == 66):
        raise Malformed(f"{field} is not a 32-byte 0x hash: {value[:70]!r}")
    return value.lower()


def decode(msg: Msg) -> ChainEvent:
    """Protobuf -> domain event; Malformed when the payload can never be applied."""
    kind = msg.subject.rsplit(".", 1)[-1]
    try:
        if kind == "transfer":
            m = cpb.TransferObserved.FromString(msg.data)
            return TransferEvent(
                chain_id=m.chain_id,
                block_number=m.block_number,
                block_hash=_hash(m.block_hash, "block_hash"),
                block_timestamp=from_timestamp(m.block_timestamp),
                tx_hash=_hash(m.tx_hash, "tx_hash"),
                log_index=m.log_index,
                from_address=checksum_address(m.from_address, "from_address"),
                to_address=checksum_address(m.to_address, "to_address"),
                token_address=checksum_address(m.token_address, "token_address") if m.token_address else None,
                amount=parse_amount(m.amount, field="amount", allow_zero=True),
            )
        if kind == "head":
            m = cpb.HeadObserved.FromString(msg.data)
            return HeadEvent(chain_id=m.chain_id, number=m.number, hash=_hash(m.hash, "hash"))
        if kind == "reorg":
            m = cpb.ReorgObserved.FromString(msg.data)
            return ReorgEvent(
                chain_id=m.chain_id,
                orphaned_block_hashes=tuple(_hash(h, "orphaned_block_hashes") for h in m.orphaned_block_hashes),
                new_head_number=m.new_head_number,
                new_head_hash=_hash(m.new_head_hash, "new_head_hash"),
            )
    except DecodeError as exc:
        raise Malformed(f"not a {kind} protobuf: {exc}") from None
    except Malformed:
        raise
    except Exception as exc:  # noqa: BLE001 - domain validation errors
        raise Malformed(str(exc)) from None
    raise Malformed(f"unknown chain event subject {msg.subject!r}")


class ChainConsumer:
    """Applies a fetched batch in one transaction; on failure, one by one, so a
    single bad event cannot hold back the others."""

    def __init__(self, applier: ChainEventApplier) -> None:
        self._applier = applier

    async def handle(self, msgs: list[Msg]) -> list[Handled]:
        results: list[Handled | None] = [None] * len(msgs)
        events: list[tuple[int, ChainEvent]] = []
        for i, msg in enumerate(msgs):
            try:
                events.append((i, decode(msg)))
            except Malformed as exc:
                results[i] = Handled(Outcome.DEAD, str(exc))
        try:
            await self._applier.apply([e for _, e in events])
            for i, _ in events:
                results[i] = Handled(Outcome.ACK)
        except Exception:  # noqa: BLE001
            log.warning("batch apply failed; applying one by one", size=len(events))
            for i, event in events:
                try:
                    await self._applier.apply([event])
                    results[i] = Handled(Outcome.ACK)
                except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered
                    log.exception("chain event failed", subject=msgs[i].subject)
                    results[i] = Handled(Outcome.RETRY, str(exc))
        return [r if r is not None else Handled(Outcome.RETRY, "not processed") for r in results]
