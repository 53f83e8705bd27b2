"""One chain's scanner: from the saved cursor to the head, block range by block
range, publishing transfers into watched addresses, then the head; detecting
reorgs (a block whose parent is not the hash we stored) and publishing them
before rescanning the new branch; and scanning again what backfills and
operator rescans ask for.

This module holds the loop, the cursor and the recent block hashes (saved in
the state store), the reorg walk-back and the queue of backfills and rescans;
reading a range from the node (and refusing a range that mixes two branches) is
adapters/range_reader.py's.

Runs only on the replica that holds the chain's lease, and publishes only
while `leading()` says the lease is held (the rule in leadership.py): checked
before every publish; when it is not, the scan ends with NotLeading. Every step
is idempotent: events are published before the cursor is saved, with ids that
make a republish a no-op, so a crash anywhere replays at most one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from services.common.chains import ChainConfig
from services.common.errors import Unavailable
from services.common.failpoints import failpoint
from services.listener import metrics
from services.listener.adapters.event_publisher import ChainEventPublisher
from services.listener.adapters.heads import HeadFollower
from services.listener.adapters.range_reader import (
    BlockUnavailable,
    ChainMoved,
    RangeReader,
    RangeTooLarge,
    ReorgDetected,
    ScannedBlockChanged,
)
from services.listener.adapters.state_store import ChainState, StateConflict, StateStore
from services.listener.domain.addresses import WatchedSet
from services.listener.domain.backfill import LateAddresses
from services.listener.domain.chaindata import BlockHeader
from services.listener.domain.events import NATIVE_LOG_INDEX, ChainEvent, Head, Reorg, Transfer
from services.listener.domain.reorg import BlockHistory, find_common_ancestor

log = structlog.get_logger("listener.scanner")


class NotLeading(Exception):
    """The chain's lease is not held (lost, or not renewed in time): nothing more may be published."""


@dataclass(frozen=True)
class ScanConfig:
    history_blocks: int = 64
    lag_blocks: int = 0
    start_block: int = -1
    max_step_blocks: int = 1000
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
    """One chain's scan, on the replica that leads it (see the module docstring)."""

    JOB_ATTEMPTS = 10
    JOBS_DEFERRED_MAX = 8

    def __init__(
        self,
        chain: ChainConfig,
        reader: RangeReader,
        follower: HeadFollower,
        publisher: ChainEventPublisher,
        store: StateStore,
        watched: WatchedSet,
        late: LateAddresses,
        config: ScanConfig,
        *,
        leading: Callable[[], bool],
    ) -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        self._label = str(chain.chain_id)
        self._reader = reader
        self._follower = follower
        self._publisher = publisher
        self._store = store
        self.watched = watched
        self._late = late
        self._config = config
        self._leading = leading
        self.history = BlockHistory(config.history_blocks)
        self.cursor: int | None = None
        self.saved_head = 0
        self.covered_mark: float | None = None  # address_mark of the saved state (see domain/backfill.py)
        self.last_error = ""
        self.consecutive_failures = 0
        self.running = False
        self._jobs: deque[ScanJob] = deque()
        self._wake = asyncio.Event()
        self.addresses_loaded = asyncio.Event()
        # Set while a step found nothing to do (caught up to the head minus the lag,
        # no jobs) and the loop waits for a new head: a condition to wait on instead
        # of sleeping (tests).
        self.idle = asyncio.Event()
        self._checked_head: str | None = None
        self._reorg_suspected = False
        self._jobs_deferred = 0

    # ------------------------------------------------------------------ inputs

    def add_addresses(self, items: list[tuple[bytes, int, float]]) -> None:
        """New watched addresses (from the address subscription, on every replica)."""
        added = 0
        for address, from_block, created_at in items:
            if self.watched.add(address):
                added += 1
                self._late.add(from_block, created_at, self.covered_mark)
        if added:
            metrics.WATCHED.labels(self._label).set(len(self.watched))
            self._wake.set()

    def snapshot_loaded(self) -> None:
        self.addresses_loaded.set()
        self._wake.set()

    async def prime(self) -> None:
        """Before the address subscription starts: learn the saved address mark, so that addresses
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
        """Scan until cancelled (when the lease is lost or the process stops), or
        until a publish finds the lease not held (NotLeading)."""
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
                except (asyncio.CancelledError, NotLeading):
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
                at = await self._reader.header(cursor)
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
                address_mark=self._late.high_water() if self.addresses_loaded.is_set() else self.covered_mark,
            )
        )

    async def _step(self) -> None:
        assert self.cursor is not None
        if not self.addresses_loaded.is_set():
            # Scanning before the watched set is loaded would miss payments.
            self.last_error = "waiting for the watched addresses from the ledger"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.addresses_loaded.wait(), timeout=self._config.idle_wait_seconds)
            return
        if self.last_error.startswith("waiting for the watched"):
            self.last_error = ""
        self.idle.clear()
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
            self.idle.set()
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
            headers, transfers = await self._reader.read(a, b, parent=self.history.get(a - 1))
        except ReorgDetected as exc:
            if not await self._check_reorg(head):
                # The stored blocks are all still canonical: the node answered
                # from two different views; read again after a pause.
                raise ChainMoved(str(exc)) from None
            return
        top = headers[-1]
        head_event = Head(self.chain_id, top.number, top.hash, top.parent_hash, top.timestamp)
        events: list[Transfer | Head] = [*transfers]
        if await self._head_agreed(top, headers):
            events.append(head_event)
        await self._publish(events)
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

    async def _head_agreed(self, top: BlockHeader, headers: Sequence[BlockHeader]) -> bool:
        """With confirmation_agreement: a second provider reports the same hash for the
        deepest block this head confirms. If not, the transfers go out without the head
        (detected, not confirmed); a later head that agrees confirms them."""
        if not self.chain.confirmation_agreement:
            return True
        depth = top.number - self.chain.confirmations + 1
        if depth < 0:
            return True
        known = next((h.hash for h in headers if h.number == depth), None) or self.history.get(depth)
        if known is not None and await self._reader.agreed(depth, known):
            return True
        metrics.HEADS_HELD.labels(self._label).inc()
        log.warning(
            "head held: no second provider agrees on the block it would confirm",
            chain_id=self.chain_id,
            head=top.number,
            block=depth,
        )
        return False

    async def _publish(self, events: Sequence[ChainEvent]) -> None:
        if not self._leading():
            raise NotLeading(f"chain {self.chain_id}: the lease is not held (lost or not renewed in time)")
        await self._publisher.publish(events)

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
        ancestor = await find_common_ancestor(self.history, self._reader.canonical_hashes)
        self._checked_head = head.hash
        if not ancestor.orphaned:
            return False
        latest = await self._reader.latest()
        event = Reorg(
            chain_id=self.chain_id,
            common_ancestor_number=ancestor.number,
            common_ancestor_hash=ancestor.hash,
            orphaned_block_hashes=ancestor.orphaned,
            new_head_number=latest.number,
            new_head_hash=latest.hash,
        )
        await self._publish([event])
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
            at = await self._reader.header(cursor)
            self.history = BlockHistory(self._config.history_blocks, [(at.number, at.hash)])
        self.cursor = cursor
        self._checked_head = None
        await self._save()
        metrics.CURSOR.labels(self._label).set(self.cursor)
        return True

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
                headers, transfers = await self._reader.read(a, b, scanned=self.history)
                await self._publish(transfers)
            except (asyncio.CancelledError, RangeTooLarge, NotLeading):
                raise
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc, ScannedBlockChanged):
                    self._reorg_suspected = True  # the live scan walks back before anything else
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
