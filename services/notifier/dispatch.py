"""Dispatch: due deliveries are claimed, attempted and their results recorded.
The scheduler loop, per-endpoint concurrency and batched recording of results.

- The scheduler claims due deliveries from Postgres (leases, SKIP LOCKED) and
  starts one task per delivery. It never claims for an endpoint that already
  has `per_endpoint` deliveries outstanding in this process, and takes at most
  `per_endpoint` of one endpoint per claim: an endpoint with a backlog or a dead
  receiver cannot fill the process, and every other endpoint's due deliveries
  (the same merchant's others included) keep flowing (no head-of-line blocking).
  Each delivery has its own retry schedule, so a dead endpoint's deliveries back
  off and dead-letter on their own.
- A task waits for its endpoint's semaphore (at most `per_endpoint` attempts in
  flight per endpoint) and the global one, signs (one v1 per secret of the
  endpoint), sends, and hands the result to the ResultWriter, which commits
  results in batches.
- Killed at any point, nothing is lost: an unrecorded attempt's lease runs out
  and the delivery is attempted again (at least once, same event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import NotFound
from services.common.failpoints import failpoint
from services.notifier import metrics
from services.notifier.adapters import repository as repo
from services.notifier.adapters.ledger_client import TargetSource
from services.notifier.adapters.webhook_sender import WebhookSender
from services.notifier.domain import signing
from services.notifier.domain.backoff import after_attempt
from services.notifier.domain.records import (
    PRIMARY_ENDPOINT,
    AttemptDone,
    AttemptVoid,
    ClaimedDelivery,
    DeliveryState,
    SendResult,
)

log = structlog.get_logger("notifier.delivery")

Result = AttemptDone | AttemptVoid

# When the ledger cannot tell where to deliver, the attempt is handed back and
# tried again after this long (it does not count against the merchant).
LEDGER_RETRY_SECONDS = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class ResultWriter:
    """Commits attempt results in batches: whatever queued up while the previous
    batch was being written goes in the next transaction."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Result, asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifier-results")

    async def submit(self, result: Result) -> None:
        """Return once the result is committed (raise if it could not be)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((result, future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[tuple[Result, asyncio.Future[None]]]) -> None:
        done = [r for r, _ in batch if isinstance(r, AttemptDone)]
        void = [r for r, _ in batch if isinstance(r, AttemptVoid)]
        error: Exception | None = None
        for attempt in range(5):
            try:
                async with self._engine.begin() as conn:
                    await repo.record_results(conn, done, void)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - DB trouble: retry a few times
                error = exc
                log.warning("recording results failed; retrying", error=str(exc), attempt=attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                # Unrecorded: the leases run out and the deliveries are attempted again.
                future.set_exception(error)

    async def close(self, grace: float = 10.0) -> None:
        """Write what is queued (for up to `grace` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=grace)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Dispatcher:
    """The scheduler loop (run) and one task per claimed delivery (see the module
    docstring); poke() wakes the loop when work may be due before its next poll."""

    def __init__(
        self,
        engine: AsyncEngine,
        targets: TargetSource,
        sender: WebhookSender,
        writer: ResultWriter,
        *,
        schedule: Sequence[float],
        jitter: float,
        per_endpoint: int,
        max_concurrency: int,
        claim_batch: int,
        poll_interval: float,
        lease_seconds: float,
        request_timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._targets = targets
        self._sender = sender
        self._writer = writer
        self._schedule = tuple(schedule)
        self._jitter = jitter
        self._per_endpoint = per_endpoint
        self._global = asyncio.Semaphore(max_concurrency)
        self._max_outstanding = max_concurrency * 2
        self._claim_batch = claim_batch
        self._poll = poll_interval
        self._lease = timedelta(seconds=lease_seconds)
        self._send_budget = lease_seconds - request_timeout - 1.0
        self._rng = rng or random.Random()
        self._outstanding: dict[str, int] = defaultdict(int)
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._total = 0
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self.wakeup = asyncio.Event()

    def poke(self) -> None:
        """New work may be due (an event was taken in, a redelivery queued)."""
        self.wakeup.set()

    # ------------------------------------------------------------ scheduler

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            room = min(self._max_outstanding - self._total, self._claim_batch)
            claimed: list[ClaimedDelivery] = []
            if room > 0:
                self.wakeup.clear()
                try:
                    claimed = await self._claim(room)
                except Exception as exc:  # noqa: BLE001 - DB down: nothing is lost, retry
                    log.warning("claiming deliveries failed; retrying", error=str(exc))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
                    continue
                for c in claimed:
                    self._start(c)
                if len(claimed) == room:
                    continue  # probably more due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self._poll)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        excluded = [k for k, n in self._outstanding.items() if n >= self._per_endpoint]
        now = utcnow()
        async with self._engine.begin() as conn:
            return await repo.claim_due(
                conn,
                now=now,
                limit=limit,
                per_endpoint=self._per_endpoint,
                excluded_endpoints=excluded,
                lease_until=now + self._lease,
            )

    def _start(self, claimed: ClaimedDelivery) -> asyncio.Task:
        self._outstanding[claimed.endpoint_key] += 1
        self._total += 1
        metrics.IN_FLIGHT.inc()
        task = asyncio.create_task(self._process(claimed, time.monotonic()), name=f"deliver-{claimed.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver_now(self, claimed: ClaimedDelivery) -> None:
        """Attempt a delivery the caller has just leased (SendTestEvent) and wait for the record.
        A caller that goes away (RPC cancelled) does not cut the attempt short."""
        await asyncio.shield(self._start(claimed))

    # ------------------------------------------------------------ one delivery

    async def _process(self, c: ClaimedDelivery, claimed_at: float) -> None:
        try:
            result = await self._attempt(c, claimed_at)
            if result is not None:
                await self._writer.submit(result)
                self._observe(c, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the lease runs out and it is retried
            log.exception("delivery attempt failed unexpectedly", delivery_id=c.id)
        finally:
            metrics.IN_FLIGHT.dec()
            self._total -= 1
            key = c.endpoint_key
            left = self._outstanding[key] - 1
            if left <= 0:
                self._outstanding.pop(key, None)
            else:
                self._outstanding[key] = left
            if left == self._per_endpoint - 1 or self._total == self._max_outstanding - 1:
                self.wakeup.set()  # room again: for this endpoint, or for anyone

    def _void(self, c: ClaimedDelivery, state: DeliveryState, reason: str, delay: float = 0.0) -> AttemptVoid:
        now = utcnow()
        return AttemptVoid(
            delivery_id=c.id,
            lease_token=c.lease_token,
            number=c.attempt_number,
            state=state,
            next_attempt_at=now + timedelta(seconds=delay) if state is DeliveryState.PENDING else None,
            reason=reason,
            finished_at=now,
        )

    async def _attempt(self, c: ClaimedDelivery, claimed_at: float) -> AttemptDone | AttemptVoid:
        key = c.endpoint_key
        sem = self._semaphores.get(key)
        if sem is None:
            sem = self._semaphores[key] = asyncio.Semaphore(self._per_endpoint)
        async with sem, self._global:
            if self._stopping:
                return self._void(c, DeliveryState.PENDING, "handed back: the notifier was stopping")
            try:
                merchant = await self._targets.endpoints(c.merchant_id)
            except NotFound as exc:
                return self._void(c, DeliveryState.SKIPPED, exc.message)
            except Exception as exc:  # noqa: BLE001 - ledger unreachable: not the merchant's fault
                reason = getattr(exc, "message", None) or str(exc)
                log.warning("no webhook target; will retry", merchant_id=c.merchant_id, error=reason)
                return self._void(c, DeliveryState.PENDING, reason, LEDGER_RETRY_SECONDS)
            if not merchant.active:
                return self._void(c, DeliveryState.SKIPPED, "merchant is disabled")
            target = merchant.get(c.endpoint_id)
            if target is None:
                if c.endpoint_id == PRIMARY_ENDPOINT:
                    return self._void(c, DeliveryState.SKIPPED, "merchant has no webhook URL")
                return self._void(c, DeliveryState.SKIPPED, f"webhook endpoint {c.endpoint_id} was deleted")
            if not target.enabled:
                return self._void(c, DeliveryState.SKIPPED, f"webhook endpoint {c.endpoint_id} is disabled")
            if not target.url:
                return self._void(c, DeliveryState.SKIPPED, "merchant has no webhook URL")
            if time.monotonic() - claimed_at > self._send_budget:
                # Too late to finish inside the lease: hand it back rather than race another replica.
                return self._void(c, DeliveryState.PENDING, "handed back: waited too long for a slot")
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                signing.SIGNATURE_HEADER: signing.signature_header(target.secrets, timestamp, c.body),
                signing.EVENT_ID_HEADER: c.event_id,
                signing.EVENT_TYPE_HEADER: c.event_type,
                signing.DELIVERY_ID_HEADER: c.id,
                signing.ATTEMPT_HEADER: str(c.attempt_number),
            }
            result = await self._sender.send(target.url, c.body, headers, key=key)
        failpoint("notifier.after_send_before_record")
        return self._done(c, result)

    def _done(self, c: ClaimedDelivery, result: SendResult) -> AttemptDone:
        now = utcnow()
        state, next_at = after_attempt(result.ok, c.cycle_attempts, self._schedule, now, self._jitter, self._rng)
        if not result.ok:
            log.info(
                "webhook attempt failed",
                delivery_id=c.id,
                event_id=c.event_id,
                merchant_id=c.merchant_id,
                endpoint_id=c.endpoint_id,
                attempt=c.attempt_number,
                status_code=result.status_code,
                error=result.error,
                next_attempt_at=next_at.isoformat() if next_at else None,
                state=state.value,
            )
        return AttemptDone(
            delivery_id=c.id,
            lease_token=c.lease_token,
            number=c.attempt_number,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            succeeded=result.ok,
            url=result.url,
            state=state,
            next_attempt_at=next_at,
            finished_at=now,
            failure=result.failure.value,
        )

    @staticmethod
    def _observe(c: ClaimedDelivery, result: AttemptDone | AttemptVoid) -> None:
        if isinstance(result, AttemptVoid):
            if result.state is DeliveryState.SKIPPED:
                metrics.FINISHED.labels("skipped").inc()
            return
        if result.succeeded:
            metrics.ATTEMPTS.labels("succeeded").inc()
        else:
            metrics.ATTEMPTS.labels(result.failure).inc()
        metrics.ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
        if result.state is not DeliveryState.PENDING:
            metrics.FINISHED.labels(result.state.value).inc()
        if result.succeeded and c.event_created_at is not None:
            metrics.EVENT_TO_DELIVERY.observe(max(0.0, (result.finished_at - c.event_created_at).total_seconds()))

    # ------------------------------------------------------------ shutdown

    async def drain(self, grace: float) -> None:
        """Stop starting attempts; let those in flight finish for up to `grace`
        seconds. Claimed deliveries not yet started are handed back at once."""
        self._stopping = True
        pending = list(self._tasks)
        if not pending:
            return
        done, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        if still:
            log.warning("attempts cut short at shutdown; they will be retried", count=len(still))
            await asyncio.wait(still, timeout=2.0)
