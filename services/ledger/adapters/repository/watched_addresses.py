"""SQL of the watched addresses (the `deposit_addresses` rows the listeners' feed
streams): the snapshot of the addresses still worth watching, and the rows written
since a transaction horizon. The caller holds a REPEATABLE READ transaction (see
watched_address_feed.py for why the cursor is a transaction id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import DEPOSIT_ADDRESSES, PAYMENTS
from services.ledger.domain.records import WatchedAddressRecord

_FEED_COLUMNS = (
    DEPOSIT_ADDRESSES.c.id,
    DEPOSIT_ADDRESSES.c.chain_id,
    DEPOSIT_ADDRESSES.c.address,
    DEPOSIT_ADDRESSES.c.payment_id,
    DEPOSIT_ADDRESSES.c.from_block,
    DEPOSIT_ADDRESSES.c.created_at,
    DEPOSIT_ADDRESSES.c.txid,
)


async def xmin_horizon(conn: AsyncConnection) -> int:
    """Transactions with ids below this have all finished (committed or aborted)."""
    return (await conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))).scalar_one()


async def active_addresses(
    conn: AsyncConnection, chain_id: int, *, after_id: int, now: datetime, limit: int
) -> list[tuple[WatchedAddressRecord, int]]:
    """Addresses of payments that can still receive funds worth watching (their
    policy's watch_until not passed), in id order, with their txid."""
    query = (
        select(*_FEED_COLUMNS)
        .join(PAYMENTS, PAYMENTS.c.id == DEPOSIT_ADDRESSES.c.payment_id)
        .where(
            DEPOSIT_ADDRESSES.c.chain_id == chain_id,
            DEPOSIT_ADDRESSES.c.id > after_id,
            PAYMENTS.c.watch_until >= now,
        )
        .order_by(DEPOSIT_ADDRESSES.c.id)
        .limit(limit)
    )
    return [(WatchedAddressRecord.from_row(r), r.txid) for r in await conn.execute(query)]


async def addresses_since(
    conn: AsyncConnection, chain_id: int, min_txid: int
) -> list[tuple[WatchedAddressRecord, int]]:
    """Addresses written by transactions at or above `min_txid`, with their txid."""
    query = select(*_FEED_COLUMNS).where(DEPOSIT_ADDRESSES.c.chain_id == chain_id, DEPOSIT_ADDRESSES.c.txid >= min_txid)
    return [(WatchedAddressRecord.from_row(r), r.txid) for r in await conn.execute(query)]
