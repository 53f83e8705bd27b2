"""Delayed changes of where a merchant's money goes: a treasury or the xpub.

With PAYMESH_CONFIG_CHANGE_DELAY_SECONDS above 0, SetTreasury and SetXpub do not
change the merchant: they record a pending change (merchants.py) and announce it at
once (a `*.scheduled` audit entry, published as a config_changed event, so the
merchant's webhook endpoints hear of it). Until its effective time the merchant or
the operator can cancel it (announced too). When it is due, the loop here applies it
in one transaction with its audit entry (`treasury.set` / `xpub.set`, naming the
change), under the merchant's row lock, claimed with SKIP LOCKED so replicas share
the work and apply each change once. A change that can no longer be applied (the
xpub is another merchant's by then) ends FAILED with the reason, announced as well.
A stolen admin token can still ask for a change, but not silently, and not before
the merchant has had the delay to see and stop it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.ledger.adapters import repository as repo
from services.ledger.authentication import MerchantAccess, actor, owned_merchant
from services.ledger.domain.validation import utcnow
from services.ledger.merchants import MerchantsService

log = structlog.get_logger("ledger.config_changes")

STATES = ("pending", "applied", "cancelled", "failed")
APPLIER = "ledger"  # decided_by of a change applied (or failed) when due


class ConfigChangesService:
    def __init__(
        self,
        engine: AsyncEngine,
        merchants: MerchantsService,
        on_outbox: Callable[[], None],
        *,
        interval: float,
        batch: int = 100,
    ) -> None:
        self._engine = engine
        self._merchants = merchants
        self._on_outbox = on_outbox
        self._interval = interval
        self._batch = batch

    async def list(self, caller: MerchantAccess | None, merchant_id: str, state: str | None) -> list[Any]:
        merchant_id = owned_merchant(caller, merchant_id)
        async with self._engine.connect() as conn:
            if caller is None and await repo.merchants.get_merchant(conn, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            return await repo.config_changes.list_changes(conn, merchant_id, state)

    async def cancel(self, caller: MerchantAccess | None, change_id: str) -> Any:
        if not change_id:
            raise InvalidArgument("change_id is required")
        now = utcnow()
        async with self._engine.begin() as conn:
            change = await repo.config_changes.get_change(conn, change_id[:64], for_update=True)
            if change is None or (caller is not None and change.merchant_id != caller.merchant_id):
                raise NotFound(f"configuration change {change_id[:64]} not found")
            if change.state != "pending":
                raise FailedPrecondition(f"configuration change {change.id} is {change.state} already")
            decided = await repo.config_changes.decide(conn, change.id, "cancelled", now, actor(caller))
            await repo.audit.append(
                conn,
                merchant_id=change.merchant_id,
                actor=actor(caller),
                action=change.action.replace(".set", ".cancelled"),
                target=change.target,
                before={**change.after, "change_id": change.id, "effective_at": change.effective_at.isoformat()},
            )
        self._on_outbox()
        return decided

    async def apply_due(self) -> int:
        """Apply the changes whose time has come; how many were decided."""
        now = utcnow()
        async with self._engine.begin() as conn:
            due = await repo.config_changes.claim_due(conn, now, self._batch)
            for change in due:
                # The merchant's row first, as every other configuration change takes it.
                await repo.merchants.get_merchant(conn, change.merchant_id, for_update=True)
                try:
                    async with conn.begin_nested():
                        await self._merchants.apply_change(
                            conn,
                            change.merchant_id,
                            change.action,
                            change.target,
                            change.after,
                            actor=change.created_by,
                            note={"change_id": change.id},
                        )
                    await repo.config_changes.decide(conn, change.id, "applied", now, APPLIER)
                except (AlreadyExists, InvalidArgument) as err:
                    await repo.config_changes.decide(conn, change.id, "failed", now, APPLIER, err.message)
                    await repo.audit.append(
                        conn,
                        merchant_id=change.merchant_id,
                        actor=APPLIER,
                        action=change.action.replace(".set", ".failed"),
                        target=change.target,
                        after={**change.after, "change_id": change.id, "failure": err.message},
                    )
        if due:
            self._on_outbox()
            log.info("configuration changes applied", count=len(due))
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while await self.apply_due() >= self._batch:
                    pass
            except Exception as exc:  # noqa: BLE001 - DB trouble: the next round tries again
                log.warning("applying configuration changes failed; retrying", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
