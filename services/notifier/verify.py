"""Verify paymesh webhooks (for merchants; Python standard library only).

Copy this file into your project, or import it. In your webhook handler, pass
the raw request body (bytes, exactly as received: do not re-serialize the JSON),
the `Paymesh-Signature` header and your webhook secret:

    from verify import WebhookVerificationError, verify

    try:
        event = verify(body, headers["Paymesh-Signature"], secret)
    except WebhookVerificationError:
        return 400  # not from paymesh, altered, or too old
    if already_processed(event["id"]):  # deliveries are at least once
        return 200
    handle(event)  # event["type"] == "payment.confirmed", event["data"]["payment"], ...
    return 200     # any 2xx acknowledges; anything else is retried

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
It may carry several v1 values (e.g. while a secret is rotated); one matching
is enough. A signature older or newer than `tolerance` seconds is refused, so
a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["SIGNATURE_HEADER", "EVENT_ID_HEADER", "WebhookVerificationError", "verify", "verify_signature"]

SIGNATURE_HEADER = "Paymesh-Signature"
EVENT_ID_HEADER = "Paymesh-Event-Id"
DEFAULT_TOLERANCE = 300.0


class WebhookVerificationError(ValueError):
    """The request is not a valid, fresh paymesh webhook."""


def _parse(header: str) -> tuple[int, list[str]]:
    if not header or len(header) > 4096:
        raise WebhookVerificationError("missing or oversized Paymesh-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit():
                raise WebhookVerificationError("signature timestamp is not a number")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.strip().lower())
    if timestamp is None:
        raise WebhookVerificationError("signature header has no timestamp (t=...)")
    if not signatures:
        raise WebhookVerificationError("signature header has no v1 signature")
    return timestamp, signatures


def verify_signature(
    payload: bytes | str, header: str, secret: str, tolerance: float = DEFAULT_TOLERANCE, *, now: float | None = None
) -> int:
    """Check the signature; return its timestamp or raise WebhookVerificationError."""
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    if not secret:
        raise WebhookVerificationError("no webhook secret configured")
    timestamp, signatures = _parse(header)
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise WebhookVerificationError("signature does not match the body and secret")
    current = time.time() if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"signature timestamp is {abs(current - timestamp):.0f}s away from now (tolerance {tolerance:.0f}s)"
        )
    return timestamp


def verify(
    payload: bytes | str, header: str, secret: str, tolerance: float = DEFAULT_TOLERANCE, *, now: float | None = None
) -> dict[str, Any]:
    """Check the signature and return the event (the parsed JSON body)."""
    verify_signature(payload, header, secret, tolerance, now=now)
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookVerificationError("body is not JSON") from None
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        raise WebhookVerificationError("body is not a paymesh event")
    return event
