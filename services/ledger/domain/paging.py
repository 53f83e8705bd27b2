"""Opaque keyset page tokens: base64 of (created_at, id) of the last row served."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from services.common.errors import InvalidArgument

_BAD = "page_token is not one this API returned; start again with an empty page_token"


def encode_token(created_at: datetime, row_id: str | int) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "i": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str | int] | None:
    """(created_at in UTC, id). Anyone can decode and re-encode a token, so what
    goes into the query is checked like input: a time inside 0001..9999 in UTC,
    a string id without NUL (Postgres cannot take it), an integer id in BIGINT."""
    if not token:
        return None
    if len(token) > 512:
        raise InvalidArgument(_BAD)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        row_id = data["i"]
        if created_at.tzinfo is None or isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
            raise ValueError
        created_at = created_at.astimezone(UTC)  # OverflowError past 0001..9999
        if isinstance(row_id, str) and "\x00" in row_id:
            raise ValueError
        if isinstance(row_id, int) and not -(2**63) <= row_id < 2**63:
            raise ValueError
        return created_at, row_id
    except (ValueError, KeyError, TypeError, OverflowError):
        raise InvalidArgument(_BAD) from None
