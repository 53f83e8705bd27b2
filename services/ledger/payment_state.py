"""Re-derive a locked payment from its transfers and write the events its change
causes into the outbox, in the caller's transaction. Every path that changes
money (transfers, heads, reorgs, expiry, cancel, sweeps) goes through here, so
the status rules live in one place (domain/status.py). Events are handed to the
outbox as records; the repository encodes them for the wire."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters import repository as repo
from services.ledger.domain.records import PaymentEventRecord, PaymentRecord
from services.ledger.domain.status import (
    EventType,
    TransferFacts,
    derive_status,
    event_for_change,
    sum_transfers,
)
from services.ledger.metrics import PAYMENT_EVENTS


def derive_change(
    payment: PaymentRecord,
    now: datetime,
    *,
    extra_event: EventType | None = None,
    touched: bool = False,
) -> tuple[bool, list[PaymentEventRecord]]:
    """Recompute amounts and status from `payment.transfers` (pure). Returns
    (save it?, events to write); updates the record in place when it changed.
    `touched` says the caller changed a stored field itself (expired_at,
    cancelled_at, the sweep figures), so it is saved even when the derived fields stay."""
    amounts = sum_transfers([TransferFacts(t.amount, t.state, t.credited, t.late) for t in payment.transfers])
    expired = payment.expired_at is not None
    status = derive_status(
        amount_due=payment.amount_due,
        amount_minimum=payment.amount_minimum,
        amounts=amounts,
        amount_accounted=payment.amount_accounted,
        expired=expired,
        cancelled=payment.cancelled_at is not None,
    )
    old_status = payment.status
    changed = (
        status != old_status
        or amounts.received != payment.amount_received
        or amounts.confirmed != payment.amount_confirmed
        or amounts.late != payment.late
        or touched
    )
    if not changed and extra_event is None:
        return False, []
    payment.amount_received = amounts.received
    payment.amount_confirmed = amounts.confirmed
    payment.late = amounts.late
    payment.status = status
    payment.version += 1
    payment.updated_at = now
    types = [t for t in (extra_event, event_for_change(old_status, status)) if t is not None]
    events = [
        PaymentEventRecord(
            event_id=str(uuid.uuid4()), event_type=t.value, payment=payment, previous_status=old_status, created_at=now
        )
        for t in dict.fromkeys(types)
    ]
    return True, events


async def write_changes(
    conn: AsyncConnection,
    changed: list[PaymentRecord],
    events: list[PaymentEventRecord],
    on_event: Callable[[PaymentEventRecord], None] | None = None,
) -> None:
    """Save re-derived payments and their events (one round trip each, whatever the count).
    Each payment's sweep eligibility follows PaymentRecord.sweepable."""
    await repo.payments.save_payment_states(conn, changed)
    await repo.outbox.insert_events(conn, events)
    for e in events:
        PAYMENT_EVENTS.labels(e.event_type).inc()
        if on_event is not None:
            on_event(e)


async def refresh_payments(
    conn: AsyncConnection,
    payments: list[PaymentRecord],
    now: datetime,
    *,
    extra_event: EventType | None = None,
    on_event: Callable[[PaymentEventRecord], None] | None = None,
) -> list[PaymentEventRecord]:
    """refresh_payment for many locked payments at once (the chain-event batches)."""
    if not payments:
        return []
    by_payment = await repo.transfers.transfers_of_many(conn, [p.id for p in payments])
    changed: list[PaymentRecord] = []
    events: list[PaymentEventRecord] = []
    for payment in payments:
        payment.transfers = by_payment.get(payment.id, [])
        save, new_events = derive_change(payment, now, extra_event=extra_event)
        if save:
            changed.append(payment)
            events += new_events
    await write_changes(conn, changed, events, on_event)
    return events


async def refresh_payment(
    conn: AsyncConnection,
    payment: PaymentRecord,
    now: datetime,
    *,
    extra_event: EventType | None = None,
    touched: bool = False,
    on_event: Callable[[PaymentEventRecord], None] | None = None,
) -> list[PaymentEventRecord]:
    """Recompute amounts and status of a payment the caller has locked; save and
    emit events if anything changed. Returns the events written."""
    payment.transfers = await repo.transfers.transfers_of(conn, payment.id)
    save, events = derive_change(payment, now, extra_event=extra_event, touched=touched)
    if save:
        await write_changes(conn, [payment], events, on_event)
    return events
