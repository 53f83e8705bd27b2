"""SQL of merchant API keys: issue, authenticate by hash, list, revoke, mark used.
Functions take the connection (the caller owns the transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import API_KEYS, MERCHANTS


async def insert_key(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(API_KEYS).values(**values))


async def key_auth(conn: AsyncConnection, key_hash: str) -> Any | None:
    """The key (its row) and its merchant's status and payment policy, by the key's hash."""
    row = (
        await conn.execute(
            select(API_KEYS, MERCHANTS.c.status, MERCHANTS.c.payment_policy)
            .join(MERCHANTS, MERCHANTS.c.id == API_KEYS.c.merchant_id)
            .where(API_KEYS.c.key_hash == key_hash)
        )
    ).first()
    return row


async def list_keys(conn: AsyncConnection, merchant_id: str) -> list[Any]:
    rows = await conn.execute(
        select(API_KEYS).where(API_KEYS.c.merchant_id == merchant_id).order_by(API_KEYS.c.created_at.desc())
    )
    return list(rows)


async def get_key(conn: AsyncConnection, key_id: str, *, for_update: bool = False) -> Any | None:
    query = select(API_KEYS).where(API_KEYS.c.id == key_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def set_revoked(conn: AsyncConnection, key_id: str, at: datetime) -> None:
    await conn.execute(update(API_KEYS).where(API_KEYS.c.id == key_id).values(revoked_at=at))


async def revoke_all(conn: AsyncConnection, merchant_id: str, at: datetime) -> None:
    """Every key of the merchant not yet revoked stops working at `at`."""
    await conn.execute(
        update(API_KEYS)
        .where(
            API_KEYS.c.merchant_id == merchant_id,
            (API_KEYS.c.revoked_at.is_(None)) | (API_KEYS.c.revoked_at > at),
        )
        .values(revoked_at=at)
    )


async def touch(conn: AsyncConnection, key_id: str) -> None:
    await conn.execute(update(API_KEYS).where(API_KEYS.c.id == key_id).values(last_used_at=func.now()))
