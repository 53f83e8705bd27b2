"""SQL of the notifier (SQLAlchemy Core on asyncpg). Every function takes an open
connection; the caller owns the transaction.

Life of an event and its deliveries:
- intake inserts the event into notifier_events (unique event_id: a replayed event
  is a no-op);
- routing inserts one `pending` delivery per endpoint that wants it, due now, with
  the event's body (unique (event_id, endpoint_id): routing twice is a no-op), and
  marks the event routed in the same commit;
- a claim leases due rows with FOR UPDATE SKIP LOCKED (replicas share the work):
  it bumps the attempt counters, pushes next_attempt_at to the end of the lease
  and writes the attempt row `in_progress` (write-ahead), all in one commit;
- the attempt's result completes the attempt row and moves the delivery on
  (succeeded / next retry / dead letter), guarded by the lease token;
- a process killed mid-attempt leaves the row leased: when the lease ends it is
  due again, and the next claim marks the unfinished attempt `interrupted`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, literal, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifier.adapters.models import attempts as A
from services.notifier.adapters.models import deliveries as D
from services.notifier.adapters.models import events as E
from services.notifier.domain.records import (
    AttemptDone,
    AttemptOutcome,
    AttemptRecord,
    AttemptVoid,
    ClaimedDelivery,
    DeliveryRecord,
    DeliveryState,
    ListFilter,
    NewEvent,
)

INTERRUPTED_ERROR = "interrupted: the notifier stopped during this attempt; its result is unknown"


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- intake


async def insert_events(conn: AsyncConnection, rows: Sequence[NewEvent], now: datetime) -> None:
    """Insert events taken in, to be routed now; events already taken in are skipped."""
    if not rows:
        return
    stmt = insert(E).on_conflict_do_nothing(index_elements=[E.c.event_id])
    await conn.execute(
        stmt,
        [
            {
                "event_id": r.event_id,
                "event_type": r.event_type,
                "merchant_id": r.merchant_id,
                "payment_id": r.payment_id,
                "body": r.body,
                "event_created_at": r.event_created_at,
                "created_at": now,
                "route_after": now,
            }
            for r in rows
        ],
    )


# ---------------------------------------------------------------- routing


async def unrouted_events(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str, str]]:
    """(event id, type, merchant) of events due to be routed, oldest first."""
    rows = await conn.execute(
        select(E.c.event_id, E.c.event_type, E.c.merchant_id)
        .where(E.c.routed_at.is_(None), E.c.route_after <= now)
        .order_by(E.c.route_after, E.c.created_at)
        .limit(limit)
    )
    return [(str(r.event_id), r.event_type, r.merchant_id) for r in rows]


_ROUTE = text(
    """
INSERT INTO notifier_deliveries
    (id, event_id, endpoint_id, event_type, merchant_id, payment_id, body, event_created_at,
     state, next_attempt_at, created_at, updated_at)
SELECT r.id, e.event_id, r.endpoint_id, e.event_type, e.merchant_id, e.payment_id, e.body, e.event_created_at,
       'pending', :now, :now, :now
FROM unnest(CAST(:ids AS uuid[]), CAST(:event_ids AS uuid[]), CAST(:endpoint_ids AS text[]))
     AS r(id, event_id, endpoint_id)
JOIN notifier_events e ON e.event_id = r.event_id
ON CONFLICT (event_id, endpoint_id) DO NOTHING
"""
)


async def route_events(
    conn: AsyncConnection,
    routes: Sequence[tuple[str, str]],
    routed: Sequence[str],
    postponed: Sequence[str],
    now: datetime,
    retry_at: datetime,
) -> None:
    """Insert a pending delivery per (event id, endpoint id) in `routes` (a pair already
    there is skipped), mark the `routed` events routed, and hold the `postponed` ones
    back until `retry_at`."""
    if routes:
        await conn.execute(
            _ROUTE,
            {
                "ids": [new_id() for _ in routes],
                "event_ids": [e for e, _ in routes],
                "endpoint_ids": [p for _, p in routes],
                "now": now,
            },
        )
    if routed:
        await conn.execute(update(E).where(E.c.event_id.in_(list(routed))).values(routed_at=now))
    if postponed:
        await conn.execute(update(E).where(E.c.event_id.in_(list(postponed))).values(route_after=retry_at))


# ---------------------------------------------------------------- claims

_CLAIM = text(
    """
WITH candidates AS (
    SELECT id, merchant_id, endpoint_id, next_attempt_at
    FROM notifier_deliveries
    WHERE state = 'pending' AND next_attempt_at <= :now
      AND (merchant_id || '/' || endpoint_id) <> ALL(CAST(:excluded AS text[]))
    ORDER BY next_attempt_at
    LIMIT :window
), ranked AS (
    SELECT id, row_number() OVER (PARTITION BY merchant_id, endpoint_id ORDER BY next_attempt_at) AS rn
    FROM candidates
), picked AS (
    SELECT d.id, d.lease_token AS old_token
    FROM notifier_deliveries d
    JOIN ranked r ON r.id = d.id AND r.rn <= :per_endpoint
    WHERE d.state = 'pending' AND d.next_attempt_at <= :now
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE notifier_deliveries d
SET next_attempt_at = :lease_until,
    lease_token = CAST(:token AS uuid),
    attempt_count = d.attempt_count + 1,
    cycle_attempts = d.cycle_attempts + 1,
    updated_at = :now
FROM picked
WHERE d.id = picked.id
RETURNING d.id, d.event_id, d.event_type, d.merchant_id, d.endpoint_id, d.payment_id, d.body,
          d.attempt_count, d.cycle_attempts, d.event_created_at, picked.old_token
"""
)


async def claim_due(
    conn: AsyncConnection,
    *,
    now: datetime,
    limit: int,
    per_endpoint: int,
    excluded_endpoints: Sequence[str],
    lease_until: datetime,
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due deliveries, at most `per_endpoint` of any endpoint,
    none of `excluded_endpoints` (their endpoint_key: those this process already has
    enough of)."""
    token = new_id()
    rows = list(
        await conn.execute(
            _CLAIM,
            {
                "now": now,
                "excluded": list(excluded_endpoints),
                "window": max(limit * 4, 1000),
                "per_endpoint": per_endpoint,
                "limit": limit,
                "lease_until": lease_until,
                "token": token,
            },
        )
    )
    if not rows:
        return []
    claimed = [
        ClaimedDelivery(
            id=str(r.id),
            event_id=str(r.event_id),
            event_type=r.event_type,
            merchant_id=r.merchant_id,
            endpoint_id=r.endpoint_id,
            payment_id=r.payment_id,
            body=r.body,
            attempt_number=r.attempt_count,
            cycle_attempts=r.cycle_attempts,
            lease_token=token,
            event_created_at=r.event_created_at,
        )
        for r in rows
    ]
    relapsed = [str(r.id) for r in rows if r.old_token is not None]
    await _begin_attempts(conn, claimed, relapsed, now)
    return claimed


async def _begin_attempts(
    conn: AsyncConnection, claimed: Sequence[ClaimedDelivery], relapsed: Sequence[str], now: datetime
) -> None:
    if relapsed:
        # Their previous lease ran out without a result: that attempt was cut short.
        await conn.execute(
            update(A)
            .where(A.c.delivery_id.in_(relapsed), A.c.outcome == AttemptOutcome.IN_PROGRESS.value)
            .values(outcome=AttemptOutcome.INTERRUPTED.value, error=INTERRUPTED_ERROR)
        )
    await conn.execute(
        insert(A).on_conflict_do_nothing(),
        [
            {
                "delivery_id": c.id,
                "number": c.attempt_number,
                "started_at": now,
                "outcome": AttemptOutcome.IN_PROGRESS.value,
            }
            for c in claimed
        ],
    )


async def insert_claimed(
    conn: AsyncConnection, new: NewEvent, endpoint_id: str, *, now: datetime, lease_until: datetime
) -> ClaimedDelivery:
    """Insert a delivery to `endpoint_id` already leased to the caller for its first
    attempt (test events, which are not routed: they go where the caller says)."""
    delivery_id, token = new_id(), new_id()
    await conn.execute(
        insert(D).values(
            id=delivery_id,
            event_id=new.event_id,
            event_type=new.event_type,
            merchant_id=new.merchant_id,
            endpoint_id=endpoint_id,
            payment_id=new.payment_id,
            body=new.body,
            event_created_at=new.event_created_at,
            state=DeliveryState.PENDING.value,
            next_attempt_at=lease_until,
            lease_token=token,
            attempt_count=1,
            cycle_attempts=1,
            created_at=now,
            updated_at=now,
        )
    )
    claimed = ClaimedDelivery(
        id=delivery_id,
        event_id=new.event_id,
        event_type=new.event_type,
        merchant_id=new.merchant_id,
        endpoint_id=endpoint_id,
        payment_id=new.payment_id,
        body=new.body,
        attempt_number=1,
        cycle_attempts=1,
        lease_token=token,
        event_created_at=new.event_created_at,
    )
    await _begin_attempts(conn, [claimed], [], now)
    return claimed


# ---------------------------------------------------------------- results


async def record_results(conn: AsyncConnection, done: Sequence[AttemptDone], void: Sequence[AttemptVoid]) -> None:
    """Record a batch of attempt results (one statement per kind, for the whole batch).
    A delivery moves on only under the lease token its attempt was claimed with."""
    if done:
        await conn.execute(
            update(A)
            .where(A.c.delivery_id == bindparam("b_id"), A.c.number == bindparam("b_number"))
            .values(
                started_at=bindparam("b_started"),
                duration_ms=bindparam("b_duration"),
                status_code=bindparam("b_status"),
                error=bindparam("b_error"),
                outcome=bindparam("b_outcome"),
                url=bindparam("b_url"),
                next_attempt_at=bindparam("b_next"),
            ),
            [
                {
                    "b_id": d.delivery_id,
                    "b_number": d.number,
                    "b_started": d.started_at,
                    "b_duration": d.duration_ms,
                    "b_status": d.status_code,
                    "b_error": d.error,
                    "b_outcome": (AttemptOutcome.SUCCEEDED if d.succeeded else AttemptOutcome.FAILED).value,
                    "b_url": d.url,
                    "b_next": d.next_attempt_at,
                }
                for d in done
            ],
        )
        await conn.execute(
            update(D)
            .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"))
            .values(
                state=bindparam("b_state"),
                next_attempt_at=bindparam("b_next"),
                lease_token=None,
                url=bindparam("b_url"),
                last_status_code=bindparam("b_status"),
                last_error=bindparam("b_error"),
                updated_at=bindparam("b_now"),
                delivered_at=func.coalesce(bindparam("b_delivered"), D.c.delivered_at),
            ),
            [
                {
                    "b_id": d.delivery_id,
                    "b_token": d.lease_token,
                    "b_state": d.state.value,
                    "b_next": d.next_attempt_at,
                    "b_url": d.url,
                    "b_status": d.status_code,
                    "b_error": d.error,
                    "b_now": d.finished_at,
                    "b_delivered": d.finished_at if d.succeeded else None,
                }
                for d in done
            ],
        )
    if void:
        params = [
            {
                "b_id": v.delivery_id,
                "b_token": v.lease_token,
                "b_number": v.number,
                "b_state": v.state.value,
                "b_next": v.next_attempt_at,
                "b_reason": v.reason,
                "b_now": v.finished_at,
            }
            for v in void
        ]
        await conn.execute(
            text(
                """
DELETE FROM notifier_attempts a USING notifier_deliveries d
WHERE a.delivery_id = CAST(:b_id AS uuid) AND a.number = :b_number
  AND d.id = a.delivery_id AND d.lease_token = CAST(:b_token AS uuid)
"""
            ),
            params,
        )
        await conn.execute(
            text(
                """
UPDATE notifier_deliveries
SET state = :b_state, next_attempt_at = :b_next, lease_token = NULL,
    attempt_count = attempt_count - 1, cycle_attempts = cycle_attempts - 1,
    last_error = :b_reason, updated_at = :b_now
WHERE id = CAST(:b_id AS uuid) AND lease_token = CAST(:b_token AS uuid)
"""
            ),
            params,
        )


# ---------------------------------------------------------------- reads


def _attempt(r: Any) -> AttemptRecord:
    return AttemptRecord(
        number=r.number,
        started_at=r.started_at,
        duration_ms=r.duration_ms,
        status_code=r.status_code,
        error=r.error,
        outcome=r.outcome,
        url=r.url,
        next_attempt_at=r.next_attempt_at,
    )


def _delivery(r: Any, attempts: list[AttemptRecord] | None = None) -> DeliveryRecord:
    return DeliveryRecord(
        id=r.id,
        event_id=r.event_id,
        event_type=r.event_type,
        merchant_id=r.merchant_id,
        payment_id=r.payment_id,
        state=DeliveryState(r.state),
        url=r.url,
        endpoint_id=r.endpoint_id,
        attempt_count=r.attempt_count,
        next_attempt_at=r.next_attempt_at if r.state == DeliveryState.PENDING.value else None,
        last_status_code=r.last_status_code,
        last_error=r.last_error,
        created_at=r.created_at,
        attempts=attempts or [],
    )


_COLUMNS = [c for c in D.c if c.name != "body"]


async def get_delivery(conn: AsyncConnection, delivery_id: str, *, with_attempts: bool = True) -> DeliveryRecord | None:
    row = (await conn.execute(select(*_COLUMNS).where(D.c.id == delivery_id))).first()
    if row is None:
        return None
    attempts: list[AttemptRecord] = []
    if with_attempts:
        rows = await conn.execute(select(A).where(A.c.delivery_id == delivery_id).order_by(A.c.number))
        attempts = [_attempt(a) for a in rows]
    return _delivery(row, attempts)


async def list_deliveries(
    conn: AsyncConnection, flt: ListFilter, limit: int, after: tuple[datetime, str] | None
) -> list[DeliveryRecord]:
    """Newest first, keyset-paged on (created_at, id)."""
    query = select(*_COLUMNS)
    if flt.merchant_id is not None:
        query = query.where(D.c.merchant_id == flt.merchant_id)
    if flt.payment_id is not None:
        query = query.where(D.c.payment_id == flt.payment_id)
    if flt.event_id is not None:
        query = query.where(D.c.event_id == flt.event_id)
    if flt.state is not None:
        query = query.where(D.c.state == flt.state.value)
    if flt.endpoint_id is not None:
        query = query.where(D.c.endpoint_id == flt.endpoint_id)
    if after is not None:
        query = query.where(
            tuple_(D.c.created_at, D.c.id)
            < tuple_(literal(after[0], D.c.created_at.type), literal(after[1], D.c.id.type))
        )
    query = query.order_by(D.c.created_at.desc(), D.c.id.desc()).limit(limit)
    return [_delivery(r) for r in await conn.execute(query)]


# ---------------------------------------------------------------- redelivery


async def redeliver_one(conn: AsyncConnection, delivery_id: str, now: datetime) -> bool:
    """Queue one delivery again, now, with a fresh retry cycle. A delivery with an
    attempt in flight is left to it. False when the delivery does not exist."""
    result = await conn.execute(
        update(D)
        .where(
            D.c.id == delivery_id,
            or_(D.c.state != DeliveryState.PENDING.value, D.c.lease_token.is_(None)),
        )
        .values(state=DeliveryState.PENDING.value, next_attempt_at=now, cycle_attempts=0, updated_at=now)
        .returning(D.c.id)
    )
    if result.first() is not None:
        return True
    exists = (await conn.execute(select(D.c.id).where(D.c.id == delivery_id))).first()
    return exists is not None


async def redeliver_dead_letters(
    conn: AsyncConnection, merchant_id: str | None, now: datetime, endpoint_id: str | None = None
) -> int:
    """Queue every dead letter of the merchant, or of one endpoint (of the merchant, or
    of anyone's: merchant_id None), again, now."""
    where = [D.c.state == DeliveryState.DEAD_LETTERED.value]
    if merchant_id is not None:
        where.append(D.c.merchant_id == merchant_id)
    if endpoint_id is not None:
        where.append(D.c.endpoint_id == endpoint_id)
    result = await conn.execute(
        update(D)
        .where(*where)
        .values(state=DeliveryState.PENDING.value, next_attempt_at=now, cycle_attempts=0, updated_at=now)
        .returning(D.c.id)
    )
    return len(result.all())


# ---------------------------------------------------------------- retention


async def prune_finished(conn: AsyncConnection, before: datetime, limit: int = 5000) -> int:
    """Delete succeeded and skipped deliveries (with their attempts) last touched before
    `before`, and events routed before it."""
    doomed = (
        select(D.c.id)
        .where(
            D.c.state.in_([DeliveryState.SUCCEEDED.value, DeliveryState.SKIPPED.value]),
            D.c.updated_at < before,
        )
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(D).where(D.c.id.in_(doomed)))
    events = select(E.c.event_id).where(E.c.routed_at < before).limit(limit).scalar_subquery()
    routed = await conn.execute(delete(E).where(E.c.event_id.in_(events)))
    return (result.rowcount or 0) + (routed.rowcount or 0)


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    row = (
        await conn.execute(select(func.min(D.c.next_attempt_at)).where(D.c.state == DeliveryState.PENDING.value))
    ).first()
    return row[0] if row else None
