"""SQL of delayed configuration changes: insert, read, list, claim the due ones
(SKIP LOCKED, so replicas share the work), and decide (applied, cancelled, failed).
Functions take the connection (the caller owns the transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import CONFIG_CHANGES as C


async def insert_change(conn: AsyncConnection, **values: Any) -> Any:
    return (await conn.execute(insert(C).values(**values).returning(*C.c))).one()


async def get_change(conn: AsyncConnection, change_id: str, *, for_update: bool = False) -> Any | None:
    query = select(C).where(C.c.id == change_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def pending_for(conn: AsyncConnection, merchant_id: str, action: str, target: str) -> Any | None:
    query = select(C).where(
        C.c.merchant_id == merchant_id, C.c.action == action, C.c.target == target, C.c.state == "pending"
    )
    return (await conn.execute(query)).first()


async def list_changes(conn: AsyncConnection, merchant_id: str, state: str | None, limit: int = 200) -> list[Any]:
    query = select(C).where(C.c.merchant_id == merchant_id)
    if state is not None:
        query = query.where(C.c.state == state)
    return list(await conn.execute(query.order_by(C.c.created_at.desc(), C.c.id.desc()).limit(limit)))


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[Any]:
    """Pending changes whose time has come, locked for this transaction."""
    query = (
        select(C)
        .where(C.c.state == "pending", C.c.effective_at <= now)
        .order_by(C.c.effective_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await conn.execute(query))


async def decide(conn: AsyncConnection, change_id: str, state: str, at: datetime, by: str, failure: str = "") -> Any:
    stmt = (
        update(C)
        .where(C.c.id == change_id)
        .values(state=state, decided_at=at, decided_by=by, failure=failure)
        .returning(*C.c)
    )
    return (await conn.execute(stmt)).one()
