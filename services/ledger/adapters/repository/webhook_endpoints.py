"""SQL of merchants' webhook endpoints: insert, read, list, update, delete. Functions
take the connection (the caller owns the transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import WEBHOOK_ENDPOINTS as E


async def insert_endpoint(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(E).values(**values))


async def get_endpoint(conn: AsyncConnection, endpoint_id: str, *, for_update: bool = False) -> Any | None:
    query = select(E).where(E.c.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def list_endpoints(conn: AsyncConnection, merchant_id: str) -> list[Any]:
    rows = await conn.execute(select(E).where(E.c.merchant_id == merchant_id).order_by(E.c.created_at, E.c.id))
    return list(rows)


async def count_endpoints(conn: AsyncConnection, merchant_id: str) -> int:
    return (await conn.execute(select(func.count()).where(E.c.merchant_id == merchant_id))).scalar_one()


async def update_endpoint(conn: AsyncConnection, endpoint_id: str, **values: Any) -> None:
    await conn.execute(update(E).where(E.c.id == endpoint_id).values(**values))


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> None:
    await conn.execute(delete(E).where(E.c.id == endpoint_id))
