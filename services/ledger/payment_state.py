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
from services.ledger.domain.status import EventType, event_for_change, settle
from services.ledger.metrics import PAYMENT_EVENTS


def show_option(payment: PaymentRecord, index: int) -> None:
    """Make option `index` the selected one: the payment's headline fields repeat it."""
    for i, o in enumerate(payment.options):
        o.selected = i == index
    o = payment.options[index]
    payment.chain_id, payment.asset, payment.token_address, payment.decimals = (
        o.chain_id,
        o.asset,
        o.token_address,
        o.decimals,
    )
    payment.amount_due, payment.quote, payment.confirmations_required = o.amount_due, o.quote, o.confirmations_required
    payment.amount_received, payment.amount_confirmed = o.amount_received, o.amount_confirmed
    payment.amount_swept, payment.sweep_fee, payment.sweep_dust = o.amount_swept, o.sweep_fee, o.sweep_dust


def derive_change(
    payment: PaymentRecord,
    now: datetime,
    *,
    extra_event: EventType | None = None,
    touched: bool = False,
) -> tuple[bool, list[PaymentEventRecord]]:
    """Recompute amounts and status from `payment.transfers` over its options (pure).
    Returns (save it?, events to write); updates the record in place when it changed.
    `touched` says the caller changed a stored field itself (expired_at,
    cancelled_at, the sweep figures, a quote), so it is saved even when the derived
    fields stay."""
    settled = settle(
        payment.option_facts(),
        payment.transfer_facts(),
        expired=payment.expired_at is not None,
        cancelled=payment.cancelled_at is not None,
    )
    late = any(a.late for a in settled.amounts)
    old_status = payment.status
    old_selected = next((i for i, o in enumerate(payment.options) if o.selected), None)
    changed = (
        settled.status != old_status
        or late != payment.late
        or settled.selected != old_selected
        or touched
        or any(
            (o.amount_received, o.amount_confirmed, o.status) != (a.received, a.confirmed, st)
            for o, a, st in zip(payment.options, settled.amounts, settled.statuses, strict=True)
        )
    )
    if not changed and extra_event is None:
        return False, []
    for o, a, st in zip(payment.options, settled.amounts, settled.statuses, strict=True):
        o.amount_received, o.amount_confirmed, o.status = a.received, a.confirmed, st
    show_option(payment, settled.selected)
    payment.late = late
    payment.status = settled.status
    payment.version += 1
    payment.updated_at = now
    types = [t for t in (extra_event, event_for_change(old_status, settled.status)) if t is not None]
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
    Each option's sweep eligibility follows PaymentRecord.option_sweepable."""
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
