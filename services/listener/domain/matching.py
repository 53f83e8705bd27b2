"""Matching a block's native transfers and a range's ERC-20 Transfer logs
against the watched set, producing Transfer events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.listener.domain.addresses import WatchedSet, checksum
from services.listener.domain.chaindata import (
    TRANSFER_TOPIC,
    BlockHeader,
    MalformedResponse,
    NativeCandidate,
    TransferLog,
    parse_transfer_log,
)
from services.listener.domain.events import NATIVE_LOG_INDEX, Transfer
from services.listener.domain.traces import InternalTransfer


def watched_log(raw: Any, watched: WatchedSet) -> bool:
    """Cheap pre-filter on a raw eth_getLogs entry: a 3-topic Transfer whose
    recipient (topic 2) is watched. Only these are parsed and validated."""
    if not isinstance(raw, Mapping):
        raise MalformedResponse(f"log: expected an object, got {type(raw).__name__}")
    topics = raw.get("topics")
    if not isinstance(topics, Sequence) or len(topics) != 3:
        return False
    recipient = topics[2]
    if not isinstance(recipient, str) or len(recipient) != 66:
        return False
    return watched.contains_hex("0x" + recipient[26:])


def match_logs(raw_logs: Any, watched: WatchedSet, tokens: frozenset[bytes]) -> list[TransferLog]:
    """Transfer logs of configured tokens into watched addresses (removed and zero-value logs dropped)."""
    if not isinstance(raw_logs, Sequence) or isinstance(raw_logs, str):
        raise MalformedResponse("eth_getLogs: expected a list")
    out = []
    for i, raw in enumerate(raw_logs):
        if not watched_log(raw, watched):
            continue
        log = parse_transfer_log(raw, f"logs[{i}]")
        if log is None or log.removed or log.token not in tokens or log.to_address not in watched:
            continue
        if log.amount == 0:
            continue  # zero-value transfers are address-poisoning spam, never a payment
        out.append(log)
    return out


def native_transfer(chain_id: int, header: BlockHeader, c: NativeCandidate) -> Transfer:
    """The value a transaction itself carried into a watched address."""
    return _native(chain_id, header, c.tx_hash, c.tx_index, NATIVE_LOG_INDEX, c.from_address, c.to_address, c.value)


def internal_transfer(chain_id: int, header: BlockHeader, t: InternalTransfer) -> Transfer:
    """Native coin a contract call inside the transaction moved (see domain/traces.py)."""
    return _native(chain_id, header, t.tx_hash, t.tx_index, t.log_index, t.from_address, t.to_address, t.value)


def _native(
    chain_id: int,
    header: BlockHeader,
    tx_hash: str,
    tx_index: int,
    log_index: int,
    sender: bytes,
    recipient: bytes,
    value: int,
) -> Transfer:
    return Transfer(
        chain_id=chain_id,
        block_number=header.number,
        block_hash=header.hash,
        block_timestamp=header.timestamp,
        tx_hash=tx_hash,
        tx_index=tx_index,
        log_index=log_index,
        from_address=checksum(sender),
        to_address=checksum(recipient),
        token_address="",
        amount=value,
    )


def token_transfer(chain_id: int, header: BlockHeader, log: TransferLog) -> Transfer:
    return Transfer(
        chain_id=chain_id,
        block_number=log.block_number,
        block_hash=log.block_hash,
        block_timestamp=header.timestamp,
        tx_hash=log.tx_hash,
        tx_index=log.tx_index,
        log_index=log.log_index,
        from_address=checksum(log.from_address),
        to_address=checksum(log.to_address),
        token_address=checksum(log.token),
        amount=log.amount,
    )


def in_chain_order(transfers: Iterable[Transfer]) -> list[Transfer]:
    return sorted(transfers, key=lambda t: t.order)


__all__ = [
    "TRANSFER_TOPIC",
    "in_chain_order",
    "internal_transfer",
    "match_logs",
    "native_transfer",
    "token_transfer",
    "watched_log",
]
