"""Who is calling: an API key -> its merchant, with a short cache. The hash of the
key is looked up (domain/keys.py), never the key itself."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import PermissionDenied, Reason, Unauthenticated
from services.ledger.adapters import repository as repo
from services.ledger.domain import keys
from services.ledger.domain.policy import Policy

UNKNOWN_KEY = "API key not recognised; check the key or ask the operator to rotate it"


@dataclass(frozen=True)
class MerchantAccess:
    """The calling merchant, as of the cache: its id, whether it is active, its payment policy."""

    merchant_id: str
    active: bool
    payment_policy: Policy


class Authenticator:
    """API key -> merchant id (and payment policy), cached briefly (a disabled or
    rotated key, or a new policy, takes effect within `ttl` seconds on every replica)."""

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self._engine = engine
        self.ttl = ttl
        self._cache: dict[str, tuple[float, MerchantAccess]] = {}

    async def merchant_for(self, api_key: str) -> str:
        return (await self.active_merchant(api_key)).merchant_id

    async def active_merchant(self, api_key: str) -> MerchantAccess:
        access = await self.access(api_key)
        if not access.active:
            raise PermissionDenied("this merchant is disabled; contact the operator", reason=Reason.MERCHANT_DISABLED)
        return access

    async def lookup(self, api_key: str) -> tuple[str, bool]:
        """(merchant id, active) of an API key; Unauthenticated if unknown."""
        access = await self.access(api_key)
        return access.merchant_id, access.active

    async def access(self, api_key: str) -> MerchantAccess:
        """The merchant of an API key; Unauthenticated if unknown."""
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
            merchant_id, status, policy = found
            hit = (now + self.ttl, MerchantAccess(merchant_id, status == "active", Policy.from_json(policy)))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = hit
        return hit[1]

    def forget(self) -> None:
        self._cache.clear()
