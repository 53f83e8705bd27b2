"""The JSON body of a webhook.

    {
      "id": "<event id, also in the Paymesh-Event-Id header>",
      "type": "payment.confirmed",
      "created_at": "2026-01-02T03:04:05.678Z",
      "merchant_id": "mch_...",
      "data": {
        "payment": { ...the Payment exactly as the gRPC API returns it, in
                     proto JSON with the proto field names: amounts are
                     decimal strings of base units, 64-bit integers are
                     strings, enums are their names; every field is
                     present, e.g. amount_swept, sweep_fee, sweep_dust,
                     and each transfer's asset and kind... },
        "previous_status": "PAYMENT_STATUS_DETECTED"
      }
    }

A change of where the merchant's money goes (`merchant.config_changed`: a treasury or
the xpub) carries `data.audit`, the audit entry: who, what, before and after.

A refund's or payout's event has the type "refund.<what>" or "payout.<what>"
(created, approved, broadcast, confirmed, failed, cancelled) and carries
`data.refund` or `data.payout`: the refund or payout as PayoutService returns it;
a refund's event also carries the refunded `data.payment` (without transfers).

The body is built once, when the event is taken in, and stored: every attempt
sends the same bytes (only the signature's timestamp changes).
"""

from __future__ import annotations

import json
from typing import Any

from services.common.webhook_types import webhook_type

TEST_EVENT_TYPE = "test"


def build_body(
    *,
    event_id: str,
    event_type: str,
    created_at: str,
    merchant_id: str,
    payment: dict[str, Any] | None,
    previous_status: str | None = None,
    payout: dict[str, Any] | None = None,
    audit: dict[str, Any] | None = None,
) -> bytes:
    """`payout`: a refund's or payout's event (data.refund or data.payout); `audit`: a
    configuration change's (data.audit: who, what, before and after)."""
    data: dict[str, Any] = {}
    if audit is not None:
        data["audit"] = audit
    if payout is not None:
        data["refund" if event_type.startswith("refund_") else "payout"] = payout
    if payment is not None:
        data["payment"] = payment
    if previous_status:
        data["previous_status"] = previous_status
    envelope = {
        "id": event_id,
        "type": webhook_type(event_type),
        "created_at": created_at,
        "merchant_id": merchant_id,
        "data": data,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
