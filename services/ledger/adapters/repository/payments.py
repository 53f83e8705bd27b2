"""SQL of the payments aggregate: creating payments (with their deposit address and
`created` event, one statement per batch), reading, listing, locking, and writing
back their derived state. Functions take the connection (the caller owns the
transaction) and return plain records; nothing here decides business rules."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.db import driver
from services.ledger.adapters.models import MERCHANTS, PAYMENT_OPTIONS, PAYMENTS
from services.ledger.adapters.repository import outbox
from services.ledger.adapters.repository.bulk import Column, ColumnList
from services.ledger.domain.records import PaymentEventRecord, PaymentOptionRecord, PaymentRecord, QuoteRecord

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
    Column("checkout_token", "varchar"),
    Column("description", "varchar"),
    Column("return_url", "varchar"),
)
# What the `created` outbox event takes besides.
CREATED_WITH_COLUMNS = ColumnList(
    Column("event_id", "uuid"),
    Column("subject", "varchar"),
    Column("payload", "bytea"),
)
CREATE_COLUMNS = NEW_PAYMENT_COLUMNS + CREATED_WITH_COLUMNS
# Each option of the new payments (payment_options), and the head of its chain the
# deposit address is watched from there (deposit_addresses.from_block).
NEW_OPTION_COLUMNS = ColumnList(
    Column("payment_id", "varchar"),
    Column("position", "int"),
    Column("chain_id", "bigint"),
    Column("asset", "varchar"),
    Column("token_address", "varchar"),
    Column("decimals", "int"),
    Column("amount_due", "numeric", str),
    Column("quote", "jsonb"),
    Column("confirmations_required", "int"),
)
CREATE_OPTION_COLUMNS = NEW_OPTION_COLUMNS + ColumnList(Column("from_block", "bigint"))

# One statement, one round trip for a batch of new payments (create_batch.py):
# each payment, its options, its deposit address (one row per chain its options
# accept: one EVM key is one address on every chain) and its `created` outbox
# event are written together or not at all. Rows are unnested from one array per
# column (payments, then options).
# ON CONFLICT makes a concurrent retry with the same idempotency key wait for
# the first insert and then write nothing (the caller then reads the existing
# payment); a key repeated inside one batch inserts once, the same way.
# ORDER BY: every batch takes the idempotency-key index entries in the same
# order, so two batches sharing keys (retries racing on two replicas) wait for
# each other instead of deadlocking.
CREATE_PAYMENTS_SQL = f"""
WITH input AS (
  SELECT * FROM {CREATE_COLUMNS.unnest("t")}
), opt AS (
  SELECT * FROM {CREATE_OPTION_COLUMNS.unnest("o", start=len(CREATE_COLUMNS) + 1)}
), ins AS (
  INSERT INTO payments ({NEW_PAYMENT_COLUMNS.select()}, status, updated_at)
  SELECT {NEW_PAYMENT_COLUMNS.select()}, 'pending', created_at
  FROM input ORDER BY merchant_id, idempotency_key, id
  ON CONFLICT (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
), options AS (
  INSERT INTO payment_options ({NEW_OPTION_COLUMNS.select()}, status)
  SELECT {NEW_OPTION_COLUMNS.select("o")}, 'awaiting'
  FROM opt o JOIN ins ON ins.id = o.payment_id
), addr AS (
  INSERT INTO deposit_addresses (chain_id, address, merchant_id, payment_id, derivation_index,
      from_block, created_at, confirmations_required)
  SELECT DISTINCT ON (o.payment_id, o.chain_id) o.chain_id, i.deposit_address, i.merchant_id, i.id,
      i.derivation_index, o.from_block, i.created_at, o.confirmations_required
  FROM opt o JOIN input i ON i.id = o.payment_id JOIN ins ON ins.id = i.id
  ORDER BY o.payment_id, o.chain_id, o.position
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
    from_blocks: dict[int, int],
) -> dict[str, Any]:
    """One row of CREATE_COLUMNS for create_payments (via create_batch.py): the new
    payment, its options (under "options", rows of CREATE_OPTION_COLUMNS), the head
    of each chain its address is watched from (`from_blocks`), and its `created`
    event, whose payload is encoded here, once per payment (a batch retried row by
    row reuses it)."""
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
        "quote": _quote_json(payment.quote),
        "underpayment_tolerance_bps": payment.tolerance_bps,
        "watch_until": payment.watch_until,
        "checkout_token": payment.checkout_token,
        "description": payment.description,
        "return_url": payment.return_url,
        "event_id": created.event_id,
        "subject": outbox.event_subject(created),
        "payload": outbox.event_payload(created),
        "options": [
            {
                "payment_id": payment.id,
                "position": o.position,
                "chain_id": o.chain_id,
                "asset": o.asset,
                "token_address": o.token_address,
                "decimals": o.decimals,
                "amount_due": o.amount_due,
                "quote": _quote_json(o.quote),
                "confirmations_required": o.confirmations_required,
                "from_block": from_blocks.get(o.chain_id, 0),
            }
            for o in payment.options
        ],
    }


def _quote_json(quote: QuoteRecord | None) -> str | None:
    return None if quote is None else quote.json_text


async def create_payments(pool: asyncpg.Pool, rows: list[dict[str, Any]]) -> set[str]:
    """Insert payments, each with its options, deposit address and `created` outbox
    event, in one statement (autocommit: one implicit transaction). Returns the ids
    inserted; a row whose idempotency key already exists is not among them."""
    options = [o for r in rows for o in r["options"]]
    found = await pool.fetch(CREATE_PAYMENTS_SQL, *CREATE_COLUMNS.arrays(rows), *CREATE_OPTION_COLUMNS.arrays(options))
    return {r["id"] for r in found}


# ---------------------------------------------------------------- read

# The options of many payments, one index probe per payment (see _LOCK_BY_ADDRESS_SQL).
_OPTIONS_OF_SQL = (
    "SELECT o.* FROM unnest($1::varchar[]) AS k(payment_id) CROSS JOIN LATERAL "
    "(SELECT * FROM payment_options x WHERE x.payment_id = k.payment_id OFFSET 0) o ORDER BY o.payment_id, o.position"
)


async def attach_options(conn: AsyncConnection, payments: list[PaymentRecord]) -> list[PaymentRecord]:
    """Load each payment's options (PaymentRecord.options) in one round trip; the
    selected one is the option the payment's headline fields show."""
    if not payments:
        return payments
    rows = await (await driver(conn)).fetch(_OPTIONS_OF_SQL, sorted({p.id for p in payments}))
    by_payment: dict[str, list[PaymentOptionRecord]] = {}
    for r in rows:
        by_payment.setdefault(r["payment_id"], []).append(PaymentOptionRecord.from_row(r))
    for p in payments:
        p.options = by_payment.get(p.id, [])
        for o in p.options:
            o.selected = (o.chain_id, o.asset) == (p.chain_id, p.asset)
    return payments


async def _one(conn: AsyncConnection, row: Any) -> PaymentRecord | None:
    if row is None:
        return None
    return (await attach_options(conn, [PaymentRecord.from_row(row)]))[0]


async def payment_by_idempotency_key(conn: AsyncConnection, merchant_id: str, key: str) -> PaymentRecord | None:
    row = (
        await conn.execute(
            select(PAYMENTS).where(PAYMENTS.c.merchant_id == merchant_id, PAYMENTS.c.idempotency_key == key)
        )
    ).first()
    return await _one(conn, row)


async def get_payment(
    conn: AsyncConnection, payment_id: str, *, merchant_id: str | None = None, for_update: bool = False
) -> PaymentRecord | None:
    query = select(PAYMENTS).where(PAYMENTS.c.id == payment_id)
    if merchant_id is not None:
        query = query.where(PAYMENTS.c.merchant_id == merchant_id)
    if for_update:
        query = query.with_for_update()
    return await _one(conn, (await conn.execute(query)).first())


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
    """`chain_id`: only payments with an option on that chain."""
    query = select(PAYMENTS).where(PAYMENTS.c.merchant_id == merchant_id)
    if statuses:
        query = query.where(PAYMENTS.c.status.in_(statuses))
    if chain_id:
        query = query.where(
            exists().where(PAYMENT_OPTIONS.c.payment_id == PAYMENTS.c.id, PAYMENT_OPTIONS.c.chain_id == chain_id)
        )
    if merchant_order_id:
        query = query.where(PAYMENTS.c.merchant_order_id == merchant_order_id)
    if created_after is not None:
        query = query.where(PAYMENTS.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(PAYMENTS.c.created_at < created_before)
    if after is not None:
        query = query.where(func.row(PAYMENTS.c.created_at, PAYMENTS.c.id) < func.row(after[0], after[1]))
    query = query.order_by(PAYMENTS.c.created_at.desc(), PAYMENTS.c.id.desc()).limit(limit)
    return await attach_options(conn, [PaymentRecord.from_row(r) for r in await conn.execute(query)])


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
    payments = await attach_options(conn, [PaymentRecord.from_row(r) for r in rows])
    return {p.deposit_address: p for p in payments}


async def lock_payments(conn: AsyncConnection, payment_ids: list[str]) -> list[PaymentRecord]:
    """Lock payments in id order (so concurrent batches never deadlock)."""
    if not payment_ids:
        return []
    rows = await (await driver(conn)).fetch(
        "SELECT * FROM payments WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE", payment_ids
    )
    return await attach_options(conn, [PaymentRecord.from_row(r) for r in rows])


async def payments_to_expire(conn: AsyncConnection, now: datetime, limit: int) -> list[PaymentRecord]:
    query = (
        select(PAYMENTS)
        .where(PAYMENTS.c.expired_at.is_(None), PAYMENTS.c.expires_at <= now)
        .order_by(PAYMENTS.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return await attach_options(conn, [PaymentRecord.from_row(r) for r in await conn.execute(query)])


# ---------------------------------------------------------------- write back

# The fields payment_state.py re-derives or a use case sets, written back as they
# are on the record (PaymentRecord attributes of the same names; the headline
# fields repeat the selected option's).
PAYMENT_STATE_COLUMNS = ColumnList(
    Column("chain_id", "bigint"),
    Column("asset", "varchar"),
    Column("token_address", "varchar"),
    Column("decimals", "int"),
    Column("confirmations_required", "int"),
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
    Column("quote", "jsonb", _quote_json),
)
SAVE_PAYMENT_COLUMNS = ColumnList(Column("id", "varchar")) + PAYMENT_STATE_COLUMNS

# One statement for any number of payments (unnest: one array per column).
SAVE_PAYMENTS_SQL = f"""
UPDATE payments p SET {PAYMENT_STATE_COLUMNS.set_from("u")}
FROM {SAVE_PAYMENT_COLUMNS.unnest("u")}
WHERE p.id = u.id
"""

# The fields of each option payment_state.py re-derives or a use case sets, and
# whether its sweep job is due (PaymentRecord.option_sweepable).
OPTION_STATE_COLUMNS = ColumnList(
    Column("amount_due", "numeric", str),
    Column("amount_received", "numeric", str),
    Column("amount_confirmed", "numeric", str),
    Column("amount_swept", "numeric", str),
    Column("sweep_fee", "numeric", str),
    Column("sweep_dust", "numeric", str),
    Column("sweep_tx_hash", "varchar"),
    Column("status", "varchar", lambda status: status.value),
    Column("quote", "jsonb", _quote_json),
    Column("amount_refunded", "numeric", str),
    Column("deposit_refunded", "numeric", str),
    Column("deposit_refund_fee", "numeric", str),
)
SAVE_OPTION_COLUMNS = (
    ColumnList(Column("payment_id", "varchar"), Column("position", "int"))
    + OPTION_STATE_COLUMNS
    + ColumnList(Column("sweepable", "bool"), Column("now", "timestamptz"))
)
# An option that stops being sweepable (a reorg) loses its sweep eligibility and lease.
SAVE_OPTIONS_SQL = f"""
UPDATE payment_options o SET {OPTION_STATE_COLUMNS.set_from("u")},
    sweep_due_at = CASE WHEN u.sweepable THEN coalesce(o.sweep_due_at, u.now) END,
    sweep_claimed_by = CASE WHEN u.sweepable THEN o.sweep_claimed_by END,
    sweep_lease_until = CASE WHEN u.sweepable THEN o.sweep_lease_until END
FROM {SAVE_OPTION_COLUMNS.unnest("u")}
WHERE o.payment_id = u.payment_id AND o.position = u.position
"""


def option_state_rows(payments: list[PaymentRecord]) -> list[dict[str, Any]]:
    """Rows of SAVE_OPTION_COLUMNS: every option of these payments as derived now."""
    return [
        {
            "payment_id": p.id,
            "position": o.position,
            "amount_due": o.amount_due,
            "amount_received": o.amount_received,
            "amount_confirmed": o.amount_confirmed,
            "amount_swept": o.amount_swept,
            "sweep_fee": o.sweep_fee,
            "sweep_dust": o.sweep_dust,
            "sweep_tx_hash": o.sweep_tx_hash,
            "status": o.status,
            "quote": o.quote,
            "amount_refunded": o.amount_refunded,
            "deposit_refunded": o.deposit_refunded,
            "deposit_refund_fee": o.deposit_refund_fee,
            "sweepable": p.option_sweepable(o),
            "now": p.updated_at,
        }
        for p in payments
        for o in p.options
    ]


async def save_payment_states(conn: AsyncConnection, payments: list[PaymentRecord]) -> None:
    """Write the derived fields of payments the caller holds locked, and of their options."""
    if payments:
        db = await driver(conn)
        await db.execute(SAVE_PAYMENTS_SQL, *SAVE_PAYMENT_COLUMNS.arrays_of(payments))
        await db.execute(SAVE_OPTIONS_SQL, *SAVE_OPTION_COLUMNS.arrays(option_state_rows(payments)))


async def cancel_reason(conn: AsyncConnection, payment_id: str, reason: str) -> None:
    await conn.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment_id).values(cancel_reason=reason))


async def payment_by_checkout_token(conn: AsyncConnection, token: str) -> tuple[PaymentRecord, str] | None:
    """The payment of a checkout token with its options, and its merchant's name (one join)."""
    query = (
        select(PAYMENTS, MERCHANTS.c.name.label("merchant_name"))
        .join(MERCHANTS, MERCHANTS.c.id == PAYMENTS.c.merchant_id)
        .where(PAYMENTS.c.checkout_token == token)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    payment = await _one(conn, row)
    assert payment is not None
    return payment, row.merchant_name
