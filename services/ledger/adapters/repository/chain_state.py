"""SQL of the chain state the ledger keeps: the head of each chain and the blocks
reorgs removed (a transfer event from such a block is never credited). Functions
take the connection; the caller owns the transaction."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import CHAIN_HEADS, ORPHANED_BLOCKS, TRANSFERS


async def get_heads(conn: AsyncConnection) -> dict[int, int]:
    return {r.chain_id: r.number for r in await conn.execute(select(CHAIN_HEADS.c.chain_id, CHAIN_HEADS.c.number))}


async def set_head(conn: AsyncConnection, chain_id: int, number: int, block_hash: str, *, force: bool = False) -> None:
    """Move the head forward (or anywhere with force=True, after a reorg)."""
    stmt = pg_insert(CHAIN_HEADS).values(chain_id=chain_id, number=number, hash=block_hash)
    condition = None if force else (CHAIN_HEADS.c.number <= number)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[CHAIN_HEADS.c.chain_id],
            set_={"number": number, "hash": block_hash, "updated_at": func.now()},
            where=condition,
        )
    )


async def orphan_blocks(conn: AsyncConnection, chain_id: int, block_hashes: list[str]) -> list[str]:
    """Record orphaned blocks and orphan their transfers; return affected payment ids."""
    if not block_hashes:
        return []
    await conn.execute(
        pg_insert(ORPHANED_BLOCKS)
        .values([{"chain_id": chain_id, "block_hash": h} for h in block_hashes])
        .on_conflict_do_nothing()
    )
    result = await conn.execute(
        update(TRANSFERS)
        .where(
            TRANSFERS.c.chain_id == chain_id, TRANSFERS.c.block_hash.in_(block_hashes), TRANSFERS.c.state != "orphaned"
        )
        .values(state="orphaned")
        .returning(TRANSFERS.c.payment_id)
    )
    return sorted({r.payment_id for r in result if r.payment_id})
