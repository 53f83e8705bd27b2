"""The payment events that wake a chain's sweeper (the ledger's NATS subjects
paymesh.payments.<merchant>.<event>, payload paymesh.events.v1.PaymentEvent).

After these events a payment may have become sweepable, so the sweeper of the
payment's chain starts a round at once instead of at its next interval. A core
NATS subscription, not a JetStream consumer: there is nothing to ack, and an
event that is missed (the sweeper was down, the message was dropped) costs at
most one interval (PAYMESH_SWEEPER_INTERVAL_SECONDS), since every round claims
whatever the ledger holds claimable. Off with PAYMESH_SWEEPER_WAKE_ON_EVENTS=false.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from paymesh.events.v1 import payment_events_pb2 as evpb

from services.common import nats_helpers

# Payment events after which a payment may have become sweepable, or a refund or
# payout sendable (approved), or a sweep no longer held back for a refund.
WAKE_EVENTS = (
    "confirmed",
    "overpaid",
    "underpaid",
    "paid_after_expiry",
    "expired",
    "refund_approved",
    "refund_confirmed",
    "refund_failed",
    "refund_cancelled",
    "payout_approved",
)


class PaymentEventWakeups:
    """Calls `wake(chain_id)` for every wake event (chain_id 0: the event could not be
    read, wake every chain)."""

    def __init__(self, wake: Callable[[int], None]) -> None:
        self._wake = wake
        self._subscriptions: list = []

    async def subscribe(self, nc) -> None:
        for event in WAKE_EVENTS:
            self._subscriptions.append(
                await nc.subscribe(nats_helpers.payment_subject("*", event), cb=self._on_message)
            )

    async def unsubscribe(self) -> None:
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subscriptions = []

    async def _on_message(self, msg) -> None:
        try:
            event = evpb.PaymentEvent.FromString(msg.data)
            chain_id = event.payout.chain_id if event.HasField("payout") else event.payment.chain_id
        except Exception:  # noqa: BLE001 - a malformed event only costs an extra round
            chain_id = 0
        self._wake(chain_id)
