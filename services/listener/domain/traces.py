"""Internal transfers: native coin moved by a contract call inside a transaction
(a smart-contract wallet paying, an exchange's batch withdrawal, a forwarder),
read from a block's call traces.

A transaction's own value is matched from the block body (log index -1); here
only the calls below the top call count. A call moved value only if neither it
nor any call above it reverted (a reverted frame undoes its children too).

Two trace formats, one result:
- `debug_traceBlockByHash` with `callTracer` (geth and most nodes): per
  transaction a tree of frames, `{"type": "CALL", "from", "to", "value",
  "error"?, "calls": [...]}`.
- `trace_block` (Parity style: erigon, reth, nethermind): a flat list per block,
  each trace with `transactionHash`, `transactionPosition`, `traceAddress` (its
  path in the tree), `type` ("call", "create", "suicide", "reward"), `action`,
  `error`?, `blockHash`.

Both list a transaction's frames depth first, the top call first, so a frame's
position in that order identifies it in both formats; the transfer's log index
is `-1 - position` (always <= -2, never a log's index nor the native -1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.listener.domain.chaindata import MalformedResponse, address, field_of, hash32, quantity


@dataclass(frozen=True, slots=True)
class InternalTransfer:
    tx_hash: str
    tx_index: int
    position: int  # the frame's place in its transaction's call tree, depth first; the top call is 0
    from_address: bytes
    to_address: bytes
    value: int

    @property
    def log_index(self) -> int:
        return internal_log_index(self.position)


def internal_log_index(position: int) -> int:
    return -1 - position


class TraceOfAnotherBlock(Exception):
    """A trace names another block hash than the block it was asked for (a reorg while reading)."""


IsWatched = Callable[[str], bool]


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise MalformedResponse(f"{where}: expected a list, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- callTracer


def match_call_traces(raw: Any, tx_count: int, is_watched: IsWatched,
                      where: str = "debug_traceBlockByHash") -> list[InternalTransfer]:
    """Internal transfers into watched addresses from one block's callTracer result:
    one entry per transaction of the block, in order. Nodes that leave out an
    entry's `txHash` give transfers with an empty `tx_hash`: the caller looks it
    up by the block and `tx_index`."""
    entries = _list(raw, where)
    if len(entries) != tx_count:
        raise MalformedResponse(f"{where}: {len(entries)} traces for a block of {tx_count} transactions")
    out: list[InternalTransfer] = []
    for tx_index, entry in enumerate(entries):
        at = f"{where}[{tx_index}]"
        if not isinstance(entry, Mapping):
            raise MalformedResponse(f"{at}: expected an object, got {type(entry).__name__}")
        tx_hash = hash32(entry["txHash"], f"{at}.txHash") if entry.get("txHash") is not None else ""
        if entry.get("error") and "result" not in entry:
            reason = str(entry["error"])[:200]
            raise MalformedResponse(f"{at}: the node could not trace transaction {tx_index}: {reason}")
        _walk_frames(field_of(entry, "result", at), tx_hash, tx_index, is_watched, f"{at}.result", out)
    return out


def _walk_frames(top: Any, tx_hash: str, tx_index: int, is_watched: IsWatched, where: str,
                 out: list[InternalTransfer]) -> None:
    position = 0
    # Depth first, children in order: (frame, its path for messages, reverted above it).
    stack: list[tuple[Any, str, bool]] = [(top, where, False)]
    while stack:
        frame, at, reverted_above = stack.pop()
        if not isinstance(frame, Mapping):
            raise MalformedResponse(f"{at}: expected a call frame object, got {type(frame).__name__}")
        reverted = reverted_above or bool(frame.get("error"))
        kind = frame.get("type")
        if position > 0 and not reverted and kind in ("CALL", "SELFDESTRUCT"):
            value = quantity(frame.get("value", "0x0"), f"{at}.value")
            to = field_of(frame, "to", at)
            if value > 0 and isinstance(to, str) and is_watched(to):
                sender = address(field_of(frame, "from", at), f"{at}.from")
                out.append(InternalTransfer(tx_hash, tx_index, position, sender, address(to, f"{at}.to"), value))
        position += 1
        children = _list(frame.get("calls", ()), f"{at}.calls")
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], f"{at}.calls[{i}]", reverted))


# ---------------------------------------------------------------- trace_block


def match_parity_traces(raw: Any, block_hash: str, is_watched: IsWatched,
                        where: str = "trace_block") -> list[InternalTransfer]:
    """Internal transfers into watched addresses from one block's `trace_block` result."""
    traces = _list(raw, where)
    out: list[InternalTransfer] = []
    current_tx: str | None = None
    position = 0
    failed_paths: list[tuple[int, ...]] = []  # reverted frames of the current transaction
    for i, trace in enumerate(traces):
        at = f"{where}[{i}]"
        if not isinstance(trace, Mapping):
            raise MalformedResponse(f"{at}: expected an object, got {type(trace).__name__}")
        if trace.get("type") == "reward" or trace.get("transactionHash") is None:
            continue  # block and uncle rewards (PoW chains) belong to no transaction
        if hash32(field_of(trace, "blockHash", at), f"{at}.blockHash") != block_hash:
            raise TraceOfAnotherBlock(f"{at} is of block {trace['blockHash']}, not {block_hash}")
        tx_hash = hash32(trace["transactionHash"], f"{at}.transactionHash")
        if tx_hash != current_tx:
            current_tx, position, failed_paths = tx_hash, 0, []
        path = tuple(_list(field_of(trace, "traceAddress", at), f"{at}.traceAddress"))
        if trace.get("error"):
            failed_paths.append(path)
        reverted = any(path[: len(p)] == p for p in failed_paths)
        if position > 0 and not reverted:
            found = _parity_transfer(trace, at, is_watched)
            if found is not None:
                sender, to, value = found
                tx_index = _index(field_of(trace, "transactionPosition", at), f"{at}.transactionPosition")
                out.append(InternalTransfer(tx_hash, tx_index, position, sender, to, value))
        position += 1
    return out


def _parity_transfer(trace: Mapping[str, Any], at: str, is_watched: IsWatched) -> tuple[bytes, bytes, int] | None:
    action = field_of(trace, "action", at)
    if not isinstance(action, Mapping):
        raise MalformedResponse(f"{at}.action: expected an object")
    kind = trace.get("type")
    if kind == "call" and action.get("callType") == "call":
        sender_key, to_key, value_key = "from", "to", "value"
    elif kind == "suicide":
        sender_key, to_key, value_key = "address", "refundAddress", "balance"
    else:
        return None  # delegatecall / staticcall / callcode move no value to `to`; a create's target is new
    to = action.get(to_key)
    value = quantity(action.get(value_key, "0x0"), f"{at}.action.{value_key}")
    if value == 0 or not isinstance(to, str) or not is_watched(to):
        return None
    return address(field_of(action, sender_key, f"{at}.action"), f"{at}.action.{sender_key}"), \
        address(to, f"{at}.action.{to_key}"), value


def _index(value: Any, field: str) -> int:
    """A position: a JSON number (trace_block's usual form) or a hex quantity."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return quantity(value, field)
