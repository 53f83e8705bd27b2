"""SQL of payment links: create (idempotent per merchant key), read by id or token,
count a use against the limit atomically, give a use back, deactivate. Functions
take the connection (the caller owns the transaction) and return plain records."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import PAYMENT_LINKS
from services.ledger.domain.records import PaymentLinkRecord


async def insert_link(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a link; False when the merchant's idempotency key is taken (a retry)."""
    values = {
        **values,
        "options": json.dumps(values["options"]),
        "accept_chain_ids": json.dumps(values["accept_chain_ids"]),
    }
    result = await conn.execute(
        pg_insert(PAYMENT_LINKS)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[PAYMENT_LINKS.c.merchant_id, PAYMENT_LINKS.c.idempotency_key],
            index_where=PAYMENT_LINKS.c.idempotency_key.is_not(None),
        )
        .returning(PAYMENT_LINKS.c.id)
    )
    return result.first() is not None


async def link_by_key(conn: AsyncConnection, merchant_id: str, key: str) -> PaymentLinkRecord | None:
    query = select(PAYMENT_LINKS).where(
        PAYMENT_LINKS.c.merchant_id == merchant_id, PAYMENT_LINKS.c.idempotency_key == key
    )
    row = (await conn.execute(query)).first()
    return PaymentLinkRecord.from_row(row) if row else None


async def get_link(conn: AsyncConnection, link_id: str, *, merchant_id: str | None = None) -> PaymentLinkRecord | None:
    query = select(PAYMENT_LINKS).where(PAYMENT_LINKS.c.id == link_id)
    if merchant_id is not None:
        query = query.where(PAYMENT_LINKS.c.merchant_id == merchant_id)
    row = (await conn.execute(query)).first()
    return PaymentLinkRecord.from_row(row) if row else None


async def link_by_token(conn: AsyncConnection, token: str) -> PaymentLinkRecord | None:
    row = (await conn.execute(select(PAYMENT_LINKS).where(PAYMENT_LINKS.c.token == token))).first()
    return PaymentLinkRecord.from_row(row) if row else None


async def take_use(conn: AsyncConnection, link_id: str) -> bool:
    """Count one use if the link is active and below its limit (one statement: two
    visitors can never both take the last use)."""
    table = PAYMENT_LINKS
    result = await conn.execute(
        update(table)
        .where(table.c.id == link_id, table.c.active, (table.c.max_uses == 0) | (table.c.uses < table.c.max_uses))
        .values(uses=table.c.uses + 1)
        .returning(table.c.id)
    )
    return result.first() is not None


async def give_back_use(conn: AsyncConnection, link_id: str) -> None:
    await conn.execute(
        update(PAYMENT_LINKS)
        .where(PAYMENT_LINKS.c.id == link_id, PAYMENT_LINKS.c.uses > 0)
        .values(uses=PAYMENT_LINKS.c.uses - 1)
    )


async def deactivate(conn: AsyncConnection, link_id: str, merchant_id: str) -> bool:
    result = await conn.execute(
        update(PAYMENT_LINKS)
        .where(PAYMENT_LINKS.c.id == link_id, PAYMENT_LINKS.c.merchant_id == merchant_id)
        .values(active=False)
    )
    return result.rowcount == 1
