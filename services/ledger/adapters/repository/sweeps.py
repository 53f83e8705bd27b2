"""SQL of sweeps: the sweep leases on payments (due, claimed by, until) and the
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
from services.ledger.adapters.models import PAYMENTS, SWEEP_TRANSACTIONS
from services.ledger.domain.records import PaymentRecord, SweepTxRecord

# ---------------------------------------------------------------- leases


async def claim_sweeps(
    conn: AsyncConnection, chain_id: int, worker_id: str, lease_until: datetime, now: datetime, limit: int
) -> list[tuple[PaymentRecord, int]]:
    """Lease up to `limit` due payments of a chain to `worker_id` (free ones, expired
    leases, or the worker's own); returns each payment with its sweep attempts so far."""
    candidates = (
        select(PAYMENTS.c.id)
        .where(
            PAYMENTS.c.chain_id == chain_id,
            PAYMENTS.c.sweep_due_at <= now,
            (PAYMENTS.c.sweep_lease_until.is_(None))
            | (PAYMENTS.c.sweep_lease_until < now)
            | (PAYMENTS.c.sweep_claimed_by == worker_id),
        )
        .order_by(PAYMENTS.c.sweep_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await conn.execute(
        update(PAYMENTS)
        .where(PAYMENTS.c.id.in_(candidates))
        .values(sweep_claimed_by=worker_id, sweep_lease_until=lease_until)
        .returning(*PAYMENTS.c)
    )
    return [(PaymentRecord.from_row(row), row.sweep_attempts) for row in result]


async def holds_lease(conn: AsyncConnection, payment_id: str, worker_id: str, now: datetime) -> bool:
    row = (
        await conn.execute(
            select(PAYMENTS.c.id).where(
                PAYMENTS.c.id == payment_id,
                PAYMENTS.c.sweep_claimed_by == worker_id,
                PAYMENTS.c.sweep_lease_until >= now,
            )
        )
    ).first()
    return row is not None


async def release_sweep(conn: AsyncConnection, payment_id: str, worker_id: str, error: str, due_at: datetime) -> bool:
    result = await conn.execute(
        update(PAYMENTS)
        .where(PAYMENTS.c.id == payment_id, PAYMENTS.c.sweep_claimed_by == worker_id)
        .values(
            sweep_claimed_by=None,
            sweep_lease_until=None,
            sweep_last_error=error,
            sweep_attempts=PAYMENTS.c.sweep_attempts + 1,
            sweep_due_at=due_at,
        )
    )
    return result.rowcount == 1


async def request_sweep(conn: AsyncConnection, now: datetime, *, payment_id: str = "", merchant_id: str = "") -> int:
    query = update(PAYMENTS).where(PAYMENTS.c.sweep_due_at.is_not(None))
    if payment_id:
        query = query.where(PAYMENTS.c.id == payment_id)
    else:
        query = query.where(PAYMENTS.c.merchant_id == merchant_id)
    result = await conn.execute(query.values(sweep_due_at=now, sweep_lease_until=None, sweep_claimed_by=None))
    return result.rowcount


# ---------------------------------------------------------------- sweep transactions


async def sweep_txs_of(conn: AsyncConnection, payment_id: str) -> list[SweepTxRecord]:
    rows = await conn.execute(
        select(SWEEP_TRANSACTIONS)
        .where(SWEEP_TRANSACTIONS.c.payment_id == payment_id)
        .order_by(SWEEP_TRANSACTIONS.c.id)
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


async def job_assets(conn: AsyncConnection, payment_ids: set[str]) -> dict[str, str]:
    """The asset of the sweep job that each payment's sweep transactions belong to, by
    payment id. Until payment options a payment has one sweep job, its own chain and
    asset, so this is the payment's asset (not stored per transaction)."""
    if not payment_ids:
        return {}
    rows = await conn.execute(select(PAYMENTS.c.id, PAYMENTS.c.asset).where(PAYMENTS.c.id.in_(sorted(payment_ids))))
    return {r.id: r.asset for r in rows}


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
    """`asset`: only the transactions of sweep jobs of that asset (job_assets)."""
    table = SWEEP_TRANSACTIONS
    query = select(table)
    if chain_id:
        query = query.where(table.c.chain_id == chain_id)
    if payment_id:
        query = query.where(table.c.payment_id == payment_id)
    if merchant_id:
        query = query.where(table.c.merchant_id == merchant_id)
    if asset:
        query = query.where(exists().where(PAYMENTS.c.id == table.c.payment_id, PAYMENTS.c.asset == asset))
    if states:
        query = query.where(table.c.state.in_(states))
    if after is not None:
        query = query.where(func.row(table.c.created_at, table.c.id) < func.row(after[0], after[1]))
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    return [SweepTxRecord.from_row(r) for r in await conn.execute(query)]


async def gas_topups_among(conn: AsyncConnection, tx_hashes: list[str]) -> set[tuple[str, str]]:
    """(tx hash, payment id) of the recorded gas top-ups among these transaction hashes.
    Top-ups are recorded before they are broadcast (write-ahead), so before any
    listener can report them."""
    if not tx_hashes:
        return set()
    rows = await (await driver(conn)).fetch(
        "SELECT tx_hash, payment_id FROM sweep_transactions WHERE tx_hash = ANY($1::varchar[]) AND kind = 'gas_topup'",
        sorted(set(tx_hashes)),
    )
    return {(r["tx_hash"], r["payment_id"]) for r in rows}
