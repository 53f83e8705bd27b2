"""SQL of the outbox: payment events written in the transaction of the change that
caused them, claimed and marked published by the relay (outbox.py).

An outbox row holds the event as it goes on the wire: its NATS subject
(`paymesh.payments.<merchant>.<type>`) and its payload, the `PaymentEvent`
protobuf (api/convert.py, the one place records become protobuf). The encoding is
here, at the edge where the event is stored, so the use cases hand over plain
`PaymentEventRecord`s; each event is encoded once, when it is written.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.nats_helpers import payment_subject
from services.ledger.adapters.db import driver
from services.ledger.adapters.models import OUTBOX
from services.ledger.adapters.repository.bulk import Column, ColumnList
from services.ledger.api.convert import audit_event_to_pb, event_to_pb, payout_event_to_pb
from services.ledger.domain.payouts import PayoutEventRecord
from services.ledger.domain.records import PaymentEventRecord

CONFIG_CHANGED = "config_changed"  # the event of an audit entry (PaymentEventType CONFIG_CHANGED)

OUTBOX_COLUMNS = ColumnList(
    Column("event_id", "uuid"),
    Column("merchant_id", "varchar"),
    Column("payment_id", "varchar"),
    Column("event_type", "varchar"),
    Column("subject", "varchar"),
    Column("payload", "bytea"),
    Column("created_at", "timestamptz"),
)

# In the given order, in one statement (ORDINALITY keeps the order of the arrays).
INSERT_EVENTS_SQL = (
    f"INSERT INTO outbox ({OUTBOX_COLUMNS.select()}) "
    f"SELECT {OUTBOX_COLUMNS.select()} FROM {OUTBOX_COLUMNS.unnest('e', ordinality='n')} ORDER BY n"
)


def event_subject(event: PaymentEventRecord) -> str:
    return payment_subject(event.payment.merchant_id, event.event_type)


def event_payload(event: PaymentEventRecord) -> bytes:
    """The event as published: a serialized paymesh.events.v1.PaymentEvent."""
    return event_to_pb(event).SerializeToString()


def event_row(event: PaymentEventRecord) -> dict[str, Any]:
    """One row of OUTBOX_COLUMNS."""
    return {
        "event_id": event.event_id,
        "merchant_id": event.payment.merchant_id,
        "payment_id": event.payment.id,
        "event_type": event.event_type,
        "subject": event_subject(event),
        "payload": event_payload(event),
        "created_at": event.created_at,
    }


def payout_event_row(event: PayoutEventRecord) -> dict[str, Any]:
    """One row of OUTBOX_COLUMNS for a refund or payout event (payment_id: the refunded
    payment, the payout's id for a payout)."""
    payout = event.payout
    return {
        "event_id": event.event_id,
        "merchant_id": payout.merchant_id,
        "payment_id": payout.payment_id or payout.id,
        "event_type": event.event_type,
        "subject": payment_subject(payout.merchant_id, event.event_type),
        "payload": payout_event_to_pb(event).SerializeToString(),
        "created_at": event.created_at,
    }


async def insert_payout_events(conn: AsyncConnection, events: list[PayoutEventRecord]) -> None:
    """Write refund and payout events to the outbox, in order, in one statement."""
    if events:
        rows = [payout_event_row(e) for e in events]
        await (await driver(conn)).execute(INSERT_EVENTS_SQL, *OUTBOX_COLUMNS.arrays(rows))


async def insert_audit_event(conn: AsyncConnection, entry: Any) -> None:
    """The config_changed event of one audit entry (an audit_log row), in the outbox."""
    event_id = str(uuid.uuid4())
    row = {
        "event_id": event_id,
        "merchant_id": entry.merchant_id,
        "payment_id": "",
        "event_type": CONFIG_CHANGED,
        "subject": payment_subject(entry.merchant_id, CONFIG_CHANGED),
        "payload": audit_event_to_pb(event_id, entry).SerializeToString(),
        "created_at": entry.created_at,
    }
    await (await driver(conn)).execute(INSERT_EVENTS_SQL, *OUTBOX_COLUMNS.arrays([row]))


async def insert_events(conn: AsyncConnection, events: list[PaymentEventRecord]) -> None:
    """Write payment events to the outbox, in order, in one statement."""
    if events:
        rows = [event_row(e) for e in events]
        await (await driver(conn)).execute(INSERT_EVENTS_SQL, *OUTBOX_COLUMNS.arrays(rows))


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
    result = await conn.execute(delete(OUTBOX).where(OUTBOX.c.published_at < before))
    return result.rowcount


# ---------------------------------------------------------------- the events API

# A merchant's events after a cursor (txid, id), in that order, only from
# transactions below the oldest still running (all of them finished): a row that
# commits later always sorts after every row already returned, so a reader paging
# by this cursor never misses one (the address feed's rule, watched_address_feed.py).
_EVENTS_SQL = """
SELECT txid, id, event_id::text, event_type, payload, created_at FROM outbox
WHERE merchant_id = $1
  AND (txid, id) > ($2, $3)
  AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
  AND (cardinality($4::varchar[]) = 0 OR event_type = ANY($4::varchar[]))
  AND ($5 = '' OR payment_id = $5)
ORDER BY txid, id
LIMIT $6
"""


async def list_events(
    conn: AsyncConnection,
    merchant_id: str,
    *,
    after: tuple[int, int],
    types: list[str],
    payment_id: str,
    limit: int,
) -> list[asyncpg.Record]:
    """Rows (txid, id, event_id, event_type, payload, created_at) of the merchant's
    events after the cursor `after` (txid, id)."""
    return await (await driver(conn)).fetch(_EVENTS_SQL, merchant_id, after[0], after[1], types, payment_id, limit)


async def event_cursor(conn: AsyncConnection, merchant_id: str, event_id: str) -> tuple[int, int] | None:
    """The (txid, id) of one of the merchant's events, if it is still kept."""
    row = await (await driver(conn)).fetchrow(
        "SELECT txid, id FROM outbox WHERE event_id = $1::uuid AND merchant_id = $2", event_id, merchant_id
    )
    return None if row is None else (row["txid"], row["id"])
