"""Records <-> NotifierService messages: the only place the notifier's delivery
records become protobuf (and the API's enum values become DeliveryState)."""

from __future__ import annotations

from paymesh.notifier.v1 import notifier_service_pb2 as npb

from services.common.timestamps import to_timestamp
from services.notifier.domain.records import AttemptRecord, DeliveryRecord, DeliveryState

STATE_TO_PB = {
    DeliveryState.PENDING: npb.DELIVERY_STATE_PENDING,
    DeliveryState.SUCCEEDED: npb.DELIVERY_STATE_SUCCEEDED,
    DeliveryState.DEAD_LETTERED: npb.DELIVERY_STATE_DEAD_LETTERED,
    DeliveryState.SKIPPED: npb.DELIVERY_STATE_SKIPPED,
}
PB_TO_STATE = {v: k for k, v in STATE_TO_PB.items()}


def attempt_to_pb(a: AttemptRecord) -> npb.Attempt:
    return npb.Attempt(
        number=a.number,
        started_at=to_timestamp(a.started_at),
        duration_ms=max(0, a.duration_ms),
        status_code=a.status_code,
        error=a.error,
    )


def delivery_to_pb(d: DeliveryRecord, *, with_attempts: bool = False) -> npb.Delivery:
    return npb.Delivery(
        delivery_id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        merchant_id=d.merchant_id,
        payment_id=d.payment_id,
        state=STATE_TO_PB[d.state],
        url=d.url,
        attempt_count=d.attempt_count,
        next_attempt_at=to_timestamp(d.next_attempt_at),
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=to_timestamp(d.created_at),
        attempts=[attempt_to_pb(a) for a in d.attempts] if with_attempts else [],
        endpoint_id=d.endpoint_id,
    )
