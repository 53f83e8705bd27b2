"""The listener's range reader (services/listener/adapters/range_reader.py)
against a fake node, no anvil: a range read while the chain reorganises (block
bodies, logs, receipts, traces whose hashes change between calls) is refused
with ChainMoved or ReorgDetected, never returned half from each branch, and a
second read returns the new branch whole; eth_getLogs ranges shrink on a
provider's range error; at most N requests are in flight, the first failure
cancels the rest, results come in order."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import httpx
import pytest
from prometheus_client import REGISTRY

from services.common.chains import ChainConfig, TokenConfig
from services.listener.adapters.chain_rpc import HttpRpc, RpcError
from services.listener.adapters.range_reader import (
    BlockUnavailable,
    ChainMoved,
    RangeRead,
    RangeReader,
    RangeTooLarge,
    ReadConfig,
    ReorgDetected,
    ScannedBlockChanged,
    bounded,
    gather_or_cancel,
)
from services.listener.domain.addresses import WatchedSet, address_bytes
from services.listener.domain.chaindata import TRANSFER_TOPIC
from services.listener.domain.events import NATIVE_LOG_INDEX
from services.listener.domain.reorg import BlockHistory

pytestmark = pytest.mark.unit

DEPOSIT = "0x" + "11" * 20  # the watched address
PAYER = "0x" + "22" * 20
STRANGER = "0x" + "44" * 20
FORWARDER = "0x" + "55" * 20
TOKEN = "0x" + "33" * 20
INTERNAL_VALUE = 7  # what each transaction's inner call moves into DEPOSIT
_chain_ids = itertools.count(900_001)  # a chain id per reader: its metrics are its own


def _pad(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


class FakeNode:
    """An EVM node answering JSON-RPC calls and batches (through httpx.MockTransport).

    Block n >= 1 holds `txs_per_block` transactions, each from PAYER with value
    into DEPOSIT (`native`) or into FORWARDER, which passes INTERNAL_VALUE on to
    DEPOSIT in an inner call (seen in traces only); with `token_logs`, one ERC-20
    Transfer of TOKEN into DEPOSIT per block. `reorg(fork)` replaces blocks
    from `fork` on by another branch: same transactions, other block hashes.
    `before[method]` / `after[method]` run once, before / after the next request
    of that method is answered (a hook may wait: it holds the request)."""

    def __init__(self, *, height: int = 40, native: bool = True, token_logs: bool = True, txs_per_block: int = 1):
        self.height = height
        self.native = native
        self.token_logs = token_logs
        self.txs_per_block = txs_per_block
        self.branch = 0
        self.fork: int | None = None
        self.trace_tx_hashes = True  # False: callTracer results without txHash (some nodes)
        self.logs_limit: int | None = None  # refuse eth_getLogs over more blocks than this
        self.logs_error = (-32005, "query exceeds max block range")
        self.logs_asked: list[tuple[int, int]] = []
        self.before: dict[str, Callable[[], Awaitable[None] | None]] = {}
        self.after: dict[str, Callable[[], Awaitable[None] | None]] = {}
        self.answered: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.requests: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.delay = 0.0  # seconds each request takes (to let requests overlap)

    # ------------------------------------------------------------------ the chain

    def reorg(self, fork: int) -> None:
        self.branch += 1
        self.fork = fork

    def block_hash(self, n: int) -> str:
        branch = self.branch if self.fork is not None and n >= self.fork else 0
        return "0x" + f"{branch:016x}{n:048x}"

    def _number_of(self, block_hash: str) -> int | None:
        """The number of a block of the current branch, by hash (None: not on it)."""
        n = int(block_hash[18:], 16)
        return n if 0 <= n <= self.height and self.block_hash(n) == block_hash else None

    @staticmethod
    def tx_hash(n: int, i: int) -> str:
        return "0x" + f"{n:032x}{i:032x}"

    def _txs(self, n: int) -> list[dict]:
        to = DEPOSIT if self.native else FORWARDER
        return [
            {
                "hash": self.tx_hash(n, i),
                "from": PAYER,
                "to": to,
                "value": hex(1000 * n + i + 1),
                "transactionIndex": hex(i),
                "blockHash": self.block_hash(n),
                "blockNumber": hex(n),
            }
            for i in range(self.txs_per_block if n else 0)
        ]

    def _block(self, n: int, full: bool) -> dict | None:
        if n > self.height:
            return None
        txs = self._txs(n)
        return {
            "number": hex(n),
            "hash": self.block_hash(n),
            "parentHash": self.block_hash(n - 1) if n else "0x" + "00" * 32,
            "timestamp": hex(1_700_000_000 + n),
            "transactions": txs if full else [tx["hash"] for tx in txs],
        }

    def _receipt(self, tx_hash: str) -> dict | None:
        n, i = int(tx_hash[2:34], 16), int(tx_hash[34:], 16)
        if not 1 <= n <= self.height or i >= self.txs_per_block:
            return None
        return {"transactionHash": tx_hash, "blockHash": self.block_hash(n), "blockNumber": hex(n), "status": "0x1"}

    def _logs(self, a: int, b: int) -> list[dict]:
        if not self.token_logs:
            return []
        return [
            {
                "address": TOKEN,
                "topics": [TRANSFER_TOPIC, _pad(PAYER), _pad(DEPOSIT)],
                "data": "0x" + f"{n:064x}",
                "blockNumber": hex(n),
                "blockHash": self.block_hash(n),
                "transactionHash": self.tx_hash(n, 0xFFFF),
                "transactionIndex": hex(self.txs_per_block),
                "logIndex": "0x0",
                "removed": False,
            }
            for n in range(max(a, 1), min(b, self.height) + 1)
        ]

    def _call_traces(self, block_hash: str) -> list[dict] | None:
        n = self._number_of(block_hash)
        if n is None:
            return None  # the node does not know the block (any more)
        out = []
        for tx in self._txs(n):
            inner = {"type": "CALL", "from": tx["to"], "to": DEPOSIT, "value": hex(INTERNAL_VALUE)}
            entry = {"result": {"type": "CALL", "from": PAYER, "to": tx["to"], "value": tx["value"], "calls": [inner]}}
            if self.trace_tx_hashes:
                entry["txHash"] = tx["hash"]
            out.append(entry)
        return out

    def _parity_traces(self, n: int) -> list[dict]:
        out = []
        for i, tx in enumerate(self._txs(n)):
            common = {"blockHash": self.block_hash(n), "transactionHash": tx["hash"], "transactionPosition": i}
            top = {"callType": "call", "from": PAYER, "to": tx["to"], "value": tx["value"]}
            inner = {"callType": "call", "from": tx["to"], "to": DEPOSIT, "value": hex(INTERNAL_VALUE)}
            out.append({"type": "call", "action": top, "traceAddress": [], **common})
            out.append({"type": "call", "action": inner, "traceAddress": [0], **common})
        return out

    def _tx_by_block_and_index(self, block_hash: str, index: str) -> dict | None:
        n = self._number_of(block_hash)
        if n is None:
            return None
        txs = self._txs(n)
        i = int(index, 16)
        return txs[i] if i < len(txs) else None

    def _result(self, method: str, params: list):
        if method == "eth_getBlockByNumber":
            tag, full = params
            return self._block(self.height if tag == "latest" else int(tag, 16), full)
        if method == "eth_getLogs":
            a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            self.logs_asked.append((a, b))
            if self.logs_limit is not None and b - a + 1 > self.logs_limit:
                raise _Refused(*self.logs_error)
            return self._logs(a, b)
        if method == "eth_getTransactionReceipt":
            return self._receipt(params[0])
        if method == "eth_getBlockReceipts":
            n = int(params[0], 16)
            return [self._receipt(tx["hash"]) for tx in self._txs(n)]
        if method == "debug_traceBlockByHash":
            return self._call_traces(params[0])
        if method == "trace_block":
            return self._parity_traces(int(params[0], 16))
        if method == "eth_getTransactionByBlockHashAndIndex":
            return self._tx_by_block_and_index(*params)
        raise _Refused(-32601, f"the method {method} does not exist")

    def _answer(self, call: dict) -> dict:
        try:
            return {"jsonrpc": "2.0", "id": call["id"], "result": self._result(call["method"], call["params"])}
        except _Refused as refused:
            return {"jsonrpc": "2.0", "id": call["id"], "error": {"code": refused.code, "message": refused.message}}

    # ------------------------------------------------------------------ the transport

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls = body if isinstance(body, list) else [body]
        method = calls[0]["method"]
        await _run(self.before.pop(method, None))
        self.requests[method] += 1
        self.in_flight[method] += 1
        self.peak[method] = max(self.peak[method], self.in_flight[method])
        try:
            await asyncio.sleep(self.delay)
            replies = [self._answer(call) for call in calls]
        finally:
            self.in_flight[method] -= 1
        self.answered[method].set()
        await _run(self.after.pop(method, None))
        return httpx.Response(200, json=replies if isinstance(body, list) else replies[0])


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def _run(hook: Callable[[], Awaitable[None] | None] | None) -> None:
    if hook is not None:
        result = hook()
        if result is not None:
            await result


def reader_for(
    node: FakeNode,
    *,
    tokens: bool = True,
    internal_transfers: str = "",
    block_batch: int = 100,
    block_concurrency: int = 4,
    logs_range_initial: int = 1000,
    logs_range_min: int = 1,
) -> RangeReader:
    chain = ChainConfig(
        chain_id=next(_chain_ids),
        name="fake",
        rpc_url="http://node",
        confirmations=2,
        block_time_seconds=1,
        tokens=(TokenConfig(symbol="TUSD", address=TOKEN, decimals=6),) if tokens else (),
        internal_transfers=internal_transfers,
    )
    rpc = HttpRpc(
        "http://node",
        chain_id=chain.chain_id,
        attempts=1,
        max_batch=block_batch,
        client=httpx.AsyncClient(transport=httpx.MockTransport(node.handle)),
    )
    watched = WatchedSet()
    watched.add(address_bytes(DEPOSIT))
    config = ReadConfig(
        block_batch=block_batch,
        block_concurrency=block_concurrency,
        logs_range_initial=logs_range_initial,
        logs_range_min=logs_range_min,
    )
    return RangeReader(chain, rpc, watched, config)


def assert_one_branch(node: FakeNode, read: RangeRead, a: int, b: int) -> None:
    """The range is the node's current branch, whole: every header and transfer of it."""
    assert [h.number for h in read.headers] == list(range(a, b + 1))
    assert all(h.hash == node.block_hash(h.number) for h in read.headers)
    assert all(h.parent_hash == node.block_hash(h.number - 1) for h in read.headers)
    assert read.transfers and all(t.block_hash == node.block_hash(t.block_number) for t in read.transfers)
    assert read.transfers == sorted(read.transfers, key=lambda t: t.order)


# ---------------------------------------------------------------- a quiet chain


async def test_a_range_is_read_whole_in_chain_order():
    node = FakeNode(txs_per_block=2)
    read = await reader_for(node, internal_transfers="debug_trace").read(3, 6)
    assert_one_branch(node, read, 3, 6)
    by_kind = Counter(
        "token" if t.token_address else "native" if t.log_index == NATIVE_LOG_INDEX else "internal"
        for t in read.transfers
    )
    assert by_kind == {"native": 8, "internal": 8, "token": 4}
    assert {t.amount for t in read.transfers if t.token_address} == {3, 4, 5, 6}


# ---------------------------------------------------------------- a reorg while reading


def reorg_when(node: FakeNode, method: str, fork: int, *, after: str | None = None) -> None:
    """The chain reorganises from `fork` on just before the node answers `method`
    (once `after` has been answered, when given: requests read concurrently)."""

    async def hook() -> None:
        if after is not None:
            await node.answered[after].wait()
        node.reorg(fork)

    node.before[method] = hook


async def test_bodies_of_two_branches_are_refused():
    node = FakeNode()
    reader = reader_for(node, tokens=False, block_batch=2, block_concurrency=1)
    node.after["eth_getBlockByNumber"] = lambda: node.reorg(2)  # after the first batch (blocks 1 and 2)
    with pytest.raises(ChainMoved, match=r"block 3 does not follow block 2 \(reorg while reading\)"):
        await reader.read(1, 6)
    assert_one_branch(node, await reader.read(1, 6), 1, 6)


async def test_logs_of_another_branch_than_the_bodies_are_refused():
    node = FakeNode(native=False)  # token transfers only: the logs are what is checked
    reader = reader_for(node)
    reorg_when(node, "eth_getLogs", fork=3, after="eth_getBlockByNumber")
    with pytest.raises(ChainMoved, match=r"log of block 3 has another block hash \(reorg while reading\)"):
        await reader.read(1, 6)
    assert_one_branch(node, await reader.read(1, 6), 1, 6)


@pytest.mark.parametrize(
    ("txs_per_block", "method"),
    [(1, "eth_getTransactionReceipt"), (RangeReader.BLOCK_RECEIPTS_FROM, "eth_getBlockReceipts")],
)
async def test_receipts_of_another_branch_are_refused(txs_per_block, method):
    node = FakeNode(txs_per_block=txs_per_block, token_logs=False)
    reader = reader_for(node, tokens=False)
    reorg_when(node, method, fork=4)
    with pytest.raises(ChainMoved, match=r"receipt of 0x0+4.* is in another block \(reorg while reading\)"):
        await reader.read(1, 6)
    assert node.requests[method] == 1
    assert_one_branch(node, await reader.read(1, 6), 1, 6)


@pytest.mark.parametrize(
    ("internal_transfers", "method", "message"),
    [
        ("debug_trace", "debug_traceBlockByHash", r"no trace for block 2 \(reorg while reading\?\)"),
        ("trace_block", "trace_block", r"trace_block\(block 2\)\[0\] is of block 0x0+1.*, not 0x0+2"),
    ],
)
async def test_traces_of_another_branch_are_refused(internal_transfers, method, message):
    node = FakeNode(native=False, token_logs=False)
    reader = reader_for(node, tokens=False, internal_transfers=internal_transfers)
    reorg_when(node, method, fork=2)
    with pytest.raises(ChainMoved, match=message):
        await reader.read(1, 6)
    read = await reader.read(1, 6)
    assert_one_branch(node, read, 1, 6)
    assert {t.amount for t in read.transfers} == {INTERNAL_VALUE} and len(read.transfers) == 6


async def test_a_transaction_looked_up_for_its_hash_on_another_branch_is_refused():
    node = FakeNode(native=False, token_logs=False)
    node.trace_tx_hashes = False  # the reader looks the hashes up by block hash and index
    reader = reader_for(node, tokens=False, internal_transfers="debug_trace")
    reorg_when(node, "eth_getTransactionByBlockHashAndIndex", fork=5)
    with pytest.raises(ChainMoved, match=r"transaction 0 of block 5 is gone \(reorg while reading\?\)"):
        await reader.read(1, 6)
    read = await reader.read(1, 6)
    assert_one_branch(node, read, 1, 6)
    assert [t.tx_hash for t in read.transfers] == [node.tx_hash(n, 0) for n in range(1, 7)]


async def test_a_range_that_does_not_continue_the_stored_block_is_a_reorg():
    node = FakeNode()
    reader = reader_for(node)
    stored = node.block_hash(4)
    node.reorg(4)  # block 4 was replaced after we scanned it
    with pytest.raises(ReorgDetected, match="block 5 does not follow the stored block 4"):
        await reader.read(5, 8, parent=stored)
    assert_one_branch(node, await reader.read(5, 8, parent=node.block_hash(4)), 5, 8)


async def test_a_range_scanned_again_must_be_the_blocks_scanned_before():
    node = FakeNode()
    reader = reader_for(node)
    scanned = BlockHistory(64, [(n, node.block_hash(n)) for n in range(1, 7)])
    node.reorg(3)
    with pytest.raises(ScannedBlockChanged, match="block 3 is not the one scanned before; checking for a reorg first"):
        await reader.read(1, 6, scanned=scanned)
    assert issubclass(ScannedBlockChanged, ChainMoved)  # logged quietly, retried like any reorg while reading
    assert node.requests["eth_getTransactionReceipt"] == 0  # refused before reading anything more


# ---------------------------------------------------------------- eth_getLogs ranges


def logs_range_gauge(reader: RangeReader) -> float | None:
    return REGISTRY.get_sample_value("paymesh_listener_getlogs_range_blocks", {"chain_id": str(reader.chain_id)})


async def read_shrinking(reader: RangeReader, a: int, b: int) -> tuple[RangeRead, int]:
    """Read as the scanner does: again at once after each RangeTooLarge."""
    for shrunk in range(20):
        try:
            return await reader.read(a, b), shrunk
        except RangeTooLarge:
            continue
    raise AssertionError("the range never got small enough")


async def test_logs_ranges_halve_on_a_range_error_until_the_provider_takes_them():
    node = FakeNode(native=False)
    node.logs_limit = 7
    reader = reader_for(node, block_concurrency=1, logs_range_initial=32)
    read, shrunk = await read_shrinking(reader, 1, 40)
    # 32 -> 16 -> 8 -> 4 (a sub-range already waiting when one is refused may be
    # refused too, and halves the size at once).
    assert 1 <= shrunk <= 3 and node.logs_asked[0] == (1, 32)
    refused = [(a, b) for a, b in node.logs_asked if b - a + 1 > 7]
    taken = [(a, b) for a, b in node.logs_asked if b - a + 1 <= 7]
    assert node.logs_asked == refused + taken  # never grown back into the limit
    assert taken == [(a, a + 3) for a in range(1, 41, 4)]  # the whole range, once, in 4-block calls
    assert_one_branch(node, read, 1, 40)
    assert [t.amount for t in read.transfers] == list(range(1, 41))
    assert logs_range_gauge(reader) == 4


async def test_logs_ranges_take_the_size_the_provider_suggests():
    node = FakeNode(native=False)
    node.logs_limit = 5
    node.logs_error = (-32602, "Log response size exceeded. this block range should work: [0x1, 0x5]")
    reader = reader_for(node, block_concurrency=1, logs_range_initial=32)
    read, shrunk = await read_shrinking(reader, 1, 20)  # one sub-range: (1, 20), refused
    assert shrunk == 1 and logs_range_gauge(reader) == 5
    assert node.logs_asked == [(1, 20), *((a, a + 4) for a in range(1, 21, 5))]
    assert [t.amount for t in read.transfers] == list(range(1, 21))


async def test_a_range_error_at_the_smallest_range_is_raised_as_it_is():
    node = FakeNode(native=False)
    node.logs_limit = 3
    reader = reader_for(node, block_concurrency=1, logs_range_initial=4, logs_range_min=4)
    with pytest.raises(RpcError, match="query exceeds max block range") as err:
        await reader.read(1, 8)
    assert err.value.is_range_error  # not shrunk below the minimum: the step fails and is retried


# ---------------------------------------------------------------- bounded concurrency


async def test_bounded_keeps_at_most_n_in_flight_and_results_in_order():
    in_flight = peak = 0

    async def fetch(part: int) -> list[int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (10 - part))  # later parts finish first
        in_flight -= 1
        return [part, part * 10]

    assert await bounded(list(range(10)), fetch, limit=3) == [x for p in range(10) for x in (p, p * 10)]
    assert peak == 3


async def test_bounded_first_failure_cancels_the_rest():
    started: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []
    never = asyncio.Event()

    class Boom(Exception):
        pass

    async def fetch(part: int) -> list[int]:
        started.append(part)
        if part == 1:
            raise Boom("part 1 failed")
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(part)
            raise
        finished.append(part)
        return [part]

    with pytest.raises(Boom, match="part 1 failed"):  # the failure itself, not an ExceptionGroup
        await bounded(list(range(8)), fetch, limit=3)
    assert {0, 1, 2} <= set(started) and len(started) < 8  # the parts waiting for a slot never ran
    assert sorted(cancelled) == sorted(set(started) - {1}) and finished == []  # nothing left running


async def test_gather_or_cancel_of_nothing_is_nothing():
    assert await gather_or_cancel([]) == []


async def test_the_reader_keeps_at_most_block_concurrency_requests_in_flight():
    node = FakeNode(native=False, token_logs=False)
    node.delay = 0.002
    reader = reader_for(node, tokens=False, block_batch=2, block_concurrency=3)
    read = await reader.read(1, 20)
    assert [h.number for h in read.headers] == list(range(1, 21))
    assert node.requests["eth_getBlockByNumber"] == 10 and node.peak["eth_getBlockByNumber"] == 3


async def test_the_first_failed_request_of_a_range_cancels_the_others():
    node = FakeNode(native=False, token_logs=False)
    node.delay = 0.01
    node.height = 7  # blocks 8.. are not there yet
    reader = reader_for(node, tokens=False, block_batch=2, block_concurrency=2)
    with pytest.raises(BlockUnavailable, match="block 8 not available from the node yet"):
        await reader.read(1, 20)
    assert node.requests["eth_getBlockByNumber"] < 10  # the batches after the failure were never sent
