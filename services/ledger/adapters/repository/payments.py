"""SQL of the payments aggregate: creating payments (with their deposit address and
`created` event, one statement per batch), reading, listing, locking, and writing
back their derived state. Functions take the connection (the caller owns the
transaction) and return plain records; nothing here decides business rules."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.db import driver
from services.ledger.adapters.models import PAYMENTS
from services.ledger.adapters.repository import outbox
from services.ledger.adapters.repository.bulk import Column, ColumnList
from services.ledger.domain.records import PaymentEventRecord, PaymentRecord

# ---------------------------------------------------------------- create

# What CreatePayment stores in `payments` (status, updated_at and the rest are set
# by the statement or by their defaults).
NEW_PAYMENT_COLUMNS = ColumnList(
    Column("id", "varchar"),
    Column("merchant_id", "varchar"),
    Column("chain_id", "bigint"),
    Column("asset", "varchar"),
    Column("token_address", "varchar"),
    Column("decimals", "int"),
    Column("amount_due", "numeric", str),
    Column("merchant_order_id", "varchar"),
    Column("metadata", "jsonb", json.dumps),
    Column("idempotency_key", "varchar"),
    Column("request_fingerprint", "varchar"),
    Column("deposit_address", "varchar"),
    Column("derivation_index", "bigint"),
    Column("derivation_path", "varchar"),
    Column("confirmations_required", "int"),
    Column("created_at", "timestamptz"),
    Column("expires_at", "timestamptz"),
    Column("price_currency", "varchar"),
    Column("price_amount", "numeric"),
    Column("quote", "jsonb"),
    Column("underpayment_tolerance_bps", "int"),
    Column("watch_until", "timestamptz"),
)
# What the deposit address and the `created` outbox event take besides.
CREATED_WITH_COLUMNS = ColumnList(
    Column("from_block", "bigint"),
    Column("event_id", "uuid"),
    Column("subject", "varchar"),
    Column("payload", "bytea"),
)
CREATE_COLUMNS = NEW_PAYMENT_COLUMNS + CREATED_WITH_COLUMNS

# One statement, one round trip for a batch of new payments (create_batch.py):
# each payment, its deposit address and its `created` outbox event are written
# together or not at all. Rows are unnested from one array per column.
# ON CONFLICT makes a concurrent retry with the same idempotency key wait for
# the first insert and then write nothing (the caller then reads the existing
# payment); a key repeated inside one batch inserts once, the same way.
# ORDER BY: every batch takes the idempotency-key index entries in the same
# order, so two batches sharing keys (retries racing on two replicas) wait for
# each other instead of deadlocking.
CREATE_PAYMENTS_SQL = f"""
WITH input AS (
  SELECT * FROM {CREATE_COLUMNS.unnest("t")}
), ins AS (
  INSERT INTO payments ({NEW_PAYMENT_COLUMNS.select()}, status, updated_at)
  SELECT {NEW_PAYMENT_COLUMNS.select()}, 'pending', created_at
  FROM input ORDER BY merchant_id, idempotency_key, id
  ON CONFLICT (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
), addr AS (
  INSERT INTO deposit_addresses (chain_id, address, merchant_id, payment_id, derivation_index,
      from_block, created_at)
  SELECT i.chain_id, i.deposit_address, i.merchant_id, i.id, i.derivation_index, i.from_block, i.created_at
  FROM input i JOIN ins USING (id)
), evt AS (
  INSERT INTO outbox ({outbox.OUTBOX_COLUMNS.select()})
  SELECT {outbox.OUTBOX_COLUMNS.select("i", payment_id="i.id", event_type="'created'")}
  FROM input i JOIN ins USING (id) ORDER BY i.created_at, i.id
)
SELECT id FROM ins
"""


def creation_row(
    payment: PaymentRecord,
    created: PaymentEventRecord,
    *,
    idempotency_key: str | None,
    request_fingerprint: str,
    from_block: int,
) -> dict[str, Any]:
    """One row of CREATE_COLUMNS for create_payments (via create_batch.py): the new
    payment, the head its address is watched from, and its `created` event, whose
    payload is encoded here, once per payment (a batch retried row by row reuses it)."""
    return {
        "id": payment.id,
        "merchant_id": payment.merchant_id,
        "chain_id": payment.chain_id,
        "asset": payment.asset,
        "token_address": payment.token_address,
        "decimals": payment.decimals,
        "amount_due": payment.amount_due,
        "merchant_order_id": payment.merchant_order_id,
        "metadata": payment.metadata,
        "idempotency_key": idempotency_key,
        "request_fingerprint": request_fingerprint,
        "deposit_address": payment.deposit_address,
        "derivation_index": payment.derivation_index,
        "derivation_path": payment.derivation_path,
        "confirmations_required": payment.confirmations_required,
        "created_at": payment.created_at,
        "expires_at": payment.expires_at,
        "price_currency": None if payment.price is None else payment.price.currency.code,
        "price_amount": None if payment.price is None else str(payment.price.amount),
        "quote": _quote_json(payment),
        "underpayment_tolerance_bps": payment.tolerance_bps,
        "watch_until": payment.watch_until,
        "from_block": from_block,
        "event_id": created.event_id,
        "subject": outbox.event_subject(created),
        "payload": outbox.event_payload(created),
    }


def _quote_json(payment: PaymentRecord) -> str | None:
    return None if payment.quote is None else json.dumps(payment.quote.to_json())


async def create_payments(pool: asyncpg.Pool, rows: list[dict[str, Any]]) -> set[str]:
    """Insert payments, each with its deposit address and `created` outbox event,
    in one statement (autocommit: one implicit transaction). Returns the ids
    inserted; a row whose idempotency key already exists is not among them."""
    found = await pool.fetch(CREATE_PAYMENTS_SQL, *CREATE_COLUMNS.arrays(rows))
    return {r["id"] for r in found}


# ---------------------------------------------------------------- read


async def payment_by_idempotency_key(conn: AsyncConnection, merchant_id: str, key: str) -> PaymentRecord | None:
    row = (
        await conn.execute(
            select(PAYMENTS).where(PAYMENTS.c.merchant_id == merchant_id, PAYMENTS.c.idempotency_key == key)
        )
    ).first()
    return PaymentRecord.from_row(row) if row else None


async def get_payment(
    conn: AsyncConnection, payment_id: str, *, merchant_id: str | None = None, for_update: bool = False
) -> PaymentRecord | None:
    query = select(PAYMENTS).where(PAYMENTS.c.id == payment_id)
    if merchant_id is not None:
        query = query.where(PAYMENTS.c.merchant_id == merchant_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return PaymentRecord.from_row(row) if row else None


async def list_payments(
    conn: AsyncConnection,
    merchant_id: str,
    *,
    statuses: list[str],
    chain_id: int,
    merchant_order_id: str,
    created_after: datetime | None,
    created_before: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PaymentRecord]:
    query = select(PAYMENTS).where(PAYMENTS.c.merchant_id == merchant_id)
    if statuses:
        query = query.where(PAYMENTS.c.status.in_(statuses))
    if chain_id:
        query = query.where(PAYMENTS.c.chain_id == chain_id)
    if merchant_order_id:
        query = query.where(PAYMENTS.c.merchant_order_id == merchant_order_id)
    if created_after is not None:
        query = query.where(PAYMENTS.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(PAYMENTS.c.created_at < created_before)
    if after is not None:
        query = query.where(func.row(PAYMENTS.c.created_at, PAYMENTS.c.id) < func.row(after[0], after[1]))
    query = query.order_by(PAYMENTS.c.created_at.desc(), PAYMENTS.c.id.desc()).limit(limit)
    return [PaymentRecord.from_row(r) for r in await conn.execute(query)]


# ---------------------------------------------------------------- lock

# Batch lookups by key are written as one index probe per key (LATERAL ...
# OFFSET 0 keeps the planner from flattening them into a join). With `= ANY`,
# tables that grew since the last ANALYZE (a new deployment, a burst) get
# estimates from default selectivities and a sequential scan per batch, which
# slows every batch as the table grows.
_LOCK_BY_ADDRESS_SQL = (
    "SELECT p.* FROM unnest($2::varchar[]) AS k(address) CROSS JOIN LATERAL "
    "(SELECT payment_id FROM deposit_addresses d WHERE d.chain_id = $1 AND d.address = k.address OFFSET 0) d "
    "JOIN payments p ON p.id = d.payment_id ORDER BY p.id FOR UPDATE OF p"
)


async def lock_payments_by_address(
    conn: AsyncConnection, chain_id: int, addresses: list[str]
) -> dict[str, PaymentRecord]:
    """Lock the payments of these deposit addresses (in id order, so batches never deadlock)."""
    rows = await (await driver(conn)).fetch(_LOCK_BY_ADDRESS_SQL, chain_id, sorted(set(addresses)))
    return {r["deposit_address"]: PaymentRecord.from_row(r) for r in rows}


async def lock_payments(conn: AsyncConnection, payment_ids: list[str]) -> list[PaymentRecord]:
    """Lock payments in id order (so concurrent batches never deadlock)."""
    if not payment_ids:
        return []
    rows = await (await driver(conn)).fetch(
        "SELECT * FROM payments WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE", payment_ids
    )
    return [PaymentRecord.from_row(r) for r in rows]


async def payments_to_expire(conn: AsyncConnection, now: datetime, limit: int) -> list[PaymentRecord]:
    query = (
        select(PAYMENTS)
        .where(PAYMENTS.c.expired_at.is_(None), PAYMENTS.c.expires_at <= now)
        .order_by(PAYMENTS.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [PaymentRecord.from_row(r) for r in await conn.execute(query)]


# ---------------------------------------------------------------- write back

# The fields payment_state.py re-derives or a use case sets, written back as they
# are on the record (PaymentRecord attributes of the same names).
PAYMENT_STATE_COLUMNS = ColumnList(
    Column("amount_due", "numeric", str),
    Column("amount_received", "numeric", str),
    Column("amount_confirmed", "numeric", str),
    Column("amount_swept", "numeric", str),
    Column("status", "varchar", lambda status: status.value),
    Column("late", "bool"),
    Column("version", "bigint"),
    Column("updated_at", "timestamptz"),
    Column("expired_at", "timestamptz"),
    Column("cancelled_at", "timestamptz"),
    Column("sweep_tx_hash", "varchar"),
    Column("sweep_fee", "numeric", str),
    Column("sweep_dust", "numeric", str),
    Column("resolution", "varchar", lambda resolution: None if resolution is None else resolution.value),
    Column("resolution_note", "varchar"),
    Column("resolved_at", "timestamptz"),
    # A requote replaces the quote (and amount_due).
    Column("quote", "jsonb", lambda quote: None if quote is None else json.dumps(quote.to_json())),
)
SAVE_PAYMENT_COLUMNS = (
    ColumnList(Column("id", "varchar")) + PAYMENT_STATE_COLUMNS + ColumnList(Column("sweepable", "bool"))
)

# One statement for any number of payments (unnest: one array per column).
SAVE_PAYMENTS_SQL = f"""
UPDATE payments p SET {PAYMENT_STATE_COLUMNS.set_from("u")},
    sweep_due_at = CASE WHEN u.sweepable THEN coalesce(p.sweep_due_at, u.updated_at) END,
    sweep_claimed_by = CASE WHEN u.sweepable THEN p.sweep_claimed_by END,
    sweep_lease_until = CASE WHEN u.sweepable THEN p.sweep_lease_until END
FROM {SAVE_PAYMENT_COLUMNS.unnest("u")}
WHERE p.id = u.id
"""


async def save_payment_states(conn: AsyncConnection, payments: list[PaymentRecord]) -> None:
    """Write the derived fields of payments the caller holds locked. A payment
    that stops being sweepable (a reorg) loses its sweep eligibility and lease."""
    if payments:
        await (await driver(conn)).execute(SAVE_PAYMENTS_SQL, *SAVE_PAYMENT_COLUMNS.arrays_of(payments))


async def cancel_reason(conn: AsyncConnection, payment_id: str, reason: str) -> None:
    await conn.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id).values(cancel_reason=reason))
