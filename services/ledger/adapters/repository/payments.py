"""SQL for the ledger. Every function takes the connection (the caller owns the
transaction) and returns plain records; nothing here decides business rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.domain.records import (
    MerchantRecord,
    PaymentRecord,
    SweepTxRecord,
    TransferRecord,
    WatchedAddressRecord,
)
from services.ledger.domain.status import PaymentStatus
from services.ledger.models import (
    ChainHead,
    DepositAddress,
    Merchant,
    OrphanedBlock,
    Outbox,
    Payment,
    SweepTransaction,
    Transfer,
    Treasury,
)

M, T, P, D, X, O, H, S, OB = (  # noqa: E741 - short aliases, renamed in the repository split
    Merchant.__table__,
    Treasury.__table__,
    Payment.__table__,
    DepositAddress.__table__,
    Transfer.__table__,
    Outbox.__table__,
    ChainHead.__table__,
    SweepTransaction.__table__,
    OrphanedBlock.__table__,
)


# ---------------------------------------------------------------- merchants


def _merchant(row: Any, treasuries: dict[int, str]) -> MerchantRecord:
    return MerchantRecord(
        id=row.id,
        name=row.name,
        status=row.status,
        api_key_prefix=row.api_key_prefix,
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
        xpub=row.xpub,
        derivation_path=row.derivation_path,
        next_address_index=row.next_address_index,
        created_at=row.created_at,
        treasuries=treasuries,
    )


async def insert_merchant(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(M).values(**values))


async def get_merchant(conn: AsyncConnection, merchant_id: str) -> MerchantRecord | None:
    row = (await conn.execute(select(M).where(M.c.id == merchant_id))).first()
    if row is None:
        return None
    rows = await conn.execute(select(T.c.chain_id, T.c.address).where(T.c.merchant_id == merchant_id))
    return _merchant(row, {r.chain_id: r.address for r in rows})


async def list_merchants(conn: AsyncConnection, after: tuple[datetime, str] | None, limit: int) -> list[MerchantRecord]:
    query = select(M).order_by(M.c.created_at, M.c.id).limit(limit)
    if after is not None:
        query = query.where(func.row(M.c.created_at, M.c.id) > func.row(after[0], after[1]))
    rows = (await conn.execute(query)).all()
    ids = [r.id for r in rows]
    treasuries: dict[str, dict[int, str]] = {i: {} for i in ids}
    if ids:
        for t in await conn.execute(select(T).where(T.c.merchant_id.in_(ids))):
            treasuries[t.merchant_id][t.chain_id] = t.address
    return [_merchant(r, treasuries[r.id]) for r in rows]


async def merchant_with_xpub(conn: AsyncConnection, xpub: str) -> str | None:
    return (await conn.execute(select(M.c.id).where(M.c.xpub == xpub).limit(1))).scalar_one_or_none()


async def merchant_auth(conn: AsyncConnection, key_hash: str) -> tuple[str, str] | None:
    row = (await conn.execute(select(M.c.id, M.c.status).where(M.c.api_key_hash == key_hash))).first()
    return (row.id, row.status) if row else None


async def update_merchant(conn: AsyncConnection, merchant_id: str, **values: Any) -> bool:
    result = await conn.execute(update(M).where(M.c.id == merchant_id).values(**values, updated_at=func.now()))
    return result.rowcount == 1


async def set_treasury(conn: AsyncConnection, merchant_id: str, chain_id: int, address: str) -> None:
    stmt = pg_insert(T).values(merchant_id=merchant_id, chain_id=chain_id, address=address)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=[T.c.merchant_id, T.c.chain_id], set_={"address": address})
    )


async def reserve_indexes(conn: AsyncConnection, merchant_id: str, count: int) -> tuple[int, str, str] | None:
    """Reserve `count` derivation indexes; returns (first index, xpub, derivation path)."""
    row = (
        await conn.execute(
            update(M)
            .where(M.c.id == merchant_id)
            .values(next_address_index=M.c.next_address_index + count)
            .returning(M.c.next_address_index, M.c.xpub, M.c.derivation_path)
        )
    ).first()
    if row is None:
        return None
    return row.next_address_index - count, row.xpub, row.derivation_path


# ---------------------------------------------------------------- payments


def _payment(row: Any) -> PaymentRecord:
    """From a SQLAlchemy Row or an asyncpg Record."""
    row = getattr(row, "_mapping", row)
    metadata = row["metadata"]
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return PaymentRecord(
        id=row["id"],
        merchant_id=row["merchant_id"],
        chain_id=row["chain_id"],
        asset=row["asset"],
        token_address=row["token_address"],
        decimals=row["decimals"],
        amount_due=int(row["amount_due"]),
        amount_received=int(row["amount_received"]),
        amount_confirmed=int(row["amount_confirmed"]),
        amount_swept=int(row["amount_swept"]),
        status=PaymentStatus(row["status"]),
        late=row["late"],
        merchant_order_id=row["merchant_order_id"],
        metadata=metadata or {},
        deposit_address=row["deposit_address"],
        derivation_index=row["derivation_index"],
        derivation_path=row["derivation_path"],
        confirmations_required=row["confirmations_required"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        expired_at=row["expired_at"],
        cancelled_at=row["cancelled_at"],
        sweep_tx_hash=row["sweep_tx_hash"],
        request_fingerprint=row["request_fingerprint"],
        sweep_fee=int(row["sweep_fee"]),
        sweep_dust=int(row["sweep_dust"]),
    )


def _arrays(
    rows: list[dict[str, Any]], columns: Sequence[str], convert: dict[str, Callable[[Any], Any]] | None = None
) -> list[list[Any]]:
    """One array per column (`convert` applied where given), for the
    `unnest($1::type[], ...)` statements that write many rows at once."""
    convert = convert or {}
    return [[convert[c](r[c]) for r in rows] if c in convert else [r[c] for r in rows] for c in columns]


# One statement, one round trip for a batch of new payments (create_batch.py):
# each payment, its deposit address and its `created` outbox event are written
# together or not at all. Rows are unnested from one array per column.
# ON CONFLICT makes a concurrent retry with the same idempotency key wait for
# the first insert and then write nothing (the caller then reads the existing
# payment); a key repeated inside one batch inserts once, the same way.
# ORDER BY: every batch takes the idempotency-key index entries in the same
# order, so two batches sharing keys (retries racing on two replicas) wait for
# each other instead of deadlocking.
CREATE_PAYMENTS_SQL = """
WITH input AS (
  SELECT * FROM unnest(
      $1::varchar[], $2::varchar[], $3::bigint[], $4::varchar[], $5::varchar[], $6::int[], $7::numeric[],
      $8::varchar[], $9::jsonb[], $10::varchar[], $11::varchar[], $12::varchar[], $13::bigint[],
      $14::varchar[], $15::int[], $16::timestamptz[], $17::timestamptz[], $18::bigint[], $19::uuid[],
      $20::varchar[], $21::bytea[])
    AS t(id, merchant_id, chain_id, asset, token_address, decimals, amount_due, merchant_order_id,
         metadata, idempotency_key, request_fingerprint, deposit_address, derivation_index,
         derivation_path, confirmations_required, created_at, expires_at, from_block, event_id,
         subject, payload)
), ins AS (
  INSERT INTO payments (id, merchant_id, chain_id, asset, token_address, decimals, amount_due,
      status, merchant_order_id, metadata, idempotency_key, request_fingerprint, deposit_address,
      derivation_index, derivation_path, confirmations_required, created_at, updated_at, expires_at)
  SELECT id, merchant_id, chain_id, asset, token_address, decimals, amount_due, 'pending',
      merchant_order_id, metadata, idempotency_key, request_fingerprint, deposit_address,
      derivation_index, derivation_path, confirmations_required, created_at, created_at, expires_at
  FROM input ORDER BY merchant_id, idempotency_key, id
  ON CONFLICT (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
), addr AS (
  INSERT INTO deposit_addresses (chain_id, address, merchant_id, payment_id, derivation_index,
      from_block, created_at)
  SELECT i.chain_id, i.deposit_address, i.merchant_id, i.id, i.derivation_index, i.from_block, i.created_at
  FROM input i JOIN ins USING (id)
), evt AS (
  INSERT INTO outbox (event_id, merchant_id, payment_id, event_type, subject, payload, created_at)
  SELECT i.event_id, i.merchant_id, i.id, 'created', i.subject, i.payload, i.created_at
  FROM input i JOIN ins USING (id) ORDER BY i.created_at, i.id
)
SELECT id FROM ins
"""

_CREATE_COLUMNS = (
    "id",
    "merchant_id",
    "chain_id",
    "asset",
    "token_address",
    "decimals",
    "amount_due",
    "merchant_order_id",
    "metadata",
    "idempotency_key",
    "request_fingerprint",
    "deposit_address",
    "derivation_index",
    "derivation_path",
    "confirmations_required",
    "created_at",
    "expires_at",
    "from_block",
    "event_id",
    "subject",
    "payload",
)


async def create_payments(pool: asyncpg.Pool, rows: list[dict[str, Any]]) -> set[str]:
    """Insert payments, each with its deposit address and `created` outbox event,
    in one statement (autocommit: one implicit transaction). Returns the ids
    inserted; a row whose idempotency key already exists is not among them."""
    arrays = _arrays(rows, _CREATE_COLUMNS, {"amount_due": str, "metadata": json.dumps})
    found = await pool.fetch(CREATE_PAYMENTS_SQL, *arrays)
    return {r["id"] for r in found}


async def payment_by_idempotency_key(conn: AsyncConnection, merchant_id: str, key: str) -> PaymentRecord | None:
    row = (await conn.execute(select(P).where(P.c.merchant_id == merchant_id, P.c.idempotency_key == key))).first()
    return _payment(row) if row else None


async def get_payment(
    conn: AsyncConnection, payment_id: str, *, merchant_id: str | None = None, for_update: bool = False
) -> PaymentRecord | None:
    query = select(P).where(P.c.id == payment_id)
    if merchant_id is not None:
        query = query.where(P.c.merchant_id == merchant_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _payment(row) if row else None


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy one, inside the same transaction.
    The chain-event hot path uses it to skip per-statement ORM overhead."""
    return (await conn.get_raw_connection()).driver_connection


def _transfer(row: Any) -> TransferRecord:
    row = getattr(row, "_mapping", row)
    return TransferRecord(
        chain_id=row["chain_id"],
        tx_hash=row["tx_hash"],
        log_index=row["log_index"],
        block_number=row["block_number"],
        block_hash=row["block_hash"],
        from_address=row["from_address"],
        amount=int(row["amount"]),
        state=row["state"],
        credited=row["credited"],
        late=row["late"],
        observed_at=row["created_at"],
        token_address=row["token_address"],
        asset=row["asset"],
        kind=row["kind"],
    )


# Batch lookups by key are written as one index probe per key (LATERAL ...
# OFFSET 0 keeps the planner from flattening them into a join). With `= ANY`,
# tables that grew since the last ANALYZE (a new deployment, a burst) get
# estimates from default selectivities and a sequential scan per batch, which
# slows every batch as the table grows.


async def transfers_of_many(conn: AsyncConnection, payment_ids: list[str]) -> dict[str, list[TransferRecord]]:
    rows = await (await driver(conn)).fetch(
        "SELECT t.* FROM unnest($1::varchar[]) AS k(payment_id) CROSS JOIN LATERAL "
        "(SELECT * FROM transfers x WHERE x.payment_id = k.payment_id OFFSET 0) t ORDER BY t.id",
        sorted(set(payment_ids)),  # each key once: a repeated key would repeat its rows
    )
    out: dict[str, list[TransferRecord]] = {}
    for r in rows:
        out.setdefault(r["payment_id"], []).append(_transfer(r))
    return out


async def lock_payments_by_address(
    conn: AsyncConnection, chain_id: int, addresses: list[str]
) -> dict[str, PaymentRecord]:
    """Lock the payments of these deposit addresses (in id order, so batches never deadlock)."""
    rows = await (await driver(conn)).fetch(
        "SELECT p.* FROM unnest($2::varchar[]) AS k(address) CROSS JOIN LATERAL "
        "(SELECT payment_id FROM deposit_addresses d WHERE d.chain_id = $1 AND d.address = k.address OFFSET 0) d "
        "JOIN payments p ON p.id = d.payment_id ORDER BY p.id FOR UPDATE OF p",
        chain_id,
        sorted(set(addresses)),
    )
    return {r["deposit_address"]: _payment(r) for r in rows}


_INSERT_TRANSFERS = """
INSERT INTO transfers (chain_id, tx_hash, log_index, block_hash, block_number, block_timestamp,
    from_address, to_address, token_address, amount, payment_id, state, credited, late, asset, kind)
SELECT t.* FROM unnest($1::bigint[], $2::varchar[], $3::bigint[], $4::varchar[], $5::bigint[], $6::timestamptz[],
    $7::varchar[], $8::varchar[], $9::varchar[], $10::numeric[], $11::varchar[], $12::varchar[], $13::boolean[],
    $14::boolean[], $15::varchar[], $16::varchar[]) AS t(chain_id, tx_hash, log_index, block_hash, block_number,
    block_timestamp, from_address, to_address, token_address, amount, payment_id, state, credited, late, asset, kind)
WHERE NOT EXISTS (SELECT 1 FROM orphaned_blocks o WHERE o.chain_id = t.chain_id AND o.block_hash = t.block_hash)
ON CONFLICT ON CONSTRAINT uq_transfers_identity DO NOTHING
RETURNING payment_id
"""


async def insert_transfers(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert many transfers in one statement (replays and orphaned blocks are
    skipped); returns the payment ids that got a new transfer."""
    if not rows:
        return set()
    columns = [
        "chain_id",
        "tx_hash",
        "log_index",
        "block_hash",
        "block_number",
        "block_timestamp",
        "from_address",
        "to_address",
        "token_address",
        "amount",
        "payment_id",
        "state",
        "credited",
        "late",
        "asset",
        "kind",
    ]
    result = await (await driver(conn)).fetch(_INSERT_TRANSFERS, *_arrays(rows, columns, {"amount": str}))
    return {r["payment_id"] for r in result}


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


async def mark_gas_topup_transfers(conn: AsyncConnection, payment_id: str, tx_hash: str) -> None:
    """Transfers of this payment in a just-recorded gas top-up are top-ups (for a
    transfer recorded first: a restored database, a hand-made top-up recorded late)."""
    await conn.execute(
        update(X)
        .where(X.c.payment_id == payment_id, X.c.tx_hash == tx_hash, X.c.token_address.is_(None))
        .values(kind="gas_topup")
    )


async def transfers_of(conn: AsyncConnection, payment_id: str) -> list[TransferRecord]:
    rows = await (await driver(conn)).fetch("SELECT * FROM transfers WHERE payment_id = $1 ORDER BY id", payment_id)
    return [_transfer(r) for r in rows]


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
    query = select(P).where(P.c.merchant_id == merchant_id)
    if statuses:
        query = query.where(P.c.status.in_(statuses))
    if chain_id:
        query = query.where(P.c.chain_id == chain_id)
    if merchant_order_id:
        query = query.where(P.c.merchant_order_id == merchant_order_id)
    if created_after is not None:
        query = query.where(P.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(P.c.created_at < created_before)
    if after is not None:
        query = query.where(func.row(P.c.created_at, P.c.id) < func.row(after[0], after[1]))
    query = query.order_by(P.c.created_at.desc(), P.c.id.desc()).limit(limit)
    return [_payment(r) for r in await conn.execute(query)]


# One statement for any number of payments (unnest: one array per column).
_SAVE_PAYMENTS = """
UPDATE payments p SET amount_received = u.amount_received, amount_confirmed = u.amount_confirmed,
    amount_swept = u.amount_swept, status = u.status, late = u.late, version = u.version,
    updated_at = u.updated_at, expired_at = u.expired_at, cancelled_at = u.cancelled_at,
    sweep_tx_hash = u.sweep_tx_hash, sweep_fee = u.sweep_fee, sweep_dust = u.sweep_dust,
    sweep_due_at = CASE WHEN u.sweepable THEN coalesce(p.sweep_due_at, u.updated_at) END,
    sweep_claimed_by = CASE WHEN u.sweepable THEN p.sweep_claimed_by END,
    sweep_lease_until = CASE WHEN u.sweepable THEN p.sweep_lease_until END
FROM unnest($1::varchar[], $2::numeric[], $3::numeric[], $4::numeric[], $5::varchar[], $6::bool[],
            $7::bigint[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::varchar[], $12::bool[],
            $13::numeric[], $14::numeric[])
    AS u(id, amount_received, amount_confirmed, amount_swept, status, late, version, updated_at,
         expired_at, cancelled_at, sweep_tx_hash, sweepable, sweep_fee, sweep_dust)
WHERE p.id = u.id
"""


async def save_payment_states(conn: AsyncConnection, rows: list[tuple[PaymentRecord, bool]]) -> None:
    """Write the derived fields of payments the caller holds locked. A payment
    that stops being sweepable (a reorg) loses its sweep eligibility and lease."""
    if rows:
        await (await driver(conn)).execute(
            _SAVE_PAYMENTS,
            [p.id for p, _ in rows],
            [str(p.amount_received) for p, _ in rows],
            [str(p.amount_confirmed) for p, _ in rows],
            [str(p.amount_swept) for p, _ in rows],
            [p.status.value for p, _ in rows],
            [p.late for p, _ in rows],
            [p.version for p, _ in rows],
            [p.updated_at for p, _ in rows],
            [p.expired_at for p, _ in rows],
            [p.cancelled_at for p, _ in rows],
            [p.sweep_tx_hash for p, _ in rows],
            [sweepable for _, sweepable in rows],
            [str(p.sweep_fee) for p, _ in rows],
            [str(p.sweep_dust) for p, _ in rows],
        )


async def cancel_reason(conn: AsyncConnection, payment_id: str, reason: str) -> None:
    await conn.execute(update(P).where(P.c.id == payment_id).values(cancel_reason=reason))


async def payments_to_expire(conn: AsyncConnection, now: datetime, limit: int) -> list[PaymentRecord]:
    query = (
        select(P)
        .where(P.c.expired_at.is_(None), P.c.expires_at <= now)
        .order_by(P.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_payment(r) for r in await conn.execute(query)]


# ---------------------------------------------------------------- outbox


async def insert_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Write payment events to the outbox, in order, in one statement."""
    if rows:
        await (await driver(conn)).execute(
            "INSERT INTO outbox (event_id, merchant_id, payment_id, event_type, subject, payload, created_at) "
            "SELECT event_id, merchant_id, payment_id, event_type, subject, payload, created_at "
            "FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::bytea[], "
            "$7::timestamptz[]) WITH ORDINALITY "
            "AS e(event_id, merchant_id, payment_id, event_type, subject, payload, created_at, n) ORDER BY n",
            *_arrays(rows, ("event_id", "merchant_id", "payment_id", "event_type", "subject", "payload", "created_at")),
        )


# Claim and mark in one statement, inside the relay's transaction: the marks
# commit only after JetStream acked every event (see outbox.OutboxRelay).
CLAIM_OUTBOX_SQL = """
UPDATE outbox SET published_at = $1
WHERE id IN (
    SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id, event_id::text, subject, payload
"""


async def claim_unpublished(conn: asyncpg.Connection, limit: int, now: datetime) -> list[asyncpg.Record]:
    """Up to `limit` unpublished events, oldest first, marked published in the
    caller's (still open) transaction."""
    # A custom plan for this transaction: a generic plan cached while the outbox was
    # small would scan it whole once it holds days of published events (see
    # services/common/db.py). Not pool-wide: planning CreatePayment's statement
    # afresh every time would cost more than it saves.
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    rows = await conn.fetch(CLAIM_OUTBOX_SQL, now, limit)
    return sorted(rows, key=lambda r: r["id"])


async def prune_published(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(O).where(O.c.published_at < before))
    return result.rowcount


# ---------------------------------------------------------------- chain state


async def get_heads(conn: AsyncConnection) -> dict[int, int]:
    return {r.chain_id: r.number for r in await conn.execute(select(H.c.chain_id, H.c.number))}


async def set_head(conn: AsyncConnection, chain_id: int, number: int, block_hash: str, *, force: bool = False) -> None:
    """Move the head forward (or anywhere with force=True, after a reorg)."""
    stmt = pg_insert(H).values(chain_id=chain_id, number=number, hash=block_hash)
    condition = None if force else (H.c.number <= number)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[H.c.chain_id],
            set_={"number": number, "hash": block_hash, "updated_at": func.now()},
            where=condition,
        )
    )


# The rule of services/common/confirmations.py (last_confirmed_block) in SQL, per
# payment: each keeps the depth it was created with (confirmations_required), so a
# change of chains.yaml applies to new payments only. The partial index on seen
# transfers keeps this to the few that wait.
_CONFIRM_TRANSFERS = """
UPDATE transfers x SET state = 'confirmed'
FROM payments p
WHERE p.id = x.payment_id AND x.chain_id = $1 AND x.state = 'seen'
  AND x.block_number <= $2 - p.confirmations_required + 1
RETURNING x.payment_id
"""


async def confirm_transfers(conn: AsyncConnection, chain_id: int, head: int) -> list[str]:
    """Mark confirmed the seen transfers that have their payment's confirmations at
    `head`; return their payment ids."""
    rows = await (await driver(conn)).fetch(_CONFIRM_TRANSFERS, chain_id, head)
    return sorted({r["payment_id"] for r in rows if r["payment_id"]})


async def orphan_blocks(conn: AsyncConnection, chain_id: int, block_hashes: list[str]) -> list[str]:
    """Record orphaned blocks and orphan their transfers; return affected payment ids."""
    if not block_hashes:
        return []
    await conn.execute(
        pg_insert(OB).values([{"chain_id": chain_id, "block_hash": h} for h in block_hashes]).on_conflict_do_nothing()
    )
    result = await conn.execute(
        update(X)
        .where(X.c.chain_id == chain_id, X.c.block_hash.in_(block_hashes), X.c.state != "orphaned")
        .values(state="orphaned")
        .returning(X.c.payment_id)
    )
    return sorted({r.payment_id for r in result if r.payment_id})


async def lock_payments(conn: AsyncConnection, payment_ids: list[str]) -> list[PaymentRecord]:
    """Lock payments in id order (so concurrent batches never deadlock)."""
    if not payment_ids:
        return []
    rows = await (await driver(conn)).fetch(
        "SELECT * FROM payments WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE", payment_ids
    )
    return [_payment(r) for r in rows]


# ---------------------------------------------------------------- watched addresses


_FEED_COLUMNS = (D.c.id, D.c.chain_id, D.c.address, D.c.payment_id, D.c.from_block, D.c.created_at)


async def xmin_horizon(conn: AsyncConnection) -> int:
    """Transactions with ids below this have all finished (committed or aborted)."""
    return (await conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))).scalar_one()


async def active_addresses(
    conn: AsyncConnection, chain_id: int, *, after_id: int, active_since: datetime, limit: int
) -> list[tuple[WatchedAddressRecord, int]]:
    """Addresses of payments that can still receive funds worth watching (not
    expired before `active_since`), in id order, with their txid."""
    query = (
        select(*_FEED_COLUMNS, D.c.txid)
        .join(P, P.c.id == D.c.payment_id)
        .where(D.c.chain_id == chain_id, D.c.id > after_id, P.c.expires_at >= active_since)
        .order_by(D.c.id)
        .limit(limit)
    )
    return [(_watched(r), r.txid) for r in await conn.execute(query)]


async def addresses_since(
    conn: AsyncConnection, chain_id: int, min_txid: int
) -> list[tuple[WatchedAddressRecord, int]]:
    query = select(*_FEED_COLUMNS, D.c.txid).where(D.c.chain_id == chain_id, D.c.txid >= min_txid)
    return [(_watched(r), r.txid) for r in await conn.execute(query)]


def _watched(r: Any) -> WatchedAddressRecord:
    return WatchedAddressRecord(
        id=r.id,
        chain_id=r.chain_id,
        address=r.address,
        payment_id=r.payment_id,
        from_block=r.from_block,
        created_at=r.created_at,
    )


# ---------------------------------------------------------------- sweeps


def _sweep_tx(row: Any) -> SweepTxRecord:
    return SweepTxRecord(
        id=row.id,
        payment_id=row.payment_id,
        merchant_id=row.merchant_id,
        chain_id=row.chain_id,
        kind=row.kind,
        state=row.state,
        tx_hash=row.tx_hash,
        raw_tx=row.raw_tx,
        nonce=row.nonce,
        from_address=row.from_address,
        to_address=row.to_address,
        amount=int(row.amount),
        token_address=row.token_address,
        gas_limit=row.gas_limit,
        max_fee_per_gas=int(row.max_fee_per_gas),
        max_priority_fee_per_gas=None if row.max_priority_fee_per_gas is None else int(row.max_priority_fee_per_gas),
        block_number=row.block_number,
        error=row.error,
        replaces_tx_hash=row.replaces_tx_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
        fee=None if row.fee is None else int(row.fee),
        l1_fee_reserve=int(row.l1_fee_reserve),
    )


async def claim_sweeps(
    conn: AsyncConnection, chain_id: int, worker_id: str, lease_until: datetime, now: datetime, limit: int
) -> list[Any]:
    candidates = (
        select(P.c.id)
        .where(
            P.c.chain_id == chain_id,
            P.c.sweep_due_at <= now,
            (P.c.sweep_lease_until.is_(None)) | (P.c.sweep_lease_until < now) | (P.c.sweep_claimed_by == worker_id),
        )
        .order_by(P.c.sweep_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await conn.execute(
        update(P)
        .where(P.c.id.in_(candidates))
        .values(sweep_claimed_by=worker_id, sweep_lease_until=lease_until)
        .returning(*P.c)
    )
    return list(result)


async def treasury_of(conn: AsyncConnection, merchant_id: str, chain_id: int) -> str:
    row = (
        await conn.execute(select(T.c.address).where(T.c.merchant_id == merchant_id, T.c.chain_id == chain_id))
    ).first()
    return row.address if row else ""


async def sweep_txs_of(conn: AsyncConnection, payment_id: str) -> list[SweepTxRecord]:
    rows = await conn.execute(select(S).where(S.c.payment_id == payment_id).order_by(S.c.id))
    return [_sweep_tx(r) for r in rows]


async def insert_sweep_tx(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(pg_insert(S).values(**values).on_conflict_do_nothing(index_elements=[S.c.tx_hash]))


async def get_sweep_tx(conn: AsyncConnection, tx_hash: str, *, for_update: bool = False) -> SweepTxRecord | None:
    query = select(S).where(S.c.tx_hash == tx_hash)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _sweep_tx(row) if row else None


async def update_sweep_tx(conn: AsyncConnection, tx_hash: str, **values: Any) -> None:
    await conn.execute(update(S).where(S.c.tx_hash == tx_hash).values(**values, updated_at=func.now()))


async def list_sweep_txs(
    conn: AsyncConnection,
    *,
    chain_id: int,
    payment_id: str,
    merchant_id: str,
    states: list[str],
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[SweepTxRecord]:
    query = select(S)
    if chain_id:
        query = query.where(S.c.chain_id == chain_id)
    if payment_id:
        query = query.where(S.c.payment_id == payment_id)
    if merchant_id:
        query = query.where(S.c.merchant_id == merchant_id)
    if states:
        query = query.where(S.c.state.in_(states))
    if after is not None:
        query = query.where(func.row(S.c.created_at, S.c.id) < func.row(after[0], after[1]))
    query = query.order_by(S.c.created_at.desc(), S.c.id.desc()).limit(limit)
    return [_sweep_tx(r) for r in await conn.execute(query)]


async def release_sweep(conn: AsyncConnection, payment_id: str, worker_id: str, error: str, due_at: datetime) -> bool:
    result = await conn.execute(
        update(P)
        .where(P.c.id == payment_id, P.c.sweep_claimed_by == worker_id)
        .values(
            sweep_claimed_by=None,
            sweep_lease_until=None,
            sweep_last_error=error,
            sweep_attempts=P.c.sweep_attempts + 1,
            sweep_due_at=due_at,
        )
    )
    return result.rowcount == 1


async def request_sweep(conn: AsyncConnection, now: datetime, *, payment_id: str = "", merchant_id: str = "") -> int:
    query = update(P).where(P.c.sweep_due_at.is_not(None))
    query = query.where(P.c.id == payment_id) if payment_id else query.where(P.c.merchant_id == merchant_id)
    result = await conn.execute(query.values(sweep_due_at=now, sweep_lease_until=None, sweep_claimed_by=None))
    return result.rowcount


async def holds_lease(conn: AsyncConnection, payment_id: str, worker_id: str, now: datetime) -> bool:
    row = (
        await conn.execute(
            select(P.c.id).where(P.c.id == payment_id, P.c.sweep_claimed_by == worker_id, P.c.sweep_lease_until >= now)
        )
    ).first()
    return row is not None
