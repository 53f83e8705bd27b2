"""Webhook signatures (Stripe style).

Every delivery carries

    Paymesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
    Paymesh-Event-Id:  <event id>

While an endpoint's secret is rolled, the header carries one v1 per secret that
signs (`t=...,v1=<new>,v1=<old>`): a receiver with either secret verifies.

The timestamp is inside the signed text, so a captured request cannot be
replayed later than the receiver's tolerance; the event id lets the receiver
drop a delivery it has already processed (delivery is at least once).
Merchants verify with services/notifier/verify.py (stdlib only, copyable).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SIGNATURE_HEADER = "Paymesh-Signature"
EVENT_ID_HEADER = "Paymesh-Event-Id"
EVENT_TYPE_HEADER = "Paymesh-Event-Type"
DELIVERY_ID_HEADER = "Paymesh-Delivery-Id"
ATTEMPT_HEADER = "Paymesh-Attempt"
SCHEME = "v1"


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: str | Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<signature>` with one v1 per secret, in the order given."""
    if isinstance(secrets, str):
        secrets = [secrets]
    signed = ",".join(f"{SCHEME}={compute_signature(s, timestamp, body)}" for s in secrets)
    return f"t={int(timestamp)},{signed}"
