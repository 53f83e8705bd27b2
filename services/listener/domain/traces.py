"""Internal transfers: native coin moved by a contract call inside a transaction
(a smart-contract wallet paying, an exchange's batch withdrawal, a forwarder),
read from a block's call traces.

A transaction's own value is matched from the block body (log index -1); here
only the calls below the top call count. A call moved value only if neither it
nor any call above it reverted (a reverted frame undoes its children too).
CALL frames and SELFDESTRUCT (value forced into an address) move value;
DELEGATECALL, STATICCALL and CALLCODE never send value to their target, and a
CREATE's target is a new contract, never a deposit address.

Two trace formats, one result:
- `debug_traceBlockByHash` with `callTracer` (geth and most nodes): per
  transaction a tree of frames, `{"type": "CALL", "from", "to", "value",
  "error"?, "calls": [...]}`.
- `trace_block` (Parity style: erigon, reth, nethermind): a flat list per block,
  each trace with `transactionHash`, `transactionPosition`, `traceAddress` (its
  path in the tree), `type` ("call", "create", "suicide", "reward"), `action`,
  `error`?, `blockHash`.

Identity. The formats do not list the same frames (trace_block leaves out calls
to precompiles, callTracer keeps them; some nodes list a self-destruct before its
earlier siblings), so a frame's position in either list is no stable name. What
every correct tracer agrees on is the money: the value transfers that took
effect, in execution order (depth first; trace_block's entries sorted by
`traceAddress`). A transfer is named by its place among its transaction's
successful internal value transfers (`ordinal`, from 0; calls to the precompile
range 0x01..0x1ff are not counted) and gets the log index `-2 - ordinal`: always
<= -2, never a log's index nor the native -1, the same from either method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.listener.domain.chaindata import MalformedResponse, address, field_of, hash32, quantity

PRECOMPILE_MAX = 0x1FF  # 0x01..0x11 on Ethereum (Prague), 0x100 (P256VERIFY) on many L2s


@dataclass(frozen=True, slots=True)
class InternalTransfer:
    tx_hash: str
    tx_index: int
    ordinal: int  # its place among the transaction's successful internal value transfers, from 0
    from_address: bytes
    to_address: bytes
    value: int

    @property
    def log_index(self) -> int:
        return internal_log_index(self.ordinal)


def internal_log_index(ordinal: int) -> int:
    return -2 - ordinal


class TraceOfAnotherBlock(Exception):
    """A trace names another block hash than the block it was asked for (a reorg while reading)."""


IsWatched = Callable[[str], bool]

# (sender, recipient, value, where) of a frame below the top call that took effect.
_Move = tuple[Any, Any, Any, str]


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise MalformedResponse(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _number(
    tx_hash: str, tx_index: int, moves: Iterator[_Move], is_watched: IsWatched, out: list[InternalTransfer]
) -> None:
    """Count the transaction's value transfers in order; keep those into watched addresses."""
    ordinal = 0
    for sender, to, raw_value, at in moves:
        value = quantity(raw_value, f"{at}.value")
        if value == 0:
            continue
        recipient = address(to, f"{at}.to")
        if int.from_bytes(recipient, "big") <= PRECOMPILE_MAX:
            continue  # not listed by every tracer; never a deposit address
        if is_watched(to):
            out.append(InternalTransfer(tx_hash, tx_index, ordinal, address(sender, f"{at}.from"), recipient, value))
        ordinal += 1


# ---------------------------------------------------------------- callTracer


def match_call_traces(
    raw: Any, tx_count: int, is_watched: IsWatched, where: str = "debug_traceBlockByHash"
) -> list[InternalTransfer]:
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
        _number(tx_hash, tx_index, _frame_moves(field_of(entry, "result", at), f"{at}.result"), is_watched, out)
    return out


def _frame_moves(top: Any, where: str) -> Iterator[_Move]:
    """The frames below the top call that moved value and took effect, depth first."""
    # (frame, its path for messages, reverted above it, is the top call)
    stack: list[tuple[Any, str, bool, bool]] = [(top, where, False, True)]
    while stack:
        frame, at, reverted_above, is_top = stack.pop()
        if not isinstance(frame, Mapping):
            raise MalformedResponse(f"{at}: expected a call frame object, got {type(frame).__name__}")
        reverted = reverted_above or bool(frame.get("error"))
        if not is_top and not reverted and frame.get("type") in ("CALL", "SELFDESTRUCT"):
            yield field_of(frame, "from", at), field_of(frame, "to", at), frame.get("value", "0x0"), at
        children = _list(frame.get("calls", ()), f"{at}.calls")
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], f"{at}.calls[{i}]", reverted, False))


# ---------------------------------------------------------------- trace_block


def match_parity_traces(
    raw: Any, block_hash: str, tx_count: int, is_watched: IsWatched, where: str = "trace_block"
) -> list[InternalTransfer]:
    """Internal transfers into watched addresses from one block's `trace_block`
    result, which must hold the top call of each of the block's `tx_count`
    transactions (a partial answer would pass payments over)."""
    traces = _list(raw, where)
    by_tx: dict[str, list[tuple[tuple[int, ...], int, Mapping[str, Any], str]]] = {}
    for i, trace in enumerate(traces):
        at = f"{where}[{i}]"
        if not isinstance(trace, Mapping):
            raise MalformedResponse(f"{at}: expected an object, got {type(trace).__name__}")
        if trace.get("type") == "reward" or trace.get("transactionHash") is None:
            continue  # block and uncle rewards (PoW chains) belong to no transaction
        if hash32(field_of(trace, "blockHash", at), f"{at}.blockHash") != block_hash:
            raise TraceOfAnotherBlock(f"{at} is of block {trace['blockHash']}, not {block_hash}")
        tx_hash = hash32(trace["transactionHash"], f"{at}.transactionHash")
        path = _path(field_of(trace, "traceAddress", at), f"{at}.traceAddress")
        tx_index = _index(field_of(trace, "transactionPosition", at), f"{at}.transactionPosition")
        by_tx.setdefault(tx_hash, []).append((path, tx_index, trace, at))

    tops = sorted(tx_index for group in by_tx.values() for path, tx_index, _t, _a in group if not path)
    if tops != list(range(tx_count)):
        raise MalformedResponse(
            f"{where}: top-level traces for {len(tops)} transactions ({_brief(tops)}), but the block has {tx_count}"
        )
    out: list[InternalTransfer] = []
    for tx_hash, group in by_tx.items():
        group.sort(key=lambda item: item[0])  # traceAddress order is depth-first order
        failed = [path for path, _i, trace, _a in group if trace.get("error")]
        moves = (
            move
            for path, _i, trace, at in group
            if path and not any(path[: len(f)] == f for f in failed)
            for move in _parity_move(trace, at)
        )
        _number(tx_hash, group[0][1], moves, is_watched, out)
    return sorted(out, key=lambda t: (t.tx_index, t.ordinal))


def _parity_move(trace: Mapping[str, Any], at: str) -> Iterator[_Move]:
    action = field_of(trace, "action", at)
    if not isinstance(action, Mapping):
        raise MalformedResponse(f"{at}.action: expected an object")
    kind = trace.get("type")
    if kind == "call" and action.get("callType") == "call":
        yield field_of(action, "from", at), field_of(action, "to", at), action.get("value", "0x0"), f"{at}.action"
    elif kind == "suicide":
        yield (
            field_of(action, "address", at),
            field_of(action, "refundAddress", at),
            action.get("balance", "0x0"),
            f"{at}.action",
        )


def _path(value: Any, field: str) -> tuple[int, ...]:
    items = _list(value, field)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        raise MalformedResponse(f"{field}: expected a list of indexes, got {str(value)[:60]!r}")
    return tuple(items)


def _brief(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "") if numbers else "none"


def _index(value: Any, field: str) -> int:
    """A position: a JSON number (trace_block's usual form) or a hex quantity."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return quantity(value, field)
