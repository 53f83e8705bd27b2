"""Reading a block range from a chain's node, as plain domain data.

`RangeReader.read(a, b)` returns the headers of blocks a..b and the transfers
into watched addresses in them, in chain order:
- native transfers: the block bodies (eth_getBlockByNumber with full
  transactions, in JSON-RPC batches), then the receipts of the matches only
  (eth_getBlockReceipts for a block with many, else eth_getTransactionReceipt),
  counted when the receipt says the transaction succeeded;
- ERC-20 transfers: one eth_getLogs per sub-range for the Transfer topic of all
  configured tokens, the sub-range's size adaptive (domain/ranges.py): halved,
  or the provider's suggestion, on a range error, grown when calls are cheap;
- internal transfers (chains with `internal_transfers`): one trace per block
  that has transactions (debug_traceBlockByHash, or trace_block checked
  against the block hash), and the transaction hashes a tracer left out.

What it guarantees: what it returns is of one branch of the chain, never two.
The bodies must link up (and continue `parent`, the stored hash below `a`, when
given; and match `scanned`, the hashes scanned before, when given); every
receipt, log, trace and looked-up transaction must name the block hash of the
body read. Otherwise it raises, and returns nothing:
- ReorgDetected: block a does not follow `parent` (the caller walks back);
- ChainMoved: the chain changed while reading (ScannedBlockChanged: a block is
  not the one scanned before); read again;
- BlockUnavailable: the node does not have a block yet (read again);
- RangeTooLarge: eth_getLogs refused the sub-range, the size was shrunk: read
  again at once;
- TracingUnavailable: the node refuses the configured trace method.

Bodies and logs are read at the same time, each at most `block_concurrency`
requests in flight (block batches, eth_getLogs sub-ranges; trace batches after
them: `bounded`); the first failure cancels the others. The reader keeps no
chain state: only the eth_getLogs range size and whether the node has
eth_getBlockReceipts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import structlog

from services.common.chains import ChainConfig
from services.listener import metrics
from services.listener.adapters.chain_rpc import HttpRpc, RpcError
from services.listener.domain.addresses import WatchedSet, address_bytes
from services.listener.domain.chaindata import (
    TRANSFER_TOPIC,
    Block,
    BlockHeader,
    MalformedResponse,
    Receipt,
    hash32,
    parse_block,
    parse_header,
    parse_receipt,
)
from services.listener.domain.events import Transfer
from services.listener.domain.matching import (
    in_chain_order,
    internal_transfer,
    match_logs,
    native_transfer,
    token_transfer,
)
from services.listener.domain.ranges import AdaptiveRange, split_range
from services.listener.domain.reorg import BlockHistory
from services.listener.domain.traces import (
    InternalTransfer,
    TraceOfAnotherBlock,
    match_call_traces,
    match_parity_traces,
)

log = structlog.get_logger("listener.range_reader")
P = TypeVar("P")
R = TypeVar("R")


class ChainMoved(Exception):
    """The chain changed while a range was read (blocks and logs disagree); read again."""


class BlockUnavailable(Exception):
    """The node does not have a block (yet): a lagging node behind a load balancer."""


class ScannedBlockChanged(ChainMoved):
    """A block of a range scanned again is not the one scanned before: check for a reorg first."""


class ReorgDetected(Exception):
    """A new block's parent is not the block we stored at that height."""


class TracingUnavailable(Exception):
    """The chain is configured with `internal_transfers`, and the node refuses the trace method."""


class RangeTooLarge(Exception):
    """eth_getLogs refused the range; it was shrunk, try again."""


async def gather_or_cancel(coros: list) -> list:
    """Like asyncio.gather, but the first failure cancels the others (and is
    raised as is, not wrapped in an ExceptionGroup)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def bounded(parts: Sequence[P], fetch: Callable[[P], Awaitable[list[R]]], *, limit: int) -> list[R]:
    """fetch(part) for every part, at most `limit` at once (the first
    failure cancels the rest); their results joined, in the parts' order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(part: P) -> list[R]:
        async with semaphore:
            return await fetch(part)

    results = await gather_or_cancel([one(part) for part in parts])
    return [item for result in results for item in result]


@dataclass(frozen=True)
class ReadConfig:
    block_batch: int = 100
    block_concurrency: int = 4
    trace_batch: int = 10  # block traces per JSON-RPC batch (a busy block's trace is large)
    logs_range_initial: int = 1000
    logs_range_min: int = 1
    logs_range_max: int = 10_000


class RangeRead(NamedTuple):
    """A block range as read: its headers (one branch, in order) and the
    transfers into watched addresses in it, in chain order."""

    headers: list[BlockHeader]
    transfers: list[Transfer]


class RangeReader:
    """One chain's block ranges, read through its JSON-RPC client (see the module docstring)."""

    BLOCK_RECEIPTS_FROM = 8  # candidates in one block from which eth_getBlockReceipts is cheaper

    def __init__(self, chain: ChainConfig, rpc: HttpRpc, watched: WatchedSet, config: ReadConfig) -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        self._label = str(chain.chain_id)
        self._rpc = rpc
        self.watched = watched  # the scanner's set, shared (never copied: a million addresses)
        self._config = config
        self._tokens = frozenset(address_bytes(t.address) for t in chain.tokens)
        self._token_filter = [t.address for t in chain.tokens]
        self._logs_range = AdaptiveRange(
            config.logs_range_initial, minimum=config.logs_range_min, maximum=config.logs_range_max
        )
        self._block_receipts = True

    async def read(
        self, a: int, b: int, *, parent: str | None = None, scanned: BlockHistory | None = None
    ) -> RangeRead:
        """Read blocks a..b (bodies and Transfer logs), check they form one chain
        (and continue `parent`; and are the blocks of `scanned` where it has one),
        and return their headers and the transfers into watched addresses, in chain order.
        With several providers, the whole read goes to one of them (RpcPool.pinned)."""
        pinned = getattr(self._rpc, "pinned", None)
        if pinned is None:
            return await self._read(a, b, parent=parent, scanned=scanned)
        async with pinned():
            return await self._read(a, b, parent=parent, scanned=scanned)

    async def _read(self, a: int, b: int, *, parent: str | None, scanned: BlockHistory | None) -> RangeRead:
        watching = len(self.watched) > 0
        if watching and self._tokens:
            blocks, logs = await gather_or_cancel([self._blocks(a, b, full=watching), self._logs(a, b)])
        else:
            blocks, logs = await self._blocks(a, b, full=watching), []

        by_number = {blk.header.number: blk for blk in blocks}
        headers = [blk.header for blk in blocks]
        if parent is not None and headers[0].parent_hash != parent:
            raise ReorgDetected(f"block {a} does not follow the stored block {a - 1}")
        for prev, cur in zip(headers, headers[1:], strict=False):
            if cur.parent_hash != prev.hash:
                raise ChainMoved(f"block {cur.number} does not follow block {prev.number} (reorg while reading)")
        if scanned is not None:
            for h in headers:
                stored = scanned.get(h.number)
                if stored is not None and stored != h.hash:
                    raise ScannedBlockChanged(
                        f"block {h.number} is not the one scanned before; checking for a reorg first"
                    )

        transfers: list[Transfer] = []
        candidates = [(blk.header, c) for blk in blocks for c in blk.candidates]
        if candidates:
            receipts = await self._receipts(blocks)
            for header, c in candidates:
                receipt = receipts.get(c.tx_hash)
                if receipt is None:
                    raise ChainMoved(f"no receipt for {c.tx_hash} (reorg while reading?)")
                if receipt.block_hash != header.hash:
                    raise ChainMoved(f"receipt of {c.tx_hash} is in another block (reorg while reading)")
                if receipt.succeeded:
                    transfers.append(native_transfer(self.chain_id, header, c))
        for entry in logs:
            blk = by_number.get(entry.block_number)
            if blk is None:
                raise MalformedResponse(f"eth_getLogs returned a log of block {entry.block_number}, outside {a}..{b}")
            if blk.header.hash != entry.block_hash:
                raise ChainMoved(f"log of block {entry.block_number} has another block hash (reorg while reading)")
            transfers.append(token_transfer(self.chain_id, blk.header, entry))
        if watching and self.chain.internal_transfers:
            transfers.extend(internal_transfer(self.chain_id, header, t) for header, t in await self._internal(blocks))
        return RangeRead(headers, in_chain_order(transfers))

    async def _internal(self, blocks: list[Block]) -> list[tuple[BlockHeader, InternalTransfer]]:
        """Native coin moved by contract calls into watched addresses (chains with
        `internal_transfers`): one trace per block that has transactions, `trace_batch`
        blocks per JSON-RPC batch, a few batches in flight. Blocks are traced by hash
        (debug_traceBlockByHash) or checked against it (trace_block), so a reorg while
        reading cannot mix two branches."""
        busy = [blk for blk in blocks if blk.tx_count]
        if not busy:
            return []
        by_hash = self.chain.internal_transfers == "debug_trace"
        method = "debug_traceBlockByHash" if by_hash else "trace_block"
        size = self._config.trace_batch
        watched = self.watched.contains_hex

        async def fetch(chunk: list[Block]) -> list[tuple[BlockHeader, InternalTransfer]]:
            if by_hash:
                params = [[blk.header.hash, {"tracer": "callTracer"}] for blk in chunk]
            else:
                params = [[hex(blk.header.number)] for blk in chunk]
            try:
                raws = await self._rpc.batch(method, params)
            except RpcError as exc:
                if exc.code in (-32601, -32604) or "not supported" in exc.message.lower():
                    raise TracingUnavailable(
                        f"chains.yaml asks for internal transfers with {method} (internal_transfers: "
                        f"{self.chain.internal_transfers}), but the node refuses it: {exc.message}; use a node "
                        f"or plan with tracing, switch to the other method, or set internal_transfers to ''"
                    ) from None
                raise
            out = []
            for blk, raw in zip(chunk, raws, strict=True):
                where = f"{method}(block {blk.header.number})"
                if raw is None:
                    raise ChainMoved(f"no trace for block {blk.header.number} (reorg while reading?)")
                try:
                    if by_hash:
                        found = match_call_traces(raw, blk.tx_count, watched, where)
                    else:
                        found = match_parity_traces(raw, blk.header.hash, blk.tx_count, watched, where)
                except TraceOfAnotherBlock as exc:
                    raise ChainMoved(str(exc)) from None
                out.extend((blk.header, t) for t in found)
            return out

        found = await self._bounded([busy[i : i + size] for i in range(0, len(busy), size)], fetch)
        return await self._with_tx_hashes(found)

    async def _with_tx_hashes(
        self, found: list[tuple[BlockHeader, InternalTransfer]]
    ) -> list[tuple[BlockHeader, InternalTransfer]]:
        """Fill in transaction hashes a node's callTracer result left out, by block hash and index."""
        missing = [(h, t) for h, t in found if not t.tx_hash]
        if not missing:
            return found
        raws = await self._rpc.batch(
            "eth_getTransactionByBlockHashAndIndex", [[h.hash, hex(t.tx_index)] for h, t in missing]
        )
        hashes = {}
        for (header, t), raw in zip(missing, raws, strict=True):
            if not isinstance(raw, dict) or str(raw.get("blockHash") or "").lower() != header.hash:
                raise ChainMoved(f"transaction {t.tx_index} of block {header.number} is gone (reorg while reading?)")
            hashes[(header.hash, t.tx_index)] = hash32(raw.get("hash"), f"block {header.number} tx {t.tx_index}.hash")
        return [(h, t if t.tx_hash else dataclasses.replace(t, tx_hash=hashes[(h.hash, t.tx_index)])) for h, t in found]

    async def _receipts(self, blocks: list[Block]) -> dict[str, Receipt]:
        """Receipts of the candidate transactions, by hash: one eth_getBlockReceipts
        for a block with many candidates (when the node has it), else one
        eth_getTransactionReceipt per candidate, batched."""
        whole = []
        if self._block_receipts:
            whole = [blk for blk in blocks if len(blk.candidates) >= self.BLOCK_RECEIPTS_FROM]
        single = [c.tx_hash for blk in blocks if blk not in whole for c in blk.candidates]
        out: dict[str, Receipt] = {}
        if whole:
            try:
                raws = await self._rpc.batch("eth_getBlockReceipts", [[hex(blk.header.number)] for blk in whole])
            except RpcError as exc:
                if exc.code not in (-32601, -32602):
                    raise
                log.info("the node has no eth_getBlockReceipts; asking receipts one by one", chain_id=self.chain_id)
                self._block_receipts = False
                return await self._receipts(blocks)
            for blk, raw in zip(whole, raws, strict=True):
                if not isinstance(raw, list):
                    raise ChainMoved(f"no receipts for block {blk.header.number} (reorg while reading?)")
                for i, item in enumerate(raw):
                    receipt = parse_receipt(item, f"block {blk.header.number} receipts[{i}]")
                    out[receipt.tx_hash] = receipt
        if single:
            for tx_hash, raw in zip(
                single, await self._rpc.batch("eth_getTransactionReceipt", [[h] for h in single]), strict=True
            ):
                if raw is not None:
                    out[tx_hash] = parse_receipt(raw)
        return out

    async def _blocks(self, a: int, b: int, *, full: bool) -> list[Block]:
        numbers = list(range(a, b + 1))
        size = self._config.block_batch
        chunks = [numbers[i : i + size] for i in range(0, len(numbers), size)]
        watched = self.watched.contains_hex

        async def fetch(chunk: list[int]) -> list[Block]:
            raws = await self._rpc.batch("eth_getBlockByNumber", [[hex(n), full] for n in chunk])
            out = []
            for n, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    raise BlockUnavailable(f"block {n} not available from the node yet")
                blk = parse_block(raw, watched, f"block {n}")
                if blk.header.number != n:
                    raise MalformedResponse(f"asked for block {n}, got block {blk.header.number}")
                out.append(blk)
            return out

        return await self._bounded(chunks, fetch)

    async def _logs(self, a: int, b: int) -> list:
        """Transfer logs of a..b into watched addresses: one eth_getLogs per
        sub-range of the adaptive size (all tokens, all addresses in one call),
        a few in flight."""
        return await self._bounded(split_range(a, b, self._logs_range.size), lambda r: self._logs_once(*r))

    async def _bounded(self, parts: Sequence[P], fetch: Callable[[P], Awaitable[list[R]]]) -> list[R]:
        """`bounded` at the configured `block_concurrency`."""
        return await bounded(parts, fetch, limit=self._config.block_concurrency)

    async def _logs_once(self, a: int, b: int) -> list:
        params = [{"fromBlock": hex(a), "toBlock": hex(b), "address": self._token_filter, "topics": [TRANSFER_TOPIC]}]
        started = time.perf_counter()
        try:
            raw = await self._rpc.call("eth_getLogs", params)
        except RpcError as exc:
            if exc.is_range_error and not self._logs_range.at_minimum:
                size = self._logs_range.shrink(exc.message, asked=b - a + 1)
                metrics.LOGS_RANGE.labels(self._label).set(size)
                log.info(
                    "eth_getLogs range too large; shrinking", chain_id=self.chain_id, blocks=b - a + 1, new_size=size
                )
                raise RangeTooLarge(exc.message) from None
            raise
        results = len(raw) if isinstance(raw, list) else 0
        size = self._logs_range.observe(b - a + 1, results, time.perf_counter() - started)
        metrics.LOGS_RANGE.labels(self._label).set(size)
        return match_logs(raw, self.watched, self._tokens)

    # ------------------------------------------------------------------ single headers

    async def agreed(self, number: int, block_hash: str) -> bool:
        """Whether two providers report this hash for block `number` (chains.yaml
        confirmation_agreement; always true with one provider)."""
        agreed = getattr(self._rpc, "agreed", None)
        return True if agreed is None else await agreed(number, block_hash)

    async def canonical_hashes(self, numbers: list[int]) -> dict[int, str]:
        """The canonical hashes of these block numbers, one batch (for the reorg walk-back);
        a number the node does not have is left out."""
        raws = await self._rpc.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
        out = {}
        for n, raw in zip(numbers, raws, strict=True):
            if raw is not None:
                header = parse_header(raw, f"block {n}")
                if header.number != n:
                    raise MalformedResponse(f"asked for block {n}, got {header.number}")
                out[n] = header.hash
        return out

    async def header(self, number: int) -> BlockHeader:
        raw = await self._rpc.call("eth_getBlockByNumber", [hex(number), False])
        if raw is None:
            raise BlockUnavailable(f"block {number} not available from the node yet")
        return parse_header(raw, f"block {number}")

    async def latest(self) -> BlockHeader:
        return parse_header(await self._rpc.call("eth_getBlockByNumber", ["latest", False]), "latest")
