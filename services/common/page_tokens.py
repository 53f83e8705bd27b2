"""Page tokens: opaque keyset cursors, signed and bound to who asked for what.

A token carries the (created_at, id) of the last row served and a fingerprint of
the filters of the listing it continues. It is signed with HMAC-SHA256 over the
listing's *scope* (the RPC and the caller, e.g. "ListPayments|mer_123") and the
cursor, with a key every replica of the service shares (`signing_key` in
services/common/db.py keeps it in the service's own database). So:

- a token from another RPC, another caller or another deployment, or one edited
  by hand, fails the signature and is INVALID_ARGUMENT ("not one this API
  returned"), never a query;
- a genuine token sent with other filters is INVALID_ARGUMENT with a message
  that says to send the first page's filters again.

Tokens are short-lived by nature but carry no expiry: a cursor stays meaningful
as long as the rows do. The signature is truncated to 128 bits, plenty for a
MAC that an attacker must forge online, one request at a time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from services.common.errors import InvalidArgument

BAD_TOKEN = "page_token is not one this API returned; start again with an empty page_token"
OTHER_FILTERS = "page_token was issued for different filters; send the same filters as for the first page"
_MAX_TOKEN = 512
_SIG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    """The page size of a List request: 0 means the default."""
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be 1 to {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE}); got {requested}")
    return requested


def _sane(created_at: datetime, row_id: object, id_type: type) -> bool:
    if created_at.tzinfo is None or type(row_id) is not id_type:
        return False
    try:
        created_at.astimezone(UTC)  # 0001..9999 in UTC, as Postgres stores it
    except (OverflowError, ValueError):
        return False
    if isinstance(row_id, str):
        return 0 < len(row_id) <= 128 and "\x00" not in row_id
    return -(2**63) <= row_id < 2**63  # type: ignore[operator]


def filter_fingerprint(*parts: object) -> str:
    """A short digest of a listing's filters (any values with a stable str())."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


class PageTokens:
    """Issues and reads the page tokens of one service (one shared key)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("page token key must be at least 16 bytes")
        self._key = key

    def _sign(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_SIG_BYTES]

    def issue(self, scope: str, created_at: datetime, row_id: str | int, filters: str = "") -> str:
        """The token that continues a listing after the row (created_at, row_id)."""
        payload = json.dumps({"t": created_at.isoformat(), "i": row_id, "f": filters}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(scope, payload))}"

    def read(
        self, scope: str, token: str, id_type: type[str] | type[int], filters: str = ""
    ) -> tuple[datetime, str | int] | None:
        """The cursor of a token this service issued for `scope` (None for an empty
        token); InvalidArgument for anything else."""
        if not token:
            return None
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            raise InvalidArgument(BAD_TOKEN)
        body, _, sig = token.partition(".")
        try:
            payload, signature = _unb64(body), _unb64(sig)
        except ValueError:
            raise InvalidArgument(BAD_TOKEN) from None
        if not hmac.compare_digest(signature, self._sign(scope, payload)):
            raise InvalidArgument(BAD_TOKEN)
        try:
            data = json.loads(payload)
            created_at = datetime.fromisoformat(data["t"])
            row_id = data["i"]
            issued_for = data["f"]
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(BAD_TOKEN) from None
        # Signed by us, so well formed; checked anyway so a leaked key cannot carry into
        # a query what the database refuses.
        if not _sane(created_at, row_id, id_type) or not isinstance(issued_for, str):
            raise InvalidArgument(BAD_TOKEN)
        if issued_for != filters:
            raise InvalidArgument(OTHER_FILTERS)
        return created_at, row_id
