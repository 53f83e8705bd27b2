"""SQL of the watched addresses (the `deposit_addresses` rows the listeners' feed
streams): the snapshot of the addresses still worth watching, and the rows written
since a transaction horizon. The caller holds a REPEATABLE READ transaction (see
watched_address_feed.py for why the cursor is a transaction id)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import DEPOSIT_ADDRESSES
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


# Driven by the payments still watched (ix_payments_watch_until), each probing its
# deposit address (LATERAL ... OFFSET 0: one index probe per payment, never a scan
# of every deposit address ever made). bench/bench_growth.py: 1.14 s for 10,000
# live addresses beside 10^6 history payments when it walked the addresses in id
# order, chunk after chunk.
_ACTIVE_SQL = text(
    "SELECT d.id, d.chain_id, d.address, d.payment_id, d.from_block, d.created_at, d.txid "
    "FROM payments p CROSS JOIN LATERAL ("
    "SELECT * FROM deposit_addresses a WHERE a.payment_id = p.id AND a.chain_id = :chain_id OFFSET 0) d "
    "WHERE p.watch_until >= :now"
)


async def active_addresses(
    conn: AsyncConnection, chain_id: int, *, now: datetime, chunk: int
) -> AsyncIterator[list[tuple[WatchedAddressRecord, int]]]:
    """Addresses of payments that can still receive funds worth watching (their
    policy's watch_until not passed), with their txid, in chunks of `chunk`, read
    once through a server-side cursor: the cost follows the payments still
    watched, not the history."""
    result = await conn.stream(_ACTIVE_SQL, {"chain_id": chain_id, "now": now})
    async for rows in result.partitions(chunk):
        yield [(WatchedAddressRecord.from_row(r), r.txid) for r in rows]


async def addresses_since(
    conn: AsyncConnection, chain_id: int, min_txid: int
) -> list[tuple[WatchedAddressRecord, int]]:
    """Addresses written by transactions at or above `min_txid`, with their txid."""
    query = select(*_FEED_COLUMNS).where(DEPOSIT_ADDRESSES.c.chain_id == chain_id, DEPOSIT_ADDRESSES.c.txid >= min_txid)
    return [(WatchedAddressRecord.from_row(r), r.txid) for r in await conn.execute(query)]
