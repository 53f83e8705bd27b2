"""Opaque keyset page tokens: base64 of (created_at, id) of the last row served."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from services.common.errors import InvalidArgument

_BAD = "page_token is not one this API returned; start again with an empty page_token"


def encode_token(created_at: datetime, row_id: str | int) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "i": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str | int] | None:
    if not token:
        return None
    if len(token) > 512:
        raise InvalidArgument(_BAD)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        row_id = data["i"]
        if created_at.tzinfo is None or not isinstance(row_id, (str, int)):
            raise ValueError
        return created_at, row_id
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise InvalidArgument(_BAD) from None
