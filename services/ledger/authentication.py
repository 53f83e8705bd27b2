"""Who is calling: an API key -> its merchant, with a short cache. The hash of the
key is looked up (domain/keys.py), never the key itself."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import PermissionDenied, Reason, Unauthenticated
from services.ledger.adapters import repository as repo
from services.ledger.domain import keys

UNKNOWN_KEY = "API key not recognised; check the key or ask the operator to rotate it"


class Authenticator:
    """API key -> merchant id, cached briefly (a disabled or rotated key stops
    working within `ttl` seconds on every replica)."""

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self._engine = engine
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str, str]] = {}

    async def merchant_for(self, api_key: str) -> str:
        merchant_id, active = await self.lookup(api_key)
        if not active:
            raise PermissionDenied("this merchant is disabled; contact the operator", reason=Reason.MERCHANT_DISABLED)
        return merchant_id

    async def lookup(self, api_key: str) -> tuple[str, bool]:
        """(merchant id, active) of an API key; Unauthenticated if unknown."""
        if not api_key or len(api_key) > 256:
            raise Unauthenticated(UNKNOWN_KEY, reason=Reason.API_KEY_UNKNOWN)
        digest = keys.hash_api_key(api_key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is None or hit[0] < now:
            async with self._engine.connect() as conn:
                found = await repo.merchants.merchant_auth(conn, digest)
            if found is None:
                self._cache.pop(digest, None)
                raise Unauthenticated(UNKNOWN_KEY, reason=Reason.API_KEY_UNKNOWN)
            hit = (now + self.ttl, found[0], found[1])
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = hit
        return hit[1], hit[2] == "active"

    def forget(self) -> None:
        self._cache.clear()
