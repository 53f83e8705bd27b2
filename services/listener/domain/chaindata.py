"""EVM JSON-RPC results -> plain values, validated.

Everything a node returns is untrusted input: a value of the wrong type or shape
raises MalformedResponse (the RPC layer logs it and retries), never a KeyError
deep inside the scanner. Hashes are normalised to lower-case `0x` hex.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.errors import MalformedResponse
from services.listener.domain.addresses import BadAddress, address_bytes


def quantity(value: Any, field: str) -> int:
    """A JSON-RPC QUANTITY: `0x`-prefixed hex without leading zeros (leniently: any hex)."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) < 3 or len(value) > 66:
        raise MalformedResponse(f"{field}: expected a 0x hex quantity, got {str(value)[:40]!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise MalformedResponse(f"{field}: not hex: {value[:40]!r}") from None


def hash32(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith(("0x", "0X")):
        raise MalformedResponse(f"{field}: expected a 32-byte 0x hash, got {str(value)[:70]!r}")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedResponse(f"{field}: not hex: {value[:70]!r}") from None
    return value.lower()


def address(value: Any, field: str) -> bytes:
    try:
        return address_bytes(value)
    except BadAddress as exc:
        raise MalformedResponse(f"{field}: {exc}") from None


def field_of(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise MalformedResponse(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise MalformedResponse(f"{where}: missing field {key!r}")
    return obj[key]


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class NativeCandidate:
    """A transaction of a block whose `to` is watched and whose value is > 0.
    It moved value only if its receipt says it succeeded."""

    tx_hash: str
    tx_index: int
    from_address: bytes
    to_address: bytes
    value: int


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    candidates: tuple[NativeCandidate, ...]
    tx_count: int


@dataclass(frozen=True, slots=True)
class TransferLog:
    """An ERC-20 Transfer(address,address,uint256) log (already shape-checked)."""

    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    token: bytes
    from_address: bytes
    to_address: bytes
    amount: int
    removed: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_hash: str
    succeeded: bool


def parse_header(obj: Any, where: str = "block") -> BlockHeader:
    return BlockHeader(
        number=quantity(field_of(obj, "number", where), f"{where}.number"),
        hash=hash32(field_of(obj, "hash", where), f"{where}.hash"),
        parent_hash=hash32(field_of(obj, "parentHash", where), f"{where}.parentHash"),
        timestamp=quantity(field_of(obj, "timestamp", where), f"{where}.timestamp"),
    )


def parse_block(obj: Any, is_watched, where: str = "block") -> Block:
    """A block from eth_getBlockByNumber(n, true). `is_watched(hex_to) -> bool` is
    asked for each transaction's `to`; only matches are parsed fully, so a block
    of thousands of transactions costs one set lookup per transaction."""
    header = parse_header(obj, where)
    txs = field_of(obj, "transactions", where)
    if not isinstance(txs, Sequence) or isinstance(txs, str):
        raise MalformedResponse(f"{where}.transactions: expected a list")
    candidates = []
    for i, tx in enumerate(txs):
        if isinstance(tx, str):
            continue  # hashes only (a block fetched without full transactions)
        if not isinstance(tx, Mapping):
            raise MalformedResponse(f"{where}.transactions[{i}]: expected an object")
        to = tx.get("to")
        if to is None or not is_watched(to):
            continue
        here = f"{where}.transactions[{i}]"
        value = quantity(field_of(tx, "value", here), f"{here}.value")
        if value == 0:
            continue
        candidates.append(
            NativeCandidate(
                tx_hash=hash32(field_of(tx, "hash", here), f"{here}.hash"),
                tx_index=quantity(tx.get("transactionIndex", hex(i)), f"{here}.transactionIndex"),
                from_address=address(field_of(tx, "from", here), f"{here}.from"),
                to_address=address(to, f"{here}.to"),
                value=value,
            )
        )
    return Block(header=header, candidates=tuple(candidates), tx_count=len(txs))


TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def parse_transfer_log(obj: Any, where: str = "log") -> TransferLog | None:
    """An eth_getLogs entry -> TransferLog; None for a log that is not a standard
    ERC-20 Transfer (e.g. ERC-721's, which indexes the token id as a 4th topic)."""
    topics = field_of(obj, "topics", where)
    if not isinstance(topics, Sequence) or isinstance(topics, str):
        raise MalformedResponse(f"{where}.topics: expected a list")
    if len(topics) != 3 or not isinstance(topics[0], str) or topics[0].lower() != TRANSFER_TOPIC:
        return None
    data = field_of(obj, "data", where)
    if not isinstance(data, str) or not data.startswith("0x"):
        raise MalformedResponse(f"{where}.data: expected 0x hex")
    if len(data) != 66:
        return None  # not a uint256 amount: not an ERC-20 Transfer
    try:
        amount = int(data, 16)
    except ValueError:
        raise MalformedResponse(f"{where}.data: not hex") from None
    return TransferLog(
        block_number=quantity(field_of(obj, "blockNumber", where), f"{where}.blockNumber"),
        block_hash=hash32(field_of(obj, "blockHash", where), f"{where}.blockHash"),
        tx_hash=hash32(field_of(obj, "transactionHash", where), f"{where}.transactionHash"),
        tx_index=quantity(field_of(obj, "transactionIndex", where), f"{where}.transactionIndex"),
        log_index=quantity(field_of(obj, "logIndex", where), f"{where}.logIndex"),
        token=address(field_of(obj, "address", where), f"{where}.address"),
        from_address=_topic_address(topics[1], f"{where}.topics[1]"),
        to_address=_topic_address(topics[2], f"{where}.topics[2]"),
        amount=amount,
        removed=bool(obj.get("removed", False)),
    )


def _topic_address(topic: Any, field: str) -> bytes:
    value = hash32(topic, field)
    return bytes.fromhex(value[26:])


def parse_receipt(obj: Any, where: str = "receipt") -> Receipt:
    status = obj.get("status") if isinstance(obj, Mapping) else None
    return Receipt(
        tx_hash=hash32(field_of(obj, "transactionHash", where), f"{where}.transactionHash"),
        block_hash=hash32(field_of(obj, "blockHash", where), f"{where}.blockHash"),
        # Receipts before Byzantium have no status; those transactions succeeded
        # unless they ran out of gas, which we cannot tell: count them.
        succeeded=True if status is None else quantity(status, f"{where}.status") == 1,
    )
