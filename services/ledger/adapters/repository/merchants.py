"""SQL of the merchants aggregate: merchants, their treasuries (one per chain) and
their derivation index reservations. Functions take the connection (the caller
owns the transaction; reserve_indexes, on CreatePayment's path, takes the hot
asyncpg pool and commits on its own) and return plain records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import MERCHANTS, TREASURIES
from services.ledger.domain.records import MerchantRecord


async def insert_merchant(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(MERCHANTS).values(**values))


async def get_merchant(conn: AsyncConnection, merchant_id: str, *, for_update: bool = False) -> MerchantRecord | None:
    query = select(MERCHANTS).where(MERCHANTS.c.id == merchant_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    rows = await conn.execute(
        select(TREASURIES.c.chain_id, TREASURIES.c.address).where(TREASURIES.c.merchant_id == merchant_id)
    )
    return MerchantRecord.from_row(row, {r.chain_id: r.address for r in rows})


async def list_merchants(conn: AsyncConnection, after: tuple[datetime, str] | None, limit: int) -> list[MerchantRecord]:
    query = select(MERCHANTS).order_by(MERCHANTS.c.created_at, MERCHANTS.c.id).limit(limit)
    if after is not None:
        query = query.where(func.row(MERCHANTS.c.created_at, MERCHANTS.c.id) > func.row(after[0], after[1]))
    rows = (await conn.execute(query)).all()
    ids = [r.id for r in rows]
    treasuries: dict[str, dict[int, str]] = {i: {} for i in ids}
    if ids:
        for t in await conn.execute(select(TREASURIES).where(TREASURIES.c.merchant_id.in_(ids))):
            treasuries[t.merchant_id][t.chain_id] = t.address
    return [MerchantRecord.from_row(r, treasuries[r.id]) for r in rows]


async def merchant_with_xpub(conn: AsyncConnection, xpub: str) -> str | None:
    return (await conn.execute(select(MERCHANTS.c.id).where(MERCHANTS.c.xpub == xpub).limit(1))).scalar_one_or_none()


async def update_merchant(conn: AsyncConnection, merchant_id: str, **values: Any) -> bool:
    result = await conn.execute(
        update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(**values, updated_at=func.now())
    )
    return result.rowcount == 1


async def set_treasury(conn: AsyncConnection, merchant_id: str, chain_id: int, address: str) -> None:
    stmt = pg_insert(TREASURIES).values(merchant_id=merchant_id, chain_id=chain_id, address=address)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[TREASURIES.c.merchant_id, TREASURIES.c.chain_id], set_={"address": address}
        )
    )


async def treasury_of(conn: AsyncConnection, merchant_id: str, chain_id: int) -> str:
    row = (
        await conn.execute(
            select(TREASURIES.c.address).where(
                TREASURIES.c.merchant_id == merchant_id, TREASURIES.c.chain_id == chain_id
            )
        )
    ).first()
    return row.address if row else ""


# One statement through the hot asyncpg pool, committed on its own: CreatePayment
# takes a block of indexes every `address_reservation` payments, and the SQLAlchemy
# transaction (begin, update, commit) cost ~45 us per payment in CPU at 16 clients
# (py-spy, docs/BENCHMARKS.md, issue 14).
RESERVE_INDEXES_SQL = (
    "UPDATE merchants SET next_address_index = next_address_index + $2 WHERE id = $1 "
    "RETURNING next_address_index, xpub, derivation_path"
)


async def reserve_indexes(pool: asyncpg.Pool, merchant_id: str, count: int) -> tuple[int, str, str] | None:
    """Reserve `count` derivation indexes; returns (first index, xpub, derivation path)."""
    row = await pool.fetchrow(RESERVE_INDEXES_SQL, merchant_id, count)
    if row is None:
        return None
    return row["next_address_index"] - count, row["xpub"], row["derivation_path"]


async def payout_policy_of(conn: AsyncConnection, merchant_id: str) -> dict:
    """The merchant's payout policy as stored (domain/payouts.PayoutPolicy.from_json)."""
    value = (await conn.execute(select(MERCHANTS.c.payout_policy).where(MERCHANTS.c.id == merchant_id))).scalar()
    return value or {}


async def set_payout_policy(conn: AsyncConnection, merchant_id: str, policy: dict) -> bool:
    result = await conn.execute(
        update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(payout_policy=policy, updated_at=func.now())
    )
    return result.rowcount == 1
