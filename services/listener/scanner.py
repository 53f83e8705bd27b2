"""One chain's scanner: from the saved cursor to the head, block range by block
range, publishing transfers into watched addresses, then the head; detecting
reorgs (a block whose parent is not the hash we stored) and publishing them
before rescanning the new branch; and scanning again what backfills and
operator rescans ask for.

Runs only on the replica that holds the chain's lease. Every step is
idempotent: events are published before the cursor is saved, with ids that make
a republish a no-op, so a crash anywhere replays at most one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog

from services.common.chains import ChainConfig
from services.common.errors import Unavailable
from services.common.failpoints import failpoint
from services.listener import metrics
from services.listener.adapters.chain_rpc import HttpRpc, RpcError
from services.listener.adapters.event_publisher import ChainPublisher
from services.listener.adapters.heads import HeadFollower
from services.listener.adapters.state_store import ChainState, StateConflict, StateStore
from services.listener.domain.addresses import WatchedSet, address_bytes
from services.listener.domain.backfill import LateAddresses
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
from services.listener.domain.events import NATIVE_LOG_INDEX, Head, Reorg, Transfer
from services.listener.domain.matching import (
    in_chain_order,
    internal_transfer,
    match_logs,
    native_transfer,
    token_transfer,
)
from services.listener.domain.ranges import AdaptiveRange, split_range
from services.listener.domain.reorg import BlockHistory, find_common_ancestor
from services.listener.domain.traces import (
    InternalTransfer,
    TraceOfAnotherBlock,
    match_call_traces,
    match_parity_traces,
)

log = structlog.get_logger("listener.scanner")
P = TypeVar("P")
R = TypeVar("R")


class ChainMoved(Exception):
    """The chain changed while a range was read (blocks and logs disagree); read again."""


class BlockUnavailable(Exception):
    """The node does not have a block (yet): a lagging node behind a load balancer."""


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


@dataclass(frozen=True)
class ScanConfig:
    history_blocks: int = 64
    lag_blocks: int = 0
    start_block: int = -1
    block_batch: int = 100
    block_concurrency: int = 4
    trace_batch: int = 10  # block traces per JSON-RPC batch (a busy block's trace is large)
    max_step_blocks: int = 1000
    logs_range_initial: int = 1000
    logs_range_min: int = 1
    logs_range_max: int = 10_000
    max_backfill_blocks: int = 50_000
    idle_wait_seconds: float = 1.0


@dataclass
class ScanJob:
    """A range to scan again (a backfill or an operator's rescan); transfers only."""

    kind: str
    next_block: int
    to_block: int
    backfill_id: int | None = None
    future: asyncio.Future | None = None
    blocks_scanned: int = 0
    transfers_published: int = 0
    failures: int = 0


class ChainScanner:
    JOB_ATTEMPTS = 10
    BLOCK_RECEIPTS_FROM = 8  # candidates in one block from which eth_getBlockReceipts is cheaper
    JOBS_DEFERRED_MAX = 8

    def __init__(
        self,
        chain: ChainConfig,
        rpc: HttpRpc,
        follower: HeadFollower,
        publisher: ChainPublisher,
        store: StateStore,
        watched: WatchedSet,
        late: LateAddresses,
        config: ScanConfig,
    ) -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        self._label = str(chain.chain_id)
        self._rpc = rpc
        self._follower = follower
        self._publisher = publisher
        self._store = store
        self.watched = watched
        self._late = late
        self._config = config
        self._tokens = frozenset(address_bytes(t.address) for t in chain.tokens)
        self._token_filter = [t.address for t in chain.tokens]
        self._logs_range = AdaptiveRange(
            config.logs_range_initial, minimum=config.logs_range_min, maximum=config.logs_range_max
        )
        self.history = BlockHistory(config.history_blocks)
        self.cursor: int | None = None
        self.saved_head = 0
        self.covered_mark: float | None = None  # address_mark of the saved state (see domain/backfill.py)
        self.last_error = ""
        self.consecutive_failures = 0
        self.running = False
        self._jobs: deque[ScanJob] = deque()
        self._wake = asyncio.Event()
        self.feed_ready = asyncio.Event()
        self._checked_head: str | None = None
        self._reorg_suspected = False
        self._jobs_deferred = 0
        self._block_receipts = True

    # ------------------------------------------------------------------ inputs

    def add_addresses(self, items: list[tuple[bytes, int, float]]) -> None:
        """New watched addresses (from the ledger's feed, on every replica)."""
        added = 0
        for address, from_block, created_at in items:
            if self.watched.add(address):
                added += 1
                self._late.add(from_block, created_at, self.covered_mark)
        if added:
            metrics.WATCHED.labels(self._label).set(len(self.watched))
            self._wake.set()

    def snapshot_loaded(self) -> None:
        self.feed_ready.set()
        self._wake.set()

    async def prime(self) -> None:
        """Before the feed starts: learn the saved address mark, so that addresses
        the last leader had covered are not backfilled again."""
        state = await self._store.peek()
        if state is not None:
            self.covered_mark = state.address_mark
            self.cursor = state.cursor
            self.saved_head = state.head

    async def refresh_standby(self) -> None:
        """On a standby replica: follow the leader's saved state (for status, and
        to forget pending addresses it has covered)."""
        state = await self._store.peek()
        if state is not None:
            self.cursor = state.cursor
            self.saved_head = state.head
            if state.address_mark is not None:
                self.covered_mark = state.address_mark
                self._late.forget_covered(state.address_mark)

    async def rescan(self, from_block: int, to_block: int) -> ScanJob:
        """Queue a rescan for the scanning loop and wait for it to finish."""
        if not self.running:
            raise Unavailable(f"chain {self.chain_id} is not being scanned by this replica right now")
        job = ScanJob("rescan", from_block, to_block, future=asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._wake.set()
        return await asyncio.shield(job.future)

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """Scan until cancelled (when the lease is lost or the process stops)."""
        self.running = True
        delay = 0.1
        try:
            await self._load()
            while True:
                try:
                    await self._step()
                    if self.consecutive_failures:
                        log.info("scanning again", chain_id=self.chain_id, after_failures=self.consecutive_failures)
                        self.consecutive_failures = 0
                        self.last_error = ""
                    delay = 0.1
                except asyncio.CancelledError:
                    raise
                except RangeTooLarge:
                    continue  # shrunk: retry at once with the smaller range
                except StateConflict as exc:
                    log.warning("state written by another replica; reloading", chain_id=self.chain_id, error=str(exc))
                    await self._load()
                except Exception as exc:  # noqa: BLE001 - log, back off, carry on: never crash
                    self.consecutive_failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    metrics.SCAN_ERRORS.labels(self._label).inc()
                    quiet = isinstance(exc, ChainMoved | BlockUnavailable)
                    (log.info if quiet else log.warning)(
                        "scan step failed; retrying",
                        chain_id=self.chain_id,
                        error=self.last_error,
                        failures=self.consecutive_failures,
                        retry_in=delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self.running = False
            for job in self._jobs:
                if job.future is not None and not job.future.done():
                    job.future.set_exception(Unavailable("the scan stopped (leadership moved or shutdown); try again"))
            self._jobs.clear()

    async def _load(self) -> None:
        state = await self._store.load()
        head = self._follower.latest or await self._follower.poll_once()
        while head is None:
            self.last_error = self._follower.last_error or "chain head unknown"
            await asyncio.sleep(1.0)
            head = self._follower.latest or await self._follower.poll_once()
        if state is None:
            if self._config.start_block >= 0:
                cursor = self._config.start_block - 1
            else:
                cursor = max(head.number - self._config.lag_blocks, 0)
            self.history = BlockHistory(self._config.history_blocks)
            if cursor >= 0:
                at = await self._header(cursor)
                self.history.append(at.number, at.hash)
            self.cursor = cursor
            self.saved_head = head.number
            await self._save()
            log.info("starting chain without saved state", chain_id=self.chain_id, cursor=cursor, head=head.number)
        else:
            self.cursor = state.cursor
            self.saved_head = state.head
            self.history = BlockHistory(self._config.history_blocks, state.hashes)
            if state.address_mark is not None:
                self.covered_mark = state.address_mark
                self._late.forget_covered(state.address_mark)
            log.info(
                "resuming chain", chain_id=self.chain_id, cursor=state.cursor, head=head.number, saved_by=state.writer
            )
        metrics.CURSOR.labels(self._label).set(self.cursor)

    async def _save(self) -> None:
        assert self.cursor is not None
        await self._store.save(
            ChainState(
                cursor=self.cursor,
                hashes=self.history.items(),
                head=max(self.saved_head, self._follower.latest.number if self._follower.latest else 0),
                address_mark=self._late.high_water() if self.feed_ready.is_set() else self.covered_mark,
            )
        )

    async def _step(self) -> None:
        assert self.cursor is not None
        if not self.feed_ready.is_set():
            # Scanning before the watched set is loaded would miss payments.
            self.last_error = "waiting for the watched addresses from the ledger"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.feed_ready.wait(), timeout=self._config.idle_wait_seconds)
            return
        if self.last_error.startswith("waiting for the watched"):
            self.last_error = ""
        self._wake.clear()
        self._follower.changed.clear()
        worked = False
        behind = False
        head = self._follower.latest
        if head is not None:
            if self._reorg_suspected or self._head_contradicts(head):
                worked = await self._check_reorg(head)
            target = head.number - self._config.lag_blocks
            if target > self.cursor:
                step = self._config.max_step_blocks
                await self._live(self.cursor + 1, min(target, self.cursor + step), head)
                worked = True
                behind = target > self.cursor
        self._take_backfill()
        # Backfills and rescans wait while the live scan catches up (new blocks
        # first), but never for more than a few steps in a row.
        if self._jobs and (not behind or self._jobs_deferred >= self.JOBS_DEFERRED_MAX):
            self._jobs_deferred = 0
            await self._job_step(self._jobs[0])
            worked = True
        elif self._jobs:
            self._jobs_deferred += 1
        if self.cursor is not None and head is not None:
            metrics.LAG.labels(self._label).set(max(head.number - self.cursor, 0))
        if not worked:
            waits = [asyncio.ensure_future(self._follower.changed.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=self._config.idle_wait_seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def _head_contradicts(self, head: BlockHeader) -> bool:
        """A head below our cursor, or another block at a height we stored: the
        chain may have reorganised without growing (checked once per head)."""
        if head.hash == self._checked_head:
            return False
        stored = self.history.get(head.number)
        return (self.cursor is not None and head.number < self.cursor) or (stored is not None and stored != head.hash)

    # ------------------------------------------------------------------ live scanning

    async def _live(self, a: int, b: int, head: BlockHeader) -> None:
        started = time.perf_counter()
        try:
            headers, transfers = await self._scan(a, b, parent=self.history.get(a - 1))
        except ReorgDetected as exc:
            if not await self._check_reorg(head):
                # The stored blocks are all still canonical: the node answered
                # from two different views; read again after a pause.
                raise ChainMoved(str(exc)) from None
            return
        top = headers[-1]
        head_event = Head(self.chain_id, top.number, top.hash, top.parent_hash, top.timestamp)
        events: list[Transfer | Head] = [*transfers, head_event]
        await self._publisher.publish(events)
        if transfers:
            failpoint("listener.after_publish_before_cursor")
        for h in headers:
            self.history.append(h.number, h.hash)
        self.cursor = b
        self.saved_head = max(self.saved_head, head.number)
        await self._save()
        self._count(transfers, len(headers), "live")
        metrics.CURSOR.labels(self._label).set(b)
        metrics.DETECT_SECONDS.labels(self._label).observe(time.perf_counter() - started)
        if b - a >= 100:
            log.info(
                "caught up a range",
                chain_id=self.chain_id,
                from_block=a,
                to_block=b,
                transfers=len(transfers),
                head=head.number,
                seconds=round(time.perf_counter() - started, 3),
            )

    def _count(self, transfers: list[Transfer], blocks: int, purpose: str) -> None:
        metrics.BLOCKS.labels(self._label, purpose).inc(blocks)
        kinds = Counter(
            "token" if t.token_address else "native" if t.log_index == NATIVE_LOG_INDEX else "internal"
            for t in transfers
        )
        for kind, count in kinds.items():
            metrics.TRANSFERS.labels(self._label, kind).inc(count)

    async def _check_reorg(self, head: BlockHeader) -> bool:
        """Walk back to the common ancestor; publish the reorg; move the cursor
        there (the new branch is then scanned like any other blocks)."""
        self._reorg_suspected = False
        if len(self.history) == 0:
            return False
        ancestor = await find_common_ancestor(self.history, self._canonical_hashes)
        self._checked_head = head.hash
        if not ancestor.orphaned:
            return False
        latest = parse_header(await self._rpc.call("eth_getBlockByNumber", ["latest", False]), "latest")
        event = Reorg(
            chain_id=self.chain_id,
            common_ancestor_number=ancestor.number,
            common_ancestor_hash=ancestor.hash,
            orphaned_block_hashes=ancestor.orphaned,
            new_head_number=latest.number,
            new_head_hash=latest.hash,
        )
        await self._publisher.publish([event])
        (log.error if ancestor.beyond_history else log.warning)(
            "reorg: blocks orphaned" + (" (deeper than the history kept!)" if ancestor.beyond_history else ""),
            chain_id=self.chain_id,
            common_ancestor=ancestor.number,
            orphaned=len(ancestor.orphaned),
            previous_cursor=self.cursor,
            new_head=latest.number,
        )
        metrics.REORGS.labels(self._label).inc()
        metrics.REORG_DEPTH.labels(self._label).observe(len(ancestor.orphaned))
        self.history.truncate_after(ancestor.number)
        cursor = ancestor.number
        if ancestor.beyond_history:
            # Nothing we stored is canonical (a reorg deeper than the history, or a
            # chain restarted from scratch): resume below it, and never above the
            # new chain's head.
            cursor = min(ancestor.number, latest.number)
            at = await self._header(cursor)
            self.history = BlockHistory(self._config.history_blocks, [(at.number, at.hash)])
        self.cursor = cursor
        self._checked_head = None
        await self._save()
        metrics.CURSOR.labels(self._label).set(self.cursor)
        return True

    async def _canonical_hashes(self, numbers: list[int]) -> dict[int, str]:
        raws = await self._rpc.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
        out = {}
        for n, raw in zip(numbers, raws, strict=True):
            if raw is not None:
                header = parse_header(raw, f"block {n}")
                if header.number != n:
                    raise MalformedResponse(f"asked for block {n}, got {header.number}")
                out[n] = header.hash
        return out

    async def _header(self, number: int) -> BlockHeader:
        raw = await self._rpc.call("eth_getBlockByNumber", [hex(number), False])
        if raw is None:
            raise BlockUnavailable(f"block {number} not available from the node yet")
        return parse_header(raw, f"block {number}")

    # ------------------------------------------------------------------ backfills and rescans

    def _take_backfill(self) -> None:
        if self.cursor is None:
            return
        taken = self._late.take(self.cursor)
        if taken is None:
            return
        backfill_id, lowest, _ = taken
        first = max(lowest, self.cursor - self._config.max_backfill_blocks + 1, 0)
        if first > lowest:
            log.error(
                "backfill clipped: an address's from_block is deeper than PAYMESH_MAX_BACKFILL_BLOCKS; "
                "use Rescan for older blocks",
                chain_id=self.chain_id,
                from_block=lowest,
                scanned_from=first,
            )
        (log.info if self.cursor - first >= 10 else log.debug)(
            "backfilling for addresses learned late", chain_id=self.chain_id, from_block=first, to_block=self.cursor
        )
        self._jobs.append(ScanJob("backfill", first, self.cursor, backfill_id=backfill_id))

    async def _job_step(self, job: ScanJob) -> None:
        """One range of the first queued job. Its failures are its own: retried a
        few times, then the job fails; live scanning is never held back by it."""
        step = self._config.max_step_blocks
        a = job.next_block
        b = min(job.to_block, a + step - 1)
        if a <= b:
            try:
                headers, transfers = await self._scan(a, b, verify_history=True)
                await self._publisher.publish(transfers)
            except (asyncio.CancelledError, RangeTooLarge):
                raise
            except Exception as exc:  # noqa: BLE001
                job.failures += 1
                quiet = isinstance(exc, ChainMoved | BlockUnavailable)
                (log.info if quiet else log.warning)(
                    f"{job.kind} step failed",
                    chain_id=self.chain_id,
                    from_block=a,
                    to_block=b,
                    error=str(exc)[:300],
                    failures=job.failures,
                )
                if job.failures >= self.JOB_ATTEMPTS:
                    self._finish(job, exc)
                return
            job.failures = 0
            job.blocks_scanned += len(headers)
            job.transfers_published += len(transfers)
            job.next_block = b + 1
            self._count(transfers, len(headers), job.kind)
        if job.next_block > job.to_block:
            self._finish(job, None)

    def _finish(self, job: ScanJob, error: Exception | None) -> None:
        if self._jobs and self._jobs[0] is job:
            self._jobs.popleft()
        if job.backfill_id is not None:
            self._late.done(job.backfill_id)
        quiet = job.kind == "backfill" and job.blocks_scanned < 10 and error is None
        (log.error if error else log.debug if quiet else log.info)(
            f"{job.kind} {'failed' if error else 'done'}",
            chain_id=self.chain_id,
            blocks=job.blocks_scanned,
            transfers=job.transfers_published,
            error=str(error)[:300] if error else None,
        )
        if job.future is not None and not job.future.done():
            if error is None:
                job.future.set_result(job)
            else:
                job.future.set_exception(Unavailable(f"rescan failed: {error}"))

    # ------------------------------------------------------------------ reading a range

    async def _scan(
        self, a: int, b: int, *, parent: str | None = None, verify_history: bool = False
    ) -> tuple[list[BlockHeader], list[Transfer]]:
        """Read blocks a..b (bodies and Transfer logs), check they form one chain
        (and continue `parent`), and return their headers and the transfers into
        watched addresses, in chain order."""
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
        if verify_history:
            for h in headers:
                stored = self.history.get(h.number)
                if stored is not None and stored != h.hash:
                    self._reorg_suspected = True
                    raise ChainMoved(f"block {h.number} is not the one scanned before; checking for a reorg first")

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
        return headers, in_chain_order(transfers)

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
        """fetch(part) for every part, at most `block_concurrency` at once (the first
        failure cancels the rest); their results joined, in the parts' order."""
        semaphore = asyncio.Semaphore(self._config.block_concurrency)

        async def one(part: P) -> list[R]:
            async with semaphore:
                return await fetch(part)

        results = await gather_or_cancel([one(part) for part in parts])
        return [item for result in results for item in result]

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
