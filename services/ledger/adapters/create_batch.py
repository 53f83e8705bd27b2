"""Group commit for CreatePayment: concurrent requests share one statement.

Each request still gets its own payment, deposit address and outbox event; what
is shared is the round trip and the commit. A batch takes whatever requests
are waiting when it starts, so a lone request goes out at once, and under load
a few dozen ride on one fsync instead of paying one each.

Failure isolation: if a batch statement fails, each of its requests is retried
on its own, so one bad row cannot fail the others, and each caller gets its own
answer or error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import asyncpg

from services.ledger.adapters import repository as repo
from services.ledger.metrics import CREATE_BATCH_SIZE


class CreatePaymentBatcher:
    """Inserts payments (one row's values: adapters/repository/payments.py
    creation_row), coalescing concurrent calls into batches of up to `max_batch`."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 128, max_in_flight: int = 1) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: deque[tuple[dict[str, Any], asyncio.Future[bool]]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones

    async def insert(self, values: dict[str, Any]) -> bool:
        """True if inserted; False if a payment with the same idempotency key exists."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((values, future))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(self._max_batch, len(self._waiting)))]
                await self._run(batch)
        finally:
            self._in_flight -= 1

    async def _run(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        CREATE_BATCH_SIZE.observe(len(batch))
        if len(batch) == 1:
            await self._one(*batch[0])
            return
        try:
            inserted = await repo.payments.create_payments(self._pool, [values for values, _ in batch])
        except Exception:  # noqa: BLE001 - isolate the failure: each request on its own
            await asyncio.gather(*(self._one(values, future) for values, future in batch))
            return
        for values, future in batch:
            if not future.done():
                future.set_result(values["id"] in inserted)

    async def _one(self, values: dict[str, Any], future: asyncio.Future[bool]) -> None:
        try:
            result = values["id"] in await repo.payments.create_payments(self._pool, [values])
        except Exception as exc:  # noqa: BLE001 - handed to the caller, whose request it is
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
