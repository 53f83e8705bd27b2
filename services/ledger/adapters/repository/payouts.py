"""SQL of refunds and payouts: create (idempotent per merchant key), read, list, the
sums the limits and refunds are checked against, the sweeper's leases, and the
payout transactions recorded before broadcast (write-ahead). Functions take the
connection (the caller owns the transaction) and return plain records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.db import driver
from services.ledger.adapters.models import PAYOUT_TRANSACTIONS, PAYOUTS, SWEEP_TRANSACTIONS
from services.ledger.domain.payouts import ACTIVE_STATES, PayoutRecord, PayoutTxRecord

_ACTIVE = [s.value for s in ACTIVE_STATES]
_ENDED_UNSENT = ["cancelled", "failed"]


async def insert_payouts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> bool:
    """Insert payouts; False (nothing inserted) when the first row's idempotency key is
    taken (a retry)."""
    result = await conn.execute(
        pg_insert(PAYOUTS)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[PAYOUTS.c.merchant_id, PAYOUTS.c.idempotency_key],
            index_where=PAYOUTS.c.idempotency_key.is_not(None),
        )
        .returning(PAYOUTS.c.id)
    )
    inserted = len(result.fetchall())
    if inserted not in (0, len(rows)):
        raise RuntimeError("a payout batch was inserted in part")  # keys are derived from one batch key
    return inserted > 0


async def payout_by_key(conn: AsyncConnection, merchant_id: str, key: str) -> PayoutRecord | None:
    row = (
        await conn.execute(
            select(PAYOUTS).where(PAYOUTS.c.merchant_id == merchant_id, PAYOUTS.c.idempotency_key == key)
        )
    ).first()
    return PayoutRecord.from_row(row) if row else None


async def get_payout(
    conn: AsyncConnection, payout_id: str, *, merchant_id: str | None = None, for_update: bool = False
) -> PayoutRecord | None:
    query = select(PAYOUTS).where(PAYOUTS.c.id == payout_id)
    if merchant_id is not None:
        query = query.where(PAYOUTS.c.merchant_id == merchant_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return PayoutRecord.from_row(row) if row else None


async def payouts_by_ids(conn: AsyncConnection, ids: list[str]) -> list[PayoutRecord]:
    """These payouts, in the order of `ids`."""
    rows = await conn.execute(select(PAYOUTS).where(PAYOUTS.c.id.in_(ids)))
    found = {r.id: PayoutRecord.from_row(r) for r in rows}
    return [found[i] for i in ids if i in found]


async def batch_payouts(conn: AsyncConnection, merchant_id: str, batch_id: str) -> list[PayoutRecord]:
    rows = await conn.execute(
        select(PAYOUTS)
        .where(PAYOUTS.c.merchant_id == merchant_id, PAYOUTS.c.batch_id == batch_id)
        .order_by(PAYOUTS.c.batch_index)
    )
    return [PayoutRecord.from_row(r) for r in rows]


async def list_payouts(
    conn: AsyncConnection,
    merchant_id: str,
    *,
    kind: str,
    payment_id: str = "",
    batch_id: str = "",
    states: list[str] | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> list[PayoutRecord]:
    """Newest first, after the (created_at, id) of the previous page."""
    t = PAYOUTS
    query = select(t).where(t.c.merchant_id == merchant_id, t.c.kind == kind)
    if payment_id:
        query = query.where(t.c.payment_id == payment_id)
    if batch_id:
        query = query.where(t.c.batch_id == batch_id)
    if states:
        query = query.where(t.c.state.in_(states))
    if after is not None:
        query = query.where(func.row(t.c.created_at, t.c.id) < func.row(*after))
    rows = await conn.execute(query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit))
    return [PayoutRecord.from_row(r) for r in rows]


async def used_since(conn: AsyncConnection, merchant_id: str, chain_id: int, asset: str, since: datetime) -> int:
    """What the merchant's refunds and payouts of an asset created since `since` add up
    to, cancelled and failed ones left out (the daily limit)."""
    value = (
        await conn.execute(
            select(func.coalesce(func.sum(PAYOUTS.c.amount), 0)).where(
                PAYOUTS.c.merchant_id == merchant_id,
                PAYOUTS.c.chain_id == chain_id,
                PAYOUTS.c.asset == asset,
                PAYOUTS.c.created_at >= since,
                PAYOUTS.c.state.not_in(_ENDED_UNSENT),
            )
        )
    ).scalar_one()
    return int(value)


async def refunding(conn: AsyncConnection, payment_id: str, chain_id: int, asset: str) -> tuple[int, int]:
    """(refunds of the option not cancelled or failed: what they give back, the part of
    it still under way from the deposit address)."""
    t = PAYOUTS
    row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(func.coalesce(t.c.amount_sent, t.c.amount)), 0),
                func.coalesce(
                    func.sum(t.c.amount).filter(t.c.state.in_(_ACTIVE), t.c.source == "deposit"),
                    0,
                ),
            ).where(
                t.c.payment_id == payment_id,
                t.c.chain_id == chain_id,
                t.c.asset == asset,
                t.c.state.not_in(_ENDED_UNSENT),
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def reserved_of(conn: AsyncConnection, source_address: str, chain_id: int) -> dict[str, int]:
    """What the approved payouts of a payout wallet not yet ended will send, per asset."""
    rows = await conn.execute(
        select(PAYOUTS.c.asset, func.sum(PAYOUTS.c.amount))
        .where(
            PAYOUTS.c.source_address == source_address,
            PAYOUTS.c.chain_id == chain_id,
            PAYOUTS.c.state.in_(["approved", "signed", "broadcast"]),
        )
        .group_by(PAYOUTS.c.asset)
    )
    return {asset: int(total) for asset, total in rows}


async def open_sweep_txs(conn: AsyncConnection, payment_id: str, chain_id: int, asset: str) -> int:
    """How many sweep transactions of the option may still be mined."""
    t = SWEEP_TRANSACTIONS
    value = (
        await conn.execute(
            select(func.count()).where(
                t.c.payment_id == payment_id,
                t.c.chain_id == chain_id,
                t.c.asset == asset,
                t.c.state.in_(["signed", "broadcast", "mined"]),
            )
        )
    ).scalar_one()
    return int(value)


async def active_deposit_refunds(conn: AsyncConnection, payment_id: str, chain_id: int, asset: str) -> int:
    """How many refunds from the deposit address of the option are not ended (each
    holds the option's sweep back)."""
    t = PAYOUTS
    value = (
        await conn.execute(
            select(func.count()).where(
                t.c.payment_id == payment_id,
                t.c.chain_id == chain_id,
                t.c.asset == asset,
                t.c.source == "deposit",
                t.c.state.in_(_ACTIVE),
            )
        )
    ).scalar_one()
    return int(value)


async def update_payout(conn: AsyncConnection, payout_id: str, **values: Any) -> None:
    await conn.execute(update(PAYOUTS).where(PAYOUTS.c.id == payout_id).values(**values))


# ---------------------------------------------------------------- the sweeper's leases

# Due payouts of a chain, free or with an expired lease or the worker's own (or any,
# when the worker takes over as the chain's new signer), oldest first, leased to the
# worker. A refund from a deposit address waits while a sweep transaction of its
# option may still be mined (they sign with the same key).
_CLAIM_SQL = """
UPDATE payouts p SET claimed_by = $2, lease_until = $3
FROM (
  SELECT c.id FROM payouts c
  WHERE c.chain_id = $1 AND c.due_at <= $4
    AND (c.lease_until IS NULL OR c.lease_until < $4 OR c.claimed_by = $2 OR $6)
    AND (c.source <> 'deposit' OR NOT EXISTS (
      SELECT 1 FROM sweep_transactions s
      WHERE s.payment_id = c.payment_id AND s.chain_id = c.chain_id AND s.asset = c.asset
        AND s.kind = 'sweep' AND s.state IN ('signed', 'broadcast', 'mined')))
  ORDER BY c.due_at, c.id LIMIT $5
  FOR UPDATE OF c SKIP LOCKED
) due
WHERE p.id = due.id
RETURNING p.*
"""


async def claim_payouts(
    conn: AsyncConnection,
    chain_id: int,
    worker_id: str,
    lease_until: datetime,
    now: datetime,
    limit: int,
    take_over: bool = False,
) -> list[PayoutRecord]:
    """Lease up to `limit` due payouts of a chain to `worker_id` (with `take_over`,
    also those another worker holds)."""
    rows = await (await driver(conn)).fetch(_CLAIM_SQL, chain_id, worker_id, lease_until, now, limit, take_over)
    return sorted((PayoutRecord.from_row(r) for r in rows), key=lambda p: (p.created_at, p.id))


# ---------------------------------------------------------------- payout transactions


async def insert_payout_tx(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(pg_insert(PAYOUT_TRANSACTIONS).values(**values).on_conflict_do_nothing())


async def get_payout_tx(conn: AsyncConnection, tx_hash: str, *, for_update: bool = False) -> PayoutTxRecord | None:
    query = select(PAYOUT_TRANSACTIONS).where(PAYOUT_TRANSACTIONS.c.tx_hash == tx_hash)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return PayoutTxRecord.from_row(row) if row else None


async def payout_txs_of(conn: AsyncConnection, payout_ids: list[str]) -> dict[str, list[PayoutTxRecord]]:
    """The recorded transactions of these payouts, oldest first, by payout."""
    found: dict[str, list[PayoutTxRecord]] = {p: [] for p in payout_ids}
    if not payout_ids:
        return found
    rows = await conn.execute(
        select(PAYOUT_TRANSACTIONS)
        .where(PAYOUT_TRANSACTIONS.c.payout_id.in_(payout_ids))
        .order_by(PAYOUT_TRANSACTIONS.c.id)
    )
    for r in rows:
        tx = PayoutTxRecord.from_row(r)
        found[tx.payout_id].append(tx)
    return found


async def update_payout_tx(conn: AsyncConnection, tx_hash: str, **values: Any) -> None:
    await conn.execute(
        update(PAYOUT_TRANSACTIONS)
        .where(PAYOUT_TRANSACTIONS.c.tx_hash == tx_hash)
        .values(**values, updated_at=func.now())
    )


async def by_claim_token(conn: AsyncConnection, claim_token: str) -> PayoutRecord | None:
    row = (await conn.execute(select(PAYOUTS).where(PAYOUTS.c.claim_token == claim_token))).first()
    return PayoutRecord.from_row(row) if row else None
