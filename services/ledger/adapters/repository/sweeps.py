"""SQL of sweeps: the sweep leases on payment options (due, claimed by, until) and the
sweep transactions the sweeper recorded before broadcasting them (write-ahead).
Functions take the connection (the caller owns the transaction) and return plain
records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.db import driver
from services.ledger.adapters.models import PAYMENT_OPTIONS, PAYMENTS, SWEEP_TRANSACTIONS
from services.ledger.domain.records import SweepTxRecord

# ---------------------------------------------------------------- leases

# Due options of a chain, free or with an expired lease or the worker's own, oldest
# due first (the partial index ix_payment_options_sweep_due), leased to the worker.
# $5 false: only payments with one option (a sweeper that keys jobs by payment alone).
# An option with a refund from its deposit address under way is held back: the
# refund goes first, and what remains is swept after it (payouts.py).
_CLAIM_SQL = """
UPDATE payment_options o SET sweep_claimed_by = $2, sweep_lease_until = $3
FROM (
  SELECT payment_id, position FROM payment_options c
  WHERE c.chain_id = $1 AND c.sweep_due_at <= $4
    AND (c.sweep_lease_until IS NULL OR c.sweep_lease_until < $4 OR c.sweep_claimed_by = $2 OR $7)
    AND ($5 OR NOT EXISTS (
      SELECT 1 FROM payment_options s WHERE s.payment_id = c.payment_id AND s.position <> c.position))
    AND NOT EXISTS (
      SELECT 1 FROM payouts r
      WHERE r.payment_id = c.payment_id AND r.chain_id = c.chain_id AND r.asset = c.asset AND r.source = 'deposit'
        AND r.state IN ('requested', 'approved', 'signed', 'broadcast'))
  ORDER BY c.sweep_due_at LIMIT $6
  FOR UPDATE SKIP LOCKED
) due
WHERE o.payment_id = due.payment_id AND o.position = due.position
RETURNING o.payment_id, o.position, o.sweep_attempts
"""


async def claim_sweeps(
    conn: AsyncConnection,
    chain_id: int,
    worker_id: str,
    lease_until: datetime,
    now: datetime,
    limit: int,
    *,
    jobs_per_asset: bool = True,
    take_over: bool = False,
) -> list[tuple[str, int, int]]:
    """Lease up to `limit` due sweep jobs (payment options) of a chain to `worker_id`
    (with `take_over`, also those another worker holds); returns (payment id, option
    position, sweep attempts so far) of each."""
    rows = await (await driver(conn)).fetch(
        _CLAIM_SQL, chain_id, worker_id, lease_until, now, jobs_per_asset, limit, take_over
    )
    return [(r["payment_id"], r["position"], r["sweep_attempts"]) for r in rows]


def _job(payment_id: str, chain_id: int, asset: str) -> Any:
    return (
        (PAYMENT_OPTIONS.c.payment_id == payment_id)
        & (PAYMENT_OPTIONS.c.chain_id == chain_id)
        & (PAYMENT_OPTIONS.c.asset == asset)
    )


async def holds_lease(
    conn: AsyncConnection, payment_id: str, chain_id: int, asset: str, worker_id: str, now: datetime
) -> bool:
    row = (
        await conn.execute(
            select(PAYMENT_OPTIONS.c.position).where(
                _job(payment_id, chain_id, asset),
                PAYMENT_OPTIONS.c.sweep_claimed_by == worker_id,
                PAYMENT_OPTIONS.c.sweep_lease_until >= now,
            )
        )
    ).first()
    return row is not None


async def release_sweep(
    conn: AsyncConnection, payment_id: str, chain_id: int, asset: str, worker_id: str, error: str, due_at: datetime
) -> bool:
    result = await conn.execute(
        update(PAYMENT_OPTIONS)
        .where(_job(payment_id, chain_id, asset), PAYMENT_OPTIONS.c.sweep_claimed_by == worker_id)
        .values(
            sweep_claimed_by=None,
            sweep_lease_until=None,
            sweep_last_error=error,
            sweep_attempts=PAYMENT_OPTIONS.c.sweep_attempts + 1,
            sweep_due_at=due_at,
        )
    )
    return result.rowcount == 1


async def request_sweep(conn: AsyncConnection, now: datetime, *, payment_id: str = "", merchant_id: str = "") -> int:
    """Make the due sweep jobs of a payment (or of all a merchant's payments) due now,
    dropping their leases; returns how many jobs."""
    query = update(PAYMENT_OPTIONS).where(PAYMENT_OPTIONS.c.sweep_due_at.is_not(None))
    if payment_id:
        query = query.where(PAYMENT_OPTIONS.c.payment_id == payment_id)
    else:
        query = query.where(
            exists().where(PAYMENTS.c.id == PAYMENT_OPTIONS.c.payment_id, PAYMENTS.c.merchant_id == merchant_id)
        )
    result = await conn.execute(query.values(sweep_due_at=now, sweep_lease_until=None, sweep_claimed_by=None))
    return result.rowcount


# ---------------------------------------------------------------- sweep transactions


async def sweep_txs_of(conn: AsyncConnection, payment_id: str, chain_id: int, asset: str) -> list[SweepTxRecord]:
    """The recorded transactions of one sweep job, oldest first."""
    table = SWEEP_TRANSACTIONS
    rows = await conn.execute(
        select(table)
        .where(table.c.payment_id == payment_id, table.c.chain_id == chain_id, table.c.asset == asset)
        .order_by(table.c.id)
    )
    return [SweepTxRecord.from_row(r) for r in rows]


async def insert_sweep_tx(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(
        pg_insert(SWEEP_TRANSACTIONS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[SWEEP_TRANSACTIONS.c.tx_hash])
    )


async def get_sweep_tx(conn: AsyncConnection, tx_hash: str, *, for_update: bool = False) -> SweepTxRecord | None:
    query = select(SWEEP_TRANSACTIONS).where(SWEEP_TRANSACTIONS.c.tx_hash == tx_hash)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return SweepTxRecord.from_row(row) if row else None


async def update_sweep_tx(conn: AsyncConnection, tx_hash: str, **values: Any) -> None:
    await conn.execute(
        update(SWEEP_TRANSACTIONS)
        .where(SWEEP_TRANSACTIONS.c.tx_hash == tx_hash)
        .values(**values, updated_at=func.now())
    )


async def list_sweep_txs(
    conn: AsyncConnection,
    *,
    chain_id: int,
    payment_id: str,
    merchant_id: str,
    states: list[str],
    after: tuple[datetime, int] | None,
    limit: int,
    asset: str = "",
) -> list[SweepTxRecord]:
    """`asset`: only the transactions of sweep jobs of that asset."""
    table = SWEEP_TRANSACTIONS
    query = select(table)
    if chain_id:
        query = query.where(table.c.chain_id == chain_id)
    if payment_id:
        query = query.where(table.c.payment_id == payment_id)
    if merchant_id:
        query = query.where(table.c.merchant_id == merchant_id)
    if asset:
        query = query.where(table.c.asset == asset)
    if states:
        query = query.where(table.c.state.in_(states))
    if after is not None:
        query = query.where(func.row(table.c.created_at, table.c.id) < func.row(after[0], after[1]))
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    return [SweepTxRecord.from_row(r) for r in await conn.execute(query)]


async def gas_topups_among(conn: AsyncConnection, tx_hashes: list[str]) -> set[tuple[str, str]]:
    """(tx hash, payment id) of the recorded gas top-ups among these transaction hashes.
    Top-ups are recorded before they are broadcast (write-ahead), so before any
    listener can report them. A refund's top-up into a deposit address is one too."""
    if not tx_hashes:
        return set()
    rows = await (await driver(conn)).fetch(
        "SELECT tx_hash, payment_id FROM sweep_transactions WHERE tx_hash = ANY($1::varchar[]) AND kind = 'gas_topup' "
        "UNION ALL SELECT tx_hash, payment_id FROM payout_transactions "
        "WHERE tx_hash = ANY($1::varchar[]) AND kind = 'gas_topup' AND payment_id IS NOT NULL",
        sorted(set(tx_hashes)),
    )
    return {(r["tx_hash"], r["payment_id"]) for r in rows}
