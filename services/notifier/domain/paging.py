"""Opaque keyset page tokens for ListDeliveries: (created_at, delivery id) of the
last row served, bound to the filters they were issued for."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime

from services.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

_BAD = "page_token is not one this API returned; start again with an empty page_token"
_OTHER = "page_token was issued for different filters; send the same filters as for the first page"


def page_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be 1 to {MAX_PAGE_SIZE}; got {requested}")
    return requested


def filter_fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def encode_token(created_at: datetime, row_id: str, fingerprint: str) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "i": row_id, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, fingerprint: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    if len(token) > 512:
        raise InvalidArgument(_BAD)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        row_id = data["i"]
        issued_for = data["f"]
        if created_at.tzinfo is None or not isinstance(row_id, str) or not isinstance(issued_for, str):
            raise ValueError
        created_at = created_at.astimezone(UTC)  # OverflowError past 0001..9999: a token made by hand
        row_id = str(uuid.UUID(row_id))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OverflowError):
        raise InvalidArgument(_BAD) from None
    if issued_for != fingerprint:
        raise InvalidArgument(_OTHER)
    return created_at, row_id
